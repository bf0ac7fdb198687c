"""Late runs: entries written into a day folder that catalogs may have sealed.

A catalog stops listing a day folder once the day is over (2 days by its
clock) and every run in it ended.  A run entry can still land there later:
a spool pushed after days offline, a back-dated import, a run that ends
after its start day was sealed, a machine whose clock is behind.  Such a
writer also creates a small marker, create-only and never changed, in one
folder every sync lists::

    late/<yyyy>-<mm>-<dd>.late-<id>.json

so a sync that finds a marker it has not seen lists that one day again: no
lock, and it works the same on local disk, S3 and GCS.  Since a day folder
can only appear or change far from its writer's today with a marker, a sync
lists the month folders since its last sync and the days it knows are still
open, never the whole history (``catalog.sync``).

When a writer marks: after an entry into a day before its own today (a
catalog seals a day 2 days old, so clocks up to a day apart are covered),
and after every entry once the process found its clock behind the store's
(the store's time of the first entry it wrote, checked once per process).
A marker covers every entry written before it, so a process marks a day at
most once a second: the first late entry of a day is marked at once, later
ones within the second by one marker when it is over (a timer, and at exit).
A back-dated import of 100,000 runs leaves a few hundred markers, not one
per run.  A writer killed within that second leaves its last entries unseen
by catalogs that had already acted on its earlier marker, until ``reindex``.

A process also marks a day once *before* its first late entry there
(``before``; a store refusing that marker refuses the entry, which goes to
the spool).  So a day folder holding an entry its catalog segment lacks
always has a marker, even when its writer was killed right after writing
it: a first sync may then trust the segment of every day no marker names,
without listing that day's folder (``store.segments``).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import math
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from .ids import id_ms, new_run_id
from .store.backends.base import info_time
from .store.layout import LATE

if TYPE_CHECKING:
    from .store import Store

__all__ = ["MARK", "LateMarks", "flush_all", "marked_day", "marker_key"]

MARK = ".late-"
#: a process marks a day at most this often (seconds)
RATE_S = 1.0
#: the store's clock ahead of this process's by more than this: every entry is marked
SKEW_S = 3600.0
#: entries whose arrival a catalog needs to see (metrics chunks and heartbeats are
#: read with their run; the start, end or one whole entry make a run appear or change)
_ENTRY_NAMES = ("start.json", "end.json")


def marker_key(day: str) -> str:
    """A new marker's key for ``day`` (``yyyy/mm/dd``)."""
    return f"{LATE}/{day.replace('/', '-')}{MARK}{new_run_id()}.json"


def marked_day(name: str) -> str | None:
    """The day (``yyyy/mm/dd``) a marker's name (in ``late/``) marks, or None."""
    if name[10:16] != MARK or not name.endswith(".json"):
        return None
    try:
        day = _dt.date.fromisoformat(name[:10])
    except ValueError:
        return None
    return day.strftime("%Y/%m/%d")


def _day_of(key: str) -> str | None:
    """``yyyy/mm/dd`` of a run entry key (``runs/yyyy/mm/dd/<id>/end.json`` or
    ``runs/yyyy/mm/dd/<id>.json``), None for other keys."""
    parts = key.split("/")
    if parts[0] != "runs" or len(parts) not in (5, 6):
        return None
    if len(parts) == 6 and parts[5] not in _ENTRY_NAMES:
        return None
    return "/".join(parts[1:4])


