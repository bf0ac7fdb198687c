"""The scheduler: one daemon thread per process writes deferred start entries and
heartbeats of active runs; a forked child starts with none."""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from .. import canonical
from ..ids import day_path
from ..records import now_iso
from .state import RunState
from .writer import RunWriter

__all__ = ["HEARTBEAT_SECONDS", "HEARTBEAT_TIMEOUT", "ScheduledRun", "schedule", "unschedule"]

F = TypeVar("F", bound=Callable[..., Any])

#: a run with no end whose last sign of life is older than this is incomplete
HEARTBEAT_SECONDS = 60.0
HEARTBEAT_TIMEOUT = 5 * HEARTBEAT_SECONDS


class ScheduledRun(Protocol):
    """What the scheduler reads of a run (``runs.run.Run``)."""

    active: bool
    state: RunState
    writer: RunWriter
    flush_seconds: float

    @property
    def id(self) -> str: ...

    @property
    def record(self) -> dict[str, Any]: ...

    def ensure_started(self) -> None: ...

    def pin_uses(self, digests: Iterable[str] | None = None) -> None: ...

    def flush_metrics(self) -> None: ...


class _Scheduler:
    """One daemon thread per process: deferred start entries and heartbeats of active runs.

    A run's ``start.json`` is written ``Ledger.start_delay`` seconds after it
    starts, if it is still going; a shorter run writes one entry only, its
    ``end.json`` holding the whole record.  That halves the writes of the short
    runs a tight loop makes.  The price: a process killed within that delay
    leaves no trace of the run it was in.  Long runs also get a heartbeat
    entry every ``HEARTBEAT_SECONDS``, so other machines can tell a live run
    from a dead one.
    """

    def __init__(self) -> None:
        #: active runs; each carries ``_start_due``, when its deferred start falls due
        self.runs: set[ScheduledRun] = set()
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        #: when the thread next wakes by itself (monotonic); 0 while it is busy or not started
        self.wake_at = 0.0
        #: the start delay of the last run added since the thread last looked, or None
        self.recent_delay: float | None = None

    def _ensure_thread(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._loop, name="mlledger-runs", daemon=True)
            self.thread.start()

    def add(self, run: ScheduledRun, start_delay: float | None) -> None:
        due = math.inf if start_delay is None else time.monotonic() + start_delay
        run.state.start_due = due
        with self.cond:
            self.runs.add(run)
            if start_delay is not None:
                self.recent_delay = start_delay
            due = min(due, run.state.flush_due)
            if self.thread is None or not self.thread.is_alive():
                self._ensure_thread()
            elif due < self.wake_at:
                # wake the thread only when this start falls due before its next wake-up:
                # in a loop of short runs it sleeps on, and each run costs no thread switch
                self.cond.notify()
                self.wake_at = 0.0  # it will look again: the next runs need not notify

    def remove(self, run: ScheduledRun) -> None:
        with self.cond:
            # an ended run needs no deferred start and no heartbeat
            self.runs.discard(run)

    def _loop(self) -> None:
        next_beat = time.monotonic() + HEARTBEAT_SECONDS
        n = 0
        while True:
            with self.cond:
                now = time.monotonic()
                starts = self._take_due(now)
                flushes = self._take_flushes(now)
                due = min(
                    [next_beat, *(min(r.state.start_due, r.state.flush_due) for r in self.runs)]
                )
                if self.recent_delay is not None:
                    # runs are being made: wake again within one delay even when they all
                    # ended already, so the next run's add needs no notify (a loop of
                    # short runs would otherwise wake this thread once per run)
                    due = min(due, now + self.recent_delay)
                    self.recent_delay = None
                beat = now >= next_beat
                if not starts and not beat and not flushes:
                    self.wake_at = due
                    self.cond.wait(due - now)
                    self.wake_at = 0.0
                    continue
                beating = list(self.runs) if beat else []
            if beat:
                n += 1
                next_beat = now + HEARTBEAT_SECONDS
            self._serve(starts, beating, n)
            for run in flushes:
                with contextlib.suppress(Exception):
                    run.flush_metrics()
            # hold no run while waiting: an ended run must be free to go
            del starts, beating, flushes

    def _take_due(self, now: float) -> list[ScheduledRun]:
        """The runs whose deferred start fell due by ``now``, marked as taken (lock held)."""
        starts = [r for r in self.runs if r.state.start_due <= now]
        for run in starts:
            run.state.start_due = math.inf
        return starts

    def _take_flushes(self, now: float) -> list[ScheduledRun]:
        """The monitor runs whose periodic metrics flush fell due, due again one period
        later (lock held)."""
        out = [r for r in self.runs if r.state.flush_due <= now]
        for run in out:
            run.state.flush_due = now + run.flush_seconds
        return out

    @staticmethod
    def _serve(starts: list[ScheduledRun], beating: list[ScheduledRun], n: int) -> None:
        """Write the deferred starts that fell due and heartbeat ``n`` of the live runs."""
        for run in starts:
            with contextlib.suppress(Exception):
                run.ensure_started()
        for run in beating:
            if not run.active:
                continue
            with contextlib.suppress(Exception):
                run.ensure_started()
                run.pin_uses()
                key = f"{day_path(run.id)}/hb-{n:08d}.json"
                run.writer.write_entry(key, canonical.dumps({"at": now_iso()}), run, ordered=False)


_heartbeat = _Scheduler()


def schedule(run: ScheduledRun, start_delay: float | None) -> None:
    """Add an active run: its deferred start (after ``start_delay`` seconds) and heartbeats."""
    _heartbeat.add(run, start_delay)


def unschedule(run: ScheduledRun) -> None:
    """Remove an ended run (or one whose start failed)."""
    _heartbeat.remove(run)


def _after_fork_in_child() -> None:
    """A forked child starts with no scheduler: the parent's thread is not in it, its
    condition may hold the parent's waiter (a later notify would go to nobody) or be locked
    for good, and the parent's runs are not the child's to write starts or heartbeats for.
    (process.py reads the child's start time again.)
    """
    global _heartbeat
    _heartbeat = _Scheduler()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
