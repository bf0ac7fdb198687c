"""A store on any fsspec filesystem (memory, S3, GCS, Azure, ...), and the clear errors
for what cloud clients raise.

- memory: a process-wide lock around check-and-write (the memory filesystem
  lives in one process).
- S3 / GCS / Azure: the server's own precondition (``If-None-Match: *``,
  ``ifGenerationMatch=0``, ``overwrite=False``) through ``mode="create"``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, cast

from ...errors import AccessError, LedgerError, NotFoundError, StoreError, UsageError
from .base import Backend, info_time, store_error, translating

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
    from fsspec.callbacks import Callback

__all__ = ["BATCH", "FsspecBackend", "remote_error", "strip_protocol"]

#: how many requests a batched call keeps in flight on an async filesystem
BATCH = 64


_memory_lock = threading.Lock()


#: the libraries cloud filesystems reach their services through
_CLIENT_MODULES = ("botocore.", "google.auth.", "google.api_core.", "azure.core.", "aiohttp.")
_AUTH_WORDS = ("Credential", "Unauthenticated", "Authentication", "RefreshError", "Forbidden")
_AUTH_CODES = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "AuthorizationHeaderMalformed", "403", "401",
})
_CONNECT_WORDS = ("Connect", "Timeout", "Disconnected", "Resolution")
_INPUT_WORDS = ("ParamValidation", "InvalidBucketName")


def remote_error(url: str, e: BaseException) -> LedgerError | None:
    """The clear error for a cloud client's failure to reach the store at ``url``, or
    None when ``e`` does not come from a cloud client (then it is not translated).

    Client libraries (botocore, google-auth, azure-core, aiohttp) raise their own types,
    which say nothing of the store: refused or missing credentials become AccessError,
    an endpoint that does not answer a StoreError naming it, a malformed bucket name a
    UsageError, an HTTP 404 that the filesystem did not turn into FileNotFoundError
    (gcsfs before 2025 on a streamed read) a NotFoundError, anything else from them a
    StoreError.
    """
    names = [f"{c.__module__}.{c.__name__}" for c in type(e).__mro__]
    if not any(n.startswith(_CLIENT_MODULES) for n in names):
        return None
    what = f"{type(e).__name__}: {e}"
    response = getattr(e, "response", None)  # botocore's ClientError: {"Error": {"Code"}}
    error = response.get("Error") if isinstance(response, dict) else None
    code = str(error.get("Code", "")) if isinstance(error, dict) else ""
    if code in _AUTH_CODES or any(w in n for n in names for w in _AUTH_WORDS):
        return AccessError(
            f"cannot reach the store at {url}: {what}; check the credentials (environment "
            "variables, config files or --option key=value storage options) and the URL"
        )
    if any(w in n for n in names for w in _INPUT_WORDS):
        return UsageError(f"the store URL {url} is not valid here: {what}")
    if getattr(e, "status", None) == 404:  # aiohttp's ClientResponseError from a read
        return NotFoundError(f"no such key in the store at {url}: {what}")
    if any(w in n for n in names for w in _CONNECT_WORDS):
        return StoreError(
            f"cannot reach the store at {url}: {what}; check the endpoint (endpoint_url) "
            "and the network"
        )
    return StoreError(f"the store at {url} failed: {what}")


#: a FsspecBackend method whose cloud-client exceptions become :func:`remote_error`'s
_client_errors = translating(lambda self, e: remote_error(self.url, e) or _refused(self.url, e))


def _refused(url: str, e: Exception) -> Exception | None:
    """The filesystem's own ``PermissionError`` (s3fs turns AccessDenied, ExpiredToken ...
    into one) as the same AccessError the client libraries' refusals become."""
    if isinstance(e, PermissionError) and not isinstance(e, LedgerError):
        return AccessError(
            f"the store at {url} refused access: {e}; check the credentials (environment "
            "variables, config files or --option key=value storage options) and the URL"
        )
    return None