class LateMarks:
    """Marks the days a ledger writes late entries into (one per Ledger)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._checked = False
        self._behind = False
        self._lock = threading.Lock()
        #: day -> when this process last marked it (monotonic)
        self._last: dict[str, float] = {}
        #: days written into since their last marker
        self._pending: set[str] = set()
        #: days this process marked before writing into them (``before``)
        self._before: set[str] = set()
        #: the day folder (``yyyy/mm/dd``) last found current, and the clock's day then
        self._current: tuple[str, float] = ("", -1.0)
        self._timer: threading.Timer | None = None

    def needs(self, key: str) -> str | None:
        """The day to mark for writing ``key``, or None when no catalog can have sealed it.

        Cheap on the hot path (every entry of every run, before and after it is
        written): the day numbers of the run id in the key and of the clock, compared as
        integers, and not even that for the day folder last found current.
        """
        if not key.startswith("runs/"):
            return None
        if not self._behind:
            today = time.time() // 86400
            if self._current == (key[5:15], today):
                return None
            try:  # runs/yyyy/mm/dd/<26-character run id>...
                day = id_ms(key[16:42]) // 86_400_000
            except ValueError:
                return None
            if today - day < 1:
                self._current = (key[5:15], today)
                return None
        return _day_of(key)

    def mark(self, day: str) -> None:
        """Create a marker for ``day`` now (best effort: a store refusing it refuses the
        entries too, which then go to the spool, whose push marks their days)."""
        with contextlib.suppress(OSError, ValueError):
            self._create(day)

    def _create(self, day: str) -> None:
        self.store.create_entry(marker_key(day), b"{}")

    def before(self, key: str) -> None:
        """Before an entry is written: mark its day first if a catalog may have sealed it
        and this process did not mark it before yet.  Raises what the store raised when
        it refuses the marker: the entry must not be written without it."""
        day = self.needs(key)
        if day is None or day in self._before:
            return
        self._create(day)
        self._before.add(day)

    def before_all(self, keys: list[str]) -> None:
        """``before`` for each of ``keys`` (entries pushed from a spool)."""
        for key in keys:
            self.before(key)

    def wrote(self, key: str) -> None:
        """After an entry was written: mark its day if a catalog may have sealed it (at
        most once a second per day; the rest by the timer)."""
        self._check_clock(key)
        day = self.needs(key)
        if day is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(day, -math.inf) >= RATE_S:
                self._last[day] = now
                self._pending.discard(day)
                due = True
            else:
                self._pending.add(day)
                due = False
                if self._timer is None:
                    self._timer = threading.Timer(RATE_S, self.flush)
                    self._timer.daemon = True
                    self._timer.start()
        if due:
            self.mark(day)
        _live.add(self)

    def reset_after_fork(self) -> None:
        """In a forked child: free locks and no timer (the parent's timer thread is gone)."""
        self._lock = threading.Lock()
        self._timer = None

    def flush(self) -> None:
        """Mark every day written into since its last marker (the timer; at exit)."""
        with self._lock:
            days, self._pending = sorted(self._pending), set()
            self._timer = None
            now = time.monotonic()
            for day in days:
                self._last[day] = now
        for day in days:
            self.mark(day)

    def _check_clock(self, key: str) -> None:
        """After the first entry a process wrote: is its clock behind the store's? Then a
        catalog may have sealed any day it writes into: mark each from now on."""
        if self._checked or _day_of(key) is None:
            return
        self._checked = True
        at = _modified(self.store, key)
        if at is not None and at - time.time() > SKEW_S:
            self._behind = True


#: ledgers with days to mark, flushed when the interpreter exits
_live: weakref.WeakSet[LateMarks] = weakref.WeakSet()


@atexit.register
def flush_all() -> None:
    """Write every marker still due, in every ledger of this process (at exit; a test
    before it removes a store)."""
    for marks in list(_live):
        marks.flush()


def _after_fork_in_child() -> None:
    """A forked child starts with free locks and no timer (the parent's thread is gone)."""
    for marks in list(_live):
        marks.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _modified(store: Store, key: str) -> float | None:
    """When the store says ``key`` was written (its own clock), or None if it cannot say."""
    backend: Any = store.backend
    try:
        local = backend.local_path(key)
        if local is not None:
            return os.stat(local).st_mtime
        info = backend.fs.info(backend.fs_path(key))
    except (OSError, AttributeError, ValueError):
        return None
    return info_time(info)
