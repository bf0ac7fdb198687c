"""``Store.verify``: rehash every object, find trees that list objects gone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import attrs

from ..errors import IntegrityError, LedgerError, NotFoundError
from ..hashing import CHUNK
from .tree import MAGIC, Tree, is_manifest

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .verified import VerifiedReader

__all__ = ["Verifiable", "VerifyReport", "verify"]


class Verifiable(Protocol):
    """What verifying needs of a :class:`~mlledger.store.Store` (named here, not
    imported: the Store imports this module)."""

    algorithm: str

    def iter_objects(self) -> Iterator[str]: ...

    def open(self, digest: str) -> VerifiedReader: ...

    def has(self, digest: str) -> bool: ...

    def chunks_of(self, digest: str) -> tuple[str, ...] | None: ...


@attrs.frozen
class VerifyReport:
    """The result of :meth:`Store.verify`.  ``ok`` is true when nothing is wrong."""

    checked: int
    corrupt: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    dangling: tuple[tuple[str, str], ...] = ()  # (referrer, missing digest)
    problems: tuple[str, ...] = ()
    #: damage to the audit trail: run, ref and policy entries edited, removed or replaced
    trail: tuple[str, ...] = ()
    #: entries written before the audit chain (no seal): not damage, but unvouched for
    unchained: int = 0
    damaged: tuple[tuple[str, str], ...] = ()  # (run entry key, what is wrong)

    @property
    def ok(self) -> bool:
        return not (
            self.corrupt
            or self.missing
            or self.dangling
            or self.problems
            or self.trail
            or self.damaged
        )


def verify(store: Verifiable, *, callback: Callback | None = None) -> VerifyReport:
    """Rehash every object of ``store``; report corrupt objects and trees with missing entries."""
    digests = list(store.iter_objects())
    present = set(digests)
    corrupt: list[str] = []
    dangling: list[tuple[str, str]] = []
    problems: list[str] = []
    if callback is not None:
        callback.set_size(len(digests))
    for d in digests:
        try:
            _verify_one(store, d, present, corrupt=corrupt, dangling=dangling, problems=problems)
        finally:
            if callback is not None:
                callback.relative_update(1)
    return VerifyReport(
        checked=len(digests),
        corrupt=tuple(sorted(corrupt)),
        missing=tuple(sorted({m for _, m in dangling})),
        dangling=tuple(sorted(dangling)),
        problems=tuple(problems),
    )


def _verify_one(
    store: Verifiable,
    d: str,
    present: set[str],
    *,
    corrupt: list[str],
    dangling: list[tuple[str, str]],
    problems: list[str],
) -> None:
    try:
        chunks = store.chunks_of(d)
    except IntegrityError as e:  # a damaged chunk list
        problems.append(str(e))
        corrupt.append(d)
        return
    if chunks is not None:  # a file stored as chunks: every chunk there, then the whole
        gone = [c for c in dict.fromkeys(chunks) if c not in present and not store.has(c)]
        if gone:
            dangling.extend((d, c) for c in gone)
            return
    try:
        with store.open(d) as r:
            head = r.read(len(MAGIC))
            if head == MAGIC:
                body = head + r.read()
            else:
                body = b""
                while r.read(CHUNK):
                    pass
    except IntegrityError:
        corrupt.append(d)
        return
    except NotFoundError:
        return  # deleted meanwhile
    if not is_manifest(body):
        return  # a file (possibly one that starts like a manifest)
    try:
        tree = Tree.from_bytes(body, store.algorithm)
    except LedgerError as e:
        problems.append(f"tree {d}: {e}")
        return
    for entry in tree.files:
        assert entry.digest is not None
        if entry.digest not in present and not store.has(entry.digest):
            dangling.append((d, entry.digest))
