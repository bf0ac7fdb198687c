"""Checking the audit trail: every run entry and every ref and policy move, sealed and
linked by digest (see :mod:`mlledger.store.chain`), is checked by ``verify``.

What a check finds:

- a run entry edited after it was written (its seal no longer matches);
- a run's start entry or metrics chunk removed, replaced or edited (its end
  entry names the digest of each);
- a ref or policy entry removed (a gap in the numbers), edited, or replaced
  (the next entry links to the digest of the one before);
- a run record changed after a ref named the run (the ref entry holds the
  digest of the run's final entry).

Entries written before the chain existed carry no seal: they are counted
as *unchained*, not reported as damage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import canonical
from .errors import LedgerError
from .ids import day_path, run_id_of_entry, whole_key
from .store.chain import SEAL, entry_digest, seal_ok
from .store.history import History
from .store.refs import Refs

if TYPE_CHECKING:
    from .store import Store

__all__ = ["check_trail", "final_entry", "read_run_entries"]


def final_entry(store: Store, run_id: str) -> bytes | None:
    """The bytes of a run's final entry (its one-entry file or ``end.json``), or None while
    it has not ended (or when it is gone)."""
    got = store.backend.read_many([whole_key(run_id), f"{day_path(run_id)}/end.json"])
    return got.get(whole_key(run_id)) or got.get(f"{day_path(run_id)}/end.json")


def read_run_entries(store: Store) -> dict[str, bytes | None]:
    """Every run entry a check reads (whole runs, start, end and metric entries), listed and
    read once: ``verify`` gives the same bytes to :func:`check_trail` and to
    ``run_entries.scan``."""
    keys: list[str] = []
    for key in store.backend.list("runs"):
        parts = key.split("/")
        if len(parts) == 5 and parts[4].endswith(".json") and run_id_of_entry(parts[4]):
            keys.append(key)
        elif len(parts) == 6 and run_id_of_entry(parts[4]):
            name = parts[5]
            if name in ("start.json", "end.json") or name.startswith("metrics-"):
                keys.append(key)
    return store.backend.read_many(keys)


def check_trail(
    store: Store, entries: dict[str, bytes | None] | None = None
) -> tuple[list[str], int]:
    """``(problems, unchained)`` over every run, ref and policy entry of ``store``
    (``entries``: the run entries as :func:`read_run_entries` gives them, if read already)."""
    problems, unchained = _check_runs(
        store, read_run_entries(store) if entries is None else entries
    )
    refs = Refs(store)
    for name in refs.names():
        p, u = refs.check(name)
        problems += p
        unchained += u
        problems += _check_pinned_runs(store, name)
    policy = History(store, "policy")
    if policy.seqs():
        p, u = policy.check()
        problems += p
        unchained += u
    return problems, unchained


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = canonical.loads(raw)
    except (ValueError, RecursionError):  # garbage, or JSON nested past the parser's depth
        return None
    return doc if isinstance(doc, dict) else None


def _check_runs(store: Store, raw: dict[str, bytes | None]) -> tuple[list[str], int]:
    """Seals of run entries, and each end entry's digests of the entries before it."""
    algorithm = store.algorithm
    folders: dict[str, dict[str, str]] = {}  # run id -> entry name -> key
    wholes: dict[str, str] = {}
    for key in raw:
        parts = key.split("/")
        if len(parts) == 5:
            wholes[str(run_id_of_entry(parts[4]))] = key
        else:
            folders.setdefault(parts[4], {})[parts[5]] = key
    problems: list[str] = []
    unchained = 0
    for rid, key in sorted(wholes.items()):
        p, u = _check_entry(key, raw.get(key), algorithm)
        problems += p
        unchained += u
        doc = _parse(raw.get(key) or b"")
        if doc and SEAL in doc:
            # a short run's metric chunks beyond the tail sit in a folder of its own id
            problems += _check_named(rid, doc, folders.get(rid, {}), raw, algorithm)
    for rid, entries in sorted(folders.items()):
        for _name, key in sorted(entries.items()):
            p, u = _check_entry(key, raw.get(key), algorithm)
            problems += p
            unchained += u
        end = _parse(raw.get(entries.get("end.json", ""), b"") or b"")
        if end is None or SEAL not in end:
            continue  # running, incomplete, or from before the chain: nothing names its entries
        problems += _check_named(rid, end, entries, raw, algorithm)
    return problems, unchained


def _check_entry(key: str, raw: bytes | None, algorithm: str) -> tuple[list[str], int]:
    """One run entry's own seal: ([problem], 0), ([], 1) when unchained, or ([], 0)."""
    if raw is None:
        return [], 0  # deleted while checking (gc): nothing to say
    doc = _parse(raw)
    if doc is None:
        if key.rsplit("/", 1)[-1].startswith("metrics-"):
            return [], 0  # a chunk is vouched for by its end entry's digest, not a seal
        return [f"run entry {key} does not parse: it was damaged"], 0
    if SEAL not in doc:
        return ([], 0) if key.rsplit("/", 1)[-1].startswith("metrics-") else ([], 1)
    if not seal_ok(doc, algorithm):
        return [f"run entry {key} does not match its seal: it was edited after it was written"], 0
    return [], 0


def _check_named(
    rid: str,
    end: dict[str, Any],
    present: dict[str, str],
    raw: dict[str, bytes | None],
    algorithm: str,
) -> list[str]:
    """The entries a sealed end entry names are there, as they were; none was added."""
    problems: list[str] = []
    named = end.get("entries") or {}
    base = day_path(rid)
    if not isinstance(named, dict):
        return [f"run {rid}: its end entry's 'entries' is not an object: it was damaged"]
    for name, digest in sorted(named.items()):
        key = present.get(name)
        data = raw.get(key) if key else None
        if data is None:
            problems.append(
                f"run {rid}: {base}/{name} is missing (its end entry names it): it was deleted"
            )
        elif entry_digest(data, algorithm) != digest:
            problems.append(
                f"run {rid}: {base}/{name} is not the entry its end entry names: it was "
                "edited or replaced"
            )
    for name in sorted(set(present) - set(named) - {"end.json"}):
        problems.append(
            f"run {rid}: {base}/{name} is not named by its end entry: it was added afterwards"
        )
    return problems


def _check_pinned_runs(store: Store, name: str) -> list[str]:
    """Each entry of ref ``name`` that holds a run's final-entry digest still matches it."""
    problems: list[str] = []
    try:
        history = Refs(store).history(name)
    except LedgerError:  # an entry that does not parse: the chain check reports it
        return []
    finals: dict[str, bytes | None] = {}
    for entry in history:
        run = entry.run
        if not entry.run_entry or not run:
            continue
        if run not in finals:
            finals[run] = final_entry(store, run)
        data = finals[run]
        if data is None:
            problems.append(f"ref {name}#{entry.seq} names run {run}, whose record is gone")
        elif entry_digest(data, store.algorithm) != entry.run_entry:
            problems.append(
                f"ref {name}#{entry.seq} names run {run}, whose record changed since "
                "(its final entry is not the one the ref entry holds the digest of)"
            )
    return problems
