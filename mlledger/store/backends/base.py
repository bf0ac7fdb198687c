"""The interface every backend implements, the dry-run backend, and the error a
backend raises when its filesystem refuses a write.

Keys are ``/``-separated paths relative to the store root.
"""

from __future__ import annotations

import abc
import builtins
import errno
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping

from ...errors import NotFoundError, StoreError
from ...hashing import CHUNK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, TypeVar

    from fsspec.callbacks import Callback

    _F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["Backend", "NullBackend", "info_time", "store_error"]


class Backend(abc.ABC):
    """Keys are ``/``-separated paths relative to the store root."""

    protocol: str
    url: str

    # -- writes ------------------------------------------------------------
    @abc.abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Write ``data`` under ``key`` unless the key exists; True if this call created it."""

    def create_many(self, items: dict[str, bytes]) -> dict[str, bool]:
        """:meth:`create` for many keys, concurrently where the backend can."""
        return {k: self.create(k, v) for k, v in items.items()}

    @abc.abstractmethod
    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes | memoryview],
        check: Callable[[], None],
    ) -> bool:
        """Write the concatenated ``chunks`` under ``key``, all or nothing.

        ``check`` runs after the last chunk and before the key becomes
        visible; if it raises, nothing is written.  Returns False when the
        key already existed (the write is then dropped).
        """

    def put_local_file(self, key: str, path: str, callback: Callback | None = None) -> bool:
        """Upload the local file at ``path`` under ``key`` (caller checked its digest)."""

        def chunks(f: IO[bytes]) -> Iterator[bytes]:
            while chunk := f.read(CHUNK):
                if callback is not None:
                    callback.relative_update(len(chunk))
                yield chunk

        with open(path, "rb") as f:
            return self.put_stream(key, chunks(f), lambda: None)

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    # -- reads -------------------------------------------------------------
    @abc.abstractmethod
    def read(self, key: str) -> bytes:
        """The bytes under ``key``; NotFoundError if there are none."""

    def read_many(self, keys: builtins.list[str]) -> dict[str, bytes | None]:
        """Read many keys; a missing key maps to None."""
        out: dict[str, bytes | None] = {}
        for k in keys:
            try:
                out[k] = self.read(k)
            except NotFoundError:
                out[k] = None
        return out

    @abc.abstractmethod
    def open_read(self, key: str) -> IO[bytes]:
        """A binary reader of ``key``; NotFoundError if it does not exist."""

    def get_local_file(self, key: str, path: str, callback: Callback | None = None) -> None:
        """Copy ``key`` to the local ``path`` (a fresh temp name the caller owns)."""
        with self.open_read(key) as src, open(path, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
                if callback is not None:
                    callback.relative_update(len(chunk))

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """True when ``key`` exists."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The size of ``key`` in bytes; NotFoundError if it does not exist."""

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (a folder), recursively, in no set order."""

    @abc.abstractmethod
    def list_dir(self, prefix: str) -> builtins.list[str]:
        """Names directly under the folder ``prefix`` (files and folders)."""

    def list_details(self, prefix: str) -> Iterator[tuple[str, float | None, int]]:
        """Every key under ``prefix`` with when the store says it was written (its own
        clock; None when it cannot say) and its size, in no set order."""
        for key in self.list(prefix):
            yield key, None, self.size(key)

    def local_path(self, key: str) -> str | None:
        """The key's path on local disk, when the store is local."""
        return None


class NullBackend(Backend):
    """Takes every write and keeps nothing: a store through it only computes digests."""

    protocol = "null"
    url = "null://"

    def create(self, key: str, data: bytes) -> bool:
        return True

    def put_stream(
        self, key: str, chunks: Iterable[bytes | memoryview], check: Callable[[], None]
    ) -> bool:
        for _ in chunks:
            pass
        check()
        return True

    def put_local_file(self, key: str, path: str, callback: Any = None) -> bool:
        return True

    def delete(self, key: str) -> None:
        return None

    def read(self, key: str) -> bytes:
        raise NotFoundError(f"no key {key!r}: nothing is kept here")

    def open_read(self, key: str) -> IO[bytes]:
        raise NotFoundError(f"no key {key!r}: nothing is kept here")

    def exists(self, key: str) -> bool:
        return False

    def size(self, key: str) -> int:
        raise NotFoundError(f"no key {key!r}: nothing is kept here")

    def list(self, prefix: str) -> Iterator[str]:
        return iter(())

    def list_dir(self, prefix: str) -> builtins.list[str]:
        return []


#: errors that mean the store's disk (or quota, or file size limit) has no room
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def store_error(action: str, where: str, e: OSError) -> StoreError:
    """The StoreError for the ``OSError`` the store's filesystem raised when asked to
    ``action`` ``where``: what went wrong and what to do about it."""
    hint = "check the store's permissions and free space"
    if e.errno in _FULL:
        name = errno.errorcode.get(e.errno or 0, "")
        return StoreError(
            f"the store is full: it refused to {action} {where!r}: {e.strerror or e} "
            f"({name}); free space there (or raise its quota), then write what was kept "
            "locally with Ledger.push_spool()"
        )
    if e.errno == errno.EROFS:
        hint = "the store is on a read-only filesystem: remount it writable or use another store"
    elif e.errno == errno.ENAMETOOLONG:
        hint = "the name is too long for this filesystem: use a shorter ref or run name"
    elif isinstance(e, FileNotFoundError):
        hint = "its bucket or folder does not exist: create it, or check the store URL"
    elif isinstance(e, PermissionError):
        hint = "the store is not writable by this user: fix its permissions or use another store"
    return StoreError(f"cannot {action} {where!r}: {e.strerror or e}; {hint}")


#: inspect.CO_GENERATOR (inspect itself costs more to import than opening a store)
_CO_GENERATOR = 0x20


def translating(translate: Callable[[Any, Exception], Exception | None]) -> Callable[[_F], _F]:
    """A backend method decorator: an exception ``translate(self, e)`` maps to another is
    raised as that one (from ``e``), any other as it is; a generator method's too, while
    it is iterated.  Each backend says what its clients' errors become."""

    def wrap(fn: _F) -> _F:
        if getattr(getattr(fn, "__code__", None), "co_flags", 0) & _CO_GENERATOR:

            @functools.wraps(fn)
            def gen(self: Any, *args: Any, **kwargs: Any) -> Any:
                try:
                    yield from fn(self, *args, **kwargs)
                except Exception as e:
                    err = translate(self, e)
                    if err is None:
                        raise
                    raise err from e

            return gen  # type: ignore[return-value]

        @functools.wraps(fn)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except Exception as e:
                err = translate(self, e)
                if err is None:
                    raise
                raise err from e

        return call  # type: ignore[return-value]

    return wrap


def info_time(info: Mapping[str, Any]) -> float | None:
    """When an fsspec ``info``/``find(detail=True)`` entry says its file was written (epoch
    seconds), whichever name the filesystem gives it; None when it does not say."""
    import contextlib
    import datetime as _dt

    for name in ("mtime", "LastModified", "updated", "created", "last_modified", "timeCreated"):
        v = info.get(name)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, _dt.datetime):
            return (v if v.tzinfo else v.replace(tzinfo=_dt.timezone.utc)).timestamp()
        if isinstance(v, str):
            with contextlib.suppress(ValueError):
                return _dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    return None
