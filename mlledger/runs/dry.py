"""What a run that records nothing computes: digests, with nothing kept.

``NullBackend`` takes every write and keeps nothing (the store engineer adds it as
``mlledger.store.backends.NullBackend``; this copy goes then)."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

from .._fmt import display_path
from ..capture.values import encode_redacted
from ..errors import LedgerError, NotFoundError, UsageError
from ..hashing import digest_bytes
from ..records import Artifact
from ..store import Store
from ..store.backends import Backend
from .writer import RunWriter

__all__ = ["NullBackend", "dry_put_path", "dry_put_value"]

F = TypeVar("F", bound=Callable[..., Any])


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


def _dry_store(store: Store) -> Store:
    """A copy of ``store`` that digests files and folders exactly as it does and keeps nothing."""
    dry = copy.copy(store)
    dry.backend = NullBackend()
    return dry


def dry_put_path(path: str, writer: RunWriter) -> Artifact:
    """The Artifact ``writer.put_path(path)`` would give, without storing anything."""
    try:
        got = _dry_store(writer.store).put(path)
    except OSError as e:
        if isinstance(e, LedgerError):
            raise
        raise UsageError(f"{path!r} cannot be read: {e}") from e
    return Artifact(
        got.digest,
        got.size,
        got.kind,
        path=display_path(path),
        files=got.files if got.kind == "tree" else None,
    )


def dry_put_value(value: Any, writer: RunWriter) -> Artifact | None:
    """The Artifact ``writer.put_value(value)`` would give, without storing anything."""
    enc = encode_redacted(value)
    if enc is None:
        return None
    return Artifact(
        digest_bytes(enc.data, writer.store.algorithm), len(enc.data), "value", format=enc.format
    )
