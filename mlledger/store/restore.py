"""``Store.restore``: write a stored file or tree to a local path, verified, and move it
into place only once every byte checked out."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .._settings import transfers
from ..errors import ExistsError, IntegrityError, LedgerError, NotFoundError
from ..hashing import digest_file
from .backends import LocalBackend
from .localfiles import copy_hashed, os_error
from .remote_restore import restore_remote
from .transfers import DEFAULT_LIMIT, concurrent
from .tree import Tree

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .backends import Backend

__all__ = ["Restorable", "restore"]


class Restorable(Protocol):
    """What restoring needs of a :class:`~mlledger.store.Store` (named here, not
    imported: the Store imports this module)."""

    url: str
    algorithm: str
    backend: Backend

    def has(self, digest: str) -> bool: ...

    def key(self, digest: str) -> str: ...

    def manifest_bytes(self, digest: str) -> bytes | None: ...


def restore(
    store: Restorable,
    digest: str,
    dest: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    callback: Callback | None = None,
    concurrency: int | None = None,
) -> Path:
    """Write the file or tree ``digest`` to ``dest``, byte-identical and verified.

    Nothing appears at ``dest`` unless every byte checked out; an existing
    ``dest`` is refused unless ``overwrite=True``.  From S3, GCS or Azure, a tree's
    files download ``concurrency`` at a time (default: ``MLLEDGER_TRANSFERS``, else 16).
    """
    dest_p = os.path.abspath(os.fspath(dest))
    remote = concurrent(store.backend)
    limit = concurrency if concurrency is not None else transfers(DEFAULT_LIMIT)
    if limit < 1:
        raise ValueError(f"concurrency must be at least 1, not {limit}")
    # from a remote store the one GET of the object says whether it is there
    if not remote and not store.has(digest):
        raise NotFoundError(f"object {digest} is not in the store at {store.url}")
    if os.path.lexists(dest_p) and not overwrite:
        raise ExistsError(
            f"{os.fspath(dest)!r} already exists; choose another destination or pass "
            "overwrite=True (--force) to replace it"
        )
    parent = os.path.dirname(dest_p)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise os_error(parent, e, "write") from e
    tmp = os.path.join(parent, f".{os.path.basename(dest_p)}.mlledger-{uuid.uuid4().hex[:12]}")
    try:
        manifest = None if remote else store.manifest_bytes(digest)
        if remote:
            restore_remote(
                store.backend, store.algorithm, store.key, digest, tmp,
                limit=limit, callback=callback,
            )
        elif manifest is not None:
            tree = Tree.from_bytes(manifest, store.algorithm)
            os.mkdir(tmp)
            _restore_tree(store, tree, tmp, callback)
        else:
            _restore_file(store, digest, tmp, callback)
        _move_into_place(tmp, dest_p, overwrite)
    except OSError as e:
        _remove(tmp)
        if isinstance(e, LedgerError):
            raise
        raise os_error(dest_p, e, "write") from e
    except BaseException:
        _remove(tmp)
        raise
    return Path(dest_p)


def _missing(store: Restorable, digest: str) -> NotFoundError:
    return NotFoundError(
        f"object {digest} is not in the store at {store.url} (a tree lists it, but it is "
        "gone); nothing was written; run 'mlledger verify' and store the file again"
    )


def _restore_file(store: Restorable, digest: str, tmp: str, callback: Callback | None) -> None:
    key = store.key(digest)
    if isinstance(store.backend, LocalBackend):
        src = store.backend.local_path(key)
        try:
            fin = os.open(src, os.O_RDONLY)
        except FileNotFoundError:
            raise _missing(store, digest) from None
        try:
            if callback is not None:
                callback.set_size(os.fstat(fin).st_size)
            fout = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                hexpart = copy_hashed(fin, fout, store.algorithm, callback)
            finally:
                os.close(fout)
        finally:
            os.close(fin)
        got = f"{store.algorithm}:{hexpart}"
    else:
        if callback is not None:
            with contextlib.suppress(Exception):
                callback.set_size(store.backend.size(key))
        try:
            store.backend.get_local_file(key, tmp, callback)
        except NotFoundError:
            raise _missing(store, digest) from None
        got = digest_file(tmp, store.algorithm)[0]
    if got != digest:
        raise IntegrityError(
            f"object {digest} in {store.url} is corrupt (its bytes hash to {got}); "
            "nothing was written; restore it from another copy or run 'mlledger verify'"
        )


def _restore_tree(store: Restorable, tree: Tree, tmp: str, callback: Callback | None) -> None:
    if callback is not None:
        callback.set_size(len(tree.entries))
    for e in tree.entries:
        target = os.path.join(tmp, *e.path.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if e.kind == "dir":
            os.makedirs(target, exist_ok=True)
        elif e.kind == "link":
            assert e.link is not None
            os.symlink(e.link, target)
        else:
            assert e.digest is not None
            _restore_file(store, e.digest, target, None)
            if e.executable:
                os.chmod(target, os.stat(target).st_mode | 0o111)
        if callback is not None:
            callback.relative_update(1)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _move_into_place(tmp: str, dest: str, overwrite: bool) -> None:
    if not overwrite:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            if os.path.lexists(dest):
                raise ExistsError(f"{dest!r} appeared while restoring; nothing was overwritten")
            os.rename(tmp, dest)
        else:
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise ExistsError(
                    f"{dest!r} appeared while restoring; nothing was overwritten"
                ) from None
            os.unlink(tmp)
        return
    if os.path.isdir(dest) and not os.path.islink(dest):
        old = f"{tmp}.old"
        os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    elif os.path.isdir(tmp):
        if os.path.lexists(dest):
            os.unlink(dest)
        os.rename(tmp, dest)
    else:
        os.replace(tmp, dest)
