"""Garbage collection: delete what no ref, kept run or recent write needs.

Kept:
- every target in every ref's history (so any rollback still works) and the
  whole upstream lineage of each, and every run a ref entry names;
- every run the policy keeps (all runs by default; with ``keep_days``, the
  runs started within that many days, and runs still going) and every object
  they reference (inputs, outputs, environment, code, git diff; tree entries);
- every object younger than the grace period, so an object a run in
  progress has written but not yet referenced is never deleted;
- every object a live run names in its start or pin entries (pins.py), read
  last, so a run that re-uses an old object keeps it while it is going.

Leftovers of killed writers older than the grace period go too: local temp
files and unfinished S3 multipart uploads.

Memo entries (``cache/``, see ``store/cacheindex.py``) of deleted runs are deleted
with them; the objects the other entries name are kept.

A gc that deletes runs first writes the catalog segments of their days
afresh without them (``store.segments.rewrite_day``), then deletes them, then
writes ``gc/<id>.json`` (created once) naming them, so every other machine's
catalog drops them at its next sync.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from . import canonical
from ._settings import host_name, user_name
from .errors import LedgerError
from .ids import day_path, id_time, new_run_id, whole_key
from .lineage import upstream_of
from .records import Artifact, record_digests, to_iso, utcnow
from .runs import Run
from .store import segments
from .store.backends import LocalBackend
from .store.cacheindex import sweep
from .store.layout import CHUNKED, OBJECTS, checks_prefix, digest_of_key
from .store.refs import Refs
from .store.uploads import abandoned_uploads, abort_uploads

if TYPE_CHECKING:
    from .catalog import Catalog
    from .store import Store

__all__ = ["GcReport", "collect", "object_sizes"]


class LiveDigests(Protocol):
    """Every object a live run names, read fresh from the store (``pins.live_digests``):
    ``known`` are the run ids gc saw when it began, ``running`` those then running."""

    def __call__(self, *, known: Iterable[str], running: Iterable[str]) -> set[str]: ...


@attrs.frozen
class GcReport:
    """What gc deleted (or, with ``dry_run``, would delete), and what it kept.

    The counts add up: ``len(runs) + kept_runs`` is every run gc saw and
    ``len(objects) + kept_objects`` every object.  ``kept_because`` says why
    each kept run stays, one reason a run, the first that holds: ``ref`` (a
    ref's target or its upstream lineage), ``running``, ``recent`` (started
    within ``keep_days``), ``grace`` (younger than the grace period).
    """

    dry_run: bool
    runs: tuple[str, ...]
    objects: tuple[str, ...]
    bytes: int
    kept_runs: int
    kept_objects: int
    temp_files: int = 0
    #: unfinished multipart uploads (S3) older than the grace period, aborted
    uploads: int = 0
    kept_because: dict[str, int] = attrs.field(factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "runs": list(self.runs),
            "objects": list(self.objects),
            "bytes": self.bytes,
            "kept_runs": self.kept_runs,
            "kept_objects": self.kept_objects,
            "temp_files": self.temp_files,
            "uploads": self.uploads,
            "kept_because": dict(self.kept_because),
        }


def object_sizes(store: Store) -> Iterator[tuple[str, int]]:
    """``(digest, size)`` of every object: one listing of ``objects/`` (``mlledger du``)."""
    for d, _mtime, size in _objects_with_mtime(store):
        yield d, size


def _objects_with_mtime(store: Store) -> Iterator[tuple[str, float, int]]:
    """``(digest, mtime, size)`` of every object."""
    for prefix in (OBJECTS, CHUNKED):  # a chunked file counts as its chunk list
        yield from _listed(store, prefix)


def _listed(store: Store, prefix: str) -> Iterator[tuple[str, float, int]]:
    now = time.time()  # unknown age: treat as new, never delete
    for key, at, size in store.backend.list_details(f"{prefix}/{store.algorithm}"):
        d = digest_of_key(key)
        if d is not None:
            yield d, now if at is None else at, size


def collect(
    store: Store,
    cat: Catalog,
    *,
    resolve: Callable[[str], Run | Artifact],
    live: LiveDigests,
    stored: MutableMapping[str, Any],
    dry_run: bool,
    keep_days: float | None,
    grace_seconds: float,
) -> GcReport:
    """Delete (or with ``dry_run`` only count) what nothing keeps, in ``store``.

    ``resolve`` turns a ref's target into a Run or an Artifact; ``live`` reads
    what live runs use (``pins.live_digests``); ``stored`` maps the digests the
    caller remembers as stored (each one deleted is dropped from it).
    """
    cat.sync(everywhere=True)  # every day folder: a run the catalog missed keeps its objects
    now = time.time()
    records: dict[str, dict[str, Any]] = {
        rid: canonical.loads(text) for rid, text in cat.records()
    }
    kept_runs: set[str] = set()
    recent: set[str] = set()
    running: set[str] = set()
    for rid, rec in records.items():
        if keep_days is None or now - id_time(rid).timestamp() <= keep_days * 86400:
            recent.add(rid)
        if rec.get("status") == "running":
            running.add(rid)
    kept_runs |= recent | running
    by_ref: set[str] = set()
    kept: set[str] = set()
    # refs: every target in every history, with its upstream lineage
    refs = Refs(store)
    for name in refs.names():
        for entry in refs.history(name):
            if entry.run:  # the run the entry names (its record is pinned by the entry)
                kept_runs.add(entry.run)
            try:
                got = resolve(entry.target)
            except LedgerError:
                continue
            runs, digests = upstream_of(cat, got)
            by_ref |= runs
            kept |= digests
    kept_runs |= by_ref
    for rid in kept_runs:
        record = records.get(rid)
        if record is not None:
            kept.update(record_digests(record))
    # tree entries are kept with their tree
    for d in list(kept):
        with contextlib.suppress(LedgerError, OSError):
            if store.has(d) and store.kind(d) == "tree":
                kept.update(e.digest for e in store.read_tree(d).files if e.digest)
    doomed_runs = sorted(
        rid
        for rid, rec in records.items()
        if rid not in kept_runs
        and rec.get("status") != "running"
        and now - id_time(rid).timestamp() >= grace_seconds
    )
    # memo entries of the runs that stay keep their values (a memo's own pickle of a
    # returned tuple is named by nothing else); those of deleted runs go with them
    kept |= sweep(
        store, doomed=doomed_runs, known=records, older_than=grace_seconds, dry_run=dry_run
    )
    sizes: dict[str, int] = {}
    total = 0
    for d, mtime, size in _objects_with_mtime(store):
        total += 1
        if d in kept or now - mtime < grace_seconds:
            continue
        sizes[d] = sizes.get(d, 0) + size  # a file stored whole may have a chunk list too
    doomed = _spare_chunks(store, _spare_live_runs(live, sizes, records))
    freed = sum(sizes[d] for d in doomed)
    temp = _temp_files(store, now, grace_seconds)
    uploads = abandoned_uploads(store.backend, older_than=grace_seconds, now=now)
    if not dry_run:
        abort_uploads(store.backend, uploads)
        # segments first: a gc cut short never leaves a segment holding a deleted run
        _rewrite_segments(store, doomed_runs)
        for rid in doomed_runs:
            base = day_path(rid)
            keys = list(store.backend.list(base))
            store.backend.delete(whole_key(rid))  # a short run's one entry
            # the start entry goes last: a half-deleted run still reads as a run
            keys.sort(key=lambda k: k.endswith("/start.json"))
            # its check reports go first: a run left half-deleted keeps a run to show them
            for k in [*store.backend.list(checks_prefix(rid)), *keys]:
                store.backend.delete(k)
        if doomed_runs:
            cat.forget_runs(doomed_runs)
            _log_deleted_runs(store, cat, doomed_runs)
        for d in doomed:
            store.delete(d)
        _forget(stored, set(doomed))
        for p in temp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
    because: dict[str, int] = {}
    for rid in set(records) - set(doomed_runs):
        why = next(
            (w for w, s in (("ref", by_ref), ("running", running), ("recent", recent)) if rid in s),
            "grace",
        )
        because[why] = because.get(why, 0) + 1
    return GcReport(
        dry_run=dry_run,
        runs=tuple(doomed_runs),
        objects=tuple(sorted(doomed)),
        bytes=freed,
        kept_runs=len(records) - len(doomed_runs),
        kept_objects=total - len(doomed),
        temp_files=len(temp),
        uploads=len(uploads),
        kept_because=dict(sorted(because.items())),
    )


def _spare_live_runs(
    live: LiveDigests, candidates: dict[str, int], records: dict[str, dict[str, Any]]
) -> list[str]:
    """The candidates no live run uses, read from the store as late as possible.

    A run still going may use an old object it did not rewrite (its age says
    nothing); its start entry and pin entries name it (see pins.py).  They are
    read here, after everything else, so a run that started or pinned while gc
    looked at the rest still counts.
    """
    if not candidates:
        return []
    running = [rid for rid, rec in records.items() if rec.get("status") == "running"]
    used = live(known=records, running=running)
    return [d for d in candidates if d not in used]


def _spare_chunks(store: Store, doomed: list[str]) -> list[str]:
    """``doomed`` without the chunks a chunked file that stays lists, chunk lists first (a
    gc cut short never leaves a chunk list whose chunks are gone)."""
    chunked = set(store.iter_chunked())
    if not chunked:
        return doomed
    gone = set(doomed)
    kept: set[str] = set()
    for d in chunked - gone:
        with contextlib.suppress(LedgerError, OSError):
            kept.update(store.chunks_of(d) or ())
    return sorted((d for d in doomed if d not in kept), key=lambda d: d not in chunked)


def _log_deleted_runs(store: Store, cat: Catalog, run_ids: list[str]) -> None:
    """Leave a ``gc/<id>.json`` entry naming the deleted runs, for other machines' catalogs."""
    doc = {"runs": run_ids, "at": to_iso(utcnow()), "host": host_name(), "user": user_name()}
    for _ in range(100):  # ids only grow: another gc's name is never taken twice
        name = f"{new_run_id()}.json"
        if store.create_entry(f"gc/{name}", canonical.dumps(doc)):
            # this catalog forgot them already: no need to read the entry back
            cat.mark_gc_seen(name)
            return


