"""Seals and links: what makes the audit trail tamper-evident.

Every entry mlledger appends to the audit trail (a run's start, metrics and end
entries, each move of a ref or of the policy) is JSON carrying:

- ``seal``: the digest of the entry's canonical JSON without the seal, so an
  entry edited by hand (or by bit rot) no longer matches itself;
- links to the entries before it: a ref or policy entry names the digest of
  the previous entry's bytes (``prev``), a run's end entry the digests of its
  start entry and metrics chunks, a ref entry that names a run the digest of
  that run's final entry (``run_entry``).

So changing, removing or reordering an entry breaks a seal or a link that
``verify`` checks, unless every later entry is forged too: a chain is
evidence relative to its newest entry (as in git or Certificate
Transparency, keep the newest digest somewhere else to pin it).  Digests use
the store's algorithm (``sha256`` for adversarial settings).  Entries written
before the chain existed have no seal: they are *unchained*, not damaged.
"""

from __future__ import annotations

from typing import Any

from .. import canonical
from ..hashing import new_hasher

__all__ = ["SEAL", "entry_digest", "seal", "seal_bytes", "seal_ok"]

SEAL = "seal"


def entry_digest(raw: bytes, algorithm: str) -> str:
    """The digest of an entry's bytes as stored: what a later entry links to."""
    h = new_hasher(algorithm)
    h.update(raw)
    return f"{algorithm}:{h.hexdigest()}"


def seal_bytes(body: bytes, algorithm: str) -> bytes:
    """``body`` (canonical JSON of an object without ``seal``) with its seal added.

    The seal goes in as the last member, a splice instead of a second encoding
    (entries are written in tight loops); readers parse JSON, key order is free.
    """
    if not body.endswith(b"}") or body == b"{}":
        raise ValueError("a sealed entry is a non-empty JSON object")
    tail = f',"{SEAL}":"{entry_digest(body, algorithm)}"}}'.encode()
    return body[:-1] + tail


def seal(doc: dict[str, Any], algorithm: str) -> bytes:
    """The bytes of ``doc`` sealed (``doc`` holds no seal)."""
    return seal_bytes(canonical.dumps(doc), algorithm)


def seal_ok(doc: dict[str, Any], algorithm: str) -> bool:
    """Whether a parsed sealed entry still matches its seal (in the store's ``algorithm``)."""
    body = canonical.dumps({k: v for k, v in doc.items() if k != SEAL})
    return doc.get(SEAL) == entry_digest(body, algorithm)
