"""Hand out a stored file's bytes only once every one of them is verified.

A stream to a pipe cannot be taken back: a reader that hashes as it goes
(:class:`~mlledger.store.VerifiedReader`) finds damage only after the bytes
before it went out.  So the object is first copied to a private temp file
while hashed (one read of the store, memory bounded by one chunk), and only
a copy that checked out is streamed.  The cost is a local write and read of
the file, and room for it in the temp folder (``$TMPDIR``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import IO, TYPE_CHECKING

from ..errors import UsageError
from ..hashing import CHUNK

if TYPE_CHECKING:
    from .store import Store

__all__ = ["copy_verified"]


def copy_verified(store: Store, digest: str, out: IO[bytes]) -> int:
    """Write the bytes of the file object ``digest`` to ``out``; return how many.

    Nothing is written unless all of them hash to ``digest``: a damaged
    object raises :class:`~mlledger.errors.IntegrityError` before the first byte.
    """
    with tempfile.TemporaryDirectory(prefix="mlledger-verify-") as d:
        path = store.restore(digest, os.path.join(d, "object"))
        if path.is_dir():
            raise UsageError(f"{digest} is a folder (a tree): restore it to a path instead")
        with open(path, "rb") as f:
            shutil.copyfileobj(f, out, CHUNK)
        out.flush()
        return path.stat().st_size
