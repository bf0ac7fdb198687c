"""The catalog's files: where it lives, damage found, a fresh generation started, old
ones removed.

A store's catalog lives in the user cache folder, one file per store URL
(``catalog_path``).

The catalog is a cache of the store, so a damaged catalog file (garbage, cut
short, a page of zeros) is never repaired: the catalog moves to the next
*generation*, a new file ``<name>.<n>.sqlite3`` next to the old one, which
the next sync fills from the store.  A file is never replaced under the name
another process may have open, so no process can meet another's write-ahead
log under its own file's name; processes still reading the damaged file
move on as soon as they meet the damage, or when they next open the catalog
(every open takes the newest generation).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pathlib
import secrets
import sqlite3
import threading
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from .._settings import cache_dir
from ..errors import IntegrityError, LedgerWarning

__all__ = [
    "CatalogFiles",
    "catalog_path",
    "damage_of",
    "generation_path",
    "healing",
    "is_damage",
    "newest",
    "remove_older",
]

_MAGIC = b"SQLite format 3\0"
#: SQLite's result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB
_DAMAGE_CODES = (11, 26)
_DAMAGE_WORDS = ("malformed", "not a database", "corrupt")
#: how often a method meets damage before giving up (each time on a fresh generation)
_ATTEMPTS = 3

F = TypeVar("F", bound=Callable[..., Any])


def catalog_path(url: str) -> str:
    """The first file of the catalog of the store at ``url`` (in the user cache folder)."""
    h = hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]
    return str(cache_dir() / "catalogs" / f"{h}.sqlite3")


def _split(base: str) -> tuple[str, str]:
    """``(folder, stem)`` of a catalog's first file ``<folder>/<stem>.sqlite3``."""
    folder, name = os.path.split(base)
    return folder, name.removesuffix(".sqlite3")


def generation_path(base: str, n: int) -> str:
    """The file of generation ``n`` (0 is ``base`` itself)."""
    if n == 0:
        return base
    folder, stem = _split(base)
    return os.path.join(folder, f"{stem}.{n}.sqlite3")


def _generations(base: str) -> list[int]:
    folder, stem = _split(base)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if name == f"{stem}.sqlite3":
            out.append(0)
        elif name.startswith(stem + ".") and name.endswith(".sqlite3"):
            mid = name[len(stem) + 1 : -len(".sqlite3")]
            if mid.isdigit():
                out.append(int(mid))
    return sorted(out)


def newest(base: str) -> tuple[int, str]:
    """The newest generation of a catalog and its file (``base`` when there is none yet)."""
    gens = _generations(base)
    n = gens[-1] if gens else 0
    return n, generation_path(base, n)


def remove_older(base: str, keep: int) -> None:
    """Remove the files of generations older than ``keep`` (best effort).

    The main file goes first, so no process can open that generation any more
    (``_connect`` never creates a file); a process that opened it just before and
    meets its write-ahead log or shared memory gone sees the file gone and moves on.
    A process still reading one through open files keeps reading it.
    """
    folder = os.path.dirname(base)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for n in _generations(base):
        if n < keep:
            with contextlib.suppress(OSError):
                os.unlink(generation_path(base, n))
    for n in range(keep):
        main = os.path.basename(generation_path(base, n))
        for suffix in ("-wal", "-shm"):
            if main + suffix in names:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, main + suffix))


def damage_of(path: str) -> str | None:
    """What is wrong with a catalog file's header, or None (a missing or empty file is new).

    Cheap (100 bytes and a stat): a file that is not SQLite, or one shorter than its
    header says (cut short). The length is judged only when no write-ahead log is
    pending, as a checkpoint in progress can grow the file after its header.
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return None
        with open(path, "rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return None
    if len(head) < 100 or not head.startswith(_MAGIC):
        return "it is not an SQLite file"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return "its header is damaged"
    try:
        wal = os.path.getsize(path + "-wal")
    except FileNotFoundError:
        wal = 0
    if wal == 0:
        pages = int.from_bytes(head[28:32], "big")
        counted = head[92:96] == head[24:28]  # the header's page count is current
        if size % page or (counted and pages * page > size):
            return "it was cut short"
    return None


def is_damage(e: BaseException) -> bool:
    """True for an SQLite error that means a damaged file (not a busy or locked one)."""
    if not isinstance(e, sqlite3.DatabaseError) or isinstance(e, sqlite3.OperationalError):
        return False
    code = getattr(e, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _DAMAGE_CODES
    return any(w in str(e).lower() for w in _DAMAGE_WORDS)


class _Gone(Exception):
    """The catalog file was removed (another process moved on) while it was opened."""


def _same_file(path: str, before: os.stat_result) -> bool:
    """True when ``path`` still names the file ``before`` was taken of."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino)


