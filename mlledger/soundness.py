"""``ledger.verify()``: the store's own checks, and what the runs and refs reference."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from . import canonical, run_entries
from .audit import check_trail, read_run_entries
from .errors import LedgerError
from .late import marked_day
from .records import record_digests
from .store import Refs, segments
from .store.layout import LATE

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .catalog import Catalog
    from .store import Store, VerifyReport

__all__ = ["verify_ledger"]


def verify_ledger(
    store: Store,
    catalog: Catalog,
    resolve: Callable[[str], Any],
    *,
    callback: Callback | None = None,
) -> VerifyReport:
    """Rehash every object; check every object a run or ref references exists and is
    sound, that every run entry is a readable record (``damaged`` lists those not), and
    every seal and link of the audit trail (``.trail``; ``.unchained`` counts entries
    from before the chain).  ``resolve`` reads a ref's target."""
    entries = read_run_entries(store)  # listed and read once for both checks
    damaged = tuple(run_entries.scan(store, read=entries))
    report = attrs.evolve(store.verify(callback=callback), damaged=damaged)
    corrupt = set(report.corrupt)
    present_missing: list[tuple[str, str]] = []
    problems = list(report.problems)
    for rid, digest in _referenced_digests(catalog):
        if digest in corrupt:
            problems.append(f"run {rid} references the corrupt object {digest}")
        elif not store.has(digest):
            present_missing.append((rid, digest))
    refs = Refs(store)
    for name in refs.names():
        try:
            resolve(refs.get(name).target)
        except LedgerError as e:
            problems.append(f"ref {name}: {e}")
    missing = sorted(set(report.missing) | {d for _, d in present_missing})
    problems += segment_problems(store, entries)
    trail, unchained = check_trail(store, entries)
    return attrs.evolve(
        report,
        missing=tuple(missing),
        dangling=tuple(sorted(set(report.dangling) | set(present_missing))),
        problems=tuple(problems),
        trail=tuple(trail),
        unchained=unchained,
    )


def segment_problems(store: Store, entries: dict[str, bytes | None]) -> list[str]:
    """What is wrong with each catalog segment against the run entries it covers."""
    out = []
    found = segments.find(store)
    marked = {day for n in store.backend.list_dir(LATE) if (day := marked_day(n)) is not None}
    folders: dict[str, set[str]] = {}  # unmarked day -> the run names of its folder
    for key in entries:
        parts = key.split("/", 5)
        if (day := "/".join(parts[1:4])) in found and day not in marked:
            folders.setdefault(day, set()).add(parts[4])
    for day, keys in found.items():
        got = store.backend.read_many(keys)
        sound: list[tuple[str, segments.Segment]] = []
        for key in keys:
            data = got.get(key)
            if data is None:
                continue
            try:
                sound.append((key, segments.decode(key, data, store.algorithm)))
            except ValueError as e:
                out.append(f"segment {e}: a first sync reads that day entry by entry")
        # a first sync trusts the union of the day's listings when every segment is sound and
        # has one: a run of the folder none of them names would not be seen
        listed = {n for _, seg in sound for n in seg.listing or ()}
        trusted = len(sound) == len(keys) and all(seg.listing is not None for _, seg in sound)
        folder = folders.get(day, set()) - listed if trusted else set()
        for key, seg in sound:
            problems = segments.check(seg, entries, store.algorithm, folder=folder)
            out += [f"segment {key}: {p}" for p in problems]
            folder = set()  # each run named once for the day
    return out


def _referenced_digests(catalog: Catalog) -> Iterable[tuple[str, str]]:
    """``(run id, digest)`` for every object the runs in the store reference."""
    catalog.sync()
    for rid, rec_text in catalog.records():
        for digest in record_digests(canonical.loads(rec_text)):
            yield rid, digest
