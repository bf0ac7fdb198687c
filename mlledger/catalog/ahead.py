"""Listing day folders and reading their segments ahead of a sync that reads many days.

A first sync reads every day of the store: per day one listing of its folder
and (where the day is sealed) its segments.  On a bucket each is a round
trip; done one after the other, the sync waits for the bucket, then the
bucket waits for the sync's inserts.  ``Ahead`` lists and reads the next few
days in a small pool of threads while the sync inserts the day before, in
the order the sync asks for them, at most ``WINDOW`` days ahead (memory stays
bounded by a few days' segments).  Only days over (older than yesterday) are
read ahead: a day that can still change is listed in turn, after the sync took
its folder's stamp.  A sync that lists only a few days (the usual one: today,
yesterday) does not use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import concurrent.futures as cf

    from ..store import Store, segments
    from .segments import DaySegments

__all__ = ["MIN_DAYS", "Ahead"]

#: a sync listing at least this many days reads them ahead
MIN_DAYS = 8
#: days read ahead of the one the sync is at
WINDOW = 8
#: threads listing and reading (each waits on the bucket most of the time)
WORKERS = 4

_Got = tuple[list[str], "list[segments.Segment] | None"]


class Ahead:
    """Each day's listing (and its segments, for the days in ``with_segments``), read ahead
    in the order of ``days``; ``get`` them in that order.  Close it (``with``)."""

    def __init__(
        self, store: Store, days: list[str], segs: DaySegments, with_segments: set[str]
    ) -> None:
        self.store = store
        self.segs = segs
        self.days = days
        self.order = {d: i for i, d in enumerate(days)}
        self.with_segments = with_segments
        from concurrent.futures import ThreadPoolExecutor  # only for a sync of many days

        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="mlledger-sync")
        self.pending: dict[str, cf.Future[_Got]] = {}
        self.next = 0
        if with_segments and segs.use:
            segs.keys(days[0], many=True)  # one listing of every segment, before the pool
        self._fill()

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()

    def _fill(self) -> None:
        while self.next < len(self.days) and len(self.pending) < WINDOW:
            day = self.days[self.next]
            self.next += 1
            self.pending[day] = self.pool.submit(self._read, day)

    def _read(self, day: str) -> _Got:
        return self.segs.listing(day, with_segments=day in self.with_segments)

    def get(self, day: str) -> _Got:
        """The day's listing and segments (None: not read ahead, the sync reads them);
        a day not among ``days`` is listed here, now."""
        at = self.order.get(day, -1)
        for passed in [d for d in self.pending if self.order[d] < at]:  # skipped by the sync
            self.pending.pop(passed).cancel()
        fut = self.pending.pop(day, None)
        self._fill()
        if fut is None:
            return self.store.backend.list_dir(f"runs/{day}"), None
        return fut.result()
