"""What a sync does with catalog segments (see ``store.segments``).

Reading: a day the sync must read from scratch (a first sync, a catalog that
moved to a fresh file) takes the records of the runs its listing shares with
the day's segments from them, one object per day instead of one per run;
the other names of the listing are read from their entries.

Writing: the sync that seals a day writes its segment when the day has none
(or when it read runs of the day from entries that the segments lacked, late
runs), create-only.  The catalog decides when a day is sealed, so this is the
one place a sync writes to the store; a store it may not write to (read-only
credentials) just gets no segment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import LedgerError
from ..store import segments
from ..store.layout import SEGMENTS

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["DaySegments"]

#: a day with at least this many runs to read looks for segments (fewer: read the entries)
MIN_RUNS = 2


class DaySegments:
    """The segments one sync run looks at and writes."""

    def __init__(self, store: Store, *, use: bool) -> None:
        self.store = store
        #: take records from segments (False for ``reindex``: it reads every entry)
        self.use = use
        #: every segment of the store by day, listed once when a sync reads many days
        self.found: dict[str, list[str]] | None = None
        #: day -> runs this sync read from entries while segments of the day existed
        self.beyond: dict[str, int] = {}

    def keys(self, day: str, *, many: bool) -> list[str]:
        """The segments of ``day``: from one listing of every segment when ``many`` days
        are read (a first sync), else from a listing of that day's folder."""
        if self.found is None and many:
            self.found = segments.find(self.store)
        if self.found is not None:
            return self.found.get(day, [])
        names = self.store.backend.list_dir(f"{SEGMENTS}/{day}")
        return [f"{SEGMENTS}/{day}/{n}" for n in names if n.endswith(segments.SUFFIX)]

    def take(
        self, day: str, names: set[str], found: list[segments.Segment] | None = None
    ) -> tuple[list[dict[str, Any]], set[str], dict[str, str]]:
        """Records of the runs ``names`` (new names of the day's listing) that the day's
        segments were built from, the names they cover, and the records' JSON as the
        segments hold it (run id -> text).  ``found``: the day's segments, already read."""
        if not self.use or len(names) < MIN_RUNS:
            return [], set(), {}
        if found is None:
            keys = self.keys(day, many=True)
            if not keys:
                return [], set(), {}
            found = segments.read_day(self.store, keys)
        records: list[dict[str, Any]] = []
        texts: dict[str, str] = {}
        covered: set[str] = set()
        for name in names:
            for seg in found:
                rec = seg.record_for(name)
                if rec is not None:
                    records.append(rec)
                    covered.add(name)
                    text = seg.text_of(rec["id"])
                    if text is not None:
                        texts[rec["id"]] = text
                    break
        if found:
            self.beyond[day] = len(names) - len(covered)
        return records, covered, texts

    def sealed(self, day: str, read: Mapping[str, bytes | None] | None) -> str | None:
        """The day was just sealed: write its segment if it has none, or if runs of it were
        read from entries beyond its segments.  ``read``: the day's entries, when this sync
        read every one of them (else they are read again).  The key written, or None."""
        beyond = self.beyond.get(day)
        if beyond == 0 or (beyond is None and self.keys(day, many=False)):
            return None
        with contextlib.suppress(LedgerError, OSError):
            got = read if read is not None else segments.read_entries(self.store, day)
            return segments.write(self.store, segments.build(day, got, self.store.algorithm))
        return None
