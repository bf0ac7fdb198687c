"""Run entries read back from the store: parsed and their shape checked.

mlledger writes a run's entries (``start.json``, ``end.json``, a short run's
one entry ``<run-id>.json``) once, but a store can still hold a damaged one:
a disk fault, a copy cut short, a hand edit, another program's file.  Such
an entry is never trusted and never stops the others: readers skip the run
with one :class:`LedgerWarning` (sync, reindex, log, lineage), ``get`` of
that very run raises :class:`DamagedEntryError`, and ``verify`` lists it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import canonical
from .errors import DamagedEntryError, LedgerError, LedgerWarning
from .hashing import parse_digest

if TYPE_CHECKING:
    from .store import Store

__all__ = ["DamagedEntryError", "check", "merge", "scan", "warn_damaged"]

_TEXT = ("id", "name", "status", "kind", "started_at", "ended_at", "parent_id", "user", "host",
         "message", "env", "heartbeat", "baseline")  # fmt: skip
_MAPS = ("params", "tags", "metrics", "inputs", "outputs", "code", "git", "resources", "process")
_STATS = ("last", "min", "max", "count")  # what Run reads of each metric


def _parse(key: str, raw: bytes) -> dict[str, Any]:
    try:
        doc = canonical.loads(raw)
    except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, nesting too deep
        raise DamagedEntryError(key, f"not JSON: {str(e)[:80]}") from None
    if not isinstance(doc, dict):
        raise DamagedEntryError(key, f"a JSON {type(doc).__name__}, not an object")
    return doc


def _num(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def check(key: str, raw: bytes, run_id: str) -> dict[str, Any]:
    """The entry ``raw`` at ``key`` as a dict, its fields of the types readers use.

    Raises :class:`DamagedEntryError` naming the key and what is wrong.
    """
    doc = _parse(key, raw)
    for f in _TEXT:
        if doc.get(f) is not None and not isinstance(doc[f], str):
            raise DamagedEntryError(key, f"{f} is a {type(doc[f]).__name__}, not text")
    if doc.get("id", run_id) != run_id:
        raise DamagedEntryError(key, f"it names the run {doc['id']!r}")
    for f in _MAPS:
        if doc.get(f) is not None and not isinstance(doc[f], dict):
            raise DamagedEntryError(key, f"{f} is a {type(doc[f]).__name__}, not an object")
    for name, m in (doc.get("metrics") or {}).items():
        if not (isinstance(m, dict) and all(s in m and _num(m[s]) for s in _STATS)):
            raise DamagedEntryError(key, f"metric {name!r} is not a last/min/max record")
    for section in ("inputs", "outputs"):
        for name, a in (doc.get(section) or {}).items():
            if not isinstance(a, dict):
                raise DamagedEntryError(key, f"{section} {name!r} is not an artifact")
            try:
                parse_digest(a.get("digest"))  # type: ignore[arg-type]
            except LedgerError:
                raise DamagedEntryError(key, f"{section} {name!r} has no valid digest") from None
            if not _num(a.get("size")):
                raise DamagedEntryError(key, f"{section} {name!r} has a size that is no number")
    warns = doc.get("warnings")
    if warns is not None and not (
        isinstance(warns, list) and all(isinstance(w, str) for w in warns)
    ):
        raise DamagedEntryError(key, "warnings is not a list of text")
    if doc.get("metric_chunks") is not None and not isinstance(doc["metric_chunks"], int):
        raise DamagedEntryError(key, "metric_chunks is not a whole number")
    return doc


def merge(
    run_id: str,
    start: tuple[str, bytes] | None,
    end: tuple[str, bytes] | None,
    *,
    whole: bool = False,
) -> dict[str, Any] | None:
    """A run's record from its start and end entries (``(key, bytes)`` or None), checked;
    ``whole``: ``end`` is a short run's one entry, which holds the whole record.

    None when the run is still being written (no start yet, and an end that does
    not hold the start's fields); :class:`DamagedEntryError` when an entry is
    damaged or the record has no start time.
    """
    rec = check(*start, run_id) if start is not None else {}
    if end is not None:
        last = check(*end, run_id)
        if start is None and not whole and "started_at" not in last:
            return None  # an end entry whose start is still on its way
        rec.update(last)
    elif start is None:
        return None
    if not isinstance(rec.get("started_at"), str):
        key = (end or start)[0]  # type: ignore[index]
        raise DamagedEntryError(key, "it has no start time")
    rec.setdefault("id", run_id)
    return rec


_warned: set[str] = set()


def warn_damaged(err: DamagedEntryError) -> None:
    """Warn once per damaged entry (per process) that its run is skipped."""
    if err.key in _warned:
        return
    _warned.add(err.key)
    warnings.warn(f"mlledger: {err}", LedgerWarning, stacklevel=3)


def scan(
    store: Store,
    keys: Iterable[str] | None = None,
    read: Mapping[str, bytes | None] | None = None,
) -> list[tuple[str, str]]:
    """``(key, what is wrong)`` for every damaged run entry in the store (for verify);
    ``read``: entries read already (their keys are the ones checked)."""
    from .ids import run_id_of_entry

    if read is not None:
        keys = read
    elif keys is None:
        keys = store.backend.list("runs")
    entries: dict[str, str] = {}
    for key in keys:
        parts = key.split("/")
        name = parts[-1]
        if len(parts) == 5 and name.endswith(".json"):  # runs/y/m/d/<id>.json: a short run
            rid = run_id_of_entry(name)
        elif len(parts) == 6 and name in ("start.json", "end.json"):
            rid = run_id_of_entry(parts[-2])
        else:
            continue
        if rid is not None:
            entries[key] = rid
    out: list[tuple[str, str]] = []
    keys_l = sorted(entries)
    for i in range(0, len(keys_l), 500):
        chunk = keys_l[i : i + 500]
        got = read if read is not None else store.backend.read_many(chunk)
        for key in chunk:
            raw = got.get(key)
            if raw is None:
                continue  # removed meanwhile (gc)
            try:
                check(key, raw, entries[key])
            except DamagedEntryError as e:
                out.append((key, e.reason))
    return out