def strip_protocol(fs: AbstractFileSystem, path: str) -> str:
    """``path`` as ``fs`` names it in its listings and keys (no protocol, its own slashes).

    fsspec normalises paths with each filesystem's classmethod ``_strip_protocol``;
    its public face is ``fsspec.core.strip_protocol``, which picks the filesystem
    class from a URL's protocol: so the path gets its protocol back first.
    """
    from fsspec.core import strip_protocol as strip

    return str(strip(fs.unstrip_protocol(path)))


def _pipe_file_async(fs: AbstractFileSystem, path: str, data: bytes) -> Coroutine[Any, Any, Any]:
    """The coroutine that creates ``path`` on an async filesystem (``mode="create"``).

    fsspec's async filesystems offer their coroutines only under underscore names
    (``_pipe_file``, documented in fsspec's "Async" page as the async API); the
    public ``pipe`` stops at the first existing key, where a batch of creates needs
    the outcome of each.  This is the one place mlledger reaches for one.
    """
    return cast(Coroutine[Any, Any, Any], fs._pipe_file(path, data, mode="create"))  # noqa: SLF001


async def _run_bounded(coros: list[Coroutine[Any, Any, Any]], limit: int) -> list[Any]:
    """Await ``coros`` with at most ``limit`` in flight; each one's result, or the exception
    it raised, in their order (as fsspec's own batching does with ``return_exceptions``)."""
    slots = asyncio.Semaphore(limit)

    async def one(coro: Coroutine[Any, Any, Any]) -> Any:
        async with slots:
            try:
                return await coro
            except Exception as e:
                return e

    return list(await asyncio.gather(*(one(c) for c in coros)))


