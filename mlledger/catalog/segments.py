"""What a sync does with catalog segments (see ``store.segments``).

Reading: a day the sync must read from scratch (a first sync, a catalog that
moved to a fresh file) takes the records of the runs its listing shares with
the day's segments from them, one object per day instead of one per run;
the other names of the listing are read from their entries.  A first sync
into an empty catalog does not even list a day that no late marker names:
the listing its segments hold stands for the folder's (``trust``), less the
runs gc logs name, so it reads about one object per day and lists only the
month folders.

Writing: the sync that seals a day writes its segment when the day has none
(or when it read runs of the day from entries that the segments lacked, late
runs), create-only.  The catalog decides when a day is sealed, so this is the
one place a sync writes to the store; a store it may not write to (read-only
credentials) just gets no segment.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import LedgerError
from ..ids import run_id_of_entry
from ..store import segments
from ..store.layout import SEGMENTS

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["DaySegments"]

#: a day with at least this many runs to read looks for segments (fewer: read the entries)
MIN_RUNS = 2
#: a segment written this long after its day began (the store's clock) may be trusted
SEALED_AGE_S = 2 * 86400.0


class DaySegments:
    """The segments one sync run looks at and writes."""

    def __init__(
        self,
        store: Store,
        *,
        use: bool,
        trust: set[str] | frozenset[str] = frozenset(),
        gone: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        #: take records from segments (False for ``reindex``: it reads every entry)
        self.use = use
        #: days whose segments' listing may stand for the folder's (no late marker names
        #: them; a first sync into an empty catalog)
        self.trust = trust
        #: runs gc logs name (left out of a trusted listing)
        self.gone = gone
        #: every segment of the store by day, listed once when a sync reads many days
        self.found: dict[str, list[str]] | None = None
        #: segment key -> when the store says it was written (with ``found``)
        self.written: dict[str, float | None] = {}
        #: day -> runs this sync read from entries while segments of the day existed
        self.beyond: dict[str, int] = {}

    def keys(self, day: str, *, many: bool) -> list[str]:
        """The segments of ``day``: from one listing of every segment when ``many`` days
        are read (a first sync), else from a listing of that day's folder."""
        if self.found is None and many:
            dated = segments.find_written(self.store)
            self.found = {day: list(keys) for day, keys in dated.items()}
            self.written = {k: at for keys in dated.values() for k, at in keys.items()}
        if self.found is not None:
            return self.found.get(day, [])
        names = self.store.backend.list_dir(f"{SEGMENTS}/{day}")
        return [f"{SEGMENTS}/{day}/{n}" for n in names if n.endswith(segments.SUFFIX)]

    def listing(
        self, day: str, *, with_segments: bool
    ) -> tuple[list[str], list[segments.Segment] | None]:
        """The day's run names and, ``with_segments``, its sound segments (None: not read).
        The names are the segments' own listing when the day is trusted and every segment
        of it is sound and has one (no listing of the folder), else the folder's."""
        if not (with_segments and self.use):
            return self.store.backend.list_dir(f"runs/{day}"), None
        keys = self.keys(day, many=True)
        found = segments.read_day(self.store, keys) if keys else []
        if day in self.trust and found and len(found) == len(keys) and self.in_time(day, keys):
            listed = [seg.listing for seg in found]
            if all(names is not None for names in listed):
                union = {n for names in listed if names is not None for n in names}
                return sorted(n for n in union if run_id_of_entry(n) not in self.gone), found
        return self.store.backend.list_dir(f"runs/{day}"), found

    def in_time(self, day: str, keys: list[str]) -> bool:
        """Whether the store's own clock says each segment was written when ``day`` was at
        least 2 days old (a catalog whose clock runs ahead may seal a day writers still
        write into without markers: its segment is not trusted)."""
        y, m, d = (int(x) for x in day.split("/"))
        start = _dt.datetime(y, m, d, tzinfo=_dt.timezone.utc).timestamp()
        return all(
            (at := self.written.get(k)) is not None and at >= start + SEALED_AGE_S for k in keys
        )

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
        if found:  # runs a segment lacks (a run it left out, named in its listing, is not)
            listed = {n for seg in found for n in seg.listing or ()}
            self.beyond[day] = sum(1 for n in names - covered if n not in listed)
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
