"""A store on local disk, written with plain ``os`` calls for speed and atomicity.

A key is created exactly once through a temp file in the same folder, then
``os.link``, which fails on an existing name (fsspec's own local
``mode="create"`` checks and then writes, which is not atomic); on Linux the
temp file is an unnamed ``O_TMPFILE``.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
from collections.abc import Callable, Iterable, Iterator

from ...errors import LedgerError, NotFoundError, StoreError
from .base import Backend, store_error, translating

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is never imported at run time: Ledger() stays cheap
    from typing import IO, Any, TypeVar

    _F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["LocalBackend", "proc_fd"]


_proc_fds: dict[int, int | None] = {}


def proc_fd() -> int | None:
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

    def translate(self: LocalBackend, e: Exception) -> Exception | None:
        if not isinstance(e, OSError) or isinstance(e, LedgerError):
            return None
        return store_error(action, self.url, e)

    return translating(translate)


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

    def ensure_dir(self, d: str) -> None:
        """Create the folder ``d`` (and its parents) unless this backend already did."""
        if d not in self._dirs:
            os.makedirs(d, exist_ok=True)
            self._dirs.add(d)

    def tmp_path(self, near: str) -> str:
        """A fresh temp name in the folder of ``near`` (so link/rename stay on one device)."""
        import uuid  # here, not at import: it brings platform (opening a store is cheap)

        d = os.path.dirname(near)
        self.ensure_dir(d)
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
        proc = proc_fd() if self._tmpfile_ok else None
        if proc is not None:
            got = self._create_unnamed(final, data, proc)
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
            raise store_error("write", final, e) from e
        try:
            return self.link_into_place(tmp, final)
        except OSError as e:
            raise store_error("write", final, e) from e

    def _create_unnamed(self, final: str, data: bytes, proc_fd: int) -> bool | None:
        """Create-only write through an unnamed temp file (Linux ``O_TMPFILE``).

        The file has no name until ``linkat`` gives it its final one, which
        fails on an existing name: readers never see half a file, a killed
        writer leaves nothing behind, and there is no temp name to remove.
        Returns None where the filesystem cannot do it (then the named temp
        file path is used, here and for the rest of this store's life).
        """
        d = os.path.dirname(final)
        self.ensure_dir(d)
        try:
            fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o444)
        except OSError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                self._tmpfile_ok = False
                return None
            raise store_error("write", final, e) from e
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
            raise store_error("write", final, e) from e
        finally:
            os.close(fd)
        return True

    def write_new(self, tmpdir: str, fill: Callable[[int], str]) -> bool:
        """Create-only write of an object whose key is known only once it is written.

        ``fill(fd)`` writes the bytes into ``fd`` (open for reading and writing),
        checks them and returns their key; only then does the file get that name,
        which fails on an existing one (False: the bytes are dropped).  The file is
        unnamed until then (Linux ``O_TMPFILE`` in ``tmpdir``: nothing to remove,
        nothing left by a killed writer) or else a temp name in ``tmpdir``.  An
        ``OSError`` of ``fill`` passes unchanged: it may be the source's.
        """
        proc = proc_fd() if self._tmpfile_ok else None
        try:
            self.ensure_dir(tmpdir)
        except OSError as e:
            raise store_error("write", tmpdir, e) from e
        fd: int | None = None
        tmp: str | None = None
        if proc is not None:
            try:
                fd = os.open(tmpdir, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o444)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                    raise store_error("write", tmpdir, e) from e
                self._tmpfile_ok = False
        try:
            if fd is None:
                tmp = self.tmp_path(os.path.join(tmpdir, "x"))
                try:
                    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
                except OSError as e:
                    raise store_error("write", tmp, e) from e
            final = self._path(fill(fd))
            try:
                self.ensure_dir(os.path.dirname(final))
                if tmp is not None:
                    return self.link_into_place(tmp, final)
                os.link(str(fd), final, src_dir_fd=proc, follow_symlinks=True)
            except FileExistsError:
                return False
            except OSError as e:
                raise store_error("write", final, e) from e
            return True
        finally:
            if fd is not None:
                os.close(fd)
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

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
    def list_details(self, prefix: str) -> Iterator[tuple[str, float | None, int]]:
        for key in self.list(prefix):
            try:
                st = os.stat(self._path(key))
            except FileNotFoundError:
                continue  # deleted since it was listed
            yield key, st.st_mtime, st.st_size

    @_local_errors("list")
    def list_dir(self, prefix: str) -> builtins.list[str]:
        try:
            return [n for n in os.listdir(self._path(prefix)) if not n.startswith(".tmp-")]
        except (FileNotFoundError, NotADirectoryError):
            return []
