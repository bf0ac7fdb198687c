"""The local catalog: a SQLite index of one store, synced incrementally.

The store is the truth; this is a cache in the user cache folder (one file
per store URL) that ``reindex`` rebuilds from the store alone.  A sync lists
only the day folders that can still change (today's, yesterday's and any
with a run still going); a day that is over and whose runs all ended is
sealed and not listed again, so syncing costs work proportional to what is
new.  A run written into a sealed day later (a spool pushed days later, a
back-dated import, a writer whose clock is behind) comes with a marker in
the month folder every sync lists anyway; a new marker reopens its day for
one sync (``late``).  Several processes may read and sync one catalog at once (WAL).

A damaged catalog file is never repaired: the catalog moves on to a fresh
file that the next sync fills (``catalog_files``); every method that reads
or writes it goes through ``catalog_files.healing``.

Runs that ``gc`` deleted on another machine are dropped too: each gc that
deletes runs leaves a ``gc/<id>.json`` entry naming them, and a sync reads
the entries it has not seen yet (one folder listing when there are none).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from . import canonical, catalog_files, run_entries
from .errors import (
    AmbiguousError,
    FormatError,
    NotFoundError,
    QueryError,
    UsageError,
)
from .ids import day_path, is_run_id, run_id_of_entry, whole_key
from .late import marked_day
from .query import (
    DRIVE_MIN_ROWS,
    DRIVE_SAMPLE,
    compile_driven,
    compile_order,
    compile_where,
    driven_sql,
    fields_named,
)
from .records import Artifact, param_fields
from .store import cache_dir

if TYPE_CHECKING:
    from .ledger import Ledger
    from .runs import Run

__all__ = ["SCHEMA_VERSION", "Catalog", "RunList"]

SCHEMA_VERSION = 6
#: days this close to now are never sealed (clock skew between writers)
_OPEN_DAYS = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, status TEXT, kind TEXT, started_at TEXT, ended_at TEXT,
    parent_id TEXT, user TEXT, host TEXT, message TEXT, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_name ON runs(name, id);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, id);
CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_id);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value_num REAL, value_text TEXT,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS params_num ON params(key, value_num);
CREATE INDEX IF NOT EXISTS params_text ON params(key, value_text);
CREATE TABLE IF NOT EXISTS tags (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value_num REAL, value_text TEXT,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_text ON tags(key, value_text);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, key TEXT NOT NULL, "last" REAL, "min" REAL, "max" REAL,
    step INTEGER, "count" INTEGER, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metrics_last ON metrics(key, "last");
CREATE INDEX IF NOT EXISTS metrics_min ON metrics(key, "min");
CREATE INDEX IF NOT EXISTS metrics_max ON metrics(key, "max");
CREATE INDEX IF NOT EXISTS metrics_key_run ON metrics(key, run_id, "last", "min", "max");
CREATE INDEX IF NOT EXISTS params_key_run ON params(key, run_id, value_num, value_text);
CREATE INDEX IF NOT EXISTS tags_key_run ON tags(key, run_id, value_num, value_text);
CREATE TABLE IF NOT EXISTS edges (
    run_id TEXT NOT NULL, digest TEXT NOT NULL, dir TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (run_id, dir, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_digest ON edges(digest, dir);
CREATE TABLE IF NOT EXISTS artifacts (
    digest TEXT PRIMARY KEY, size INTEGER, kind TEXT, format TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS days (day TEXT PRIMARY KEY, sealed INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gc_seen (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS late_seen (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS damaged (id TEXT PRIMARY KEY, final INTEGER NOT NULL) WITHOUT ROWID;
"""


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return None
    return canonical.dumps(v).decode("utf-8")


def catalog_path(url: str) -> str:
    h = hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]
    return str(cache_dir() / "catalogs" / f"{h}.sqlite3")


