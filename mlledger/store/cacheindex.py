"""The memo index: which finished run answers a memoized call, found with one read.

``cache/<function>/<call>/<seq:010d>.json``: for each function and call key, an
append-only history of entries, each created once and sealed
(:mod:`~mlledger.store.chain`), each naming a finished run and what a hit needs
(its params, inputs, outputs, the return value's artifact, the files it read).

Entry 1 is read first: most calls have one entry, so a hit is one read.  A call
gets a later entry when no earlier one could answer it (its stored value was
deleted, or the files it read have other bytes now); a reader that finds entry
1 unusable, or gone with its run, lists the folder and tries the others, newest
first.  Two processes
that finish the same call at once both try to create the same number: one
wins, the other reads the winner and stops when it answers the same call.

``gc`` drops the entries of the runs it deletes and keeps what the others need
(:func:`sweep`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .. import canonical
from ..errors import DamagedEntryError, NotFoundError
from ..hashing import digest_bytes
from ..ids import is_run_id
from ..records import from_iso
from . import layout
from .chain import SEAL, seal, seal_ok
from .history import ENTRY_RE, History

if TYPE_CHECKING:
    from .store import Store

__all__ = ["CacheIndex", "function_key", "sweep"]

#: how many numbers a writer tries before it gives up (each try follows a lost race)
_ATTEMPTS = 50


def function_key(name: str, algorithm: str) -> str:
    """The folder name of a function's memo entries: its readable name (``module.qualname``,
    cut to 80 safe characters) and a short digest of the exact name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip(".")[:80] or "function"
    return f"{safe}-{digest_bytes(name.encode('utf-8'), algorithm).partition(':')[2][:12]}"


class CacheIndex:
    """The entries of one call of one function in ``store``."""

    def __init__(self, store: Store, function: str, call: str) -> None:
        self.store = store
        self.history = History(store, layout.cache_prefix(function, call))

    def read(self, seq: int) -> dict[str, Any] | None:
        """Entry ``seq``, checked; None when it does not exist.

        Raises :class:`DamagedEntryError` for an entry that is not a sealed memo entry.
        """
        key = self.history.key(seq)
        try:
            raw = self.store.read_entry(key)
        except NotFoundError:
            return None
        return _check(key, raw, self.store.algorithm)

    def later(self) -> list[int]:
        """The numbers of the entries after the first, newest first (a fresh listing)."""
        return sorted((s for s in self.history.seqs() if s > 1), reverse=True)

    def add(self, doc: dict[str, Any], same: Callable[[dict[str, Any]], bool]) -> int | None:
        """Create the next entry holding ``doc``; returns its number, or None when an entry
        that answers the same call (``same(entry)``) is there already or was written
        meanwhile by another process."""
        seqs = self.history.seqs()
        for s in sorted(seqs, reverse=True):
            got = self._quiet_read(s)
            if got is not None and same(got):
                return None
        seq = (seqs[-1] if seqs else 0) + 1
        body = {k: v for k, v in doc.items() if k != SEAL}
        for _ in range(_ATTEMPTS):
            if self.store.create_entry(self.history.key(seq), seal(body, self.store.algorithm)):
                return seq
            got = self._quiet_read(seq)  # a race lost: the winner may answer this call
            if got is not None and same(got):
                return None
            seq += 1
        return None

    def _quiet_read(self, seq: int) -> dict[str, Any] | None:
        try:
            return self.read(seq)
        except DamagedEntryError:
            return None


def _check(key: str, raw: bytes, algorithm: str) -> dict[str, Any]:
    try:
        doc = canonical.loads(raw)
    except (ValueError, RecursionError):
        raise DamagedEntryError(key, "not JSON") from None
    if not isinstance(doc, dict):
        raise DamagedEntryError(key, "not a JSON object")
    if not seal_ok(doc, algorithm):
        raise DamagedEntryError(key, "its seal does not match its content")
    run = doc.get("run")
    if not isinstance(run, str) or not is_run_id(run):
        raise DamagedEntryError(key, "it names no run")
    for field in ("params", "inputs", "outputs", "files", "return"):
        if not isinstance(doc.get(field), dict):
            raise DamagedEntryError(key, f"{field} is not an object")
    return doc


def sweep(
    store: Store,
    *,
    doomed: Iterable[str],
    known: Iterable[str],
    older_than: float,
    dry_run: bool = False,
) -> set[str]:
    """For gc: delete the memo entries that name a ``doomed`` run, or a run gc does not
    know (deleted some other way) in an entry written more than ``older_than`` seconds
    ago (a younger one may name a run that ended after gc looked); unless ``dry_run``.
    Returns every object the remaining entries name (the values they return, the
    outputs they restore), which gc keeps.  A later entry of a call whose entry went
    still answers it; a damaged entry is left as it is and keeps nothing."""
    gone, alive = set(doomed), set(known) - set(doomed)
    now = time.time()
    keys = [k for k in store.backend.list(layout.CACHE) if ENTRY_RE.fullmatch(k.rsplit("/", 1)[-1])]
    kept: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        for key, raw in store.backend.read_many(chunk).items():
            if raw is None:
                continue
            try:
                doc = _check(key, raw, store.algorithm)
            except DamagedEntryError:
                continue  # it answers no call: nothing to keep for it
            run = doc["run"]
            if run in gone or (run not in alive and now - _written(doc) >= older_than):
                if not dry_run:
                    store.backend.delete(key)
                continue
            kept.update(_named(doc))
    return kept


def _written(doc: dict[str, Any]) -> float:
    """When an entry was written (its ``at``); now when it does not say."""
    try:
        return from_iso(doc["at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return time.time()


def _named(doc: dict[str, Any]) -> Iterator[str]:
    """The objects a memo entry needs: its return value and its outputs."""
    ret = doc["return"]
    if ret.get("kind") == "value" and isinstance(ret.get("digest"), str):
        yield ret["digest"]
    for art in doc["outputs"].values():
        if isinstance(art, dict) and isinstance(art.get("digest"), str):
            yield art["digest"]
