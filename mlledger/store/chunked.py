"""Large files as chunks: content-defined chunking, so a file that changes a little
stores a little.

With the ``chunks`` extra installed (``pip install 'mlledger[chunks]'``: the compiled
FastCDC chunker of ``pyfastcdc``), a file of at least :data:`CHUNKED_MIN` bytes is cut
where its content says (about 1.5 MiB a chunk, 1 to 4 MiB), each chunk is stored as an
ordinary object, and a *chunk list* names them in order::

    chunked/<algo>/<ab>/<cdef…>    the chunk list of the file whose digest is <algo>:<abcdef…>

The file's identity stays its whole-file digest: the chunk list is found from it, and
records, trees and refs name the file by it as before.  The chunk list is written
(create-only) only after every chunk it lists exists, so a reader never sees a partial
file, and it is self-consistent by construction: the whole digest and the chunk digests
are computed from the very bytes that were written.  Reading a chunked file needs no
chunker (stores written with the extra read, restore, verify and gc without it) and
checks every byte against the whole digest.  Without the extra, or without its compiled
part, files are stored whole, as before; stores written before chunking simply have no
``chunked/`` folder.

Where the time goes (1 GiB, 2 cores): cutting is ~0.27 s and releases the GIL, so it
runs in a thread of its own, reading the file through its own buffer; the main thread
reads each chunk once into one reused buffer, hashes it (its digest and the whole
file's) and writes the new ones, as the whole-file copy does.
"""

from __future__ import annotations

import io
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from .. import canonical
from ..errors import ConflictError, IntegrityError, LedgerError, NotFoundError
from ..hashing import CHUNK, new_hasher, parse_digest
from . import layout
from .backends import Backend, LocalBackend

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = [
    "CHUNKED_MIN",
    "ChunkList",
    "ChunkedReader",
    "chunker",
    "put_chunked",
    "read_chunk_list",
    "restore_chunks_local",
]

#: files at least this long are stored as chunks (when the chunker is installed)
CHUNKED_MIN = 64 << 20
#: FastCDC's parameters: pyfastcdc skips the first MIN bytes of every chunk (cutting
#: runs at ~3.7 GiB/s here with these), chunks average ~1.5 MiB, none over MAX
AVG, MIN, MAX = 1 << 20, 1 << 20, 4 << 20
MAGIC = b"mlledger-chunked 1\n"
#: chunks held in memory at once while uploading to a remote store (each <= MAX)
_BATCH = 4
#: cut points the chunker may run ahead of the copy (two integers each)
_AHEAD = 1024


def chunker() -> Any | None:
    """A FastCDC chunker, or None when the ``chunks`` extra (or its compiled part) is
    missing: then large files are stored whole."""
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyfastcdc warns when it falls back to Python
            import pyfastcdc
    except ImportError:
        return None
    if not pyfastcdc.FastCDC.__module__.startswith("pyfastcdc.cy"):
        return None  # the pure-Python fallback cuts at a few MiB/s: storing whole is better
    return pyfastcdc.FastCDC(AVG, min_size=MIN, max_size=MAX)


@attrs.frozen
class ChunkList:
    """A chunked file: its whole digest and size, and its chunks (digest, size) in order."""

    digest: str
    size: int
    chunks: tuple[tuple[str, int], ...]

    def to_bytes(self) -> bytes:
        body = {"digest": self.digest, "size": self.size, "chunks": [list(c) for c in self.chunks]}
        return MAGIC + canonical.dumps(body)

    @classmethod
    def from_bytes(cls, data: bytes, digest: str, algorithm: str) -> ChunkList:
        """Parse and check a chunk list read from the key of ``digest``."""
        try:
            if not data.startswith(MAGIC):
                raise ValueError("no chunk-list header")
            body = canonical.loads(data[len(MAGIC) :])
            chunks = tuple((str(d), int(n)) for d, n in body["chunks"])
            for d, n in chunks:
                parse_digest(d, algorithm)
                if n <= 0:
                    raise ValueError("an empty chunk")
            if body["digest"] != digest or sum(n for _, n in chunks) != body["size"]:
                raise ValueError("its digest or size does not match its chunks")
        except (LedgerError, ValueError, KeyError, TypeError) as e:
            raise IntegrityError(
                f"the chunk list of {digest} is damaged ({e}); run 'mlledger verify' and "
                "store the file again"
            ) from None
        return cls(digest, int(body["size"]), chunks)


