"""One small interface over every filesystem a store can live on.

A store is an fsspec filesystem plus a root.  What differs between backends
is only *how* a key is created exactly once (principle 3) and how many keys
move at once; that lives here, in one table keyed by protocol.

- local disk: plain ``os`` calls (a temp file in the same folder, then
  ``os.link``, which fails on an existing name); fsspec's own local
  ``mode="create"`` checks and then writes, which is not atomic.
- memory: a process-wide lock around check-and-write (the memory filesystem
  lives in one process).
- S3 / GCS / Azure: the server's own precondition (``If-None-Match: *``,
  ``ifGenerationMatch=0``, ``overwrite=False``) through ``mode="create"``.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import errno
import functools
import inspect
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from ..errors import (
    AccessError,
    LedgerError,
    MissingExtraError,
    NotFoundError,
    StoreError,
    UsageError,
)
from ..hashing import CHUNK

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
    from fsspec.callbacks import Callback

__all__ = ["Backend", "FsspecBackend", "LocalBackend", "open_backend"]

#: protocol -> the extra that installs it
EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}

#: protocols whose filesystems take ``use_listings_cache`` (their listing cache is turned
#: off by default; every listing is also refreshed, see ``FsspecBackend._fresh``)
NO_LISTINGS_CACHE = frozenset({"s3", "s3a", "gs", "gcs"})

#: how many requests a batched call keeps in flight on an async filesystem
BATCH = 64

_F = TypeVar("_F", bound=Callable[..., Any])

_memory_lock = threading.Lock()


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

    def local_path(self, key: str) -> str | None:
        """The key's path on local disk, when the store is local."""
        return None


# ---------------------------------------------------------------------------
# local disk


_proc_fds: dict[int, int | None] = {}


