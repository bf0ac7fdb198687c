"""The target grammar, and refs whose targets are resolved through it.

A target is a digest or unique hex prefix (at least 6), a run id or unique
prefix, ``RUN/NAME`` for one named output (or input) of a run, ``@REF`` for a
ref's current target, or a file or folder on disk (the artifact holding exactly
its bytes).  ``LedgerRefs`` is ``ledger.refs``: the store's refs, with targets
resolved first.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, Protocol

from .errors import AmbiguousError, NotFoundError, UsageError
from .records import Artifact, RefEntry
from .runs import Run
from .store import Refs, Store
from .store.refs import check_ref_name

__all__ = [
    "ArtifactIndex",
    "LedgerRefs",
    "Source",
    "artifact_on_disk",
    "resolve",
    "resolve_text",
    "resolve_value",
    "single_output",
]

_CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


class ArtifactIndex(Protocol):
    """What resolving asks the catalog: an artifact by digest or unique prefix."""

    def artifact(self, digest: str) -> Artifact: ...


class Source(Protocol):
    """What resolving reads (the Ledger): its store, its catalog, runs by id."""

    store: Store

    @property
    def catalog(self) -> ArtifactIndex: ...

    def get(self, run_id: str) -> Run: ...

    def resolve(self, target: str) -> Artifact | Run: ...


def single_output(run: Run, target: str | None = None) -> Artifact:
    """The one artifact a run stands for where a file or folder is wanted (restore): its
    only output; outputs holding the same bytes (a written file that is also the return
    value) count as one."""
    outs = run.outputs
    distinct = {a.digest: a for a in outs.values()}
    if len(distinct) != 1:
        names = ", ".join(sorted(outs)) or "none"
        said = f"{target!r} is the run {run.id}, with" if target else f"run {run.id} has"
        raise NotFoundError(  # no single artifact under that name (as Ledger.restore says)
            f"{said} {len(outs)} outputs ({names}); name one as {run.id}/NAME, "
            f"or see 'mlledger show {run.id}'"
        )
    return next(iter(distinct.values()))


def resolve_value(source: Source, target: str) -> tuple[str, str | None]:
    art = resolve(source, target)
    if isinstance(art, Run):
        out = art.outputs.get("return")
        if out is None:
            raise NotFoundError(f"run {art.id} has no return value; name an output: {art.id}/NAME")
        return out.digest, out.format
    return art.digest, art.format


def resolve(source: Source, target: str) -> Artifact | Run:
    """Resolve a target to an artifact or a run.

    A target is a digest or unique hex prefix (at least 6), a run id or
    unique prefix, ``RUN/NAME`` for one named output (or input) of a run,
    ``@REF`` for a ref's current target, or a file or folder on disk that
    none of those readings finds (the artifact holding exactly its bytes).
    """
    if isinstance(target, Run):
        return target
    if isinstance(target, Artifact):
        return target
    if isinstance(target, os.PathLike):
        return artifact_on_disk(source, os.fspath(target))
    if not isinstance(target, str) or not target.strip():
        raise UsageError(f"a target is a digest, a run id, RUN/NAME or @REF, not {target!r}")
    t = target.strip()
    if t.startswith("@"):
        entry = Refs(source.store).get(t[1:])
        return resolve(source, entry.target)
    try:
        return resolve_text(source, t)
    except NotFoundError:
        if not os.path.exists(os.path.expanduser(t)):
            raise
    return artifact_on_disk(source, t)


def artifact_on_disk(source: Source, path: str) -> Artifact:
    """The artifact whose bytes a local file or folder holds now."""
    full = os.path.expanduser(path)
    if not os.path.exists(full):
        raise NotFoundError(f"no file or folder {path!r}; give a digest, run id, RUN/NAME or @REF")
    digest = source.store.digest_path(full)
    try:
        return source.catalog.artifact(digest)
    except NotFoundError:
        raise NotFoundError(
            f"{path!r} holds bytes ({digest}) that no run used or produced and that are "
            "not in the store: it changed since, or it was never recorded"
        ) from None


def resolve_text(source: Source, t: str) -> Artifact | Run:
    """A target string that is not a ref: RUN/NAME, a digest, or a run or hex prefix."""
    if "/" in t and ":" not in t.split("/", 1)[0]:
        rid, _, name = t.partition("/")
        run = source.get(rid)
        art = run.outputs.get(name) or run.inputs.get(name)
        if art is None:
            names = ", ".join(sorted(run.outputs)) or "none"
            raise NotFoundError(f"run {run.id} has no output {name!r}; its outputs: {names}")
        return art
    cat = source.catalog
    if ":" in t:
        return cat.artifact(t)
    # a prefix may read as a run id and as a digest: try each reading it allows (an
    # ambiguous one raises at once; one that finds nothing is left out)
    lookups: list[Callable[[], Artifact | Run]] = []
    if all(c.upper() in _CROCKFORD for c in t):
        lookups.append(lambda: source.get(t))
    if len(t) >= 6 and all(c in "0123456789abcdefABCDEF" for c in t):
        lookups.append(lambda: cat.artifact(t))
    found: list[Artifact | Run] = []
    for look in lookups:
        with contextlib.suppress(NotFoundError):
            found.append(look())
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise AmbiguousError(
            f"{t!r} matches both a run and an artifact; give more characters or the "
            "digest's algo: prefix",
            [str(getattr(f, "id", getattr(f, "digest", ""))) for f in found],
        )
    raise NotFoundError(
        f"no run or artifact matches {t!r}: give a digest (or a hex prefix of at least 6), "
        "a run id (or prefix), RUN/NAME or @REF"
    )


#: what a ref move asks before it writes: ``gate(name, run, message, force, rollback)``
#: raises (PolicyError) to refuse the move of ``name`` to a target from ``run``
RefGate = Callable[[str, "str | None", "str | None", bool, bool], None]


class LedgerRefs:
    """``ledger.refs``: the store's refs, with targets resolved through the ledger, and a
    protected ref's moves gated (``gate``: the Ledger's policy and checks)."""

    def __init__(self, ledger: Source, gate: RefGate | None = None) -> None:
        self._ledger = ledger
        self._refs = Refs(ledger.store)
        self._gate = gate

    def _canonical(self, target: Any) -> tuple[str, str | None]:
        """The full target and the run the user named with it: a run, ``RUN/NAME``'s run,
        the run an ``@REF`` entry names; for bytes alone (a digest, a file on disk) the run
        that made them when exactly one did, else None (never a guess among equal bytes)."""
        got = self._ledger.resolve(target)
        if isinstance(got, Run):
            return got.id, got.id
        named = self._named_run(target)
        if named is not None:
            return got.digest, named
        producers = self._ledger.catalog.artifact(got.digest).producers if got.kind else ()
        return got.digest, (producers[0] if len(producers) == 1 else None)

    def _named_run(self, target: Any) -> str | None:
        """The run a target string names besides its bytes: ``RUN`` of ``RUN/NAME`` (as
        resolve reads it), or the run of the entry an ``@REF`` points at."""
        if not isinstance(target, str):
            return None
        t = target.strip()
        if t.startswith("@"):
            entry = self._refs.get(t[1:])
            return entry.run or self._named_run(entry.target)
        if "/" in t and ":" not in t.split("/", 1)[0]:
            with contextlib.suppress(NotFoundError):
                return self._ledger.get(t.partition("/")[0]).id
        return None

    def set(
        self, name: str, target: Any, message: str | None = None, *, force: bool = False
    ) -> RefEntry:
        """Point ``name`` at a target (digest, run, ``RUN/NAME``, ``@OTHER``); return the entry.

        A protected ref (the policy's ``protect``) moves only with a message and when the
        target's run passes the policy's checks; ``force=True`` overrides, and is recorded.
        """
        check_ref_name(name)
        t, run = self._canonical(target)
        if self._gate is not None:
            self._gate(name, run, message, force, False)
        return self._refs.set(
            name, t, message, run=run, run_entry=self._run_entry(run), force=force
        )

    def _run_entry(self, run: str | None) -> str | None:
        """The digest of ``run``'s final entry (the ref entry pins the run's record), or None
        while it has not ended."""
        if run is None:
            return None
        from .audit import final_entry
        from .store.chain import entry_digest

        data = final_entry(self._ledger.store, run)
        return None if data is None else entry_digest(data, self._ledger.store.algorithm)

    def get(self, name: str) -> RefEntry:
        """The current entry of ``name`` (``.target``); NotFoundError if unset."""
        return self._refs.get(name)

    def history(self, name: str) -> list[RefEntry]:
        """Every move of ``name``, oldest first."""
        return self._refs.history(name)

    def rollback(
        self, name: str, to: Any = None, message: str | None = None, *, force: bool = False
    ) -> RefEntry:
        """Move ``name`` back to its previous target, or to ``to`` (a target or an entry number).

        A protected ref is gated as in :meth:`set`.
        """
        run = None
        if to is not None and not isinstance(to, int):
            to, run = self._canonical(to)
        gate = self._gate

        def before(target_run: str | None) -> None:
            if gate is not None:
                gate(name, target_run, message, force, True)

        return self._refs.rollback(
            name,
            to,
            message,
            run=run,
            run_entry=self._run_entry(run),
            force=force,
            before=before,
        )

    def names(self) -> list[str]:
        """Every ref name in the store."""
        return self._refs.names()