class FsspecBackend(Backend):
    """A store on any fsspec filesystem (memory, S3, GCS, Azure, ...)."""

    def __init__(self, fs: AbstractFileSystem, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        protocol = fs.protocol
        self.protocol = protocol if isinstance(protocol, str) else protocol[0]
        self.is_memory = self.protocol == "memory"

    def fs_path(self, key: str) -> str:
        """The path of ``key`` on the filesystem ``fs`` (for calls on ``fs`` itself)."""
        return f"{self.root}/{key}"

    def _create_one(self, path: str, data: bytes) -> bool:
        if self.is_memory:
            with _memory_lock:
                # fs.exists() scans every key of the memory filesystem: look up directly
                stripped = strip_protocol(self.fs, path)
                if stripped in self.fs.store or stripped in self.fs.pseudo_dirs:
                    return False
                self.fs.pipe_file(path, data)
                return True
        try:
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        return True

    @_client_errors
    def create(self, key: str, data: bytes) -> bool:
        try:
            return self._create_one(self.fs_path(key), data)
        except FileExistsError:
            return False
        except OSError as e:
            raise store_error("write", self.fs_path(key), e) from e

    @_client_errors
    def create_many(self, items: dict[str, bytes]) -> dict[str, bool]:
        if not items:
            return {}
        if not getattr(self.fs, "async_impl", False):
            return super().create_many(items)
        from fsspec.asyn import sync

        keys = list(items)
        coros = [_pipe_file_async(self.fs, self.fs_path(k), items[k]) for k in keys]
        results = sync(self.fs.loop, _run_bounded, coros, BATCH)
        out: dict[str, bool] = {}
        for k, r in zip(keys, results, strict=True):
            if isinstance(r, FileExistsError):
                out[k] = False
            elif isinstance(r, BaseException):
                raise store_error("write", self.fs_path(k), _as_oserror(r)) from r
            else:
                out[k] = True
        return out

    @_client_errors
    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes | memoryview],
        check: Callable[[], None],
    ) -> bool:
        path = self.fs_path(key)
        if self.is_memory:
            data = b"".join(bytes(c) for c in chunks)
            check()
            return self._create_one(path, data)
        # S3 and GCS make an object visible only when its upload completes;
        # discard() abandons the upload so a failed check leaves nothing behind.
        f = self.fs.open(path, "wb")
        try:
            for chunk in chunks:
                f.write(chunk)
            check()
        except BaseException:
            with contextlib.suppress(Exception):
                f.discard()
            # a file left open would be committed by its __del__ (gcsfs's discard does
            # nothing before its first part, s3fs's leaves it unclosable): never close it
            f.closed = True
            raise
        f.close()
        return True

    @_client_errors
    def put_local_file(self, key: str, path: str, callback: Callback | None = None) -> bool:
        if self.is_memory:
            return super().put_local_file(key, path, callback)
        kwargs: dict[str, Any] = {}
        if callback is not None:
            kwargs["callback"] = callback
        try:
            self.fs.put_file(path, self.fs_path(key), mode="create", **kwargs)
        except FileExistsError:
            return False
        return True

    @_client_errors
    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.fs_path(key))

    @_client_errors
    def read(self, key: str) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self.fs_path(key))
        except FileNotFoundError:
            raise NotFoundError(f"no key {key!r} in the store at {self.url}") from None
        return data

    @_client_errors
    def read_many(self, keys: builtins.list[str]) -> dict[str, bytes | None]:
        if not keys:
            return {}
        paths = [self.fs_path(k) for k in keys]
        got = self.fs.cat(paths, on_error="return")
        if not isinstance(got, dict):  # one path: fsspec returns the bytes
            got = {paths[0]: got}
        out: dict[str, bytes | None] = {}
        for k, p in zip(keys, paths, strict=True):
            v = got.get(p)
            if v is None:
                v = got.get(strip_protocol(self.fs, p))
            if isinstance(v, FileNotFoundError) or v is None:
                out[k] = None
            elif isinstance(v, BaseException):
                raise store_error("read", p, _as_oserror(v)) from v
            else:
                out[k] = v
        return out

    @_client_errors
    def open_read(self, key: str) -> IO[bytes]:
        try:
            f: IO[bytes] = self.fs.open(self.fs_path(key), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"no key {key!r} in the store at {self.url}") from None
        return f

    @_client_errors
    def get_local_file(self, key: str, path: str, callback: Callback | None = None) -> None:
        if self.is_memory:
            super().get_local_file(key, path, callback)
            return
        kwargs: dict[str, Any] = {}
        if callback is not None:
            kwargs["callback"] = callback
        try:
            self.fs.get_file(self.fs_path(key), path, **kwargs)
        except FileNotFoundError:
            raise NotFoundError(f"no key {key!r} in the store at {self.url}") from None

    @_client_errors
    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.fs_path(key)))

    @_client_errors
    def size(self, key: str) -> int:
        try:
            return int(self.fs.size(self.fs_path(key)))
        except FileNotFoundError:
            raise NotFoundError(f"no key {key!r} in the store at {self.url}") from None

    def _fresh(self, path: str) -> None:
        """Forget what the filesystem object cached about ``path`` (s3fs, gcsfs and adlfs
        keep listings per object): a listing decides the next ref number and which runs
        are new, so it must show what other processes wrote since."""
        if not self.is_memory:
            self.fs.invalidate_cache(path)

    @_client_errors
    def list(self, prefix: str) -> Iterator[str]:
        base = self.fs_path(prefix).rstrip("/")
        self._fresh(base)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return
        strip = len(strip_protocol(self.fs, self.root)) + 1
        for p in found:
            yield strip_protocol(self.fs, p)[strip:]

    @_client_errors
    def list_details(self, prefix: str) -> Iterator[tuple[str, float | None, int]]:
        base = self.fs_path(prefix).rstrip("/")
        self._fresh(base)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        strip = len(strip_protocol(self.fs, self.root)) + 1
        for p, info in found.items():
            yield strip_protocol(self.fs, p)[strip:], info_time(info), int(info.get("size") or 0)

    @_client_errors
    def list_dir(self, prefix: str) -> builtins.list[str]:
        path = self.fs_path(prefix).rstrip("/")
        self._fresh(path)
        try:
            names = self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [n.rstrip("/").rsplit("/", 1)[-1] for n in names]


def _as_oserror(e: BaseException) -> OSError:
    return e if isinstance(e, OSError) else OSError(str(e))
