"""Named refs: append-only histories of immutable entries.

``refs/<name>/<seq:010d>.json`` holds the ``seq``-th move of ``name``: a
:class:`~mlledger.store.history.History`, so moves are created create-only,
concurrent moves are all kept in order without gaps, and each entry is
sealed and linked to the one before.  The highest number is the current
target.  Rollback appends an entry pointing back: history is never rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _settings, canonical
from ..errors import ConflictError, IntegrityError, NotFoundError, UsageError
from ..records import RefEntry, utcnow
from .history import ENTRY_RE, MAX_ATTEMPTS, History, check_entries
from .layout import REFS, ref_prefix

if TYPE_CHECKING:
    from .store import Store

__all__ = ["MAX_ATTEMPTS", "Refs", "check_ref_name"]

# used with fullmatch only: "$" would also accept a trailing newline
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
#: the longest ref name: its key fits a local file name and a cloud key with room to spare
MAX_NAME = 255


def check_ref_name(name: str) -> str:
    """Refuse a ref name that is not ``segment[/segment…]`` of letters, digits, ``._-``,
    or that is longer than :data:`MAX_NAME` characters (no store could hold its key)."""
    if isinstance(name, str) and len(name) > MAX_NAME:
        raise UsageError(
            f"ref name {name[:40]!r}... is too long ({len(name)} characters, at most "
            f"{MAX_NAME}): choose a shorter name, such as 'model/prod'"
        )
    if (
        not isinstance(name, str)
        or not _NAME_RE.fullmatch(name)
        or any(seg.endswith(".json") for seg in name.split("/"))
    ):
        raise UsageError(
            f"invalid ref name {name!r}: use segments of letters, digits, '.', '_' and '-' "
            "separated by '/', such as 'model/prod'"
        )
    return name


def _who() -> tuple[str, str]:
    return _settings.user_name(), _settings.host_name()


class Refs:
    """The refs of one store: ``set``, ``get``, ``history``, ``rollback``, ``names``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _history(self, name: str) -> History:
        return History(self.store, ref_prefix(name))

    def _seqs(self, name: str) -> list[int]:
        return self._history(name).seqs()

    def _read(self, name: str, seq: int) -> RefEntry:
        return self._parse(name, seq, self._history(name).read(seq))

    def check(self, name: str) -> tuple[list[str], int]:
        """``(problems, unchained)`` of ``name``'s history: gaps, broken seals and links."""
        check_ref_name(name)
        return check_entries(name, self._history(name).read_all(), self.store.algorithm)

    def _parse(self, name: str, seq: int, raw: bytes) -> RefEntry:
        try:
            entry = RefEntry.from_json(canonical.loads(raw))
        except Exception as e:
            raise IntegrityError(
                f"ref entry {name}#{seq} (refs/{name}/{seq:010d}.json in {self.store.url}) "
                f"does not parse ({e}); the store is damaged: restore that file from a "
                "backup, or set the ref again to move past it"
            ) from e
        return entry

    def names(self) -> list[str]:
        """Every ref name in the store, sorted."""
        found: set[str] = set()
        for key in self.store.backend.list(REFS):
            head, _, last = key.rpartition("/")
            if ENTRY_RE.fullmatch(last) and head.startswith(f"{REFS}/"):
                found.add(head[len(REFS) + 1 :])
        return sorted(found)

    def get(self, name: str) -> RefEntry:
        """The current entry of ``name``; NotFoundError if it was never set."""
        check_ref_name(name)
        seqs = self._seqs(name)
        if not seqs:
            raise self._unset(name)
        return self._read(name, seqs[-1])

    def _unset(self, name: str) -> NotFoundError:
        """The error for a ref that was never set: how to set it, and the refs there are."""
        import difflib

        try:
            names = self.names()
        except Exception:  # listing failed too: the message without the list
            names = []
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        there = (
            f"; did you mean {' or '.join(repr(n) for n in close)}?"
            if close
            else (f"; the refs: {', '.join(names[:10])}" if names else "; no ref is set yet")
        )
        return NotFoundError(
            f"ref {name!r} is not set{there} (set it with `mlledger ref set {name} TARGET` "
            f"or ledger.refs.set({name!r}, target))"
        )

    def history(self, name: str) -> list[RefEntry]:
        """Every move of ``name``, oldest first."""
        check_ref_name(name)
        seqs = self._seqs(name)
        if not seqs:
            raise self._unset(name)
        out: list[RefEntry] = []
        for seq, data in self._history(name).read_all(seqs):
            if data is None:
                continue
            out.append(self._parse(name, seq, data))
        return out

    def _append(
        self,
        name: str,
        target: str,
        *,
        message: str | None,
        action: str,
        restores: int | None = None,
        run: str | None = None,
        run_entry: str | None = None,
        expect_seq: int | None = None,
        force: bool = False,
    ) -> RefEntry:
        user, host = _who()

        def build(seq: int) -> dict[str, Any]:
            return RefEntry(
                name=name,
                seq=seq,
                target=target,
                at=utcnow(),
                user=user,
                host=host,
                message=message,
                action=action,
                restores=restores,
                run=run,
                run_entry=run_entry,
                force=force,
            ).to_json()

        def moved(current: int) -> ConflictError:
            return ConflictError(
                f"ref {name!r} moved (to #{current}) while rolling it back from "
                f"#{expect_seq}; look at its history and roll back again"
            )

        try:
            seq, data = self._history(name).append(build, expect_seq=expect_seq, conflict=moved)
        except ConflictError as e:
            if expect_seq is not None:
                raise
            raise ConflictError(
                f"could not move ref {name!r} after {MAX_ATTEMPTS} attempts; try again"
            ) from e
        return self._parse(name, seq, data)

    def set(
        self,
        name: str,
        target: str,
        message: str | None = None,
        *,
        run: str | None = None,
        run_entry: str | None = None,
        force: bool = False,
    ) -> RefEntry:
        """Point ``name`` at ``target``; returns the new entry.

        ``run`` is the run the target came from; ``run_entry`` the digest of that run's
        final entry (so the ref vouches for the run's record too); ``force`` records that
        the move overrode the policy.
        """
        check_ref_name(name)
        if not isinstance(target, str) or not target:
            raise UsageError(
                f"a ref target is a digest, run id or other target string, not {target!r}"
            )
        return self._append(
            name,
            target,
            message=message,
            action="set",
            run=run,
            run_entry=run_entry,
            force=force,
        )

    def rollback(
        self,
        name: str,
        to: str | int | None = None,
        message: str | None = None,
        *,
        run: str | None = None,
        run_entry: str | None = None,
        force: bool = False,
        before: Callable[[str | None], None] | None = None,
    ) -> RefEntry:
        """Move ``name`` back to its previous target (or to ``to``: a target or a seq number).

        Rolling back twice walks further back; the history only grows.  ``before`` is
        called with the run of the target it goes back to, before anything is written
        (a protected ref's gate: it raises to refuse).
        """
        history = self.history(name)
        by_seq = {e.seq: e for e in history}
        current = history[-1]
        if to is None:
            rolled_back = current.action == "rollback" and current.restores
            pos = current.restores if rolled_back and current.restores else current.seq
            prev = max((s for s in by_seq if s < pos), default=None)
            if prev is None:
                raise NotFoundError(
                    f"ref {name!r} has no earlier target to roll back to "
                    f"(it is at #{current.seq}, its first position); pass to=TARGET"
                )
            e = by_seq[prev]
            restores = e.restores if e.action == "rollback" and e.restores else e.seq
            target, run, run_entry = e.target, e.run, e.run_entry
        elif isinstance(to, int) and not isinstance(to, bool):
            if to not in by_seq:
                raise NotFoundError(f"ref {name!r} has no entry #{to}; see refs.history({name!r})")
            e = by_seq[to]
            target, restores, run, run_entry = e.target, to, e.run, e.run_entry
        else:
            target, restores = str(to), None
            if run is None:  # the run an earlier entry of this ref gave the same target
                same = next((e for e in reversed(history) if e.target == target), None)
                if same is not None:
                    run, run_entry = same.run, same.run_entry
        if before is not None:
            before(run)
        return self._append(
            name,
            target,
            message=message,
            action="rollback",
            restores=restores,
            expect_seq=current.seq,
            run=run,
            run_entry=run_entry,
            force=force,
        )
