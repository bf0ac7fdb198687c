"""Digests: algorithm-prefixed strings such as ``xxh128:<32 hex>``.

XXH3-128 is the default because it hashes at memory speed; ``sha256`` is there
for stores that must resist deliberate collisions.  Everything here is pure:
no filesystem beyond reading the file it is asked to hash.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

import xxhash

from .errors import DigestError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is never imported at run time: Ledger() stays cheap
    from typing import Protocol
else:
    Protocol = object  # Hasher is only ever a type

__all__ = [
    "ALGORITHMS",
    "CHUNK",
    "DEFAULT_ALGORITHM",
    "Hasher",
    "check_algorithm",
    "digest_bytes",
    "digest_chunks",
    "digest_file",
    "new_hasher",
    "parse_digest",
]

#: Bytes read or written at a time when streaming; bounds memory use.
CHUNK = 1 << 20

DEFAULT_ALGORITHM = "xxh128"


class Hasher(Protocol):
    """The part of a hashlib-like object that mlledger uses."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


def _sha256() -> Hasher:
    """hashlib's SHA-256, imported on first use (OpenSSL's bindings are slow to load)."""
    import hashlib

    return hashlib.sha256()


ALGORITHMS: dict[str, tuple[Callable[[], Hasher], int]] = {
    "xxh128": (xxhash.xxh3_128, 32),
    "sha256": (_sha256, 64),
}

#: fullmatch only: ``$`` alone would also accept a trailing newline
_DIGEST_RE = re.compile(r"([a-z0-9]+):([0-9a-f]+)")


def check_algorithm(algorithm: str) -> str:
    """Return ``algorithm`` if mlledger knows it, else raise :class:`DigestError`."""
    if algorithm not in ALGORITHMS:
        known = ", ".join(sorted(ALGORITHMS))
        raise DigestError(f"unknown hash algorithm {algorithm!r}: use one of {known}")
    return algorithm


def new_hasher(algorithm: str = DEFAULT_ALGORITHM) -> Hasher:
    """A fresh hasher for ``algorithm``."""
    return ALGORITHMS[check_algorithm(algorithm)][0]()


def _expected_form(algorithm: str) -> str:
    return f"{algorithm}:<{ALGORITHMS[algorithm][1]} lowercase hex digits>"


def parse_digest(digest: str, algorithm: str | None = None) -> tuple[str, str]:
    """Split ``'xxh128:9f…'`` into ``('xxh128', '9f…')``, checking its form.

    With ``algorithm`` given, a digest of another algorithm is refused too.
    """
    if not isinstance(digest, str):
        raise DigestError(
            f"a digest is a string like 'xxh128:<32 hex>', not {type(digest).__name__}"
        )
    m = _DIGEST_RE.fullmatch(digest)
    if m is None or m.group(1) not in ALGORITHMS:
        forms = " or ".join(_expected_form(a) for a in ALGORITHMS)
        raise DigestError(f"malformed digest {digest!r}: expected {forms}")
    algo, hexpart = m.group(1), m.group(2)
    if len(hexpart) != ALGORITHMS[algo][1]:
        raise DigestError(
            f"malformed digest {digest!r}: expected {_expected_form(algo)}, "
            f"got {len(hexpart)} hex digits"
        )
    if algorithm is not None and algo != algorithm:
        raise DigestError(
            f"digest {digest!r} uses {algo}, but this store hashes with {algorithm}: "
            f"expected {_expected_form(algorithm)}"
        )
    return algo, hexpart


def digest_bytes(data: bytes | bytearray | memoryview, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The digest string of ``data``."""
    h = new_hasher(algorithm)
    h.update(data)
    return f"{algorithm}:{h.hexdigest()}"


def digest_chunks(
    chunks: Iterable[bytes | bytearray | memoryview], algorithm: str = DEFAULT_ALGORITHM
) -> str:
    """The digest string of the concatenation of ``chunks``."""
    h = new_hasher(algorithm)
    for chunk in chunks:
        h.update(chunk)
    return f"{algorithm}:{h.hexdigest()}"


def digest_file(
    path: str | os.PathLike[str], algorithm: str = DEFAULT_ALGORITHM
) -> tuple[str, int]:
    """Hash a file in bounded memory; return ``(digest, size)``."""
    h = new_hasher(algorithm)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            size += n
    return f"{algorithm}:{h.hexdigest()}", size
