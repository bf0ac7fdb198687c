"""Storing large files so that a file that changes a little stores a little:
content-defined chunking (FastCDC), with the chunker an optional extra.

With the ``chunks`` extra installed (``pip install 'mlledger[chunks]'``: the compiled
FastCDC chunker of ``pyfastcdc``), a file of at least :data:`CHUNKED_MIN` bytes is cut
where its content says (about 1.5 MiB a chunk, 1 to 4 MiB) and described by a chunk
list (:mod:`.chunklist`) under its own whole-file digest.

On a local store, the first version of a file is stored **whole**, at the speed of a
plain copy: cutting and hashing every chunk and creating an object per chunk costs
2-3x the CPU of ``cp``.  Only when a file is stored again under a path that held an
earlier version of it (the stat cache remembers which) is that earlier version indexed
once (its chunk list names byte ranges of its own whole object; nothing else is
written) and the new version stored as a chunk list: pieces it shares with the earlier
one are named where they already are, and only new chunks are written, as objects of
their own.  On S3, GCS and Azure every large file is stored as chunks from the start
(the network, not the CPU, is the cost there, and an earlier version would have to be
downloaded to be indexed).

A chunk list is written (create-only) only after every piece it names exists, so a
reader never sees a partial file, and it is self-consistent by construction: the
whole digest and the chunk digests are computed from the very bytes that were
written.  Without the extra, or without its compiled part, large files are stored
whole, as before; chunk lists still read.

Where the time goes (1 GiB, 2 cores): cutting costs ~0.27 s and releases the GIL, so
the file is read a window at a time and cut in a thread of its own, which also hashes
the whole; the main thread hashes each chunk from the same buffer and writes the new
ones.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from ..errors import LedgerError
from ..hashing import new_hasher, parse_digest
from . import layout
from .backends import Backend, LocalBackend
from .chunklist import ChunkList, Piece, read_chunk_list

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["CHUNKED_MIN", "chunker", "known_pieces", "put_chunked"]

#: files at least this long are stored as chunks (when the chunker is installed)
CHUNKED_MIN = 64 << 20
#: FastCDC's parameters: pyfastcdc skips the first MIN bytes of every chunk (cutting
#: runs at ~3.7 GiB/s here with these), chunks average ~1.5 MiB, none over MAX
AVG, MIN, MAX = 1 << 20, 1 << 20, 4 << 20
#: chunks held in memory at once while uploading to a remote store (each <= MAX)
_BATCH = 4
#: bytes read and cut at a time, and how many such buffers exist (the memory it takes)
_WINDOW, _SLOTS = 6 << 20, 2


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


class _Windows:
    """The file ``fd`` read a window at a time into :data:`_SLOTS` reused buffers and cut,
    in a thread of its own: the reads and the cutting release the GIL, so they run while
    the main thread hashes and writes the chunks of the window before.

    Each window is handed over as (buffer, cuts, offset): the chunks it holds whole, as
    (start, length) in the buffer, and the file offset of the buffer's first byte.  A
    chunk is final only if the chunker saw :data:`MAX` bytes past its start, a real
    cut, or the end of the file; the bytes after the last final chunk start the next
    window.  ``whole`` is updated here with every byte, in order,
    from the very buffers the chunks are hashed and written from.
    """

    def __init__(self, fd: int, cutter: Any, whole: Any) -> None:
        self._fd, self._cutter, self._whole = fd, cutter, whole
        self._bufs = [memoryview(bytearray(_WINDOW)) for _ in range(_SLOTS)]
        self._free: queue.Queue[int] = queue.Queue()
        for i in range(_SLOTS):
            self._free.put(i)
        self._full: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[tuple[memoryview, list[tuple[int, int]], int]]:
        end = object()
        t = threading.Thread(target=self._produce, args=(end,), name="mlledger-chunker")
        t.daemon = True
        t.start()
        try:
            while (item := self._full.get()) is not end:
                if isinstance(item, BaseException):
                    raise item
                i, cuts, at = item
                yield self._bufs[i], cuts, at
                self._free.put(i)  # the consumer is done with its chunks
        finally:
            self._stop.set()
            t.join()

    def _slot(self) -> int | None:
        """A free buffer, oldest first (never the one whose tail is carried); None once the
        consumer stopped."""
        while not self._stop.is_set():
            try:
                return self._free.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def _produce(self, end: object) -> None:
        try:
            self._read_and_cut()
            self._full.put(end)
        except BaseException as e:  # handed to the consumer, raised there
            self._full.put(e)

    def _read_and_cut(self) -> None:
        at, carry, prev, eof = 0, 0, None, False
        while not eof:
            i = self._slot()
            if i is None:
                return
            view = self._bufs[i]
            if prev is not None:
                view[:carry] = prev
            filled = carry
            while filled < _WINDOW:
                n = os.preadv(self._fd, [view[filled:]], at + filled)
                if not n:
                    eof = True
                    break
                filled += n
            cuts, pos = [], 0
            for c in self._cutter.cut_buf(view[:filled]):
                left = filled - c.offset
                if not (eof or left > MAX or c.length < left):
                    break  # cut short by the window's end: cut again in the next one
                cuts.append((c.offset, c.length))
                pos = c.offset + c.length
            self._whole.update(view[:pos])
            self._full.put((i, cuts, at))
            at, carry, prev = at + pos, filled - pos, view[pos:filled]


def _chunks(
    fd: int, cutter: Any, algorithm: str, whole: Any
) -> Iterator[tuple[memoryview, str, int]]:
    """Each chunk of ``fd``: its bytes (valid until the next one), hex digest and offset."""
    for view, cuts, at in _Windows(fd, cutter, whole):
        for start, n in cuts:
            piece = view[start : start + n]
            h = new_hasher(algorithm)
            h.update(piece)
            yield piece, h.hexdigest(), at + start


def put_chunked(
    backend: Backend,
    algorithm: str,
    fd: int,
    cutter: Any,
    *,
    check: Callable[[], None],
    known: Mapping[str, Piece] | None = None,
    callback: Callback | None = None,
) -> str:
    """Store the open file ``fd`` as a chunk list; its whole hex digest.

    A chunk in ``known`` (an earlier version's pieces, by digest) is named where it
    is; any other is written, create-only, as an object of its own from the very
    bytes that were hashed (on a local store at once, elsewhere a few at a time).
    ``check`` (has the file changed?) runs before the chunk list is written.
    """
    whole = new_hasher(algorithm)
    pieces: list[Piece] = []
    local = isinstance(backend, LocalBackend)
    batch: dict[str, bytes] = {}
    for piece, hexpart, _ in _chunks(fd, cutter, algorithm, whole):
        n, d = len(piece), f"{algorithm}:{hexpart}"
        key = layout.object_key(algorithm, hexpart)
        old = known.get(d) if known else None
        if old is not None:
            pieces.append(old)
        else:
            pieces.append(Piece(d, n))
            if key not in batch and not backend.exists(key):
                if local:
                    backend.create(key, cast(bytes, piece))  # a buffer will do: os.write takes it
                else:
                    batch[key] = bytes(piece)
                    if len(batch) >= _BATCH:
                        backend.create_many(batch)
                        batch = {}
        if callback is not None:
            callback.relative_update(n)
    if batch:
        backend.create_many(batch)
    check()
    hexpart = whole.hexdigest()
    if not backend.exists(layout.object_key(algorithm, hexpart)):  # else: stored whole before
        body = ChunkList(f"{algorithm}:{hexpart}", sum(p.size for p in pieces), tuple(pieces))
        backend.create(layout.chunked_key(algorithm, hexpart), body.to_bytes())
    return hexpart


def known_pieces(
    backend: Backend, algorithm: str, digest: str, cutter: Any
) -> dict[str, Piece] | None:
    """The pieces of the stored file ``digest`` by chunk digest, for a new version of it
    to share; None when it is not stored here.

    A file stored whole gets its chunk list now, once: every piece a byte range of its
    own object (a local store only: elsewhere this would download it).
    """
    try:
        chunks = read_chunk_list(backend, digest, algorithm)
    except LedgerError:
        return None  # a damaged list: store the new version whole
    if chunks is None and isinstance(backend, LocalBackend):
        chunks = _index_whole(backend, algorithm, digest, cutter)
    if chunks is None:
        return None
    if isinstance(backend, LocalBackend):  # fresh again: gc's grace period covers what
        for d in chunks.needs():  # the new version is about to name
            with contextlib.suppress(OSError):
                os.utime(backend.local_path(layout.object_key(*parse_digest(d, algorithm))))
    return {p.digest: p for p in chunks.pieces}


def _index_whole(
    backend: LocalBackend, algorithm: str, digest: str, cutter: Any
) -> ChunkList | None:
    """Cut the object ``digest`` (stored whole) and write its chunk list of ranges of
    itself; None when it is not there or its bytes do not hash to its digest."""
    key = layout.object_key(*parse_digest(digest, algorithm))
    try:
        fd = os.open(backend.local_path(key), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    whole = new_hasher(algorithm)
    try:
        pieces = tuple(
            Piece(f"{algorithm}:{hexpart}", len(piece), digest, at)
            for piece, hexpart, at in _chunks(fd, cutter, algorithm, whole)
        )
    finally:
        os.close(fd)
    if f"{algorithm}:{whole.hexdigest()}" != digest:
        return None  # damaged: verify reports it; the new version is stored whole
    chunks = ChunkList(digest, sum(p.size for p in pieces), pieces)
    backend.create(layout.chunked_key(*parse_digest(digest, algorithm)), chunks.to_bytes())
    return chunks