#: catalog files this process holds connections to (path -> how many): such a file is
#: not opened outside SQLite, as closing that would release this process's SQLite locks
#: on it (POSIX locks belong to the process), letting another process delete its
#: write-ahead log and shared memory under these connections ("disk I/O error")
_live: dict[str, int] = {}
_live_lock = threading.Lock()

_warned: set[str] = set()


def warn_rebuilt(path: str, url: str, why: str) -> None:
    """Say once per damaged file that the catalog is rebuilt from the store."""
    if path in _warned:
        return
    _warned.add(path)
    warnings.warn(
        f"mlledger: the local catalog {path} is damaged ({why}); it is rebuilt from the "
        f"store at {url}, which nothing of this touches (the catalog is only a cache)",
        LedgerWarning,
        stacklevel=4,
    )


class CatalogFiles:
    """The connection side of a catalog: the newest generation's file, opened in WAL
    mode with the schema in place; damage or a foreign schema moves it to a fresh one.

    A subclass sets ``schema``, ``schema_version``, ``store``, ``path``, ``_base``,
    ``_generation`` and ``_local`` (a ``threading.local``), and ``_moved()`` hears of
    a move.
    """

    schema: str
    schema_version: int
    store: Any
    path: str
    _base: str
    _generation: int
    _local: threading.local

    def _moved(self) -> None:
        """Called after the catalog moved to another file."""

    @property
    def db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.path != self.path:  # moved on to a new file
            self.close()
            conn = None
        if conn is None:
            n, newer = newest(self._base)
            if n > self._generation:  # another process moved on since this one looked
                self._generation, self.path = n, newer
            conn = self._open()
            self._local.conn = conn
            self._local.path = self.path
            with _live_lock:
                _live[self.path] = _live.get(self.path, 0) + 1
        return conn

    def _open(self) -> sqlite3.Connection:
        """Connect to the newest generation; a damaged or foreign-schema file is left
        behind for a fresh generation (the next sync fills it from the store)."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        moves = 0
        tries = 0
        while tries < 3:
            n, newer = newest(self._base)
            if n > self._generation:  # another process moved on since this one looked
                self._generation, self.path = n, newer
            if not os.path.exists(self.path):
                self._create(self.path)
            # never while this process has the file open: closing the file read for that
            # would drop this process's SQLite locks on it (POSIX locks are per process)
            why = None if _live.get(self.path) else damage_of(self.path)
            if why is not None:
                tries += 1
                self._next_generation(why)
                continue
            try:
                conn = self._connect()
            except _Gone:
                # removed by a process that moved on while this one opened it: follow it
                # (bounded: each move is another process's new generation)
                moves += 1
                if moves > 100:
                    raise IntegrityError(
                        f"the local catalog in {os.path.dirname(self.path)} keeps moving: "
                        "check that no process loops on it, then run 'mlledger reindex'"
                    ) from None
                continue
            except sqlite3.DatabaseError as e:
                if not is_damage(e):
                    raise
                tries += 1
                self._next_generation(str(e))
                continue
            if conn is not None:
                return conn
            tries += 1
            self._next_generation(None)  # written by another schema: only a cache
        raise IntegrityError(
            f"cannot open a sound local catalog in {os.path.dirname(self.path)}: check that "
            "disk, remove that folder and run 'mlledger reindex'"
        )

    def _create(self, path: str) -> None:
        """Create the catalog file ``path`` create-only, complete: schema in place and
        already in WAL mode.

        It is built under a name of this process's own and linked to ``path`` (which
        fails if another process made it first: then that one is used).  So no process
        ever opens a half-made file, and none has to switch a file to WAL mode, a step
        SQLite refuses at once ("database is locked", no busy timeout) when two
        processes try it on one new file.
        """
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.executescript(self.schema)
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(self.schema_version),))
                conn.execute("INSERT INTO meta VALUES ('url', ?)", (self.store.url,))
                # last, so the file holds everything and its header says WAL
                conn.execute("PRAGMA journal_mode=WAL")
            finally:
                conn.close()
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(tmp + suffix)

    def _connect(self) -> sqlite3.Connection | None:
        """A connection to ``self.path`` with the schema in place; None if the file holds
        another schema version.

        Only an existing file is opened (the file of an older generation that another
        process just removed is not made again); raises ``_Gone`` when the file is
        removed while this connection opens it, as its write-ahead log and shared memory
        may then be new ones that do not belong to the file it opened.
        """
        path = os.path.abspath(self.path)
        try:
            before = os.stat(path)
        except FileNotFoundError:
            raise _Gone from None
        uri = pathlib.Path(path).as_uri() + "?mode=rw"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False
            )
        except sqlite3.OperationalError:
            if not _same_file(path, before):
                raise _Gone from None
            raise
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA journal_mode=WAL")  # a no-op read: files are made in WAL
            conn.execute("PRAGMA synchronous=NORMAL")
            version = None
            with contextlib.suppress(sqlite3.OperationalError):  # no meta table yet
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                version = int(row[0]) if row else None
            if not _same_file(path, before):
                raise _Gone
            if version is not None and version != self.schema_version:
                conn.close()
                return None
            if version is None:  # a file made by an older mlledger: complete its schema
                conn.executescript(self.schema)
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(self.schema_version),)
                )
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('url', ?)", (self.store.url,))
        except sqlite3.Error:
            conn.close()
            if not _same_file(path, before):
                raise _Gone from None
            raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _next_generation(self, why: str | None) -> None:
        """Move to a catalog file no process has used yet, or to a newer one another process
        started; warn once (``why``: what was damaged; None for a schema change).

        The new file is made before older ones are removed, so a process looking for the
        newest generation always finds one (never an empty folder, where it would start
        over at the first file)."""
        old = self.path
        self.close()
        n, newer = newest(self._base)
        if n <= self._generation:
            n = self._generation + 1
            newer = generation_path(self._base, n)
        self._generation, self.path = n, newer
        self._moved()
        if why is not None:
            warn_rebuilt(old, self.store.url, why)
        if not os.path.exists(newer):
            self._create(newer)
        remove_older(self._base, n)

    def _damaged(self, why: str) -> None:
        """A query met a damaged file: move on to a fresh generation (see ``files``)."""
        self._next_generation(why)

    def _refill(self) -> bool:
        """After a move to a fresh file: fill it before a query answers from it; False when
        there is nothing to fill here (the Catalog syncs from the store)."""
        return False

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with _live_lock:
                left = _live.pop(self._local.path, 1) - 1
                if left > 0:
                    _live[self._local.path] = left


def healing(method: F) -> F:
    """Run a Catalog method; when it meets a damaged catalog file, or the catalog moved to
    a fresh generation while it ran (damage found on open, a schema change), fill the new
    file from the store and run it once more: never answer from an empty file."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        for _ in range(_ATTEMPTS - 1):
            before = self._generation
            try:
                result = method(self, *args, **kwargs)
            except sqlite3.DatabaseError as e:
                if not is_damage(e):
                    raise
                self._damaged(str(e))
                self._refill()
                continue
            if self._generation == before or not self._refill():
                return result
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            if not is_damage(e):
                raise
            raise IntegrityError(
                f"the local catalog {self.path} is damaged again right after a rebuild "
                f"({e}): check the disk of {os.path.dirname(self.path)}, remove that folder "
                "and run 'mlledger reindex'"
            ) from e

    return wrapper  # type: ignore[return-value]
