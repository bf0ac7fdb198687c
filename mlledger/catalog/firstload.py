"""A first sync into an empty catalog: rows first, secondary indexes after.

Filling an empty catalog with a store's runs (a new team member's first
sync, a catalog that moved to a fresh file, ``reindex``) inserts millions of
rows.  Keeping a dozen secondary indexes up to date row by row costs more
than the rows themselves, and every checkpoint of the write-ahead log waits
for the disk.  So for as long as such a sync runs:

- the secondary indexes (every ``CREATE INDEX`` of the schema) are dropped,
  and made again, each in one sorted pass, when it ends;
- ``PRAGMA synchronous=OFF`` and a larger page cache, on this connection only
  (not inside ``reindex``'s transaction: SQLite keeps the level there).

The catalog is a cache of the store, so neither puts anything at risk.  A
process killed in between leaves committed rows (each a complete day's
batch) and the ``meta`` row ``first_load``; the next sync sees it and makes
the indexes before anything else (``repair``), then goes on with the days not
sealed yet.  A crash of the machine itself (``synchronous=OFF``) may leave a
damaged file: that moves the catalog to a fresh file, filled from the store
(``files``).  ``reindex`` does the same inside its one transaction, so other
processes never see the indexes gone.
"""

from __future__ import annotations

import re
import sqlite3

from .schema import SCHEMA

__all__ = ["FirstLoad", "index_statements", "repair"]

#: pages of cache during a first load (negative: KiB): 64 MiB, back to the default after
_CACHE_KIB = 65536
_INDEX = re.compile(r"CREATE INDEX IF NOT EXISTS (\w+) ON [^;]+;")
_FLAG = "first_load"


def index_statements(schema: str = SCHEMA) -> list[tuple[str, str]]:
    """``(name, CREATE INDEX statement)`` of every secondary index of ``schema``."""
    return [(m.group(1), m.group(0)) for m in _INDEX.finditer(schema)]


def is_empty(db: sqlite3.Connection) -> bool:
    """Whether the catalog holds no run, no damaged run and no sealed day."""
    row = db.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM runs) AND NOT EXISTS (SELECT 1 FROM damaged)"
        " AND NOT EXISTS (SELECT 1 FROM days)"
    ).fetchone()
    return bool(row[0])


def repair(db: sqlite3.Connection) -> bool:
    """Make the indexes a first load that did not finish (a killed process) dropped; True
    when there was one to finish."""
    if db.execute("SELECT 1 FROM meta WHERE key = ?", (_FLAG,)).fetchone() is None:
        return False
    _make_indexes(db)
    return True


def _make_indexes(db: sqlite3.Connection) -> None:
    """Make every secondary index, then clear the note; outside a transaction each index
    is its own (a process ending a run meanwhile waits for one index, not for all)."""
    statements = [sql for _, sql in index_statements()]
    statements.append(f"DELETE FROM meta WHERE key = '{_FLAG}'")
    if db.in_transaction:  # reindex's: all or nothing
        for sql in statements:
            db.execute(sql)
        return
    for sql in statements:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(sql)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


class FirstLoad:
    """The settings of one first load on one connection (``start`` ... ``finish``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.active = False
        self._saved: tuple[int, int] | None = None

    def start(self) -> None:
        """Drop the secondary indexes (noting so in ``meta`` in the same transaction) and
        relax the connection's durability for the load."""
        db = self.db
        own = not db.in_transaction
        if own:
            db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (_FLAG,))
            for name, _ in index_statements():
                db.execute(f"DROP INDEX IF EXISTS {name}")
            if own:
                db.execute("COMMIT")
        except BaseException:
            if own and db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if own:  # SQLite keeps the safety level inside a transaction (``reindex``'s one)
            self._saved = (
                int(db.execute("PRAGMA synchronous").fetchone()[0]),
                int(db.execute("PRAGMA cache_size").fetchone()[0]),
            )
            db.execute("PRAGMA synchronous=OFF")
            db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        self.active = True

    def finish(self) -> None:
        """Make the indexes again and restore the connection's settings."""
        if not self.active:
            return
        try:
            _make_indexes(self.db)
        finally:
            self.restore()

    def restore(self) -> None:
        """Restore the connection's settings (the indexes stay as they are: ``repair``)."""
        if self._saved is not None:
            sync, cache = self._saved
            self.db.execute(f"PRAGMA synchronous={sync}")
            self.db.execute(f"PRAGMA cache_size={cache}")
            self._saved = None
        self.active = False
