"""Pins: what a run still going uses, written down so that gc (anywhere) keeps it.

A run refers to objects as it goes: an input stored weeks ago and not
rewritten (its modification time stays old), a value saved an hour ago in a
long run.  Until its end entry is written, only the run's process knows.  So
the run writes it down, create-only like everything else:

- its start entry lists, under ``uses``, every object it referred to before
  the start was written (outputs saved and values logged, beyond its inputs);
- after the start, each new reference is written at once as a small entry
  ``runs/<day>/<id>/use-NNNNNN.json`` (``{"uses": [digest, ...]}``) before the
  call that made it returns, and the heartbeat writes any it missed.

``gc`` reads these last, right before it deletes (:func:`live_digests`): every
object named by a run that is still live (its process alive on this host, or
its heartbeat fresh elsewhere), by a run that was live when gc began, or by a
run that appeared while gc worked, is kept.  A dead run's pins do not count:
once it reads as ``incomplete``, its objects are ordinary garbage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from .. import canonical
from ..errors import LedgerError
from ..ids import day_path
from ..records import record_digests

if TYPE_CHECKING:
    from ..store import Store
    from .state import RunState
    from .writer import RunWriter

__all__ = ["PIN_PREFIX", "live_digests", "pin", "pin_key", "run_digests"]

#: the name of a pin entry in a run's folder: ``use-NNNNNN.json``
PIN_PREFIX = "use-"

#: the record fields whose objects :func:`run_digests` reads (inputs and outputs come
#: from the run's artifact maps, which are current before the record is)
_FIELDS = ("params", "env", "code", "git")


def pin_key(run_id: str, n: int) -> str:
    """The key of a run's ``n``-th pin entry."""
    return f"{day_path(run_id)}/{PIN_PREFIX}{n:06d}.json"


class PinnedRun(Protocol):
    """What pinning reads of a run: its id, whether it is active, its state and writer."""

    active: bool
    state: RunState
    writer: RunWriter

    @property
    def id(self) -> str: ...

    @property
    def record(self) -> dict[str, Any]: ...


class Reader(Protocol):
    """What :func:`live_digests` reads: the store, and the catalog of its runs."""

    store: Store

    @property
    def catalog(self) -> Any: ...


def run_digests(state: RunState) -> set[str]:
    """Every object a run refers to right now: inputs, outputs, stored params, env, code."""
    out = {a.digest for a in list(state.inputs.values())}
    out.update(a.digest for a in list(state.outputs.values()))
    rec = state.record
    out.update(record_digests({k: rec[k] for k in _FIELDS if k in rec}))
    return out


def pin(run: PinnedRun, digests: Iterable[str] | None = None) -> None:
    """Name in a pin entry of ``run`` the objects it refers to (``digests``, or all it
    refers to) that no entry of it names yet.

    Before the start entry is written there is nothing to do (the start will name them);
    a pin that cannot be written is a warning in the run, never an error.
    """
    state = run.state
    if state.detached or not run.active:
        return
    with state.start_lock:
        if not state.start_written:
            return
        new = set(run_digests(state) if digests is None else digests) - state.pinned
        if not new:
            return
        state.pin_seq += 1
        try:
            data = canonical.dumps({"uses": sorted(new)})
            run.writer.write_entry(pin_key(run.id, state.pin_seq), data, run, ordered=False)
        except Exception as e:
            state.warn(f"objects in use not pinned against gc: {e!r}")
            return
        state.pinned |= new


def live_digests(ledger: Reader, *, known: Iterable[str], running: Iterable[str]) -> set[str]:
    """Every object a live run names, read fresh from the store.

    ``known`` are the run ids gc saw when it began and ``running`` those of
    them that were running then: a run that ended since, or that started
    since, counts with its whole record; a run running now counts with its
    record, its start's ``uses`` and its pin entries.  Tree contents are
    included (a live run's folder keeps its files).
    """
    cat = ledger.catalog
    cat.sync()
    seen = set(known)
    was_running = set(running)
    out: set[str] = set()
    live: list[str] = []
    for rid, status, text in cat.statuses_and_records():
        if status == "running":
            live.append(rid)
        elif rid in seen and rid not in was_running:
            continue  # gc judged this run with its whole record already
        rec: dict[str, Any] = canonical.loads(text)
        out.update(record_digests(rec))
        out.update(str(d) for d in rec.get("uses") or ())
    backend = ledger.store.backend
    for rid in live:
        base = day_path(rid)
        with contextlib.suppress(LedgerError, OSError):
            keys = [f"{base}/{n}" for n in backend.list_dir(base) if n.startswith(PIN_PREFIX)]
            for raw in backend.read_many(keys).values():
                if raw is not None:
                    with contextlib.suppress(ValueError, TypeError, AttributeError):
                        out.update(str(d) for d in canonical.loads(raw).get("uses", ()))
    store = ledger.store
    for d in list(out):
        with contextlib.suppress(LedgerError, OSError):
            if store.kind(d) == "tree":  # a missing object raises NotFoundError: skipped
                out.update(e.digest for e in store.read_tree(d).files if e.digest)
    return out
