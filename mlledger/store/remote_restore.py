"""Restoring from a store on an async filesystem (S3, GCS, Azure): one request for the
object asked for, then a tree's files concurrently (:mod:`.transfers`), each verified
as it streams in.

:func:`.restore.restore` picks this path and owns the temp place and the final move;
this module only fills the temp place.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from .chunked import CHUNKED_MIN
from .transfers import Download, download, download_many
from .tree import MAGIC, Tree, is_manifest

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .backends import Backend

__all__ = ["restore_remote"]


class _Source:
    """Where the objects come from: the store's backend, hash and key naming."""

    def __init__(self, backend: Backend, algorithm: str, key: Callable[[str], str]) -> None:
        self.backend = backend
        self.algorithm = algorithm
        self.key = key


def restore_remote(
    backend: Backend,
    algorithm: str,
    key: Callable[[str], str],
    digest: str,
    tmp: str,
    *,
    limit: int,
    callback: Callback | None,
    chunked: Callable[[str, str], bool] | None = None,
) -> None:
    """Write the file or tree ``digest`` at the temp path ``tmp`` (which must not exist),
    from ``backend`` where ``key(digest)`` names each object.

    ``chunked(digest, path)`` writes a large file of a tree stored as chunks
    (:mod:`.chunked`) at ``path`` and says True, or False when it is stored whole.

    The object is fetched once: a file lands at ``tmp`` as it streams (``callback``
    counts its bytes); a tree manifest is recognised by its first bytes, then its
    files come ``limit`` at a time (``callback`` counts files).
    """
    store = _Source(backend, algorithm, key)
    head = download(store.backend, Download(store.key(digest), digest, tmp), store.algorithm,
                    callback)
    if not head.startswith(MAGIC):
        return
    with open(tmp, "rb") as f:
        data = f.read()
    if not is_manifest(data):
        return  # a file that merely starts like a manifest
    tree = Tree.from_bytes(data, store.algorithm)
    os.unlink(tmp)
    os.mkdir(tmp)
    _restore_tree(store, tree, tmp, limit, callback, chunked=chunked)


def _restore_tree(
    store: _Source,
    tree: Tree,
    tmp: str,
    limit: int,
    callback: Callback | None,
    *,
    chunked: Callable[[str, str], bool] | None,
) -> None:
    if callback is not None:
        callback.set_size(len(tree.entries))
        callback.absolute_update(0)

    def progress(_: object = None) -> None:
        if callback is not None:
            callback.relative_update(1)

    jobs: list[Download] = []
    first: dict[str, str] = {}  # digest -> the path its one download lands at
    copies: list[tuple[str, str]] = []
    links: list[tuple[str, str]] = []
    executables: list[str] = []
    for e in tree.entries:
        target = os.path.join(tmp, *e.path.split("/"))
        if e.kind == "dir":
            os.makedirs(target, exist_ok=True)
            progress()
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if e.kind == "link":
            assert e.link is not None
            links.append((e.link, target))
            continue
        assert e.digest is not None
        if e.digest in first:
            copies.append((first[e.digest], target))
        elif chunked is not None and e.size >= CHUNKED_MIN and chunked(e.digest, target):
            first[e.digest] = target
            progress()
        else:
            first[e.digest] = target
            jobs.append(Download(store.key(e.digest), e.digest, target, e.size))
        if e.executable:
            executables.append(target)
    download_many(store.backend, jobs, store.algorithm, limit, done=progress)
    for src, target in copies:  # the same bytes under several names: fetched once
        shutil.copyfile(src, target)
        progress()
    for link, target in links:
        os.symlink(link, target)
        progress()
    for target in executables:
        os.chmod(target, os.stat(target).st_mode | 0o111)