class RunList(Sequence["Run"]):
    """The runs a query matched, newest first; each Run is built when first touched."""

    def __init__(self, ledger: Ledger, ids: list[str]) -> None:
        self._ledger = ledger
        self.ids = ids
        self._cache: dict[int, Run] = {}

    @overload
    def __getitem__(self, i: int) -> Run: ...
    @overload
    def __getitem__(self, i: slice) -> list[Run]: ...

    def __getitem__(self, i: int | slice) -> Run | list[Run]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self.ids)))]
        if i < 0:
            i += len(self.ids)
        got = self._cache.get(i)
        if got is None:
            got = self._ledger.catalog.run(self.ids[i])
            self._cache[i] = got
        return got

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RunList):
            return self.ids == other.ids
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compares by content, like a list

    def __repr__(self) -> str:
        return f"<RunList of {len(self.ids)} runs>"

    def to_pandas(self) -> Any:
        """A DataFrame, one row per run: id, name, status, times, params.*, metrics.*, tags.*.

        Needs pandas.
        """
        try:
            import pandas as pd
        except ImportError as e:
            from .errors import MissingExtraError

            raise MissingExtraError("to_pandas() needs pandas: pip install pandas") from e
        rows = []
        for run in self:
            row: dict[str, Any] = {
                "id": run.id,
                "name": run.name,
                "status": run.status,
                "started_at": run.started_at,
                "ended_at": run.ended_at,
            }
            for k, v in param_fields(run.params).items():
                row[f"params.{k}"] = v
            for k, m in run.metrics.items():
                row[f"metrics.{k}"] = m
            for k, t in run.tags.items():
                row[f"tags.{k}"] = t
            rows.append(row)
        return pd.DataFrame(rows)


