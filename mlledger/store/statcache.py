"""Remember the digests of local files so unchanged files are never read twice.

An entry is keyed by the file's path, device, inode, size, mtime_ns and
ctime_ns (ctime changes on every write and cannot be set back by a user).
Like git's index, an entry recorded less than ``RACY_NS`` after the file's
last change is not trusted: the file might have been written again within
the same timestamp tick.  A stale entry therefore can never yield a wrong
digest: anything that changed forces a rehash.

The cache is one SQLite file in the user cache folder, in WAL mode, so any
number of processes share it.  Losing it loses nothing but time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3  # imported by the first lookup: opening a store does not need it

__all__ = ["RACY_NS", "StatCache"]

#: an entry younger than this after the file's last change is re-checked
RACY_NS = 2_000_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stat (
    path TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL,
    recorded_ns INTEGER NOT NULL,
    PRIMARY KEY (path, algorithm)
) WITHOUT ROWID
"""


def _path_key(path: str) -> str | bytes:
    """The path as SQLite can hold it: text, or its raw bytes when it is not valid UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def _key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class StatCache:
    """A digest cache for local files; every method is safe to call from threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._disabled = False

    def _conn(self) -> sqlite3.Connection | None:
        if self._disabled:
            return None
        import sqlite3

        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(_SCHEMA)
            except (OSError, sqlite3.Error):
                # a cache we cannot open only costs time: hash instead
                self._disabled = True
                return None
            self._local.conn = conn
        return conn

    def lookup(self, path: str, st: os.stat_result, algorithm: str) -> str | None:
        """The cached digest of ``path`` if its stat still matches and is not racy."""
        conn = self._conn()
        if conn is None:
            return None
        import sqlite3

        try:
            row = conn.execute(
                "SELECT dev, ino, size, mtime_ns, ctime_ns, digest, recorded_ns FROM stat "
                "WHERE path = ? AND algorithm = ?",
                (_path_key(path), algorithm),
            ).fetchone()
        except sqlite3.Error:
            return None
        if row is None or tuple(row[:5]) != _key(st):
            return None
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        if row[6] - changed < RACY_NS:
            return None
        return str(row[5])

    def previous(self, path: str, algorithm: str) -> str | None:
        """The digest last recorded for ``path``, whatever the file holds now: the
        version stored before, which a new one may share chunks with."""
        conn = self._conn()
        if conn is None:
            return None
        try:
            row = conn.execute(
                "SELECT digest FROM stat WHERE path = ? AND algorithm = ?",
                (_path_key(path), algorithm),
            ).fetchone()
        except sqlite3.Error:
            return None
        return None if row is None else str(row[0])

    def record(self, path: str, st: os.stat_result, algorithm: str, digest: str) -> None:
        """Remember ``digest`` for ``path`` as it was when ``st`` was taken."""
        conn = self._conn()
        if conn is None:
            return
        import sqlite3

        with contextlib.suppress(sqlite3.Error):
            conn.execute(
                "INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_path_key(path), algorithm, *_key(st), digest, time.time_ns()),
            )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