def read_chunk_list(backend: Backend, digest: str, algorithm: str) -> ChunkList | None:
    """The chunk list of the file ``digest``, or None when it is not stored as chunks."""
    algo, hexpart = parse_digest(digest, algorithm)
    try:
        data = backend.read(layout.chunked_key(algo, hexpart))
    except NotFoundError:
        return None
    return ChunkList.from_bytes(data, digest, algorithm)


# -- storing ------------------------------------------------------------------------------


class _PositionalReader(io.RawIOBase):
    """Reads ``fd`` from its start with ``pread``: the chunker's own position, which never
    moves (nor depends on) the file offset anyone else uses."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = os.preadv(self._fd, [b], self._at)
        self._at += n
        return n


def _cut_points(fd: int, cutter: Any) -> Iterator[tuple[int, int]]:
    """(offset, length) of each chunk of the open file ``fd``, cut by ``cutter``."""
    for c in cutter.cut_stream(_PositionalReader(fd)):
        yield c.offset, c.length


def _ahead(items: Iterator[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """``items`` produced in a thread (its reads and the cutting release the GIL), so the
    cutting runs while the chunks are hashed and written; a bounded queue keeps memory
    small, and a consumer that stops never leaves the thread blocked."""
    q: queue.Queue[Any] = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()
    end = object()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(end)
        except BaseException as e:  # handed to the consumer, raised there
            offer(e)

    t = threading.Thread(target=produce, name="mlledger-chunker", daemon=True)
    t.start()
    try:
        while (item := q.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()


def _pieces(
    fd: int, cutter: Any, algorithm: str, whole: Any, where: str
) -> Iterator[tuple[memoryview, str]]:
    """Each chunk of ``fd`` read into one reused buffer, with its hex digest; ``whole``
    sees every byte.  The view is valid until the next chunk."""
    buf = bytearray(MAX)
    view = memoryview(buf)
    for off, n in _ahead(_cut_points(fd, cutter)):
        piece = view[:n]
        got = 0
        while got < n and (k := os.preadv(fd, [piece[got:]], off + got)):
            got += k
        if got != n:  # shorter than the chunker saw it: the file is being rewritten
            raise _changed(where)
        whole.update(piece)
        h = new_hasher(algorithm)
        h.update(piece)
        yield piece, h.hexdigest()


def put_chunked(
    backend: Backend,
    algorithm: str,
    fd: int,
    cutter: Any,
    *,
    where: str,
    check: Callable[[], None],
    callback: Callback | None = None,
) -> str:
    """Store the open file ``fd`` (the file ``where``) as chunks; its whole hex digest.

    Each new chunk is written create-only from the very bytes that were hashed: on a
    local store at once (an unnamed temp file linked to its name), elsewhere a few at
    a time.  ``check`` (has the file changed?) runs before the chunk list is written.
    """
    whole = new_hasher(algorithm)
    chunks: list[tuple[str, int]] = []
    local = isinstance(backend, LocalBackend)
    batch: dict[str, bytes] = {}
    for piece, hexpart in _pieces(fd, cutter, algorithm, whole, where):
        n = len(piece)
        key = layout.object_key(algorithm, hexpart)
        chunks.append((f"{algorithm}:{hexpart}", n))
        if key not in batch and not backend.exists(key):
            if local:
                backend.create(key, piece)  # type: ignore[arg-type]  # a buffer will do
            else:
                batch[key] = bytes(piece)
                if len(batch) >= _BATCH:
                    backend.create_many(batch)
                    batch = {}
        if callback is not None:
            callback.relative_update(n)
    if batch:
        backend.create_many(batch)
    return _finish(backend, algorithm, whole.hexdigest(), chunks, check)


def _finish(
    backend: Backend,
    algorithm: str,
    hexpart: str,
    chunks: list[tuple[str, int]],
    check: Callable[[], None],
) -> str:
    check()
    digest = f"{algorithm}:{hexpart}"
    if backend.exists(layout.object_key(algorithm, hexpart)):
        return hexpart  # stored whole before (an older version or no chunker): that copy is it
    body = ChunkList(digest, sum(n for _, n in chunks), tuple(chunks)).to_bytes()
    backend.create(layout.chunked_key(algorithm, hexpart), body)
    return hexpart


def _changed(where: str) -> LedgerError:
    return ConflictError(
        f"{where!r} changed while it was being stored; nothing was stored under its name: "
        "store it again once whatever writes it has finished"
    )


# -- reading ------------------------------------------------------------------------------


class ChunkedReader(io.RawIOBase):
    """The bytes of a chunked file, chunk after chunk, each chunk checked as it ends.

    Wrapped in a :class:`~mlledger.store.verified.VerifiedReader` by the store, which
    checks the whole digest at the end (``size`` tells it where the end is).
    """

    def __init__(self, open_chunk: Callable[[str], Any], chunks: ChunkList) -> None:
        super().__init__()
        self.size = chunks.size
        self._open = open_chunk
        self._todo = list(chunks.chunks)
        self._todo.reverse()
        self._cur: Any = None

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while part := self.read(CHUNK):
                parts.append(part)
            return b"".join(parts)
        while True:
            if self._cur is None:
                if not self._todo:
                    return b""
                self._cur = self._open(self._todo.pop()[0])
            data: bytes = self._cur.read(n)
            if data:
                return data
            self._cur.close()
            self._cur = None

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._cur is not None:
            self._cur.close()
            self._cur = None
        super().close()


def restore_chunks_local(
    backend: LocalBackend,
    chunks: ChunkList,
    algorithm: str,
    dst: int,
    *,
    missing: Callable[[str], LedgerError],
    callback: Callback | None = None,
) -> str:
    """Copy every chunk of a local store into the open file ``dst``, hashed on the way
    through one reused buffer; the whole hex digest of what was written.

    One hash pass: the whole digest vouches for every byte.  Only when it is wrong
    are the chunks rehashed, to name the damaged one (IntegrityError).
    """
    whole = new_hasher(algorithm)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for d, n in chunks.chunks:
        try:
            src = os.open(_chunk_path(backend, d, algorithm), os.O_RDONLY)
        except FileNotFoundError:
            raise missing(d) from None
        got = 0
        try:
            while k := os.readv(src, [buf]):
                piece = view[:k]
                whole.update(piece)
                while piece:
                    piece = piece[os.write(dst, piece) :]
                got += k
                if callback is not None:
                    callback.relative_update(k)
        finally:
            os.close(src)
        if got != n:
            raise _bad_chunk(backend, chunks, d)
    if f"{algorithm}:{whole.hexdigest()}" != chunks.digest:
        for d, _ in chunks.chunks:
            h = new_hasher(algorithm)
            with open(_chunk_path(backend, d, algorithm), "rb") as f:
                while data := f.read(CHUNK):
                    h.update(data)
            if f"{algorithm}:{h.hexdigest()}" != d:
                raise _bad_chunk(backend, chunks, d)
    return whole.hexdigest()


def _chunk_path(backend: LocalBackend, digest: str, algorithm: str) -> str:
    return backend.local_path(layout.object_key(*parse_digest(digest, algorithm)))


def _bad_chunk(backend: Backend, chunks: ChunkList, d: str) -> IntegrityError:
    return IntegrityError(
        f"chunk {d} of {chunks.digest} in {backend.url} is corrupt; nothing was written; "
        "run 'mlledger verify' and store the file again"
    )

