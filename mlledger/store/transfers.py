"""Concurrent, verified downloads from a store on an async filesystem (S3, GCS, Azure).

Each object streams from the server into a local file that the caller names (a
temp place it moves into position afterwards) and is hashed as its bytes arrive,
so nothing is read twice. A transfer holds at most :data:`PIECE` bytes in memory,
whatever the object's size, and at most ``limit`` transfers are in flight at
once (the filesystem's own event loop runs them, as ``fs.get`` does). A digest
that does not match, a missing object or a server that fails mid-transfer raises
an error that names the key, and the file the transfer was writing is removed.

How bytes are asked for, per filesystem:

- ``open_async`` (s3fs) where the filesystem has it: one GET streamed in pieces;
- otherwise ranged reads of :data:`PIECE` bytes (gcsfs, adlfs), the next one
  asked for while the current one is written;
- an object whose size is known to fit one piece: one ranged read, no HEAD.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

from ..errors import IntegrityError, LedgerError, NotFoundError, StoreError
from ..hashing import digest_bytes, new_hasher
from .backends import FsspecBackend, remote_error, store_error

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
    from fsspec.callbacks import Callback

    from ..hashing import Hasher
    from .backends import Backend

__all__ = ["DEFAULT_LIMIT", "PIECE", "Download", "concurrent", "download", "download_many"]

#: objects in flight at once unless the caller (or ``MLLEDGER_TRANSFERS``) says otherwise
DEFAULT_LIMIT = 16
#: the most bytes one transfer holds in memory: one streamed read or one ranged read
PIECE = 4 << 20


@attrs.frozen
class Download:
    """One object to fetch: its store ``key`` and ``digest``, the local ``path`` to create
    (a temp place: it must not exist), its ``size`` if known (None: the server says)."""

    key: str
    digest: str
    path: str
    size: int | None = None


def concurrent(backend: Backend) -> bool:
    """Whether ``backend`` downloads through this module (an async fsspec filesystem)."""
    return isinstance(backend, FsspecBackend) and bool(getattr(backend.fs, "async_impl", False))


def download(
    backend: Backend, job: Download, algorithm: str, callback: Callback | None = None
) -> bytes:
    """Fetch one object into ``job.path``, verified; the first bytes of the object (up to
    one piece) are returned, so a caller can tell a tree manifest without asking again.
    ``callback`` gets the size and then every piece's length."""
    fsb = _fsspec(backend)
    from fsspec.asyn import sync

    return cast(bytes, sync(fsb.fs.loop, _fetch, fsb, job, algorithm, callback))


def download_many(
    backend: Backend,
    jobs: Sequence[Download],
    algorithm: str,
    limit: int = DEFAULT_LIMIT,
    done: Callable[[Download], None] | None = None,
) -> None:
    """Fetch every job, verified, with at most ``limit`` in flight; ``done(job)`` after each.

    The first failure stops the others: they are cancelled and every file a job had
    begun is removed, so only whole, verified files are ever left at the jobs' paths.
    """
    if not jobs:
        return
    fsb = _fsspec(backend)
    from fsspec.asyn import sync

    sync(fsb.fs.loop, _fetch_all, fsb, list(jobs), algorithm, max(1, limit), done)


def _fsspec(backend: Backend) -> FsspecBackend:
    if not concurrent(backend):
        raise TypeError(f"{backend!r} is not on an async filesystem; use its own reads")
    return cast(FsspecBackend, backend)


async def _fetch_all(
    fsb: FsspecBackend,
    jobs: list[Download],
    algorithm: str,
    limit: int,
    done: Callable[[Download], None] | None,
) -> None:
    slots = asyncio.Semaphore(limit)

    async def one(job: Download) -> None:
        async with slots:
            await _fetch(fsb, job, algorithm, None)
        if done is not None:
            done(job)

    tasks = [asyncio.ensure_future(one(j)) for j in jobs]
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:  # cancelled from outside (KeyboardInterrupt in the caller)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for t in tasks:  # the first failure in job order, so the error is reproducible
        if t.done() and not t.cancelled() and t.exception() is not None:
            raise cast(BaseException, t.exception())