def _proc_fd() -> int | None:
    """A directory fd of this process's ``/proc/<pid>/fd``, for linking ``O_TMPFILE`` files.

    Opened per process id: after a fork, an inherited ``/proc/self/fd`` fd
    would still name the parent's file table, and link the parent's file.
    None off Linux.
    """
    pid = os.getpid()
    if pid in _proc_fds:
        return _proc_fds[pid]
    fd: int | None = None
    if hasattr(os, "O_TMPFILE"):
        try:
            fd = os.open(f"/proc/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = None
    _proc_fds.clear()  # a parent's entry is of no use in this process
    _proc_fds[pid] = fd
    return fd


def _local_errors(action: str) -> Callable[[_F], _F]:
    """A LocalBackend method whose raw ``OSError`` becomes a :class:`StoreError` naming the
    store and what to do (a read-only disk, a name too long, permissions): callers of a
    backend see mlledger's errors only.  Mlledger's own errors pass through."""

    def wrap(fn: _F) -> _F:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen(self: LocalBackend, *args: Any, **kwargs: Any) -> Any:
                try:
                    yield from fn(self, *args, **kwargs)
                except OSError as e:
                    if isinstance(e, LedgerError):
                        raise
                    raise _store_error(action, self.url, e) from e

            return cast(_F, gen)

        @functools.wraps(fn)
        def call(self: LocalBackend, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except OSError as e:
                if isinstance(e, LedgerError):
                    raise
                raise _store_error(action, self.url, e) from e

        return cast(_F, call)

    return wrap


class LocalBackend(Backend):
    """A store on local disk, written with plain ``os`` calls for speed and atomicity."""

    protocol = "file"

    def __init__(self, root: str, *, create: bool = True) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))
        self.url = self.root
        self._dirs: set[str] = set()
        self._tmpfile_ok = True
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise StoreError(
                f"store root {self.root!r} is a file, not a folder: "
                "give a folder path (it is created if missing)"
            )
        if not create:
            return
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the store folder {self.root!r}: {e.strerror}; "
                "check the path and its permissions"
            ) from e

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key)

    def local_path(self, key: str) -> str:
        return self._path(key)

    def _ensure_dir(self, d: str) -> None:
        if d not in self._dirs:
            os.makedirs(d, exist_ok=True)
            self._dirs.add(d)

    def tmp_path(self, near: str) -> str:
        """A fresh temp name in the folder of ``near`` (so link/rename stay on one device)."""
        d = os.path.dirname(near)
        self._ensure_dir(d)
        return os.path.join(d, f".tmp-{uuid.uuid4().hex}")

    def link_into_place(self, tmp: str, final: str) -> bool:
        """Give the finished temp file its final name unless taken; always removes ``tmp``."""
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # no hard links here: O_EXCL reservation is not atomic with content, so
            # fall back to rename after an existence check (content-addressed keys only
            # need "never a partial object"; equal bytes may win twice)
            if os.path.exists(final):
                return False
            os.rename(tmp, final)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return True

    @_local_errors("write")
    def create(self, key: str, data: bytes) -> bool:
        final = self._path(key)
        proc_fd = _proc_fd() if self._tmpfile_ok else None
        if proc_fd is not None:
            got = self._create_unnamed(final, data, proc_fd)
            if got is not None:
                return got
        tmp = self.tmp_path(final)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            finally:
                os.close(fd)
        except OSError as e:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise _store_error("write", final, e) from e
        try:
            return self.link_into_place(tmp, final)
        except OSError as e:
            raise _store_error("write", final, e) from e

    def _create_unnamed(self, final: str, data: bytes, proc_fd: int) -> bool | None:
        """Create-only write through an unnamed temp file (Linux ``O_TMPFILE``).

        The file has no name until ``linkat`` gives it its final one, which
        fails on an existing name: readers never see half a file, a killed
        writer leaves nothing behind, and there is no temp name to remove.
        Returns None where the filesystem cannot do it (then the named temp
        file path is used, here and for the rest of this store's life).
        """
        d = os.path.dirname(final)
        self._ensure_dir(d)
        try:
            fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o444)
        except OSError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                self._tmpfile_ok = False
                return None
            raise _store_error("write", final, e) from e
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.link(str(fd), final, src_dir_fd=proc_fd, follow_symlinks=True)
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.EXDEV, errno.EPERM, errno.ENOENT, errno.EINVAL):
                self._tmpfile_ok = False
                return None
            raise _store_error("write", final, e) from e
        finally:
            os.close(fd)
        return True

    @_local_errors("write")
    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes | memoryview],
        check: Callable[[], None],
    ) -> bool:
        final = self._path(key)
        tmp = self.tmp_path(final)
        try:
            with open(tmp, "xb", buffering=0) as f:
                for chunk in chunks:
                    f.write(chunk)
            check()
            os.chmod(tmp, 0o444)
            return self.link_into_place(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    @_local_errors("delete from")
    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    @_local_errors("read")
    def read(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no key {key!r} in the store at {self.url}") from None

    @_local_errors("read")
    def open_read(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no key {key!r} in the store at {self.url}") from None

    @_local_errors("read")
    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    @_local_errors("read")
    def size(self, key: str) -> int:
        try:
            return os.stat(self._path(key)).st_size
        except FileNotFoundError:
            raise NotFoundError(f"no key {key!r} in the store at {self.url}") from None

    @_local_errors("list")
    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            for name in files:
                if not name.startswith(".tmp-"):
                    yield f"{rel}/{name}"

    @_local_errors("list")
    def list_dir(self, prefix: str) -> builtins.list[str]:
        try:
            return [n for n in os.listdir(self._path(prefix)) if not n.startswith(".tmp-")]
        except (FileNotFoundError, NotADirectoryError):
            return []


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


def _client_errors(fn: _F) -> _F:
    """A FsspecBackend method whose cloud-client exceptions become :func:`remote_error`'s
    (a generator method's too, raised while it is iterated)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(self: FsspecBackend, *args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(self, *args, **kwargs)
            except Exception as e:
                err = remote_error(self.url, e)
                if err is None:
                    raise
                raise err from e

        return cast(_F, gen)

    @functools.wraps(fn)
    def call(self: FsspecBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except Exception as e:
            err = remote_error(self.url, e)
            if err is None:
                raise
            raise err from e

    return cast(_F, call)


#: errors that mean the store's disk (or quota, or file size limit) has no room
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _store_error(action: str, where: str, e: OSError) -> StoreError:
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


# ---------------------------------------------------------------------------
# any fsspec filesystem


class FsspecBackend(Backend):
    """A store on any fsspec filesystem (memory, S3, GCS, Azure, ...)."""

    def __init__(self, fs: AbstractFileSystem, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        protocol = fs.protocol
        self.protocol = protocol if isinstance(protocol, str) else protocol[0]
        self.is_memory = self.protocol == "memory"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _create_one(self, path: str, data: bytes) -> bool:
        if self.is_memory:
            with _memory_lock:
                # fs.exists() scans every key of the memory filesystem: look up directly
                stripped = self.fs._strip_protocol(path)
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
            return self._create_one(self._path(key), data)
        except (FileNotFoundError, PermissionError, OSError) as e:
            if isinstance(e, FileExistsError):
                return False
            raise _store_error("write", self._path(key), e) from e

    @_client_errors
    def create_many(self, items: dict[str, bytes]) -> dict[str, bool]:
        if not items:
            return {}
        if not getattr(self.fs, "async_impl", False):
            return super().create_many(items)
        from fsspec.asyn import _run_coros_in_chunks, sync

        keys = list(items)
        coros = [self.fs._pipe_file(self._path(k), items[k], mode="create") for k in keys]
        results = sync(
            self.fs.loop, _run_coros_in_chunks, coros, batch_size=BATCH, return_exceptions=True
        )
        out: dict[str, bool] = {}
        for k, r in zip(keys, results, strict=True):
            if isinstance(r, FileExistsError):
                out[k] = False
            elif isinstance(r, BaseException):
                raise _store_error("write", self._path(k), _as_oserror(r)) from r
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
        path = self._path(key)
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
            self.fs.put_file(path, self._path(key), mode="create", **kwargs)
        except FileExistsError:
            return False
        return True

    @_client_errors
    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    @_client_errors
    def read(self, key: str) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            raise NotFoundError(f"no key {key!r} in the store at {self.url}") from None
        return data

    @_client_errors
    def read_many(self, keys: builtins.list[str]) -> dict[str, bytes | None]:
        if not keys:
            return {}
        paths = [self._path(k) for k in keys]
        got = self.fs.cat(paths, on_error="return")
        if not isinstance(got, dict):  # one path: fsspec returns the bytes
            got = {paths[0]: got}
        out: dict[str, bytes | None] = {}
        for k, p in zip(keys, paths, strict=True):
            v = got.get(p)
            if v is None:
                v = got.get(self.fs._strip_protocol(p))
            if isinstance(v, FileNotFoundError) or v is None:
                out[k] = None
            elif isinstance(v, BaseException):
                raise _store_error("read", p, _as_oserror(v)) from v
            else:
                out[k] = v
        return out

    @_client_errors
    def open_read(self, key: str) -> IO[bytes]:
        try:
            f: IO[bytes] = self.fs.open(self._path(key), "rb")
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
            self.fs.get_file(self._path(key), path, **kwargs)
        except FileNotFoundError:
            raise NotFoundError(f"no key {key!r} in the store at {self.url}") from None

    @_client_errors
    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    @_client_errors
    def size(self, key: str) -> int:
        try:
            return int(self.fs.size(self._path(key)))
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
        base = self._path(prefix).rstrip("/")
        self._fresh(base)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return
        strip = len(self.fs._strip_protocol(self.root)) + 1
        for p in found:
            yield self.fs._strip_protocol(p)[strip:]

    @_client_errors
    def list_dir(self, prefix: str) -> builtins.list[str]:
        path = self._path(prefix).rstrip("/")
        self._fresh(path)
        try:
            names = self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [n.rstrip("/").rsplit("/", 1)[-1] for n in names]


def _as_oserror(e: BaseException) -> OSError:
    return e if isinstance(e, OSError) else OSError(str(e))


# ---------------------------------------------------------------------------


def open_backend(url: str, storage_options: dict[str, Any], *, create: bool = True) -> Backend:
    """The backend for a store URL: a plain path, ``file://``, ``memory://``, ``s3://``..."""
    if "://" not in url or url.startswith(("file://", "local://")):
        path = url.split("://", 1)[1] if "://" in url else url
        return LocalBackend(path, create=create)
    protocol = url.split("://", 1)[0]
    import fsspec
    from fsspec.registry import known_implementations

    if protocol not in known_implementations and protocol not in fsspec.available_protocols():
        raise StoreError(
            f"unknown protocol {protocol!r} in store URL {url!r}: use a local path, "
            "memory://, s3://, gs:// or az:// (or any protocol fsspec knows)"
        )
    options = dict(storage_options)
    if protocol in NO_LISTINGS_CACHE:
        # a cached listing hides what other processes wrote (a stale ref number, new runs
        # unseen, a new key reported missing): off unless the caller asks for it
        options.setdefault("use_listings_cache", False)
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ImportError as e:
        extra = EXTRAS.get(protocol)
        if extra:
            raise MissingExtraError(
                f'the {protocol}:// store needs an extra package: pip install "mlledger[{extra}]"'
            ) from e
        raise MissingExtraError(
            f"the {protocol}:// store needs a package that is not installed ({e}); "
            "install the fsspec implementation for it"
        ) from e
    except (TypeError, ValueError) as e:
        raise StoreError(
            f"cannot open store {url!r}: {e}; check the URL and storage options"
        ) from e
    return FsspecBackend(fs, root, url)
