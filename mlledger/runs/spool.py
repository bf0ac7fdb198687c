"""The local spool: what the store refused, kept on this machine until it accepts writes.

The rule that keeps the shared store sound: **nothing is published before what
it refers to.**

- While the spool holds anything, every entry a reader follows to objects or to
  other entries (a run's start, metric chunks, end, a short run's one entry)
  goes to the spool too, even when the store would take it: it may refer to an
  object that is only in the spool.  Heartbeats and pins name nothing a reader
  follows, so they still go to the store (other machines keep seeing the run
  alive, and gc keeps what it uses).
- :func:`push` writes every spooled object first, then the entries in the
  order they were written (:func:`entry_order`); the first refusal stops it,
  so the store never holds an entry whose objects are still only here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._settings import spool_dir
from ..errors import IntegrityError
from ..ids import run_id_of_entry
from ..store.layout import TMP

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["entry_order", "push", "spool_dir"]

#: where in a run's folder an entry comes: start first, end last
_RANK = {"start.json": 0, "end.json": 2}


def entry_order(key: str) -> tuple[int, str, int, str]:
    """The sort key that pushes spooled entries in the order they were written.

    Runs oldest first (ids are time-sortable): each run's start, then its
    metric chunks, pins and heartbeats (by name), then its end; a short run's
    one entry stands alone.  Refs and anything else come after every run.
    """
    parts = key.split("/")
    if parts[0] == "runs" and len(parts) >= 5:
        rid = run_id_of_entry(parts[4])
        if rid is not None:
            if len(parts) == 5:  # runs/<y>/<m>/<d>/<id>.json: the whole record
                return (0, rid, 2, "")
            name = "/".join(parts[5:])
            return (0, rid, _RANK.get(name, 1), name)
    return (1, key, 0, "")


def push(
    store: Store,
    spool: Store,
    mark: Callable[[list[str]], None] | None = None,
    before: Callable[[list[str]], None] | None = None,
) -> int:
    """Move everything in ``spool`` to ``store``: objects, then entries in order.

    Returns how many keys moved.  Raises on the first refusal (a LedgerError or
    OSError); what moved so far is a sound prefix, the rest stays in the spool.
    ``mark`` is given the entry keys pushed, before they leave the spool (the late-run
    markers of days catalogs may have sealed: a push cut short pushes and marks again);
    ``before`` is given them before the first is pushed (see ``late.LateMarks.before``:
    when it raises, no entry is pushed).
    """
    moved = 0
    # files spooled as chunk lists first: the chunks and earlier versions they name are
    # still there to reassemble them from (a file stored whole may have a list too)
    chunked = [d for d in spool.iter_chunked() if spool.chunks_of(d) is not None]
    for digest in [*chunked, *(d for d in spool.iter_objects() if d not in set(chunked))]:
        if digest in chunked:
            if _push_chunked(store, spool, digest) != digest:
                raise IntegrityError(f"spooled file {digest} in {spool.url} did not push whole")
            spool.delete(digest)
            moved += 1
            continue
        path = spool.backend.local_path(spool.key(digest))
        assert path is not None
        if store.put_file(path).digest != digest:  # streamed, any size
            raise IntegrityError(
                f"spooled object {digest} in {spool.url} is corrupt; it was not pushed"
            )
        spool.delete(digest)
        moved += 1
    keys = [*spool.backend.list("runs"), *spool.backend.list("refs")]
    pushed: list[str] = []
    if before is not None:
        before(keys)
    for key in sorted(keys, key=entry_order):
        # an entry pushed before a refusal is already in the store: that is a success
        store.create_entry(key, spool.read_entry(key))
        pushed.append(key)
        moved += 1
    if mark is not None:
        mark(pushed)
    for key in pushed:
        spool.backend.delete(key)
    return moved


def _push_chunked(store: Store, spool: Store, digest: str) -> str:
    """Push a file the spool holds as chunks: reassembled (verified) in a temp folder of
    the spool, then stored like any file."""
    root = spool.backend.local_path(TMP)
    assert root is not None
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as d:
        return store.put_file(spool.restore(digest, os.path.join(d, "file"))).digest
