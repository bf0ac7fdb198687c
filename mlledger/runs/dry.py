"""What a run that records nothing computes: digests, with nothing kept (through the
store's ``NullBackend``, which takes every write and keeps nothing)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from .._fmt import display_path
from ..capture.values import encode_redacted
from ..errors import LedgerError, UsageError
from ..hashing import digest_bytes
from ..records import Artifact
from ..store import Store
from ..store.backends import NullBackend
from .writer import RunWriter

__all__ = ["dry_put_path", "dry_put_value"]

F = TypeVar("F", bound=Callable[..., Any])


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
