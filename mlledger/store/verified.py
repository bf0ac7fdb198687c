"""A reader of a stored object that checks its digest once the last byte is read."""

from __future__ import annotations

import os

from ..errors import IntegrityError
from ..hashing import new_hasher

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is never imported at run time: Ledger() stays cheap
    from typing import IO

__all__ = ["VerifiedReader"]


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
