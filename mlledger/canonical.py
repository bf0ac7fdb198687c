"""Canonical JSON: the one byte form of every record mlledger hashes or stores."""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is never imported at run time: Ledger() stays cheap
    from typing import Any

__all__ = ["dumps", "loads"]

_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
)


def dumps(value: Any) -> bytes:
    """Serialize ``value`` with sorted keys and no spaces, as UTF-8 bytes."""
    return _encoder.encode(value).encode("utf-8")


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes or text."""
    return json.loads(data)
