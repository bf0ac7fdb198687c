"""The content-addressed store: objects, trees, entries, on any fsspec filesystem.

Layout under the root URL::

    mlledger.json                  format version, hash algorithm, policy
    objects/<algo>/<ab>/<cdef…>    blobs, tree manifests, serialized values
    runs/…, refs/…                 entries, each written once (create-only)
    tmp/                           local stores only: unfinished writes

Every key is created once and never changed; content-addressed objects that
already exist are a success that writes nothing.  Reads verify digests.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from .. import canonical
from .._version import __version__
from ..errors import (
    AccessError,
    ConflictError,
    ExistsError,
    FormatError,
    IntegrityError,
    LedgerError,
    NotAFileError,
    NotFoundError,
    StoreError,
    SymlinkLoopError,
    UsageError,
)
from ..hashing import (
    ALGORITHMS,
    CHUNK,
    DEFAULT_ALGORITHM,
    check_algorithm,
    digest_file,
    new_hasher,
    parse_digest,
)
from ..records import to_iso, utcnow
from .backends import Backend, LocalBackend, open_backend, store_error
from .statcache import StatCache
from .tree import MAGIC, Tree, TreeEntry, is_manifest

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .refs import Refs

__all__ = [
    "FORMAT",
    "Store",
    "Stored",
    "VerifiedReader",
    "VerifyReport",
    "cache_dir",
    "default_url",
]

#: the newest store format this version writes and reads
FORMAT = 1
CONFIG_KEY = "mlledger.json"
#: files at least this large go through the stat cache
STAT_CACHE_MIN = 256 * 1024


def default_url() -> str:
    """``$MLLEDGER_URL``, else ``<user data dir>/mlledger/store``."""
    env = os.environ.get("MLLEDGER_URL")
    if env:
        return env
    import platformdirs

    return str(platformdirs.user_data_path("mlledger") / "store")


def cache_dir() -> Path:
    """mlledger's cache folder (stat cache, catalogs); safe to delete.

    Follows platformdirs (``$XDG_CACHE_HOME`` on Linux), read each call so a
    changed environment is honoured; cached per value of that variable.
    """
    key = os.environ.get("XDG_CACHE_HOME", "")
    got = _cache_dirs.get(key)
    if got is None:
        import platformdirs

        got = _cache_dirs[key] = platformdirs.user_cache_path("mlledger")
    return got


_cache_dirs: dict[str, Path] = {}


@attrs.frozen
class Stored:
    """What putting something into the store gave back."""

    digest: str
    size: int
    kind: str  # "file" | "tree" | "value"
    files: int = 1


@attrs.frozen
class VerifyReport:
    """The result of :meth:`Store.verify`.  ``ok`` is true when nothing is wrong."""

    checked: int
    corrupt: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    dangling: tuple[tuple[str, str], ...] = ()  # (referrer, missing digest)
    problems: tuple[str, ...] = ()
    #: damage to the audit trail: run, ref and policy entries edited, removed or replaced
    trail: tuple[str, ...] = ()
    #: entries written before the audit chain (no seal): not damage, but unvouched for
    unchained: int = 0
    damaged: tuple[tuple[str, str], ...] = ()  # (run entry key, what is wrong)

    @property
    def ok(self) -> bool:
        return not (
            self.corrupt
            or self.missing
            or self.dangling
            or self.problems
            or self.trail
            or self.damaged
        )


def _os_error(path: str | os.PathLike[str], e: OSError, what: str = "read") -> LedgerError:
    p = os.fspath(path)
    if isinstance(e, FileNotFoundError):
        return NotFoundError(f"no such file or folder: {p!r}; check the path")
    if isinstance(e, PermissionError):
        return AccessError(
            f"permission denied to {what} {p!r}; fix its permissions or run as a user "
            f"who may {what} it"
        )
    if e.errno == errno.ELOOP:
        return SymlinkLoopError(f"{p!r} is a symbolic link loop; fix or remove the link")
    if isinstance(e, IsADirectoryError):
        return NotAFileError(f"{p!r} is a folder, not a file; store it with put() or put_tree()")
    return StoreError(f"cannot {what} {p!r}: {e.strerror or e}")


class Store:
    """A content-addressed store at a URL.

    >>> store = Store("memory://example")
    >>> d = store.put_bytes(b"hello")
    >>> store.get(d)
    b'hello'
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        algorithm: str | None = None,
        create: bool = True,
        **storage_options: Any,
    ) -> None:
        self.url = os.fspath(url) if url is not None else default_url()
        self.storage_options = storage_options
        self.backend: Backend = open_backend(self.url, storage_options, create=create)
        self.url = self.backend.url
        self.config = self._load_or_create_config(algorithm, create)
        self.algorithm: str = self.config["hash"]
        self._hexlen = ALGORITHMS[self.algorithm][1]
        self.statcache = StatCache(str(cache_dir() / "statcache.sqlite3"))
        self._refs: Refs | None = None

    def __repr__(self) -> str:
        return f"Store({self.url!r}, algorithm={self.algorithm!r})"

    @property
    def is_local(self) -> bool:
        return isinstance(self.backend, LocalBackend)

    # -- config --------------------------------------------------------------
    def _load_or_create_config(self, algorithm: str | None, create: bool = True) -> dict[str, Any]:
        try:
            raw = self.backend.read(CONFIG_KEY)
        except NotFoundError:
            raw = None
        if raw is None and not create:
            raise NotFoundError(
                f"no mlledger store at {self.url}: create one with 'mlledger init' "
                "(or open it with create=True)"
            )
        if raw is None:
            doc: dict[str, Any] = {
                "format": FORMAT,
                "hash": check_algorithm(algorithm or DEFAULT_ALGORITHM),
                "created": to_iso(utcnow()),
                "created_by": f"mlledger {__version__}",
                "policy": {},
            }
            if not self.backend.create(CONFIG_KEY, canonical.dumps(doc) + b"\n"):
                raw = self.backend.read(CONFIG_KEY)  # another process won the race
        if raw is not None:
            try:
                doc = canonical.loads(raw)
                fmt = int(doc["format"])
                algo = str(doc["hash"])
            except (ValueError, KeyError, TypeError) as e:
                raise FormatError(
                    f"{self.url}/{CONFIG_KEY} is not a valid mlledger store config ({e}); "
                    "point mlledger at a store folder it created"
                ) from e
            if fmt > FORMAT:
                raise FormatError(
                    f"the store at {self.url} has format {fmt}, newer than this mlledger "
                    f"({__version__}) reads (up to {FORMAT}): upgrade with "
                    '"pip install -U mlledger"'
                )
            if algo not in ALGORITHMS:
                raise FormatError(
                    f"the store at {self.url} hashes with {algo!r}, which this mlledger "
                    'does not know: upgrade with "pip install -U mlledger"'
                )
            if algorithm is not None and algorithm != algo:
                raise ConflictError(
                    f"the store at {self.url} already hashes with {algo}; a store's "
                    f"algorithm is fixed when it is created (asked for {algorithm})"
                )
        return dict(doc)

    # -- keys ----------------------------------------------------------------
    def key(self, digest: str) -> str:
        """The store key of ``digest`` (checked)."""
        algo, hexpart = parse_digest(digest, self.algorithm)
        return f"objects/{algo}/{hexpart[:2]}/{hexpart[2:]}"

    def _digest_of_key(self, key: str) -> str | None:
        parts = key.split("/")
        if len(parts) != 4 or parts[0] != "objects":
            return None
        d = f"{parts[1]}:{parts[2]}{parts[3]}"
        try:
            parse_digest(d)
        except LedgerError:
            return None
        return d

    def digest(self, data: bytes | bytearray | memoryview) -> str:
        h = new_hasher(self.algorithm)
        h.update(data)
        return f"{self.algorithm}:{h.hexdigest()}"

    # -- objects: put ----------------------------------------------------------
    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its digest.  Storing what exists writes nothing."""
        d = self.digest(data)
        self.backend.create(self.key(d), bytes(data))
        return d

    def put_many(self, blobs: Iterable[bytes]) -> list[str]:
        """Store many byte strings at once (batched and concurrent on S3/GCS)."""
        digests: list[str] = []
        items: dict[str, bytes] = {}
        for b in blobs:
            d = self.digest(b)
            digests.append(d)
            items[self.key(d)] = bytes(b)
        self.backend.create_many(items)
        return digests

    def put(self, path: str | os.PathLike[str], *, callback: Callback | None = None) -> Stored:
        """Store a file or a folder (as a tree)."""
        try:
            st = os.stat(path)
        except OSError as e:
            raise _os_error(path, e) from e
        if stat.S_ISDIR(st.st_mode):
            return self.put_tree(path, callback=callback)
        return self.put_file(path, callback=callback)

    def put_file(self, path: str | os.PathLike[str], *, callback: Callback | None = None) -> Stored:
        """Store one file, streamed: hashed while copied, bounded memory, any size."""
        p = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(p)
        except OSError as e:
            raise _os_error(path, e) from e
        if stat.S_ISDIR(st.st_mode):
            raise NotAFileError(
                f"{os.fspath(path)!r} is a folder, not a file; store it with put() or put_tree()"
            )
        if not stat.S_ISREG(st.st_mode):
            raise NotAFileError(
                f"{os.fspath(path)!r} is not a regular file (a device, socket or pipe); "
                "store a regular file"
            )
        try:
            return self._put_file(p, st, callback)
        except OSError as e:
            if isinstance(e, LedgerError):
                raise
            raise _os_error(path, e) from e

    def _put_file(self, p: str, st: os.stat_result, callback: Callback | None) -> Stored:
        size = st.st_size
        if size < STAT_CACHE_MIN:
            fd = os.open(p, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                data = os.read(fd, size + 1)
                while len(data) <= size and (more := os.read(fd, CHUNK)):
                    data += more  # the file grew since it was stat'ed: take all of it
            finally:
                os.close(fd)
            h = new_hasher(self.algorithm)
            h.update(data)
            hexpart = h.hexdigest()
            # the key straight from the fresh digest: no need to parse it back
            self.backend.create(f"objects/{self.algorithm}/{hexpart[:2]}/{hexpart[2:]}", data)
            return Stored(f"{self.algorithm}:{hexpart}", len(data), "file")
        cached = self.statcache.lookup(p, st, self.algorithm)
        if cached is not None and self.backend.exists(self.key(cached)):
            return Stored(cached, size, "file")
        if isinstance(self.backend, LocalBackend):
            d = self._copy_local(p, st, callback)
        else:
            d = cached or digest_file(p, self.algorithm)[0]
            key = self.key(d)
            if not self.backend.exists(key):
                if callback is not None:
                    callback.set_size(size)
                self._upload_checked(p, st, d, callback)
        self.statcache.record(p, st, self.algorithm, d)
        return Stored(d, size, "file")

    def _upload_checked(
        self, p: str, st: os.stat_result, d: str, callback: Callback | None
    ) -> None:
        """Upload ``p`` under digest ``d``, hashed on the way: the object becomes visible only
        if the bytes sent hash to ``d`` and the file did not change meanwhile.

        So a file changing during the upload leaves nothing behind, and nothing is ever
        deleted afterwards: the key may already hold another writer's (good) object.
        """
        h = new_hasher(self.algorithm)

        def chunks() -> Iterator[bytes]:
            with open(p, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    if callback is not None:
                        callback.relative_update(len(chunk))
                    yield chunk

        def check() -> None:
            if f"{self.algorithm}:{h.hexdigest()}" != d or _changed(p, st):
                raise ConflictError(
                    f"{p!r} changed while it was being stored; nothing was stored: store it "
                    "again once whatever writes it has finished"
                )

        self.backend.put_stream(self.key(d), chunks(), check)

    def _copy_local(self, p: str, st: os.stat_result, callback: Callback | None) -> str:
        """Copy ``p`` into a local store while hashing it: one pass over the bytes."""
        backend = self.backend
        assert isinstance(backend, LocalBackend)
        tmpdir = os.path.join(backend.root, "tmp")
        tmp = backend.tmp_path(os.path.join(tmpdir, "x"))
        h = new_hasher(self.algorithm)
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        if callback is not None:
            callback.set_size(st.st_size)
        try:
            src = os.open(p, os.O_RDONLY)
            try:
                # a failed write is the store's refusal (a full disk), not the source's
                try:
                    dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                except OSError as e:
                    raise store_error("write", tmp, e) from e
                try:
                    while True:
                        n = os.readv(src, [buf])
                        if not n:
                            break
                        chunk = view[:n]
                        h.update(chunk)
                        while chunk:
                            try:
                                w = os.write(dst, chunk)
                            except OSError as e:
                                raise store_error("write", tmp, e) from e
                            chunk = chunk[w:]
                        if callback is not None:
                            callback.relative_update(n)
                finally:
                    os.close(dst)
                after = os.fstat(src)
            finally:
                os.close(src)
            if _stat_key(after) != _stat_key(st):
                raise ConflictError(
                    f"{p!r} changed while it was being stored; store it again once "
                    "whatever writes it has finished"
                )
            d = f"{self.algorithm}:{h.hexdigest()}"
            final = backend.local_path(self.key(d))
            try:
                backend.ensure_dir(os.path.dirname(final))
                backend.link_into_place(tmp, final)
            except OSError as e:
                raise store_error("write", final, e) from e
            return d
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def put_tree(self, path: str | os.PathLike[str], *, callback: Callback | None = None) -> Stored:
        """Store a folder: every file first, then its manifest (a tree object)."""
        root = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(root)
        except OSError as e:
            raise _os_error(path, e) from e
        if not stat.S_ISDIR(st.st_mode):
            from ..errors import NotAFolderError

            raise NotAFolderError(
                f"{os.fspath(path)!r} is a file, not a folder; store it with put() or put_file()"
            )
        entries: list[TreeEntry] = []
        small: dict[str, bytes] = {}
        for rel, full, fst in _walk(root):
            _check_utf8(rel, full)
            if fst is None:  # an empty folder or an inside link
                entries.append(_place_entry(rel, full))
                continue
            executable = bool(fst.st_mode & 0o111)
            if fst.st_size < STAT_CACHE_MIN and not isinstance(self.backend, LocalBackend):
                try:
                    with open(full, "rb") as f:
                        data = f.read()
                except OSError as e:
                    raise _os_error(full, e) from e
                d = self.digest(data)
                small[self.key(d)] = data
                entries.append(TreeEntry(rel, "file", d, len(data), executable))
            else:
                try:
                    got = self._put_file(full, fst, None)
                except OSError as e:
                    if isinstance(e, LedgerError):
                        raise
                    raise _os_error(full, e) from e
                entries.append(TreeEntry(rel, "file", got.digest, got.size, executable))
            if callback is not None:
                callback.relative_update(1)
        if small:
            self.backend.create_many(small)
        tree = Tree(tuple(entries))
        d = self.put_bytes(tree.to_bytes())
        return Stored(d, tree.size, "tree", len(tree.files))

    def digest_path(self, path: str | os.PathLike[str]) -> str:
        """The digest ``put(path)`` would give a file or folder, storing nothing: which
        artifact a file on disk is (``mlledger lineage ./model.pkl``)."""
        root = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(root)
            if stat.S_ISREG(st.st_mode):
                return self._file_digest(root, st)
            if not stat.S_ISDIR(st.st_mode):  # a pipe or a device: reading it may never end
                raise NotAFileError(
                    f"{os.fspath(path)!r} is not a regular file or a folder (a device, socket "
                    "or pipe); name a file or folder"
                )
            entries: list[TreeEntry] = []
            for rel, full, fst in _walk(root):
                _check_utf8(rel, full)
                if fst is None:
                    entries.append(_place_entry(rel, full))
                else:
                    d = self._file_digest(full, fst)
                    entries.append(
                        TreeEntry(rel, "file", d, fst.st_size, bool(fst.st_mode & 0o111))
                    )
        except OSError as e:
            if isinstance(e, LedgerError):
                raise
            raise _os_error(path, e) from e
        return self.digest(Tree(tuple(entries)).to_bytes())

    def _file_digest(self, p: str, st: os.stat_result) -> str:
        big = st.st_size >= STAT_CACHE_MIN
        cached = self.statcache.lookup(p, st, self.algorithm) if big else None
        return cached or digest_file(p, self.algorithm)[0]

    # -- objects: read ---------------------------------------------------------
    def has(self, digest: str) -> bool:
        return self.backend.exists(self.key(digest))

    def size(self, digest: str) -> int:
        return self.backend.size(self.key(digest))

    def get(self, digest: str) -> bytes:
        """The bytes of ``digest``, verified."""
        key = self.key(digest)
        try:
            data = self.backend.read(key)
        except NotFoundError:
            raise NotFoundError(f"object {digest} is not in the store at {self.url}") from None
        if self.digest(data) != digest:
            raise IntegrityError(
                f"object {digest} in {self.url} is corrupt (its bytes hash to "
                f"{self.digest(data)}); restore it from another copy or run 'mlledger verify'"
            )
        return data

    def open(self, digest: str) -> VerifiedReader:
        """A streaming reader of ``digest`` that raises IntegrityError at the end on a mismatch."""
        key = self.key(digest)
        try:
            f = self.backend.open_read(key)
        except NotFoundError:
            raise NotFoundError(f"object {digest} is not in the store at {self.url}") from None
        return VerifiedReader(f, digest, self.algorithm)

    def kind(self, digest: str) -> str:
        """``tree`` for a tree manifest, else ``file``.

        A file whose bytes merely start like a manifest is a ``file``.
        """
        return "file" if self._manifest_bytes(digest) is None else "tree"

    def _manifest_bytes(self, digest: str) -> bytes | None:
        """The verified bytes of ``digest`` if it is a tree manifest, else None."""
        key = self.key(digest)
        try:
            with self.backend.open_read(key) as f:
                head = f.read(len(MAGIC))
        except NotFoundError:
            raise NotFoundError(f"object {digest} is not in the store at {self.url}") from None
        if head != MAGIC:
            return None
        data = self.get(digest)
        return data if is_manifest(data) else None

    def read_tree(self, digest: str) -> Tree:
        return Tree.from_bytes(self.get(digest), self.algorithm)

    def iter_objects(self) -> Iterator[str]:
        """Every object digest in the store, in no set order."""
        for key in self.backend.list(f"objects/{self.algorithm}"):
            d = self._digest_of_key(key)
            if d is not None:
                yield d

    def delete(self, digest: str) -> None:
        """Remove an object (for gc); removing a missing object is not an error."""
        self.backend.delete(self.key(digest))

    # -- restore ---------------------------------------------------------------
    def restore(
        self,
        digest: str,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        callback: Callback | None = None,
    ) -> Path:
        """Write the file or tree ``digest`` to ``dest``, byte-identical and verified.

        Nothing appears at ``dest`` unless every byte checked out; an existing
        ``dest`` is refused unless ``overwrite=True``.
        """
        dest_p = os.path.abspath(os.fspath(dest))
        if not self.has(digest):
            raise NotFoundError(f"object {digest} is not in the store at {self.url}")
        if os.path.lexists(dest_p) and not overwrite:
            raise ExistsError(
                f"{os.fspath(dest)!r} already exists; choose another destination or pass "
                "overwrite=True (--force) to replace it"
            )
        parent = os.path.dirname(dest_p)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            raise _os_error(parent, e, "write") from e
        tmp = os.path.join(parent, f".{os.path.basename(dest_p)}.mlledger-{uuid.uuid4().hex[:12]}")
        try:
            manifest = self._manifest_bytes(digest)
            if manifest is not None:
                tree = Tree.from_bytes(manifest, self.algorithm)
                os.mkdir(tmp)
                self._restore_tree(tree, tmp, callback)
            else:
                self._restore_file(digest, tmp, callback)
            _move_into_place(tmp, dest_p, overwrite)
        except OSError as e:
            _remove(tmp)
            if isinstance(e, LedgerError):
                raise
            raise _os_error(dest_p, e, "write") from e
        except BaseException:
            _remove(tmp)
            raise
        return Path(dest_p)

    def _missing(self, digest: str) -> NotFoundError:
        return NotFoundError(
            f"object {digest} is not in the store at {self.url} (a tree lists it, but it is "
            "gone); nothing was written; run 'mlledger verify' and store the file again"
        )

    def _restore_file(self, digest: str, tmp: str, callback: Callback | None) -> None:
        key = self.key(digest)
        if isinstance(self.backend, LocalBackend):
            src = self.backend.local_path(key)
            h = new_hasher(self.algorithm)
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            try:
                fin = os.open(src, os.O_RDONLY)
            except FileNotFoundError:
                raise self._missing(digest) from None
            try:
                if callback is not None:
                    callback.set_size(os.fstat(fin).st_size)
                fout = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                try:
                    while n := os.readv(fin, [buf]):
                        chunk = view[:n]
                        h.update(chunk)
                        while chunk:
                            w = os.write(fout, chunk)
                            chunk = chunk[w:]
                        if callback is not None:
                            callback.relative_update(n)
                finally:
                    os.close(fout)
            finally:
                os.close(fin)
            got = f"{self.algorithm}:{h.hexdigest()}"
        else:
            if callback is not None:
                with contextlib.suppress(Exception):
                    callback.set_size(self.backend.size(key))
            try:
                self.backend.get_local_file(key, tmp, callback)
            except NotFoundError:
                raise self._missing(digest) from None
            got = digest_file(tmp, self.algorithm)[0]
        if got != digest:
            raise IntegrityError(
                f"object {digest} in {self.url} is corrupt (its bytes hash to {got}); "
                "nothing was written; restore it from another copy or run 'mlledger verify'"
            )

    def _restore_tree(self, tree: Tree, tmp: str, callback: Callback | None) -> None:
        if callback is not None:
            callback.set_size(len(tree.entries))
        for e in tree.entries:
            target = os.path.join(tmp, *e.path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if e.kind == "dir":
                os.makedirs(target, exist_ok=True)
            elif e.kind == "link":
                assert e.link is not None
                os.symlink(e.link, target)
            else:
                assert e.digest is not None
                self._restore_file(e.digest, target, None)
                if e.executable:
                    os.chmod(target, os.stat(target).st_mode | 0o111)
            if callback is not None:
                callback.relative_update(1)

    # -- entries (runs, refs) -------------------------------------------------
    def create_entry(self, key: str, data: bytes) -> bool:
        """Create a non-object key once; False if it already exists."""
        return self.backend.create(key, data)

    def read_entry(self, key: str) -> bytes:
        return self.backend.read(key)

    @property
    def refs(self) -> Refs:
        if self._refs is None:
            from .refs import Refs

            self._refs = Refs(self)
        return self._refs

    # -- verify ------------------------------------------------------------------
    def verify(self, *, callback: Callback | None = None) -> VerifyReport:
        """Rehash every object; report corrupt objects and trees with missing entries."""
        digests = list(self.iter_objects())
        present = set(digests)
        corrupt: list[str] = []
        dangling: list[tuple[str, str]] = []
        problems: list[str] = []
        if callback is not None:
            callback.set_size(len(digests))
        for d in digests:
            try:
                self._verify_one(d, present, corrupt, dangling, problems)
            finally:
                if callback is not None:
                    callback.relative_update(1)
        return VerifyReport(
            checked=len(digests),
            corrupt=tuple(sorted(corrupt)),
            missing=tuple(sorted({m for _, m in dangling})),
            dangling=tuple(sorted(dangling)),
            problems=tuple(problems),
        )

    def _verify_one(
        self,
        d: str,
        present: set[str],
        corrupt: list[str],
        dangling: list[tuple[str, str]],
        problems: list[str],
    ) -> None:
        try:
            with self.open(d) as r:
                head = r.read(len(MAGIC))
                if head == MAGIC:
                    body = head + r.read()
                else:
                    body = b""
                    while r.read(CHUNK):
                        pass
        except IntegrityError:
            corrupt.append(d)
            return
        except NotFoundError:
            return  # deleted meanwhile
        if not is_manifest(body):
            return  # a file (possibly one that starts like a manifest)
        try:
            tree = Tree.from_bytes(body, self.algorithm)
        except LedgerError as e:
            problems.append(f"tree {d}: {e}")
            return
        for entry in tree.files:
            assert entry.digest is not None
            if entry.digest not in present and not self.has(entry.digest):
                dangling.append((d, entry.digest))


class VerifiedReader:
    """A file-like reader that hashes what it hands out and checks it at the end.

    The check runs when the last byte is handed out (the object's size is
    known when it is opened), so a reader that stops after exactly ``size``
    bytes is checked too, not only one that reads on to EOF.
    """

    def __init__(self, f: IO[bytes], digest: str, algorithm: str) -> None:
        self._f = f
        self._digest = digest
        self._hasher = new_hasher(algorithm)
        self._algorithm = algorithm
        self._done = False
        self._pos = 0
        self._size = _size_of(f)

    def read(self, n: int | None = -1) -> bytes:
        if n is None:
            n = -1
        data = self._f.read(n)
        if data:
            self._hasher.update(data)
            self._pos += len(data)
        at_end = not data or n < 0 or (self._size is not None and self._pos >= self._size)
        if at_end and not self._done:
            self._done = True
            got = f"{self._algorithm}:{self._hasher.hexdigest()}"
            if got != self._digest:
                raise IntegrityError(
                    f"object {self._digest} is corrupt (its bytes hash to {got}); "
                    "discard what was read and run 'mlledger verify'"
                )
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> VerifiedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _size_of(f: IO[bytes]) -> int | None:
    """The size of an open object file: fsspec files know it, local files have fstat."""
    size = getattr(f, "size", None)
    if isinstance(size, int):
        return size
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _changed(p: str, st: os.stat_result) -> bool:
    try:
        return _stat_key(os.stat(p)) != _stat_key(st)
    except OSError:
        return True


def _place_entry(rel: str, full: str) -> TreeEntry:
    """The tree entry of an empty folder or of a link that stays inside the tree."""
    if os.path.islink(full):
        link = os.readlink(full)
        _check_utf8(link, full, "the target of the link")
        return TreeEntry(rel, "link", link=link)
    return TreeEntry(rel, "dir")


def _walk(root: str) -> Iterator[tuple[str, str, os.stat_result | None]]:
    """Yield ``(relpath, fullpath, stat)`` for files; ``stat=None`` for empty dirs and inside links.

    Links that resolve inside ``root`` are kept as links; links that resolve
    outside are followed (their content is stored).  Loops raise.
    """
    real_root = os.path.realpath(root)
    seen: set[tuple[int, int]] = set()

    def inside(p: str) -> bool:
        real = os.path.realpath(p)
        return real == real_root or real.startswith(real_root + os.sep)

    def rec(dirpath: str, rel: str) -> Iterator[tuple[str, str, os.stat_result | None]]:
        try:
            dst = os.stat(dirpath)
        except OSError as e:
            raise _os_error(dirpath, e) from e
        ident = (dst.st_dev, dst.st_ino)
        if ident in seen:
            raise SymlinkLoopError(
                f"{dirpath!r} links back to a folder already being stored (a symlink "
                "loop); fix or remove the link"
            )
        seen.add(ident)
        try:
            with os.scandir(dirpath) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise _os_error(dirpath, e) from e
        if not items and rel:
            yield rel, dirpath, None
        for item in items:
            child_rel = f"{rel}/{item.name}" if rel else item.name
            if item.is_symlink():
                if not os.path.exists(item.path):
                    try:
                        os.stat(item.path)
                    except OSError as e:
                        raise _os_error(item.path, e) from e
                if inside(item.path) and not os.path.isabs(os.readlink(item.path)):
                    yield child_rel, item.path, None
                    continue
            try:
                ist = os.stat(item.path)
            except OSError as e:
                raise _os_error(item.path, e) from e
            if stat.S_ISDIR(ist.st_mode):
                yield from rec(item.path, child_rel)
            elif stat.S_ISREG(ist.st_mode):
                yield child_rel, item.path, ist
        seen.discard(ident)

    yield from rec(root, "")


def _check_utf8(name: str, full: str, what: str = "the name of") -> None:
    """Refuse a name a manifest cannot hold: manifests are UTF-8 (on any system)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(
            f"{what} {full!r} is not valid UTF-8, and a tree records names as UTF-8: "
            "rename it (for example with 'convmv -f latin1 -t utf8') and store the folder again"
        ) from None


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _move_into_place(tmp: str, dest: str, overwrite: bool) -> None:
    if not overwrite:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            if os.path.lexists(dest):
                raise ExistsError(f"{dest!r} appeared while restoring; nothing was overwritten")
            os.rename(tmp, dest)
        else:
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise ExistsError(
                    f"{dest!r} appeared while restoring; nothing was overwritten"
                ) from None
            os.unlink(tmp)
        return
    if os.path.isdir(dest) and not os.path.islink(dest):
        old = f"{tmp}.old"
        os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    elif os.path.isdir(tmp):
        if os.path.lexists(dest):
            os.unlink(dest)
        os.rename(tmp, dest)
    else:
        os.replace(tmp, dest)
