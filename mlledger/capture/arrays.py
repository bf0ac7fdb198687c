"""The digest of a numpy array as it would be stored, without building its bytes.

A stored array is its ``.npy`` file (``capture/values.py``): the header
``numpy.lib.format.write_array`` writes, then the array's memory in C order (or
the transpose's, for a Fortran-ordered array).  Hashing the header and then the
array's own buffer gives the digest of those bytes with one pass over the data
and no copy: what a memoized call pays to know its argument (a 100 MB array
would otherwise be copied twice before it is hashed).

A digest worked out for a call's key is handed to the writer that records the
same call (``remember``/``recall``, per thread), so a miss hashes once too.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

from ..hashing import new_hasher

__all__ = ["array_digest", "recall", "remembered"]

#: dtype kinds whose stored bytes are the array's memory (no pickled objects)
_RAW_KINDS = frozenset("biufcmMSUV")


class _Stop(Exception):
    """Raised by the header catcher once ``write_array`` wrote its header."""


class _HeaderCatcher:
    """A file-like object that keeps the first write (the header) and stops the rest."""

    header = b""

    def write(self, data: Any) -> int:
        self.header = bytes(data)
        raise _Stop


def array_digest(value: Any, algorithm: str) -> tuple[str, int] | None:
    """``(digest, size)`` of the ``.npy`` bytes a numpy array is stored as, hashing its
    buffer in place; None for anything else (another type, a non-contiguous view, an
    object dtype): those go the general way (``encode_value``)."""
    np = sys.modules.get("numpy")
    if np is None or type(value) is not np.ndarray:
        return None
    try:
        dtype = value.dtype
        if dtype.hasobject or dtype.kind not in _RAW_KINDS or dtype.itemsize == 0:
            return None
        if value.flags.c_contiguous:
            data = value.reshape(-1).view(np.uint8)
        elif value.flags.f_contiguous:
            data = value.T.reshape(-1).view(np.uint8)
        else:
            return None
        catcher = _HeaderCatcher()
        with contextlib.suppress(_Stop):
            np.lib.format.write_array(catcher, value, allow_pickle=False)
        if not catcher.header:
            return None
        h = new_hasher(algorithm)
        h.update(catcher.header)
        h.update(data)
        return f"{algorithm}:{h.hexdigest()}", len(catcher.header) + int(data.nbytes)
    except Exception:  # an exotic array: the general way still works
        return None


_local = threading.local()


@contextlib.contextmanager
def remembered(digests: dict[int, tuple[Any, str, int]] | None) -> Iterator[None]:
    """Within the block, :func:`recall` gives the digest already worked out for each
    value in ``digests`` (``id(value) -> (value, digest, size)``), in this thread only."""
    if not digests:
        yield
        return
    before = getattr(_local, "digests", None)
    _local.digests = digests
    try:
        yield
    finally:
        _local.digests = before


def recall(value: Any) -> tuple[str, int] | None:
    """The ``(digest, size)`` remembered for this very object, or None."""
    digests: dict[int, tuple[Any, str, int]] | None = getattr(_local, "digests", None)
    if not digests:
        return None
    got = digests.get(id(value))
    if got is None or got[0] is not value:
        return None
    return got[1], got[2]
