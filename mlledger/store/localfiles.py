"""Local files as the store meets them: the error an ``OSError`` on a path becomes, a
file's identity while it is copied, and the ONE loop that copies a file while hashing it
(storing into a local store, restoring out of one)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from ..errors import (
    AccessError,
    ConflictError,
    LedgerError,
    NotAFileError,
    NotFoundError,
    StoreError,
    SymlinkLoopError,
)
from ..hashing import CHUNK, new_hasher

TYPE_CHECKING = False
if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["changed", "check_unchanged", "copy_hashed", "os_error", "read_small", "stat_key"]

_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def os_error(path: str | os.PathLike[str], e: OSError, what: str = "read") -> LedgerError:
    """The mlledger error for the ``OSError`` raised when trying to ``what`` the local
    ``path``: what is wrong with it, and what to do."""
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


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file is written: its inode, size and times."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def changed(p: str, st: os.stat_result) -> bool:
    """Whether the file at ``p`` is no longer the one ``st`` describes (or is gone)."""
    try:
        return stat_key(os.stat(p)) != stat_key(st)
    except OSError:
        return True


def read_small(p: str, size: int) -> bytes:
    """The bytes of the small file ``p`` (``size`` when stat'ed): one read, unless it grew
    since (a regular file reads short only at its end); all of it then."""
    try:
        fd = os.open(p, _O_READ)
        try:
            data = os.read(fd, size + 1)
            while len(data) > size and (more := os.read(fd, CHUNK)):
                data += more
        finally:
            os.close(fd)
    except OSError as e:
        raise os_error(p, e) from e
    return data


def check_unchanged(p: str, st: os.stat_result, now: os.stat_result) -> None:
    """Raise ConflictError when ``now`` (an fstat of the open file) is not the file ``st``
    described when storing ``p`` began."""
    if stat_key(now) != stat_key(st):
        raise ConflictError(
            f"{p!r} changed while it was being stored; nothing was stored under its name: "
            "store it again once whatever writes it has finished"
        )


def copy_hashed(
    src: int,
    dst: int,
    algorithm: str,
    callback: Callback | None = None,
    write_error: Callable[[OSError], LedgerError] | None = None,
) -> str:
    """Copy the open file ``src`` to its end into ``dst`` while hashing it; the hex digest.

    One pass over the bytes: each chunk is read into one reused buffer
    (``os.readv``, no new bytes object a chunk), hashed, and written whole
    before the next.  A failed write raises ``write_error(e)`` when given (the
    store's refusal, such as a full disk, is not the source's fault), else the
    ``OSError`` itself.
    """
    h = new_hasher(algorithm)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := os.readv(src, [buf]):
        chunk = view[:n]
        h.update(chunk)
        while chunk:
            try:
                w = os.write(dst, chunk)
            except OSError as e:
                if write_error is None:
                    raise
                raise write_error(e) from e
            chunk = chunk[w:]
        if callback is not None:
            callback.relative_update(n)
    return h.hexdigest()
