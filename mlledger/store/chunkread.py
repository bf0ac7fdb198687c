"""Reading a file stored as a chunk list (:mod:`.chunklist`): a stream for any backend,
and a copy for a local restore.  Neither needs the chunker."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from ..errors import IntegrityError, LedgerError
from ..hashing import CHUNK, new_hasher, parse_digest
from . import layout
from .backends import Backend, LocalBackend
from .chunklist import ChunkList, Piece
from .verified import VerifiedReader

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["ChunkedReader", "open_piece", "restore_chunks_local"]

#: bytes read (and written) at a time when restoring from a local store
_READ = 4 << 20


class _Range(io.RawIOBase):
    """``size`` bytes of an open object from where it is positioned."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        super().__init__()
        self._f = f
        self.size = size
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(want) if want else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


def open_piece(
    backend: Backend, algorithm: str, piece: Piece, open_object: Callable[[str], Any]
) -> VerifiedReader:
    """A reader of one piece that checks the piece's digest as it ends."""
    if not piece.source:
        return open_object(piece.digest)  # type: ignore[no-any-return]
    f = backend.open_read(layout.object_key(*parse_digest(piece.source, algorithm)))
    try:
        f.seek(piece.offset)
    except BaseException:
        f.close()
        raise
    return VerifiedReader(_Range(f, piece.size), piece.digest, algorithm)  # type: ignore[arg-type]


class ChunkedReader(io.RawIOBase):
    """The bytes of a chunked file, piece after piece, each piece checked as it ends.

    Wrapped in a :class:`~mlledger.store.verified.VerifiedReader` by the store, which
    checks the whole digest at the end (``size`` tells it where the end is).
    """

    def __init__(self, open_one: Callable[[Piece], Any], chunks: ChunkList) -> None:
        super().__init__()
        self.size = chunks.size
        self._open = open_one
        self._todo = list(chunks.pieces)
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
                self._cur = self._open(self._todo.pop())
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
    """Copy every piece of a local store into the open file ``dst``, hashed on the way
    through one reused buffer; the whole hex digest of what was written.

    One hash pass: the whole digest vouches for every byte.  Only when it is wrong
    are the pieces rehashed, to name the damaged one (IntegrityError).
    """
    whole = new_hasher(algorithm)
    buf = memoryview(bytearray(_READ))
    fds: dict[str, int] = {}  # earlier versions stay open: many pieces are read from each
    try:
        for p in chunks.pieces:
            src = fds.get(p.needs)
            if src is None:
                try:
                    src = os.open(_path(backend, p.needs, algorithm), os.O_RDONLY)
                except FileNotFoundError:
                    raise missing(p.needs) from None
                if p.source:
                    fds[p.needs] = src
            try:
                got = _copy_piece(src, dst, p, buf, whole, callback=callback)
            finally:
                if not p.source:
                    os.close(src)
            if got != p.size:
                raise _bad_piece(backend, chunks, p)
    finally:
        for fd in fds.values():
            os.close(fd)
    if f"{algorithm}:{whole.hexdigest()}" != chunks.digest:
        for p in chunks.pieces:
            if piece_digest(backend, p, algorithm) != p.digest:
                raise _bad_piece(backend, chunks, p)
    return whole.hexdigest()


def _copy_piece(
    src: int, dst: int, p: Piece, buf: memoryview, whole: Any, *, callback: Callback | None
) -> int:
    """Copy the piece ``p`` from the open object ``src`` to ``dst`` (at its offset), hashed
    into ``whole``; how many bytes it had (-1: a chunk object longer than the piece)."""
    got = 0
    while got < p.size:
        k = os.preadv(src, [buf[: min(len(buf), p.size - got)]], p.offset + got)
        if not k:
            break
        piece = buf[:k]
        whole.update(piece)
        while piece:
            piece = piece[os.write(dst, piece) :]
        got += k
        if callback is not None:
            callback.relative_update(k)
    if not p.source and got == p.size and os.pread(src, 1, got):
        return -1
    return got


def piece_digest(backend: LocalBackend, p: Piece, algorithm: str) -> str:
    """The digest of the bytes a piece names, as they are on disk now."""
    h = new_hasher(algorithm)
    with open(_path(backend, p.needs, algorithm), "rb") as f:
        f.seek(p.offset)
        left = p.size if p.source else -1
        while left and (data := f.read(CHUNK if left < 0 else min(CHUNK, left))):
            h.update(data)
            left -= len(data) if left > 0 else 0
    return f"{algorithm}:{h.hexdigest()}"


def _path(backend: LocalBackend, digest: str, algorithm: str) -> str:
    return backend.local_path(layout.object_key(*parse_digest(digest, algorithm)))


def _bad_piece(backend: Backend, chunks: ChunkList, p: Piece) -> IntegrityError:
    where = f" (bytes {p.offset}-{p.offset + p.size} of {p.source})" if p.source else ""
    return IntegrityError(
        f"chunk {p.digest}{where} of {chunks.digest} in {backend.url} is corrupt or "
        "missing bytes; nothing was written; run 'mlledger verify' and store the file again"
    )
