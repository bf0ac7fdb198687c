"""The chunk list of a large file: which pieces, in order, make its bytes.

Stored create-only under the file's own digest (``chunked/<algo>/<ab>/<cdef…>``), so
records, trees and refs keep naming the file by its whole-file digest.  Each piece is
a chunk of the file, named by its own digest and size, found either

- as an object of its own (``[digest, size]``), or
- as ``size`` bytes at ``offset`` of another file stored whole
  (``[digest, size, source digest, offset]``): the first version of a large file is
  stored whole, fast, and later versions name the pieces they share with it there.

Reading a chunk list needs no chunker: stores written on a machine with the ``chunks``
extra read, restore, verify and gc on one without it.
"""

from __future__ import annotations

import attrs

from .. import canonical
from ..errors import IntegrityError, LedgerError, NotFoundError
from ..hashing import parse_digest
from . import layout
from .backends import Backend

__all__ = ["MAGIC", "ChunkList", "Piece", "read_chunk_list"]

MAGIC = b"mlledger-chunked 1\n"


@attrs.frozen
class Piece:
    """One chunk of a file: its digest and size, and where its bytes are (``source`` ""
    for an object of its own, else the digest of a file stored whole, at ``offset``)."""

    digest: str
    size: int
    source: str = ""
    offset: int = 0

    def to_json(self) -> list[object]:
        if not self.source:
            return [self.digest, self.size]
        return [self.digest, self.size, self.source, self.offset]

    @property
    def needs(self) -> str:
        """The digest of the object that holds this piece's bytes."""
        return self.source or self.digest


@attrs.frozen
class ChunkList:
    """A chunked file: its whole digest and size, and its pieces in order."""

    digest: str
    size: int
    pieces: tuple[Piece, ...]

    def to_bytes(self) -> bytes:
        body = {"digest": self.digest, "size": self.size,
                "chunks": [p.to_json() for p in self.pieces]}
        return MAGIC + canonical.dumps(body)

    def needs(self) -> tuple[str, ...]:
        """The objects this file's bytes are read from, each once, in order."""
        return tuple(dict.fromkeys(p.needs for p in self.pieces))

    @classmethod
    def from_bytes(cls, data: bytes, digest: str, algorithm: str) -> ChunkList:
        """Parse and check a chunk list read from the key of ``digest``."""
        try:
            if not data.startswith(MAGIC):
                raise ValueError("no chunk-list header")
            body = canonical.loads(data[len(MAGIC) :])
            pieces = tuple(_piece(p, algorithm) for p in body["chunks"])
            if body["digest"] != digest or sum(p.size for p in pieces) != body["size"]:
                raise ValueError("its digest or size does not match its chunks")
        except (LedgerError, ValueError, KeyError, TypeError) as e:
            raise IntegrityError(
                f"the chunk list of {digest} is damaged ({e}); run 'mlledger verify' and "
                "store the file again"
            ) from None
        return cls(digest, int(body["size"]), pieces)


def _piece(item: list[object], algorithm: str) -> Piece:
    if len(item) not in (2, 4):
        raise ValueError("a chunk entry of the wrong length")
    d, n = str(item[0]), int(item[1])  # type: ignore[call-overload]
    parse_digest(d, algorithm)
    if n <= 0:
        raise ValueError("an empty chunk")
    if len(item) == 2:
        return Piece(d, n)
    source, offset = str(item[2]), int(item[3])  # type: ignore[call-overload]
    parse_digest(source, algorithm)
    if offset < 0:
        raise ValueError("a negative offset")
    return Piece(d, n, source, offset)


def read_chunk_list(backend: Backend, digest: str, algorithm: str) -> ChunkList | None:
    """The chunk list of the file ``digest``, or None when it has none."""
    algo, hexpart = parse_digest(digest, algorithm)
    try:
        data = backend.read(layout.chunked_key(algo, hexpart))
    except NotFoundError:
        return None
    return ChunkList.from_bytes(data, digest, algorithm)
