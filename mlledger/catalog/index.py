"""The catalog's index: every SQL statement the catalog runs, over one SQLite file.

The tables hold what queries, lineage and gc need from each run record (its
params, tags, metric summaries, input and output edges, the artifacts they
name) plus the sync's own bookkeeping: which days are sealed, which gc
entries and late-run markers were applied, which run entries were damaged.
Nothing here reads the store: ``sync`` fills the index, ``Catalog`` answers
from it.  Every method that reads or writes goes through ``files.healing``
(a damaged file moves the catalog to a fresh one).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import canonical
from ..errors import FormatError, QueryError, UsageError
from ..query import (
    DRIVE_MIN_ROWS,
    DRIVE_SAMPLE,
    compile_driven,
    compile_order,
    compile_where,
    driven_sql,
    fields_named,
)
from ..records import Artifact
from . import files
from .bulk import PER_RUN, insert_records
from .schema import SCHEMA, SCHEMA_VERSION

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["Index"]


class Index(files.CatalogFiles):
    """The SQLite index of one store: the newest generation of its catalog file."""

    schema = SCHEMA
    schema_version = SCHEMA_VERSION

    def __init__(self, store: Store, path: str | None = None) -> None:
        self.store = store
        #: the first file of this catalog; damage moves it to the next generation's file
        self._base = path or files.catalog_path(self.store.url)
        self._generation, self.path = files.newest(self._base)
        self._local = threading.local()

    # -- transactions ------------------------------------------------------------------
    def begin(self) -> None:
        """Start a write transaction (``commit`` or ``rollback`` ends it)."""
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        _rollback(self.db)

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    # -- writing ---------------------------------------------------------------------
    @files.healing
    def add_run(self, rec: dict[str, Any]) -> None:
        """Index one run record (the writing process adds its runs at once)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            insert_records(db, [rec])
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def add_records(
        self,
        records: list[dict[str, Any]],
        *,
        in_transaction: bool,
        texts: dict[str, str] | None = None,
    ) -> None:
        """Index run records read by a sync, in one transaction (or in the caller's);
        ``texts``: records' canonical JSON where the sync has it (see ``bulk``)."""
        db = self.db
        if in_transaction:
            insert_records(db, records, texts)
        else:
            db.execute("BEGIN IMMEDIATE")
            try:
                insert_records(db, records, texts)
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise

    def mark_damaged(self, damaged: list[tuple[str, int]]) -> None:
        """Note runs whose entries are damaged: ``(run id, 1 when its end is written)``."""
        self.db.executemany("INSERT OR REPLACE INTO damaged VALUES (?, ?)", damaged)

    def clear(self) -> None:
        """Empty the index of runs and days (a rebuild, inside its transaction)."""
        for table in ("runs", *PER_RUN, "artifacts", "days", "damaged"):
            self.db.execute(f"DELETE FROM {table}")
        self.db.execute("DELETE FROM meta WHERE key LIKE 'watch:%'")  # watchers start over

    @files.healing
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
            for table in PER_RUN:
                db.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", chunk)
        db.execute("DELETE FROM artifacts WHERE digest NOT IN (SELECT digest FROM edges)")

    # -- the sync's bookkeeping: days, gc entries, late markers ---------------------------
    def sealed_days(self) -> set[str]:
        """The day folders a sync no longer lists."""
        return {row[0] for row in self.db.execute("SELECT day FROM days WHERE sealed = 1")}

    def seal_day(self, day: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO days VALUES (?, 1)", (day,))

    def open_days(self) -> set[str]:
        """The day folders a sync listed and did not seal: it lists them again."""
        return {row[0] for row in self.db.execute("SELECT day FROM days WHERE sealed = 0")}

    def keep_open(self, day: str) -> None:
        """Note a day a sync listed and did not seal (or reopened for a late run)."""
        self.db.execute("INSERT OR REPLACE INTO days VALUES (?, 0)", (day,))

    def listed_day(self) -> str | None:
        """The day (``yyyy-mm-dd``, the catalog's clock) the last finished sync began on, when
        ``days`` names every day folder it left open (None: no sync noted it yet, so the
        next lists every month of the store)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'listed_day'").fetchone()
        return None if row is None else str(row[0])

    def set_listed_day(self, day: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('listed_day', ?)", (day,))

    def known_statuses(self, ids: list[str]) -> dict[str, str]:
        """Status of the runs between ``ids[0]`` and ``ids[-1]`` (sorted) the index knows;
        a damaged run is ``damaged`` when its end is written, else ``running``."""
        if not ids:
            return {}
        # a damaged run whose end is written never changes (create-only): not read
        # again; one with only a damaged start is read again until its end comes
        return dict(
            self.db.execute(
                "SELECT id, status FROM runs WHERE id >= ? AND id <= ? UNION ALL "
                "SELECT id, CASE final WHEN 1 THEN 'damaged' ELSE 'running' END "
                "FROM damaged WHERE id >= ? AND id <= ?",
                (ids[0], ids[-1], ids[0], ids[-1]),
            ).fetchall()
        )

    def all_ended(self, ids: list[str]) -> bool:
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

    def gc_seen(self) -> set[str]:
        """The gc entries (``gc/<name>``) this catalog already applied."""
        return {r[0] for r in self.db.execute("SELECT name FROM gc_seen")}

    def add_gc_seen(self, names: list[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO gc_seen VALUES (?)", [(n,) for n in names])

    @files.healing
    def mark_gc_seen(self, name: str) -> None:
        """Note that this catalog already applied the gc entry ``gc/<name>``."""
        self.db.execute("INSERT OR IGNORE INTO gc_seen VALUES (?)", (name,))

    def late_seen(self, names: list[str]) -> set[str]:
        """Which of the late markers ``names`` this catalog already acted on."""
        q = "SELECT name FROM late_seen WHERE name IN ({marks})"
        return {r[0] for r in self._select_in(q, names)}

    def add_late_seen(self, names: Iterable[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO late_seen VALUES (?)", [(n,) for n in names])

    def clear_late_seen(self) -> None:
        self.db.execute("DELETE FROM late_seen")

    # -- reading ---------------------------------------------------------------------------
    def count_runs(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    @files.healing
    def damaged_ids(self) -> list[str]:
        """Runs whose entries could not be read, newest first (their end written or not)."""
        return [r[0] for r in self.db.execute("SELECT id FROM damaged ORDER BY id DESC")]

    @files.healing
    def record_of(self, run_id: str) -> dict[str, Any] | None:
        """The indexed record of a run, or None when the index does not hold it."""
        row = self.db.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else dict(canonical.loads(row[0]))

    @files.healing
    def select_runs(
        self,
        name: str | None = None,
        status: str | Iterable[str] | None = None,
        where: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Run ids matching a filter, from the index as it is (see :meth:`Ledger.runs`)."""
        try:
            return self._select_runs(name, status, where, order_by, limit)
        except sqlite3.OperationalError as e:
            if not any(m in str(e) for m in _TOO_LARGE):
                raise
            raise QueryError(
                f"the where expression is too large for SQLite ({e}): use fewer terms or "
                "less nesting; for many values of one field write one list, "
                "params.x in (1, 2, 3, ...), which takes any number of values"
            ) from None

    def _select_runs(
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

    def run_ids_from(self, prefix: str) -> list[str]:
        """Up to 11 run ids starting with ``prefix``, by id."""
        q = "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 11"
        return [str(r[0]) for r in self.db.execute(q, (prefix, prefix + "\x7f"))]

    @files.healing
    def artifact_row(self, digest: str) -> Artifact | None:
        """An artifact as the index knows it (no producers or consumers), or None."""
        row = self.db.execute(
            "SELECT digest, size, kind, format FROM artifacts WHERE digest = ?", (digest,)
        ).fetchone()
        if row is None:
            return None
        return Artifact(row[0], int(row[1] or 0), row[2] or "file", row[3])

    def runs_with_edge(self, digest: str, direction: str) -> tuple[str, ...]:
        """The runs that produced (``out``) or used (``in``) an artifact, by id."""
        q = "SELECT DISTINCT run_id FROM edges WHERE digest = ? AND dir = ? ORDER BY run_id"
        return tuple(r[0] for r in self.db.execute(q, (digest, direction)))

    def digests_from(self, full: str) -> set[str]:
        """Up to 11 artifact digests starting with ``full`` (``algo:hexprefix``)."""
        return {
            r[0]
            for r in self.db.execute(
                "SELECT digest FROM artifacts WHERE digest >= ? AND digest < ? LIMIT 11",
                (full, full + "g"),
            )
        }

    def _select_in(self, sql: str, values: list[str], *head: str) -> list[Any]:
        """Rows of ``sql`` (with ``{marks}`` for the IN list) over ``values``, 500 at a time."""
        out: list[Any] = []
        for i in range(0, len(values), 500):
            chunk = values[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            out.extend(self.db.execute(sql.format(marks=marks), [*head, *chunk]).fetchall())
        return out

    @files.healing
    def edges_of_runs(self, run_ids: list[str], direction: str) -> list[tuple[str, str, str]]:
        """``(run_id, digest, name)`` of the inputs (``in``) or outputs (``out``) of runs."""
        return self._select_in(
            "SELECT run_id, digest, name FROM edges WHERE dir = ? AND run_id IN ({marks})",
            run_ids,
            direction,
        )

    @files.healing
    def runs_touching(self, digests: list[str], direction: str) -> list[tuple[str, str, str]]:
        """``(run_id, digest, name)`` of runs that used (``in``) or produced (``out``) digests."""
        return self._select_in(
            "SELECT run_id, digest, name FROM edges WHERE dir = ? AND digest IN ({marks})",
            digests,
            direction,
        )

    @files.healing
    def parents(self, run_ids: list[str]) -> list[tuple[str, str]]:
        """``(run_id, parent_id)`` for runs that have a parent."""
        return self._select_in(
            "SELECT id, parent_id FROM runs WHERE parent_id IS NOT NULL AND id IN ({marks})",
            run_ids,
        )

    @files.healing
    def children(self, run_ids: list[str]) -> list[tuple[str, str]]:
        """``(child_id, parent_id)`` for the children of runs."""
        return self._select_in(
            "SELECT id, parent_id FROM runs WHERE parent_id IN ({marks})", run_ids
        )

    @files.healing
    def missing_fields(
        self, where: str | None = None, order_by: str | None = None, name: str | None = None
    ) -> list[tuple[str, list[str]]]:
        """The fields (``params.lrr``) and run name a query names that no indexed run has,
        each with up to three close names that runs do have."""
        import difflib

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

    @files.healing
    def records(self) -> list[tuple[str, str]]:
        """``(run id, record JSON)`` of every run the catalog holds, by id."""
        return list(self.db.execute("SELECT id, record FROM runs ORDER BY id"))

    @files.healing
    def statuses_and_records(self) -> list[tuple[str, str, str]]:
        """``(run id, status, record JSON)`` of every run the catalog holds."""
        return list(self.db.execute("SELECT id, status, record FROM runs"))

    @files.healing
    def run_ids(self) -> list[str]:
        """Every run id the index holds, in order."""
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
    "resources": "key, run_id, value_num, value_text",
    "tags": "key, run_id, value_num, value_text",
    "metrics": 'key, run_id, "last", "min", "max"',
}