def _rewrite_segments(store: Store, run_ids: list[str]) -> None:
    """Each segment of a day about to lose runs is written afresh from the entries of the
    runs that stay, and the old one deleted: no record of a deleted run stays in the
    store, and a first sync trusting the segment does not show runs about to go."""
    if not run_ids:
        return
    found = segments.find(store)
    for day in sorted({day_path(rid).split("/", 1)[1].rsplit("/", 1)[0] for rid in run_ids}):
        if day in found:
            segments.rewrite_day(store, day, found[day], without=run_ids)


def _forget(stored: MutableMapping[str, Any], deleted: Iterable[str]) -> None:
    """Drop deleted objects from what this ledger remembers as stored.

    The ledger skips writing an object it knows exists (its environment
    record above all); after gc deleted it, the next run must write it again.
    """
    for d in deleted:
        stored.pop(d, None)


def _temp_files(store: Store, now: float, grace_seconds: float) -> list[str]:
    """Leftover temp files of writers that died (local stores only)."""
    backend = store.backend
    if not isinstance(backend, LocalBackend):
        return []
    out: list[str] = []
    for dirpath, _dirs, files in os.walk(backend.root):
        for n in files:
            if n.startswith(".tmp-"):
                p = os.path.join(dirpath, n)
                with contextlib.suppress(FileNotFoundError):
                    if now - os.stat(p).st_mtime >= grace_seconds:
                        out.append(p)
    return out
