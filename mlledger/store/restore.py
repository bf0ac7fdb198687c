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
from ..hashing import CHUNK, digest_file
from .backends import LocalBackend
from .chunklist import read_chunk_list
from .chunkread import restore_chunks_local
from .localfiles import copy_hashed, os_error
from .remote_restore import restore_remote
from .transfers import DEFAULT_LIMIT, concurrent
from .tree import Tree

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .backends import Backend
    from .verified import VerifiedReader

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

    def open(self, digest: str) -> VerifiedReader: ...


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
            _restore_from_remote(store, digest, tmp, limit, callback)
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


def _restore_from_remote(
    store: Restorable, digest: str, tmp: str, limit: int, callback: Callback | None
) -> None:
    """Fill ``tmp`` from a store on S3, GCS or Azure: one request for the object; a file
    stored as chunks (none under its own key) is reassembled from them."""

    def chunked(d: str, path: str) -> bool:
        if read_chunk_list(store.backend, d, store.algorithm) is None:
            return False
        _restore_chunked(store, d, path, None)
        return True

    try:
        restore_remote(
            store.backend, store.algorithm, store.key, digest, tmp,
            limit=limit, callback=callback, chunked=chunked,
        )
    except NotFoundError:
        if read_chunk_list(store.backend, digest, store.algorithm) is None:
            raise
        _remove(tmp)
        _restore_chunked(store, digest, tmp, callback)


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
            _restore_chunked(store, digest, tmp, callback)
            return
        try:
            if callback is not None:
                callback.set_size(os.fstat(fin).st_size)
            fout = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
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
            _restore_chunked(store, digest, tmp, callback)
            return
        got = digest_file(tmp, store.algorithm)[0]
    if got != digest:
        raise IntegrityError(
            f"object {digest} in {store.url} is corrupt (its bytes hash to {got}); "
            "nothing was written; restore it from another copy or run 'mlledger verify'"
        )


def _restore_chunked(store: Restorable, digest: str, tmp: str, callback: Callback | None) -> None:
    """Reassemble a file stored as chunks (:mod:`.chunked`) into ``tmp``: every chunk and
    then the whole checked, or IntegrityError (the caller removes ``tmp``)."""
    chunks = read_chunk_list(store.backend, digest, store.algorithm)
    if chunks is None:
        raise _missing(store, digest)
    if callback is not None:
        callback.set_size(chunks.size)
    if isinstance(store.backend, LocalBackend):
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        try:

            def missing(d: str) -> NotFoundError:
                return _missing(store, d)

            hexpart = restore_chunks_local(
                store.backend, chunks, store.algorithm, fd, missing=missing, callback=callback
            )
        finally:
            os.close(fd)
        got = f"{store.algorithm}:{hexpart}"
    else:
        try:
            with store.open(digest) as r, open(tmp, "xb") as out:  # chunks checked, then whole
                while data := r.read(CHUNK):
                    out.write(data)
                    if callback is not None:
                        callback.relative_update(len(data))
        except NotFoundError:
            raise _missing(store, digest) from None
        got = digest
    if got != digest:
        raise IntegrityError(
            f"object {digest} in {store.url} is corrupt (its chunks hash to {got}); "
            "nothing was written; run 'mlledger verify' and store the file again"
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