async def _fetch(
    fsb: FsspecBackend, job: Download, algorithm: str, callback: Callback | None
) -> bytes:
    """Stream ``job`` into its path, hashing as it goes; remove the file on any failure."""
    path = fsb.fs_path(job.key)
    hasher = new_hasher(algorithm)
    try:
        fd = os.open(job.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise StoreError(f"cannot create {job.path!r} to restore into: {e}") from e
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                head = await _stream(fsb.fs, path, job, hasher, out.write, callback=callback)
        except LedgerError:
            raise
        except FileNotFoundError:
            raise NotFoundError(
                f"object {job.digest} is not in the store at {fsb.url} (no key {job.key!r}); "
                "nothing was written; run 'mlledger verify' and store the file again"
            ) from None
        except Exception as e:
            raise _failed(fsb, job, e) from e
        got = f"{algorithm}:{hasher.hexdigest()}"
        if got != job.digest:
            raise IntegrityError(
                f"object {job.digest} in {fsb.url} is corrupt (key {job.key!r}: its bytes "
                f"hash to {got}); nothing was written; restore it from another copy or run "
                "'mlledger verify'"
            )
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(job.path)
        raise
    return head


def _failed(fsb: FsspecBackend, job: Download, e: Exception) -> LedgerError:
    """The error for a transfer that failed: of the kind the failure is (refused access,
    unreachable store, a read that broke off), naming the object and its key."""
    why = remote_error(fsb.url, e)
    if why is None:
        oserr = e if isinstance(e, OSError) else OSError(f"{type(e).__name__}: {e}")
        why = store_error("read", fsb.fs_path(job.key), oserr)
    return type(why)(
        f"downloading object {job.digest} (key {job.key!r}) failed, so nothing was "
        f"written: {why}"
    )


async def _stream(
    fs: AbstractFileSystem,
    path: str,
    job: Download,
    hasher: Hasher,
    write: Callable[[bytes], Any],
    *,
    callback: Callback | None,
) -> bytes:
    """Feed the object's bytes to ``hasher`` and ``write`` in pieces; its first piece back."""
    if job.size == 0 and job.digest == digest_bytes(b"", job.digest.split(":", 1)[0]):
        return b""  # the digest names the bytes: nothing to ask the server
    head = b""
    if callback is not None and job.size is not None:
        callback.set_size(job.size)

    def take(data: bytes) -> None:
        nonlocal head
        if not head:
            head = data[:PIECE]
        hasher.update(data)
        write(data)
        if callback is not None:
            callback.relative_update(len(data))

    if job.size is not None and job.size <= PIECE:
        take(await _range(fs, path, 0, job.size))
        return head
    f = await _open_stream(fs, path)
    if f is not None:
        first = True
        while data := await f.read(PIECE):
            if first and callback is not None and job.size is None and f.size is not None:
                callback.set_size(f.size)
            first = False
            take(data)
        with contextlib.suppress(Exception):
            await f.close()
        return head
    size = job.size if job.size is not None else int((await _info(fs, path))["size"])
    if callback is not None and job.size is None:
        callback.set_size(size)
    starts = range(0, size, PIECE)
    # the next piece is asked for while the current one is hashed and written
    nxt: asyncio.Future[bytes] | None = None
    for i, start in enumerate(starts):
        cur = nxt if nxt is not None else asyncio.ensure_future(
            _range(fs, path, start, min(start + PIECE, size))
        )
        nxt = None
        if i + 1 < len(starts):
            s2 = starts[i + 1]
            nxt = asyncio.ensure_future(_range(fs, path, s2, min(s2 + PIECE, size)))
        try:
            take(await cur)
        except BaseException:
            if nxt is not None:
                nxt.cancel()
                await asyncio.gather(nxt, return_exceptions=True)
            raise
    return head


# -- the filesystem's coroutines ------------------------------------------------------
# fsspec's async filesystems offer their coroutines under underscore names (``_cat_file``,
# ``_info``: the async API of fsspec's "Async" page); these two wrappers are the only
# places this module reaches for them.


def _range(fs: AbstractFileSystem, path: str, start: int, end: int) -> Coroutine[Any, Any, bytes]:
    """Bytes ``start:end`` of ``path`` in one request (a ranged GET, no HEAD before it)."""
    return cast(Coroutine[Any, Any, bytes], fs._cat_file(path, start=start, end=end))  # noqa: SLF001


def _info(fs: AbstractFileSystem, path: str) -> Coroutine[Any, Any, dict[str, Any]]:
    return cast(Coroutine[Any, Any, dict[str, Any]], fs._info(path))  # noqa: SLF001


async def _open_stream(fs: AbstractFileSystem, path: str) -> Any:
    """The filesystem's streamed reader of ``path`` (one GET), or None if it has none."""
    opener = getattr(fs, "open_async", None)
    if opener is None:
        return None
    try:
        return await opener(path, "rb")
    except NotImplementedError:
        return None
