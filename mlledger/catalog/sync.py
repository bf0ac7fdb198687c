"""The catalog's incremental sync from the store.

A sync lists only the day folders that can still change (today's,
yesterday's and any with a run still going); a day that is over and whose
runs all ended is sealed and not listed again, so syncing costs work
proportional to what is new.  A run written into a sealed day later (a spool
pushed days later, a back-dated import, a writer whose clock is behind) comes
with a marker in the month folder every sync lists anyway; a new marker
reopens its day for one sync (``late``).

Runs that ``gc`` deleted on another machine are dropped too: each gc that
deletes runs leaves a ``gc/<id>.json`` entry naming them, and a sync reads
the entries it has not seen yet (one folder listing when there are none).

A folder that is listed again is diffed against the names this object already
settled (their runs indexed for good), so only new names are looked at; on
local disk a day folder whose stamp did not change since is not listed at all.
A day read from scratch takes its records from the day's catalog segments
where they cover the listing, and the sync that seals a day writes its
segment first (``segments``); a first sync into an empty catalog does not
list an old day no late marker names, but takes its segments' listing.

The sync reads the store and writes the index; a run still going is read
through ``load_run`` (its heartbeats and process say whether it still is).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .. import canonical, run_entries
from ..ids import day_path, run_id_of_entry, whole_key
from ..late import marked_day
from ..store.layout import LATE
from .ahead import MIN_DAYS, Ahead
from .firstload import FirstLoad, is_empty, repair
from .segments import DaySegments

if TYPE_CHECKING:
    from ..runs import Run
    from ..store import Store
    from .index import Index

__all__ = ["Sync"]

#: days this close to now are never sealed (clock skew between writers)
_OPEN_DAYS = 2
#: statuses a later sync reads again (the run may still end, or end differently)
_UNSETTLED = ("running", "incomplete")
#: this many records into a catalog that was empty when the sync began start a first load
#: (``firstload``: indexes made once at the end)
_FIRST_LOAD_MIN = 200
#: a local day folder changed at least this long ago (ns) is not listed while unchanged
#: (an entry created in the same clock tick as the last listing could not be told apart)
_STAMP_AGE_NS = 2_000_000_000


class Sync:
    """Brings an index up to date with a store."""

    def __init__(self, index: Index, store: Store, load_run: Callable[[str], Run]) -> None:
        self.index = index
        self.store = store
        #: a run by full id, read from the store (status resolved)
        self.load_run = load_run
        #: late markers this catalog acted on (see ``late``), as far as this object knows
        self.seen_marks: set[str] = set()
        #: day -> the names in its folder whose runs this object saw indexed for good (ended
        #: or damaged): a sync lists the folder and looks only at the other names
        self.settled: dict[str, set[str]] = {}
        #: day -> its local folder's stamp when every name in it was settled (see ``stamp``)
        self.stamps: dict[str, int] = {}
        #: the catalog file ``settled`` and ``stamps`` hold for (path, device, inode)
        self.file: tuple[str, int, int] | None = None
        #: the first load of the sync running now, while the catalog was empty at its start
        self.first: FirstLoad | None = None
        #: records the sync running now indexed so far
        self.added = 0

    def check_file(self) -> None:
        """Forget what this object saw when the catalog is another file than it was (a newer
        generation another process made, a cache folder deleted and made again): what
        this object settled is in the file it synced, not necessarily in this one."""
        db = self.index.db  # (re)opens the newest file
        del db
        try:
            st = os.stat(self.index.path)
            ident: tuple[str, int, int] | None = (self.index.path, st.st_dev, st.st_ino)
        except OSError:
            ident = None
        if ident != self.file or ident is None:
            self.forget()
            self.file = ident

    def forget(self) -> None:
        """Forget what this object saw (the catalog moved to a fresh file): read afresh."""
        self.seen_marks = set()
        self.settled = {}
        self.stamps = {}

    def days(self) -> Iterator[str]:
        """Every day folder of the store (a listing of every year and month folder)."""
        backend = self.store.backend
        for y in sorted(backend.list_dir("runs")):
            if not (len(y) == 4 and y.isdigit()):
                continue
            for m in sorted(backend.list_dir(f"runs/{y}")):
                if len(m) == 2 and m.isdigit():
                    yield from self.month_days(f"{y}/{m}")

    def month_days(self, month: str) -> list[str]:
        """The day folders of a month folder (``yyyy/mm``)."""
        names = self.store.backend.list_dir(f"runs/{month}")
        return [f"{month}/{d}" for d in sorted(names) if len(d) == 2 and d.isdigit()]

    def recent_days(self, since: _dt.date, today: _dt.date) -> set[str]:
        """The day folders of the months from a few days before ``since`` (the day the last
        sync began) to tomorrow: the only ones where a day folder can have appeared since
        without a late marker (a writer marks every entry into a day before its own today;
        clocks up to a day apart)."""
        first = min(since, today) - _dt.timedelta(days=_OPEN_DAYS + 1)
        last = today + _dt.timedelta(days=1)
        months = {last.strftime("%Y/%m")}
        day = first.replace(day=1)
        while day < last:
            months.add(day.strftime("%Y/%m"))
            day = (day + _dt.timedelta(days=32)).replace(day=1)
        return {d for m in sorted(months) for d in self.month_days(m)}

    def late_marks(self) -> dict[str, str]:
        """Every late marker of the store: its name -> the day it marks (see ``late``)."""
        names = self.store.backend.list_dir(LATE)
        return {n: day for n in names if (day := marked_day(n)) is not None}

    def run(self, *, rebuild: bool, everywhere: bool = False) -> int:
        """List the unsealed days and index what is new or still changing.

        With ``rebuild``, everything is read again inside one write
        transaction that first empties the catalog: readers (WAL) keep
        seeing the old catalog until the new one is complete.
        """
        index = self.index
        self.check_file()
        ahead: Ahead | None = None
        if rebuild:
            index.begin()
        repair(index.db)  # a first load killed before it made the indexes
        try:
            if rebuild:
                index.clear()
                self.settled.clear()
                self.stamps.clear()
                sealed: set[str] = set()
            else:
                sealed = index.sealed_days()
            self.first = FirstLoad(index.db) if is_empty(index.db) else None
            self.added = 0
            gone = self.apply_gc_log(apply=not rebuild, every=self.first is not None)
            today = _dt.datetime.now(_dt.timezone.utc).date()
            changed = 0
            marks = self.late_marks()
            new_marks = self.new_marks(marks, rebuild=rebuild)
            # a catalog that knows its open days lists the months since its last sync, those
            # days and the days of new markers; any other lists every month of the store
            listed = index.listed_day()
            since = _date(listed) if listed is not None else None
            whole = everywhere or rebuild or self.first is not None or since is None
            open_known = index.open_days() if not rebuild else set()
            if whole or since is None:
                days = list(self.days())
            else:
                recent = self.recent_days(since, today)
                days = sorted(recent | set(new_marks.values()) | open_known)
            reopened = set(new_marks.values()) & sealed
            sealed -= reopened  # a late run landed there: list it again
            todo = [d for d in days if d not in sealed]
            olds = {d for d in todo if _age(today, d) >= _OPEN_DAYS}
            # a first sync into an empty catalog takes a day no marker names from its
            # segments' own listing (``segments``)
            trust = olds - set(marks.values()) if self.first is not None else set()
            segs = DaySegments(self.store, use=not rebuild, trust=trust, gone=gone)
            # days that can still change are listed in turn, after their stamp (see ``stamp``)
            past = [d for d in todo if d in olds]
            if len(past) >= MIN_DAYS:  # segments read ahead only for a catalog read afresh
                ahead = Ahead(self.store, past, segs, olds if self.first is not None else set())
            for day in todo:
                old = day in olds
                stamp = self.stamp(day)
                if not old and stamp is not None and self.stamps.get(day) == stamp:
                    continue  # nothing still going there, and the folder did not change
                names, found = (
                    ahead.get(day)
                    if ahead is not None
                    else segs.listing(day, with_segments=day in trust)
                )
                settled = self.settled.setdefault(day, set())
                fresh = set(names).difference(settled)  # the listing's diff
                read: dict[str, bytes | None] | None = {} if not settled else None
                if fresh and old:
                    fresh -= self.settle_known(fresh, settled)  # a day listed again
                    records, covered, texts = segs.take(day, fresh, found)
                    if records:
                        self.add(records, in_transaction=rebuild, texts=texts)
                        changed += len(records)
                        settled |= covered
                        fresh -= covered
                        read = None
                if fresh:
                    changed += self.load_names(
                        sorted(fresh), settled, in_transaction=rebuild, keep=read
                    )
                if read is not None and not _read_all(read, day, names):
                    read = None  # runs known before were not read again: no bytes for them
                self.stamps.pop(day, None)
                if stamp is not None and len(settled) == len(names):
                    self.stamps[day] = stamp
                if old and self.all_ended(names, settled):
                    segs.sealed(day, read)  # first: a sealer killed here seals it again
                    index.seal_day(day)
                    self.settled.pop(day, None)  # not listed again (unless a late run lands)
                    self.stamps.pop(day, None)
                elif day not in open_known:  # listed again by the next sync
                    index.keep_open(day)
            if ahead is not None:
                ahead.close()
            # seen only now that their days were listed again
            index.add_late_seen(new_marks)
            self.seen_marks |= set(new_marks)
            if listed != today.isoformat():
                index.set_listed_day(today.isoformat())
            if self.first is not None:
                self.first.finish()
            if rebuild:
                index.commit()
        except BaseException:
            if ahead is not None:
                ahead.close()
            if self.first is not None:
                self.first.restore()  # the indexes: made by the next sync (``repair``)
            if rebuild:
                index.rollback()
            raise
        finally:
            self.first = None
        return changed

    def add(
        self,
        records: list[dict[str, Any]],
        *,
        in_transaction: bool,
        texts: dict[str, str] | None = None,
    ) -> None:
        """Index records a sync read (``texts``: their canonical JSON where known); once a
        sync into a catalog empty when it began has read many (in one day or over many
        small days), it starts its first load."""
        first = self.first
        self.added += len(records)
        if first is not None and not first.active and self.added >= _FIRST_LOAD_MIN:
            first.start()
        self.index.add_records(records, in_transaction=in_transaction, texts=texts)

    def settle_known(self, names: set[str], settled: set[str]) -> set[str]:
        """Add to ``settled`` (and return) the names whose runs the index holds for good."""
        of = {n: rid for n in names if (rid := run_id_of_entry(n)) is not None}
        known = self.index.known_statuses(sorted(set(of.values())))
        done = {n for n, rid in of.items() if known.get(rid) not in (None, *_UNSETTLED)}
        settled |= done
        return done

    def stamp(self, day: str) -> int | None:
        """When a local store's day folder last changed (ns), if long enough ago that an
        entry created since would change it again (None: not local, or too recent)."""
        path = self.store.backend.local_path(f"runs/{day}")
        if path is None:
            return None
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            return None
        return mtime if time.time_ns() - mtime > _STAMP_AGE_NS else None

    def load_names(
        self,
        names: list[str],
        settled: set[str],
        *,
        in_transaction: bool,
        keep: dict[str, bytes | None] | None = None,
    ) -> int:
        """Index the runs of the day-folder entries ``names`` (a listing's new names); add
        to ``settled`` the names whose runs are now indexed for good (ended or damaged).
        ``keep`` gets the entries read."""
        flat: set[str] = set()
        of: dict[str, str] = {}
        for n in names:
            rid = run_id_of_entry(n)
            if rid is None:
                continue
            of[n] = rid
            if n.endswith(".json"):
                flat.add(rid)
        ids = sorted(set(of.values()))
        known = self.index.known_statuses(ids)
        todo = [i for i in ids if i not in known or known[i] in _UNSETTLED]
        changed = self.load(todo, known, in_transaction=in_transaction, flat=flat, keep=keep)
        now = self.index.known_statuses(todo) if todo else known
        done = {i for i in ids if (now.get(i) or known.get(i)) not in (None, *_UNSETTLED)}
        settled.update(n for n, rid in of.items() if rid in done)
        return changed

    def all_ended(self, names: list[str], settled: set[str]) -> bool:
        """Whether every run of a day's listing is indexed and none is still running."""
        ids = [rid for n in names if n not in settled and (rid := run_id_of_entry(n))]
        return self.index.all_ended(sorted(set(ids)))

    def new_marks(self, marks: dict[str, str], *, rebuild: bool) -> dict[str, str]:
        """The late markers (name -> day) this catalog has not acted on yet (those it has
        are remembered in memory too: a sync with nothing new runs no query for them)."""
        if rebuild:
            self.seen_marks.clear()
            if marks:
                self.index.clear_late_seen()
            return marks
        unknown = sorted(n for n in marks if n not in self.seen_marks)
        if not unknown:
            return {}
        seen = self.index.late_seen(unknown)
        self.seen_marks |= seen
        return {n: marks[n] for n in unknown if n not in seen}

    def apply_gc_log(self, *, apply: bool, every: bool = False) -> set[str]:
        """Drop the runs that gc (anywhere) deleted since this catalog last looked; their
        ids.  ``every``: the ids every gc log names, seen before or not (a first sync, which
        must not take them from a segment even when a first sync before it was cut short
        after it noted the logs)."""
        index = self.index
        names = [n for n in self.store.backend.list_dir("gc") if n.endswith(".json")]
        if not names:
            return set()
        seen = index.gc_seen()
        new = sorted(n for n in names if n not in seen)
        read = sorted(names) if every else new
        if not read:
            return set()
        gone: list[str] = []
        if apply:
            got = self.store.backend.read_many([f"gc/{n}" for n in read])
            for n in read:
                raw = got.get(f"gc/{n}")
                if raw is None:
                    continue
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    gone += [str(r) for r in canonical.loads(raw).get("runs", [])]
        if not new:
            return set(gone)
        own = not index.in_transaction
        if own:
            index.begin()
        try:
            index.forget_runs(gone)
            index.add_gc_seen(new)
            if own:
                index.commit()
        except BaseException:
            if own:
                index.rollback()
            raise
        return set(gone)

    def load(
        self,
        ids: list[str],
        known: dict[str, str],
        *,
        in_transaction: bool = False,
        flat: set[str] | None = None,
        keep: dict[str, bytes | None] | None = None,
    ) -> int:
        """Read and index the runs ``ids`` (batched reads on remote stores).

        ``flat``: ids listed as one-entry files (short runs), read from that file only;
        ``keep`` gets every entry read (key -> bytes).
        """
        flat = flat or set()
        if not ids:
            return 0
        backend = self.store.backend
        changed = 0
        for i in range(0, len(ids), 500):
            batch = ids[i : i + 500]
            # end entries first: a short run has only its end (holding the whole record),
            # so start entries are fetched only for runs whose end lacks the start's fields
            whole = backend.read_many([whole_key(rid) for rid in batch if rid in flat])
            got = backend.read_many(
                [f"{day_path(rid)}/end.json" for rid in batch if rid not in flat]
            )
            for rid in batch:
                if rid in flat:  # a short run's one entry holds the whole record
                    got[f"{day_path(rid)}/end.json"] = whole.get(whole_key(rid))
            need = [
                f"{day_path(rid)}/start.json"
                for rid in batch
                if (e := got.get(f"{day_path(rid)}/end.json")) is None or b'"started_at"' not in e
            ]
            got.update(backend.read_many(need))
            if keep is not None:  # as stored: a short run's entry under its own key
                keep.update(whole)
                for rid in batch:
                    if rid not in flat:
                        for k in (f"{day_path(rid)}/start.json", f"{day_path(rid)}/end.json"):
                            keep[k] = got.get(k)
            records: list[dict[str, Any]] = []
            damaged: list[tuple[str, int]] = []
            for rid in batch:
                base = day_path(rid)
                start = got.get(f"{base}/start.json")
                end = got.get(f"{base}/end.json")
                end_key = whole_key(rid) if rid in flat else f"{base}/end.json"
                try:
                    rec = run_entries.merge(
                        rid,
                        None if start is None else (f"{base}/start.json", start),
                        None if end is None else (end_key, end),
                        whole=rid in flat,
                    )
                    if rec is None:
                        continue  # a run being written right now: next sync
                    if end is None:  # still going: heartbeats, pid check
                        run = self.load_run(rid)
                        if run.status == known.get(rid):
                            continue
                        rec = run.record
                except run_entries.DamagedEntryError as e:
                    run_entries.warn_damaged(e)
                    damaged.append((rid, int(end is not None)))
                    continue
                records.append(rec)
            if damaged:
                self.index.mark_damaged(damaged)
            if records:
                self.add(records, in_transaction=in_transaction)
                changed += len(records)
        return changed


def _date(iso: str) -> _dt.date | None:
    """A ``yyyy-mm-dd`` date, or None when it is not one."""
    try:
        return _dt.date.fromisoformat(iso)
    except ValueError:
        return None


def _age(today: _dt.date, day: str) -> int:
    """Days from ``day`` (``yyyy/mm/dd``) to ``today``."""
    y, m, d = (int(x) for x in day.split("/"))
    return (today - _dt.date(y, m, d)).days


def _read_all(read: dict[str, bytes | None], day: str, names: list[str]) -> bool:
    """Whether ``read`` holds the final entry of every run a day's listing names."""
    for n in names:
        if run_id_of_entry(n) is None:
            continue
        if (f"runs/{day}/{n}" if n.endswith(".json") else f"runs/{day}/{n}/end.json") not in read:
            return False
    return True