class Catalog(catalog_files.CatalogFiles):
    """The SQLite index of one ledger's store."""

    schema = _SCHEMA
    schema_version = SCHEMA_VERSION

    def __init__(self, ledger: Ledger, path: str | None = None) -> None:
        self.ledger = ledger
        self.store = ledger.store
        #: the first file of this catalog; damage moves it to the next generation's file
        self._base = path or catalog_path(self.store.url)
        self._generation, self.path = catalog_files.newest(self._base)
        self._local = threading.local()
        self._synced = False
        #: late markers this catalog acted on (see ``late``), as far as this object knows
        self._seen_marks: set[str] = set()

    def _moved(self) -> None:
        """The catalog moved to a fresh file: sync it from the store before answering."""
        self._synced = False
        self._seen_marks = set()

    # -- writing ---------------------------------------------------------------------
    def _insert(self, cur: sqlite3.Connection | sqlite3.Cursor, rec: dict[str, Any]) -> None:
        rid = rec["id"]
        cur.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rid,
                rec.get("name"),
                rec.get("status", "running"),
                rec.get("kind"),
                rec.get("started_at"),
                rec.get("ended_at"),
                rec.get("parent_id"),
                rec.get("user"),
                rec.get("host"),
                rec.get("message"),
                canonical.dumps(rec).decode("utf-8"),
            ),
        )
        for table in ("params", "tags", "metrics", "edges"):
            cur.execute(f"DELETE FROM {table} WHERE run_id = ?", (rid,))
        cur.execute("DELETE FROM damaged WHERE id = ?", (rid,))
        # each param, then the fields of dict params: params.cfg.optim.lr
        cur.executemany(
            "INSERT INTO params VALUES (?, ?, ?, ?)",
            [
                (rid, k, _num(v) if not isinstance(v, str) else None, _text(v))
                for k, v in param_fields(rec.get("params") or {}, nodes=True).items()
            ],
        )
        cur.executemany(
            "INSERT INTO tags VALUES (?, ?, ?, ?)",
            [(rid, k, _num(v), str(v)) for k, v in (rec.get("tags") or {}).items()],
        )
        cur.executemany(
            "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    rid,
                    k,
                    _num(m.get("last")),
                    _num(m.get("min")),
                    _num(m.get("max")),
                    m.get("step"),
                    m.get("count"),
                )
                for k, m in (rec.get("metrics") or {}).items()
                if isinstance(m, dict)
            ],
        )
        edges = []
        arts = []
        for direction, key in (("in", "inputs"), ("out", "outputs")):
            for name, a in (rec.get(key) or {}).items():
                edges.append((rid, a["digest"], direction, name))
                arts.append((a["digest"], a.get("size"), a.get("kind"), a.get("format")))
        cur.executemany("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?)", edges)
        cur.executemany("INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?)", arts)

    @catalog_files.healing
    def add_run(self, rec: dict[str, Any]) -> None:
        """Index one run record (the writing process adds its runs at once)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._insert(db, rec)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    # -- sync ---------------------------------------------------------------------------
    def _days(self, marks: dict[str, str] | None = None) -> Iterator[str]:
        """Every day folder of the store; ``marks`` gets each late marker found on the way
        (its name -> the day it marks: see ``late``), at no extra listing."""
        backend = self.store.backend
        for y in sorted(backend.list_dir("runs")):
            if not (len(y) == 4 and y.isdigit()):
                continue
            for m in sorted(backend.list_dir(f"runs/{y}")):
                if not (len(m) == 2 and m.isdigit()):
                    continue
                for d in sorted(backend.list_dir(f"runs/{y}/{m}")):
                    if len(d) == 2 and d.isdigit():
                        yield f"{y}/{m}/{d}"
                    elif marks is not None and (day := marked_day(f"{y}/{m}", d)) is not None:
                        marks[f"{y}/{m}/{d}"] = day

    @catalog_files.healing
    def sync(self) -> int:
        """Bring the catalog up to date with the store; returns how many runs changed."""
        changed = self._sync(rebuild=False)
        self._synced = True
        return changed

    def _sync(self, *, rebuild: bool) -> int:
        """List the unsealed days and index what is new or still changing.

        With ``rebuild``, everything is read again inside one write
        transaction that first empties the catalog: readers (WAL) keep
        seeing the old catalog until the new one is complete.
        """
        db = self.db
        if rebuild:
            db.execute("BEGIN IMMEDIATE")
        try:
            if rebuild:
                for table in (
                    "runs", "params", "tags", "metrics", "edges", "artifacts", "days", "damaged"
                ):
                    db.execute(f"DELETE FROM {table}")
                sealed: set[str] = set()
            else:
                sealed = {row[0] for row in db.execute("SELECT day FROM days WHERE sealed = 1")}
            self._apply_gc_log(apply=not rebuild)
            today = _dt.datetime.now(_dt.timezone.utc).date()
            changed = 0
            marks: dict[str, str] = {}
            days = list(self._days(marks))
            new_marks = self._new_marks(marks, rebuild=rebuild)
            reopened = set(new_marks.values()) & sealed
            sealed -= reopened  # a late run landed there: list it again
            for day in days:
                if day in sealed:
                    continue
                names = self.store.backend.list_dir(f"runs/{day}")
                flat = {n[:-5] for n in names if n.endswith(".json") and is_run_id(n[:-5])}
                ids = sorted({r for n in names if (r := run_id_of_entry(n)) is not None})
                # a damaged run whose end is written never changes (create-only): not read
                # again; one with only a damaged start is read again until its end comes
                known: dict[str, str] = (
                    dict(
                        db.execute(
                            "SELECT id, status FROM runs WHERE id >= ? AND id <= ? UNION ALL "
                            "SELECT id, CASE final WHEN 1 THEN 'damaged' ELSE 'running' END "
                            "FROM damaged WHERE id >= ? AND id <= ?",
                            (ids[0], ids[-1], ids[0], ids[-1]),
                        ).fetchall()
                    )
                    if ids
                    else {}
                )
                todo = [i for i in ids if i not in known or known[i] in ("running", "incomplete")]
                changed += self._load(todo, known, in_transaction=rebuild, flat=flat)
                y, m, d = (int(x) for x in day.split("/"))
                if (today - _dt.date(y, m, d)).days >= _OPEN_DAYS and self._all_ended(ids):
                    db.execute("INSERT OR REPLACE INTO days VALUES (?, 1)", (day,))
                elif day in reopened:  # a late run still going: keep listing the day
                    db.execute("DELETE FROM days WHERE day = ?", (day,))
            # seen only now that their days were listed again
            db.executemany("INSERT OR IGNORE INTO late_seen VALUES (?)", [(n,) for n in new_marks])
            self._seen_marks |= set(new_marks)
            if rebuild:
                db.execute("COMMIT")
        except BaseException:
            if rebuild:
                _rollback(db)
            raise
        return changed

    def _new_marks(self, marks: dict[str, str], *, rebuild: bool) -> dict[str, str]:
        """The late markers (name -> day) this catalog has not acted on yet (those it has
        are remembered in memory too: a sync with nothing new runs no query for them)."""
        if rebuild:
            self._seen_marks.clear()
            if marks:
                self.db.execute("DELETE FROM late_seen")
            return marks
        unknown = sorted(n for n in marks if n not in self._seen_marks)
        if not unknown:
            return {}
        q = "SELECT name FROM late_seen WHERE name IN ({marks})"
        seen = {r[0] for r in self._select_in(q, unknown)}
        self._seen_marks |= seen
        return {n: marks[n] for n in unknown if n not in seen}

    def _apply_gc_log(self, *, apply: bool) -> None:
        """Drop the runs that gc (anywhere) deleted since this catalog last looked."""
        db = self.db
        names = [n for n in self.store.backend.list_dir("gc") if n.endswith(".json")]
        if not names:
            return
        seen = {r[0] for r in db.execute("SELECT name FROM gc_seen")}
        new = sorted(n for n in names if n not in seen)
        if not new:
            return
        gone: list[str] = []
        if apply:
            got = self.store.backend.read_many([f"gc/{n}" for n in new])
            for n in new:
                raw = got.get(f"gc/{n}")
                if raw is None:
                    continue
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    gone += [str(r) for r in canonical.loads(raw).get("runs", [])]
        own = not db.in_transaction
        if own:
            db.execute("BEGIN IMMEDIATE")
        try:
            self.forget_runs(gone)
            db.executemany("INSERT OR IGNORE INTO gc_seen VALUES (?)", [(n,) for n in new])
            if own:
                db.execute("COMMIT")
        except BaseException:
            if own:
                _rollback(db)
            raise

    @catalog_files.healing
    def forget_runs(self, run_ids: list[str]) -> None:
        """Remove runs (deleted from the store) and the artifacts only they knew."""
        if not run_ids:
            return
        db = self.db
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            db.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk)
            db.execute(f"DELETE FROM damaged WHERE id IN ({marks})", chunk)
            for table in ("params", "tags", "metrics", "edges"):
                db.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", chunk)
        db.execute("DELETE FROM artifacts WHERE digest NOT IN (SELECT digest FROM edges)")

    def _all_ended(self, ids: list[str]) -> bool:
        """True when every run of a day is indexed and none is still running."""
        if not ids:
            return True
        got = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = self.db.execute(
                f"SELECT status FROM runs WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            ).fetchall()
            if any(r[0] == "running" for r in rows):
                return False
            got += len(rows)
            got += self.db.execute(  # damaged runs whose end is written are settled too
                f"SELECT COUNT(*) FROM damaged WHERE final = 1 AND id IN "
                f"({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchone()[0]
        # a run listed but not indexed (its start still being written) keeps the day open
        return got == len(ids)

    def _load(
        self,
        ids: list[str],
        known: dict[str, str],
        *,
        in_transaction: bool = False,
        flat: set[str] | None = None,
    ) -> int:
        """Read and index the runs ``ids`` (batched reads on remote stores).

        ``flat``: ids listed as one-entry files (short runs), read from that file only.
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
            records = []
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
                        run = self.ledger._load_run(rid)
                        if run.status == known.get(rid):
                            continue
                        rec = run.record
                except run_entries.DamagedEntryError as e:
                    run_entries.warn_damaged(e)
                    damaged.append((rid, int(end is not None)))
                    continue
                records.append(rec)
            if damaged:
                self.db.executemany("INSERT OR REPLACE INTO damaged VALUES (?, ?)", damaged)
            if records:
                db = self.db
                if in_transaction:
                    for rec in records:
                        self._insert(db, rec)
                else:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        for rec in records:
                            self._insert(db, rec)
                        db.execute("COMMIT")
                    except BaseException:
                        _rollback(db)
                        raise
                changed += len(records)
        return changed

    def ensure_synced(self) -> None:
        if not self._synced:
            self.sync()

    @catalog_files.healing
    def reindex(self) -> int:
        """Rebuild from the store alone; returns how many runs were indexed.

        The rebuild is one transaction: other processes reading the catalog
        meanwhile see the old index, never a half-built one.
        """
        self._sync(rebuild=True)
        self._synced = True
        return int(self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    # -- reading ---------------------------------------------------------------------------
    @catalog_files.healing
    def run(self, run_id: str) -> Run:
        from .runs import Run

        row = self.db.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return self.ledger._load_run(run_id)
        run = Run(self.ledger.writer, canonical.loads(row[0]))
        run.resolve_status()
        return run

    @catalog_files.healing
    def query(
        self,
        *,
        name: str | None = None,
        status: str | Iterable[str] | None = None,
        where: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Run ids matching a filter (see :meth:`Ledger.runs`)."""
        self.ensure_synced()
        try:
            return self._query(name, status, where, order_by, limit)
        except sqlite3.OperationalError as e:
            if not any(m in str(e) for m in _TOO_LARGE):
                raise
            raise QueryError(
                f"the where expression is too large for SQLite ({e}): use fewer terms or "
                "less nesting; for many values of one field write one list, "
                "params.x in (1, 2, 3, ...), which takes any number of values"
            ) from None

    def _query(
        self,
        name: str | None,
        status: str | Iterable[str] | None,
        where: str | None,
        order_by: str | None,
        limit: int | None,
    ) -> list[str]:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise UsageError(f"limit must be a non-negative integer, not {limit!r}")
        if where and name is None and status is None and not order_by:
            driven = compile_driven(where)  # the common case: conditions on params/metrics/tags
            if driven is not None:
                plan, _ = driven
                # probe how many rows each condition matches (stops early): a selective one
                # is best found through its value index by the general plan below; when all
                # match many runs, scan the least broad one in id order instead
                counts = [
                    self.db.execute(
                        f"SELECT COUNT(*) FROM (SELECT 1 FROM {t} WHERE {c} LIMIT ?)",
                        [*a, DRIVE_MIN_ROWS],
                    ).fetchone()[0]
                    for t, c, a in plan
                ]
                if min(counts) >= DRIVE_MIN_ROWS:
                    q, dargs = driven_sql(plan, self._driver(plan))
                    if limit is not None:
                        q += f" LIMIT {int(limit)}"
                    return [r[0] for r in self.db.execute(q, dargs)]
        conds: list[str] = []
        args: list[Any] = []
        join, order = "", "r.id DESC"
        order_args: list[Any] = []
        if order_by:
            join, order, order_args = compile_order(order_by)
        if name is not None:
            conds.append("r.name = ?")
            args.append(name)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            conds.append(f"r.status IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)
        if where:
            sql, wargs = compile_where(where)
            conds.append(sql)
            args.extend(wargs)
        q = f"SELECT r.id FROM runs r {join}"
        if conds:
            q += " WHERE " + " AND ".join(conds)
        q += f" ORDER BY {order}"
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        return [r[0] for r in self.db.execute(q, [*order_args, *args])]

    def _driver(self, plan: list[tuple[str, str, list[Any]]]) -> int:
        """Which condition a driven plan scans: the one matching the smallest share of the
        newest runs that have its key.  Every row the scan passes costs a lookup for each
        other condition, so over 100,000 runs the better choice is ~1.6x faster, whatever
        order the conditions were written in."""
        if len(plan) == 1:
            return 0
        shares = []
        for table, cond, args in plan:
            cols = _KEY_RUN_COLUMNS[table]
            shares.append(
                self.db.execute(
                    f"SELECT COUNT(*) FROM (SELECT {cols} FROM {table} INDEXED BY "
                    f"{table}_key_run WHERE key = ? ORDER BY run_id DESC LIMIT ?) WHERE {cond}",
                    [args[0], DRIVE_SAMPLE, *args],
                ).fetchone()[0]
            )
        return shares.index(min(shares))

    @catalog_files.healing
    def resolve_run(self, prefix: str) -> str:
        """A full run id from an id or unique prefix."""
        p = prefix.upper()
        if is_run_id(p):
            return p
        self.ensure_synced()
        q = "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 11"
        rows = [str(r[0]) for r in self.db.execute(q, (p, p + "\x7f"))]
        if not rows:
            self.sync()
            rows = [str(r[0]) for r in self.db.execute(q, (p, p + "\x7f"))]
        if not rows:
            raise NotFoundError(f"no run matches {prefix!r}; list runs with 'mlledger log'")
        if len(rows) > 1:
            raise AmbiguousError(
                f"{prefix!r} matches {len(rows)}{'+' if len(rows) > 10 else ''} runs: "
                f"{', '.join(rows[:10])}; give more characters",
                rows[:10],
            )
        return str(rows[0])

    @catalog_files.healing
    def _artifact_row(self, digest: str) -> Artifact | None:
        row = self.db.execute(
            "SELECT digest, size, kind, format FROM artifacts WHERE digest = ?", (digest,)
        ).fetchone()
        if row is None:
            return None
        return Artifact(row[0], int(row[1] or 0), row[2] or "file", row[3])

    @catalog_files.healing
    def artifact(self, digest_or_prefix: str) -> Artifact:
        """An artifact with its producers and consumers, by digest or unique hex prefix."""
        digest = self.resolve_digest(digest_or_prefix)
        self.ensure_synced()
        art = self._artifact_row(digest)
        if art is None:
            if not self.store.has(digest):
                raise NotFoundError(f"no artifact {digest} in the store at {self.store.url}")
            kind = self.store.kind(digest)
            art = Artifact(digest, self.store.size(digest), kind)
        q = "SELECT DISTINCT run_id FROM edges WHERE digest = ? AND dir = ? ORDER BY run_id"
        prod = tuple(r[0] for r in self.db.execute(q, (digest, "out")))
        cons = tuple(r[0] for r in self.db.execute(q, (digest, "in")))
        import attrs

        return attrs.evolve(art, producers=prod, consumers=cons)

    @catalog_files.healing
    def resolve_digest(self, text: str) -> str:
        """A full digest from a digest, ``algo:prefix`` or bare hex prefix (>= 6)."""
        algo = self.store.algorithm
        hexlen = _hexlen(algo)
        t = text.strip().lower()
        if ":" in t:
            a, _, h = t.partition(":")
            if a != algo:
                raise NotFoundError(f"{text!r}: this store hashes with {algo}, not {a}")
        else:
            h = t
        if len(h) == hexlen and all(c in "0123456789abcdef" for c in h):
            return f"{algo}:{h}"
        if len(h) < 6 or not all(c in "0123456789abcdef" for c in h):
            raise NotFoundError(
                f"{text!r} is not a digest or a hex prefix of at least 6 characters "
                f"(expected {algo}:<{hexlen} hex> or a prefix of it)"
            )
        self.ensure_synced()
        full = f"{algo}:{h}"
        rows = {
            r[0]
            for r in self.db.execute(
                "SELECT digest FROM artifacts WHERE digest >= ? AND digest < ? LIMIT 11",
                (full, full + "g"),
            )
        }
        # objects no run lists (files inside a tree, records) count too, or a prefix
        # could silently pick one of two objects: one folder listing of the store
        sub = self.store.backend.list_dir(f"objects/{algo}/{h[:2]}")
        rows |= {f"{algo}:{h[:2]}{n}" for n in sub if (h[:2] + n).startswith(h)}
        if not rows:
            raise NotFoundError(f"no artifact matches {text!r} in the store at {self.store.url}")
        if len(rows) > 1:
            cands = sorted(rows)[:10]
            raise AmbiguousError(
                f"{text!r} matches {len(rows)} artifacts: {', '.join(cands)}; give more characters",
                cands,
            )
        return str(rows.pop())

    def _select_in(self, sql: str, values: list[str], *head: str) -> list[Any]:
        """Rows of ``sql`` (with ``{marks}`` for the IN list) over ``values``, 500 at a time."""
        out: list[Any] = []
        for i in range(0, len(values), 500):
            chunk = values[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            out.extend(self.db.execute(sql.format(marks=marks), [*head, *chunk]).fetchall())
        return out

    @catalog_files.healing
    def edges_of_runs(self, run_ids: list[str], direction: str) -> list[tuple[str, str, str]]:
        """``(run_id, digest, name)`` of the inputs (``in``) or outputs (``out``) of runs."""
        return self._select_in(
            "SELECT run_id, digest, name FROM edges WHERE dir = ? AND run_id IN ({marks})",
            run_ids,
            direction,
        )

    @catalog_files.healing
    def runs_touching(self, digests: list[str], direction: str) -> list[tuple[str, str, str]]:
        """``(run_id, digest, name)`` of runs that used (``in``) or produced (``out``) digests."""
        return self._select_in(
            "SELECT run_id, digest, name FROM edges WHERE dir = ? AND digest IN ({marks})",
            digests,
            direction,
        )

    @catalog_files.healing
    def parents(self, run_ids: list[str]) -> list[tuple[str, str]]:
        """``(run_id, parent_id)`` for runs that have a parent."""
        return self._select_in(
            "SELECT id, parent_id FROM runs WHERE parent_id IS NOT NULL AND id IN ({marks})",
            run_ids,
        )

    @catalog_files.healing
    def children(self, run_ids: list[str]) -> list[tuple[str, str]]:
        """``(child_id, parent_id)`` for the children of runs."""
        return self._select_in(
            "SELECT id, parent_id FROM runs WHERE parent_id IN ({marks})", run_ids
        )

    @catalog_files.healing
    def unknown_fields(
        self, where: str | None = None, order_by: str | None = None, name: str | None = None
    ) -> list[tuple[str, list[str]]]:
        """The fields (``params.lrr``) and run name a query names that no run has, each with
        up to three close names that runs do have: why a query matched nothing."""
        import difflib

        self.ensure_synced()
        db = self.db
        out: list[tuple[str, list[str]]] = []
        for section, key in fields_named(where, order_by):
            if db.execute(f"SELECT 1 FROM {section} WHERE key = ? LIMIT 1", (key,)).fetchone():
                continue
            keys = [r[0] for r in db.execute(f"SELECT DISTINCT key FROM {section}")]
            close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
            out.append((f"{section}.{key}", [f"{section}.{k}" for k in close]))
        if name is not None and not db.execute(
            "SELECT 1 FROM runs WHERE name = ? LIMIT 1", (name,)
        ).fetchone():
            names = [r[0] for r in db.execute("SELECT DISTINCT name FROM runs")]
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
            out.append((f"the name {name!r}", [repr(n) for n in close]))
        return out

    @catalog_files.healing
    def records(self) -> list[tuple[str, str]]:
        """``(run id, record JSON)`` of every run the catalog holds, by id."""
        return list(self.db.execute("SELECT id, record FROM runs ORDER BY id"))

    @catalog_files.healing
    def mark_gc_seen(self, name: str) -> None:
        """Note that this catalog already applied the gc entry ``gc/<name>``."""
        self.db.execute("INSERT OR IGNORE INTO gc_seen VALUES (?)", (name,))

    @catalog_files.healing
    def all_run_ids(self) -> list[str]:
        self.ensure_synced()
        return [r[0] for r in self.db.execute("SELECT id FROM runs ORDER BY id")]

    def check_format(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            raise FormatError("catalog schema mismatch; run 'mlledger reindex'")


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back after an error; a rollback that fails too (a damaged file) must not hide
    the error that caused it."""
    with contextlib.suppress(sqlite3.Error):
        db.execute("ROLLBACK")


#: SQLite's words for a statement over one of its limits (expression depth, parser stack,
#: variables, table references): a query too large, not a damaged catalog
_TOO_LARGE = ("too large", "stack overflow", "too many")

#: the columns each ``<table>_key_run`` index holds (a driven plan's sample reads only those)
_KEY_RUN_COLUMNS = {
    "params": "key, run_id, value_num, value_text",
    "tags": "key, run_id, value_num, value_text",
    "metrics": 'key, run_id, "last", "min", "max"',
}


def _hexlen(algo: str) -> int:
    from .hashing import ALGORITHMS

    return ALGORITHMS[algo][1]
