"""Append-only histories: ``<prefix>/<seq:010d>.json``, created once each, hash-chained.

A ref's moves (``refs/<name>/``) and the store's policy (``policy/``) are
histories.  Appending creates the next number create-only; a writer that
loses the race re-lists and tries the next number, so concurrent appends are
all kept, in order, without gaps.  Each entry names the digest of the bytes
of the one before it (``prev``) and carries its own seal (see
:mod:`~mlledger.store.chain`), so :meth:`History.check` finds a gap, an edit or
a reordering anywhere but at the newest entry.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import canonical
from ..errors import ConflictError
from .chain import SEAL, entry_digest, seal, seal_ok

if TYPE_CHECKING:
    from .store import Store

__all__ = ["ENTRY_RE", "MAX_ATTEMPTS", "PREV", "History"]

#: the name of one entry of a history: its sequence number
ENTRY_RE = re.compile(r"([0-9]{10})\.json")
MAX_ATTEMPTS = 10_000
PREV = "prev"


class History:
    """The entries under ``prefix`` of ``store``: list, read, append, check."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.rstrip("/")

    def key(self, seq: int) -> str:
        return f"{self.prefix}/{seq:010d}.json"

    def seqs(self) -> list[int]:
        """The sequence numbers present, ascending (a fresh listing)."""
        names = self.store.backend.list_dir(self.prefix)
        return sorted(int(m.group(1)) for n in names if (m := ENTRY_RE.fullmatch(n)))

    def read(self, seq: int) -> bytes:
        return self.store.read_entry(self.key(seq))

    def read_all(self, seqs: list[int] | None = None) -> list[tuple[int, bytes | None]]:
        """``(seq, bytes)`` of every entry (None for one gone since it was listed)."""
        seqs = self.seqs() if seqs is None else seqs
        keys = [self.key(s) for s in seqs]
        raw = self.store.backend.read_many(keys)
        return [(s, raw.get(k)) for s, k in zip(seqs, keys, strict=True)]

    def append(
        self,
        build: Callable[[int], dict[str, Any]],
        *,
        expect_seq: int | None = None,
        conflict: Callable[[int], Exception] | None = None,
    ) -> tuple[int, bytes]:
        """Create the next entry: ``build(seq)`` gives its JSON object, to which the link
        to the entry before and the seal are added.  Returns ``(seq, bytes written)``.

        With ``expect_seq``, the history must still end at that number, else
        ``conflict(current)`` is raised (a rollback decided on what it read).
        """
        for attempt in range(MAX_ATTEMPTS):
            seqs = self.seqs()
            current = seqs[-1] if seqs else 0
            if expect_seq is not None and current != expect_seq:
                raise (conflict(current) if conflict else ConflictError(
                    f"{self.prefix} moved to #{current} (expected #{expect_seq}); try again"
                ))
            doc = build(current + 1)
            doc.pop(SEAL, None)
            doc[PREV] = entry_digest(self.read(current), self.store.algorithm) if current else None
            data = seal(doc, self.store.algorithm)
            if self.store.create_entry(self.key(current + 1), data):
                return current + 1, data
            time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))
        raise ConflictError(
            f"could not append to {self.prefix} after {MAX_ATTEMPTS} attempts; try again"
        )

    def check(self) -> tuple[list[str], int]:
        """``(problems, unchained)``: every gap, broken seal or broken link, and how many
        entries predate the chain (no seal: not damage, but nothing vouches for them)."""
        return check_entries(self.prefix, self.read_all(), self.store.algorithm)


def check_entries(
    what: str, entries: list[tuple[int, bytes | None]], algorithm: str
) -> tuple[list[str], int]:
    """The checks of :meth:`History.check` on entries already read (``what`` names them)."""
    problems: list[str] = []
    unchained = 0
    chained_seen = False
    expected = 1
    prev_raw: bytes | None = None
    for seq, raw in entries:
        label = f"{what}#{seq}"
        if seq != expected:
            missing = f"#{expected}" if seq == expected + 1 else f"#{expected}-#{seq - 1}"
            problems.append(
                f"{what}: entry {missing} is missing (a gap before #{seq}): an entry was "
                "deleted; restore it from a backup"
            )
            prev_raw = None  # the link over the gap cannot be checked
        expected = seq + 1
        if raw is None:
            problems.append(f"{label} vanished while being checked; check again")
            prev_raw = None
            continue
        try:
            doc = canonical.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as e:
            problems.append(f"{label} does not parse ({e}): it was damaged")
            prev_raw = raw
            continue
        if SEAL not in doc:
            if chained_seen:
                problems.append(
                    f"{label} has no seal though entries before it do: it was rewritten "
                    "(or written by an mlledger older than the chain)"
                )
            else:
                unchained += 1
            prev_raw = raw
            continue
        chained_seen = True
        if not seal_ok(doc, algorithm):
            problems.append(f"{label} does not match its seal: it was edited after it was written")
        if doc.get("seq", seq) != seq:
            problems.append(f"{label} says it is #{doc.get('seq')}: it was renamed")
        link = doc.get(PREV)
        if seq == 1:
            if link is not None:
                problems.append(f"{label} links to an entry before #1: entries were removed")
        elif prev_raw is not None and link != entry_digest(prev_raw, algorithm):
            problems.append(
                f"{label} does not link to #{seq - 1} as it is now: #{seq - 1} was edited or "
                "replaced"
            )
        prev_raw = raw
    return problems, unchained
