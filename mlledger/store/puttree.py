"""Walking a folder into the store: every file of a tree stored, its entries returned.

Small files (under the stat cache's threshold) are read whole and hashed once;
into a local store they are created by a few threads while the walk goes on
(:mod:`.smallfiles`), elsewhere they are sent in batches once the walk is done
(``create_many``: concurrent requests on S3 and GCS).  Larger files stream
through :meth:`Store.put_file`.  The manifest is the caller's to write, after
every object it lists exists.
"""

from __future__ import annotations

from collections.abc import Callable

from ..hashing import new_hasher
from . import layout
from .backends import Backend, LocalBackend
from .localfiles import read_small
from .tree import TreeEntry
from .walk import check_utf8, place_entry, walk

TYPE_CHECKING = False
if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .stored import Stored

__all__ = ["store_tree_files"]


def store_tree_files(
    backend: Backend,
    algo: str,
    root: str,
    *,
    small_max: int,
    put_file: Callable[[str], Stored],
    callback: Callback | None = None,
    concurrency: int | None = None,
) -> list[TreeEntry]:
    """Store every file under the folder ``root`` into ``backend`` (objects hashed with
    ``algo``); the tree's entries, in no set order.

    Files under ``small_max`` bytes are small; larger ones go to ``put_file``.
    ``concurrency`` threads store the small files of a local store (default:
    :func:`.smallfiles.default_workers`).
    """
    entries: list[TreeEntry] = []
    small: dict[str, bytes] = {}
    pool = None
    if isinstance(backend, LocalBackend):
        from .smallfiles import SmallFiles, default_workers

        workers = default_workers() if concurrency is None else concurrency
        pool = SmallFiles(backend, algo, workers, callback)
    try:
        for rel, full, fst in walk(root):
            check_utf8(rel, full)
            if fst is None:  # an empty folder or an inside link
                entries.append(place_entry(rel, full))
                continue
            executable = bool(fst.st_mode & 0o111)
            if fst.st_size >= small_max:
                got = put_file(full)
                entries.append(TreeEntry(rel, "file", got.digest, got.size, executable))
            elif pool is not None:
                pool.add(rel, full, fst.st_size, executable)
                continue  # the pool reports its own progress
            else:
                data = read_small(full, fst.st_size)
                h = new_hasher(algo)
                h.update(data)
                hexpart = h.hexdigest()
                small[layout.object_key(algo, hexpart)] = data
                entries.append(TreeEntry(rel, "file", f"{algo}:{hexpart}", len(data), executable))
            if callback is not None:
                callback.relative_update(1)
        if pool is not None:
            entries += pool.finish()
    finally:
        if pool is not None:
            pool.close()
    if small:
        backend.create_many(small)
    return entries
