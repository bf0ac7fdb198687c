"""The content-addressed store: objects, trees, entries, on any fsspec filesystem.

Layout under the root URL (every key name is in :mod:`.layout`)::

    mlledger.json                  format version, hash algorithm, policy
    objects/<algo>/<ab>/<cdef…>    blobs, tree manifests, serialized values
    runs/…, refs/…                 entries, each written once (create-only)
    tmp/                           local stores only: unfinished writes

Every key is created once and never changed; content-addressed objects that
already exist are a success that writes nothing.  Reads verify digests
(:mod:`.verified`); restoring is in :mod:`.restore`, verifying in :mod:`.verify`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator

from .._settings import cache_dir, cache_folder, default_url
from ..errors import (
    ConflictError,
    IntegrityError,
    LedgerError,
    NotAFileError,
    NotFoundError,
)
from ..hashing import (
    ALGORITHMS,
    CHUNK,
    digest_file,
    new_hasher,
    parse_digest,
)
from . import layout
from .backends import Backend, LocalBackend, open_backend, store_error
from .config import load_or_create_config
from .localfiles import changed, check_unchanged, copy_hashed, os_error, read_small
from .statcache import StatCache
from .verified import VerifiedReader

TYPE_CHECKING = False
if TYPE_CHECKING:  # and what opening a store does not need is imported on use
    from pathlib import Path
    from typing import Any

    from fsspec.callbacks import Callback

    from .stored import Stored
    from .tree import Tree
    from .verify import VerifyReport

__all__ = [
    "Store",
    "Stored",
    # imported from here by mlledger.cli and mlledger.ledger; they live in mlledger._settings
    "cache_dir",
    "default_url",
]

#: files at least this large go through the stat cache
STAT_CACHE_MIN = 256 * 1024


def __getattr__(name: str) -> object:
    if name == "Stored":  # it moved to .stored; still importable from here
        from .stored import Stored

        return Stored
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        self.config = load_or_create_config(self.backend, algorithm, create)
        self.algorithm: str = self.config["hash"]
        self._hexlen = ALGORITHMS[self.algorithm][1]
        self.statcache = StatCache(os.path.join(cache_folder(), layout.STATCACHE))

    def __repr__(self) -> str:
        return f"Store({self.url!r}, algorithm={self.algorithm!r})"

    @property
    def is_local(self) -> bool:
        return isinstance(self.backend, LocalBackend)

    # -- keys ----------------------------------------------------------------
    def key(self, digest: str) -> str:
        """The store key of ``digest`` (checked)."""
        algo, hexpart = parse_digest(digest, self.algorithm)
        return layout.object_key(algo, hexpart)

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
            raise os_error(path, e) from e
        if stat.S_ISDIR(st.st_mode):
            return self.put_tree(path, callback=callback)
        return self.put_file(path, callback=callback)

    def put_file(self, path: str | os.PathLike[str], *, callback: Callback | None = None) -> Stored:
        """Store one file, streamed: hashed while copied, bounded memory, any size."""
        p = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(p)
        except OSError as e:
            raise os_error(path, e) from e
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
            raise os_error(path, e) from e

    def _put_file(self, p: str, st: os.stat_result, callback: Callback | None) -> Stored:
        from .stored import Stored

        size = st.st_size
        if size < STAT_CACHE_MIN:
            data = read_small(p, size)
            h = new_hasher(self.algorithm)
            h.update(data)
            hexpart = h.hexdigest()
            # the key straight from the fresh digest: no need to parse it back
            self.backend.create(layout.object_key(self.algorithm, hexpart), data)
            return Stored(f"{self.algorithm}:{hexpart}", len(data), "file")
        cached = self.statcache.lookup(p, st, self.algorithm)
        if cached is not None and self.has(cached):
            return Stored(cached, size, "file")
        from .chunked import CHUNKED_MIN, chunker  # records (attrs): not at open

        local = isinstance(self.backend, LocalBackend)
        cutter = chunker() if size >= CHUNKED_MIN else None
        # locally, the first version goes whole (at cp speed); a later one shares its chunks
        known = self._earlier_version(p, cutter) if local and cutter is not None else None
        if cutter is not None and (known is not None or not local):
            d = self._put_chunked(p, st, cutter, known, callback)
        elif local:
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
            if f"{self.algorithm}:{h.hexdigest()}" != d or changed(p, st):
                raise ConflictError(
                    f"{p!r} changed while it was being stored; nothing was stored: store it "
                    "again once whatever writes it has finished"
                )

        self.backend.put_stream(self.key(d), chunks(), check)

    def _earlier_version(self, p: str, cutter: Any) -> dict[str, Any] | None:
        """The pieces of the version of ``p`` stored here before, to share (:mod:`.chunked`)."""
        from .chunked import known_pieces

        prev = self.statcache.previous(p, self.algorithm)
        return None if prev is None else known_pieces(self.backend, self.algorithm, prev, cutter)

    def _put_chunked(
        self, p: str, st: os.stat_result, cutter: Any, known: Any, callback: Callback | None
    ) -> str:
        """Store ``p`` as a chunk list (:mod:`.chunked`)."""
        from .chunked import put_chunked

        src = _open_source(p, st, callback)
        try:
            hexpart = put_chunked(
                self.backend,
                self.algorithm,
                src,
                cutter,
                check=lambda: check_unchanged(p, st, os.fstat(src)),
                known=known,
                callback=callback,
            )
        finally:
            os.close(src)
        return f"{self.algorithm}:{hexpart}"

    def _copy_local(self, p: str, st: os.stat_result, callback: Callback | None) -> str:
        """Copy ``p`` into a local store while hashing it: one pass over the bytes, into an
        unnamed temp file that gets its name only once its bytes are checked."""
        backend = self.backend
        assert isinstance(backend, LocalBackend)
        tmpdir = os.path.join(backend.root, layout.TMP)
        src = _open_source(p, st, callback)
        try:
            box: list[str] = []

            def fill(dst: int) -> str:
                box.append(copy_hashed(src, dst, self.algorithm, callback, _refused(tmpdir)))
                check_unchanged(p, st, os.fstat(src))
                return layout.object_key(self.algorithm, box[0])

            backend.write_new(tmpdir, fill)
        finally:
            os.close(src)
        return f"{self.algorithm}:{box[0]}"

    def put_tree(
        self,
        path: str | os.PathLike[str],
        *,
        callback: Callback | None = None,
        concurrency: int | None = None,
    ) -> Stored:
        """Store a folder: every file first, then its manifest (a tree object).

        Into a local store, small files are stored ``concurrency`` at a time by threads
        while the folder is walked (default: one for each idle CPU, at most 4).
        """
        from .stored import Stored
        from .tree import Tree

        root = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(root)
        except OSError as e:
            raise os_error(path, e) from e
        if not stat.S_ISDIR(st.st_mode):
            from ..errors import NotAFolderError

            raise NotAFolderError(
                f"{os.fspath(path)!r} is a file, not a folder; store it with put() or put_file()"
            )
        from .puttree import store_tree_files

        entries = store_tree_files(
            self.backend,
            self.algorithm,
            root,
            small_max=STAT_CACHE_MIN,
            put_file=self.put_file,
            callback=callback,
            concurrency=concurrency,
        )
        tree = Tree(tuple(entries))
        d = self.put_bytes(tree.to_bytes())
        return Stored(d, tree.size, "tree", len(tree.files))

    def digest_path(self, path: str | os.PathLike[str]) -> str:
        """The digest ``put(path)`` would give a file or folder, storing nothing: which
        artifact a file on disk is (``mlledger lineage ./model.pkl``)."""
        from .tree import Tree, TreeEntry
        from .walk import check_utf8, place_entry, walk

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
            for rel, full, fst in walk(root):
                check_utf8(rel, full)
                if fst is None:
                    entries.append(place_entry(rel, full))
                else:
                    d = self._file_digest(full, fst)
                    entries.append(
                        TreeEntry(rel, "file", d, fst.st_size, bool(fst.st_mode & 0o111))
                    )
        except OSError as e:
            if isinstance(e, LedgerError):
                raise
            raise os_error(path, e) from e
        return self.digest(Tree(tuple(entries)).to_bytes())

    def _file_digest(self, p: str, st: os.stat_result) -> str:
        big = st.st_size >= STAT_CACHE_MIN
        cached = self.statcache.lookup(p, st, self.algorithm) if big else None
        return cached or digest_file(p, self.algorithm)[0]

    # -- objects: read ---------------------------------------------------------
    def has(self, digest: str) -> bool:
        """Whether ``digest`` is stored: as one object, or as chunks (:mod:`.chunked`)."""
        key = self.key(digest)
        return self.backend.exists(key) or self.backend.exists(layout.chunked_key(*_split(key)))

    def size(self, digest: str) -> int:
        try:
            return self.backend.size(self.key(digest))
        except NotFoundError:
            from .chunklist import read_chunk_list

            chunks = read_chunk_list(self.backend, digest, self.algorithm)
            if chunks is None:
                raise
            return chunks.size

    def chunks_of(self, digest: str) -> tuple[str, ...] | None:
        """For a file stored as a chunk list, the objects its bytes are read from (chunks,
        and earlier versions stored whole); None for anything else."""
        if self.backend.exists(self.key(digest)):
            return None
        from .chunklist import read_chunk_list

        chunks = read_chunk_list(self.backend, digest, self.algorithm)
        return None if chunks is None else chunks.needs()

    def get(self, digest: str) -> bytes:
        """The bytes of ``digest``, verified."""
        key = self.key(digest)
        try:
            data = self.backend.read(key)
        except NotFoundError:
            with self.open(digest) as r:  # chunks, or NotFoundError
                return r.read()
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
            f: Any = self.backend.open_read(key)
        except NotFoundError:
            from .chunklist import read_chunk_list
            from .chunkread import ChunkedReader, open_piece

            chunks = read_chunk_list(self.backend, digest, self.algorithm)
            if chunks is None:
                raise NotFoundError(f"object {digest} is not in the store at {self.url}") from None
            f = ChunkedReader(
                lambda piece: open_piece(self.backend, self.algorithm, piece, self.open), chunks
            )
        return VerifiedReader(f, digest, self.algorithm)

    def kind(self, digest: str) -> str:
        """``tree`` for a tree manifest, else ``file``.

        A file whose bytes merely start like a manifest is a ``file``.
        """
        return "file" if self.manifest_bytes(digest) is None else "tree"

    def manifest_bytes(self, digest: str) -> bytes | None:
        """The verified bytes of ``digest`` if it is a tree manifest, else None."""
        from .tree import MAGIC, is_manifest

        key = self.key(digest)
        try:
            with self.backend.open_read(key) as f:
                head = f.read(len(MAGIC))
        except NotFoundError:
            if self.backend.exists(layout.chunked_key(*_split(key))):
                return None  # a file stored as chunks
            raise NotFoundError(f"object {digest} is not in the store at {self.url}") from None
        if head != MAGIC:
            return None
        data = self.get(digest)
        return data if is_manifest(data) else None

    def read_tree(self, digest: str) -> Tree:
        from .tree import Tree

        return Tree.from_bytes(self.get(digest), self.algorithm)

    def iter_objects(self) -> Iterator[str]:
        """Every object digest in the store, in no set order."""
        for key in self.backend.list(layout.objects_prefix(self.algorithm)):
            d = layout.digest_of_key(key)
            if d is not None:
                yield d
        for d in self.iter_chunked():  # a file stored whole may have a chunk list too
            if not self.backend.exists(self.key(d)):
                yield d

    def iter_chunked(self) -> Iterator[str]:
        """The digest of every file stored as chunks (:mod:`.chunked`), in no set order."""
        for key in self.backend.list(f"{layout.CHUNKED}/{self.algorithm}"):
            d = layout.digest_of_key(key)
            if d is not None:
                yield d

    def delete(self, digest: str) -> None:
        """Remove an object (for gc); removing a missing object is not an error."""
        key = self.key(digest)
        self.backend.delete(layout.chunked_key(*_split(key)))  # first: never a list of gone chunks
        self.backend.delete(key)

    # -- restore, verify -------------------------------------------------------
    def restore(
        self,
        digest: str,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        callback: Callback | None = None,
        concurrency: int | None = None,
    ) -> Path:
        """Write the file or tree ``digest`` to ``dest``, byte-identical and verified.

        Nothing appears at ``dest`` unless every byte checked out; an existing
        ``dest`` is refused unless ``overwrite=True``.  From S3, GCS or Azure, objects
        stream in ``concurrency`` at a time (default: ``MLLEDGER_TRANSFERS``, else 16),
        each hashed as it arrives.
        """
        from .restore import restore  # brings the concurrent transfers (asyncio)

        return restore(
            self, digest, dest, overwrite=overwrite, callback=callback, concurrency=concurrency
        )

    def verify(self, *, callback: Callback | None = None) -> VerifyReport:
        """Rehash every object; report corrupt objects and trees with missing entries."""
        from .verify import verify

        return verify(self, callback=callback)

    # -- entries (runs, refs, policy, gc) -----------------------------------------
    def create_entry(self, key: str, data: bytes) -> bool:
        """Create a non-object key once; False if it already exists."""
        return self.backend.create(key, data)

    def read_entry(self, key: str) -> bytes:
        return self.backend.read(key)


def _split(object_key: str) -> tuple[str, str]:
    """(algorithm, hex digits) of an object key."""
    _, algo, ab, rest = object_key.split("/")
    return algo, ab + rest


def _open_source(p: str, st: os.stat_result, callback: Callback | None) -> int:
    """The file ``p`` open for reading (a file descriptor), its size told to ``callback``."""
    if callback is not None:
        callback.set_size(st.st_size)
    try:
        return os.open(p, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise os_error(p, e) from e


def _refused(where: str) -> Any:
    return lambda e: store_error("write", where, e)
