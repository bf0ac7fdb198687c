"""The local catalog: a SQLite index of one store, synced incrementally.

The store is the truth; this is a cache in the user cache folder (one file
per store URL) that ``reindex`` rebuilds from the store alone.  The index
(``index``) holds every SQL statement; the sync (``sync``) lists the store's
new day folders, late-run markers and gc entries.  Several processes may read
and sync one catalog at once (WAL).

A damaged catalog file is never repaired: the catalog moves on to a fresh
file that the next sync fills (``files``); every method that reads or writes
it goes through ``files.healing``.

The catalog builds runs with the two callables it is given, so it knows the
store and the runs, never the Ledger: ``load_run`` reads a run from the
store by full id, ``make_run`` makes one from an indexed record (both resolve
a stale ``running`` status).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import AmbiguousError, NotFoundError
from ..ids import is_run_id
from ..records import Artifact
from . import files, rows
from .changes import Changes
from .index import Index
from .sync import Sync

if TYPE_CHECKING:
    from ..runs import Run
    from ..store import Store

__all__ = ["Catalog"]


class Catalog(Index, Changes):
    """The SQLite index of one ledger's store."""

    def __init__(
        self,
        store: Store,
        load_run: Callable[[str], Run],
        make_run: Callable[[dict[str, Any]], Run],
        path: str | None = None,
    ) -> None:
        super().__init__(store, path)
        self.load_run = load_run
        self.make_run = make_run
        self._synced = False
        self._refilling = False
        self._sync = Sync(self, store, load_run)

    def _moved(self) -> None:
        """The catalog moved to a fresh file: sync it from the store before answering."""
        self._synced = False
        self._sync.forget()

    def _refill(self) -> bool:
        if self._refilling:  # the sync that refills is itself healing: no loop
            return False
        self._refilling = True
        try:
            self.ensure_synced()
        finally:
            self._refilling = False
        return True

    # -- sync ---------------------------------------------------------------------------
    @files.healing
    def sync(self, *, everywhere: bool = False) -> int:
        """Bring the catalog up to date with the store; returns how many runs changed.
        ``everywhere``: list every month folder of the store, not only those around today
        and since the last sync (``gc`` does, before it decides what no run needs)."""
        changed = self._sync.run(rebuild=False, everywhere=everywhere)
        self._synced = True
        return changed

    def ensure_synced(self) -> None:
        if not self._synced:
            self.sync()

    @files.healing
    def reindex(self) -> int:
        """Rebuild from the store alone; returns how many runs were indexed.

        The rebuild is one transaction: other processes reading the catalog
        meanwhile see the old index, never a half-built one.
        """
        self._sync.run(rebuild=True)
        self._synced = True
        return self.count_runs()

    # -- reading ---------------------------------------------------------------------------
    def run(self, run_id: str) -> Run:
        rec = self.record_of(run_id)
        if rec is None:
            return self.load_run(run_id)
        return self.make_run(rec)

    @files.healing
    def runs_of(self, run_ids: list[str]) -> dict[str, Run]:
        """Runs by full id, built from their indexed records in bulk (those indexed)."""
        return {rid: self.make_run(rec) for rid, rec in rows.records_of(self.db, run_ids).items()}

    @files.healing
    def metrics_of(self, run_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """Each run's last metric values from the index's rows (see ``rows.metrics_of``)."""
        return rows.metrics_of(self.db, run_ids)

    @files.healing
    def fields_of(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each run's table fields from the index's rows (see ``rows.fields_of``)."""
        return rows.fields_of(self.db, run_ids)

    def query(
        self,
        *,
        name: str | None = None,
        status: str | Iterable[str] | None = None,
        where: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Run ids matching a filter (see :meth:`Ledger.runs`)."""
        self.ensure_synced()
        return self.select_runs(name, status, where, order_by, limit)

    @files.healing
    def run_matches(self, run_id: str, where: str) -> bool:
        """Whether the run ``run_id`` (a full id) is one ``where`` selects, found by looking
        at that run's rows alone (what a check rule's ``runs`` clause asks per run)."""
        from ..query import compile_match

        self.ensure_synced()
        sql, args = compile_match(where)
        row = self.db.execute(
            f"SELECT 1 FROM runs r WHERE r.id = ? AND ({sql})", [run_id, *args]
        ).fetchone()
        return row is not None

    @files.healing
    def resolve_run(self, prefix: str) -> str:
        """A full run id from an id or unique prefix."""
        p = prefix.upper()
        if is_run_id(p):
            return p
        fresh = not self._synced
        self.ensure_synced()
        rows = self.run_ids_from(p)
        if not rows and not fresh:  # a run made since this catalog last synced
            self.sync()
            rows = self.run_ids_from(p)
        if not rows:
            raise NotFoundError(f"no run matches {prefix!r}; list runs with 'mlledger log'")
        if len(rows) > 1:
            raise AmbiguousError(
                f"{prefix!r} matches {len(rows)}{'+' if len(rows) > 10 else ''} runs: "
                f"{', '.join(rows[:10])}; give more characters",
                rows[:10],
            )
        return str(rows[0])

    @files.healing
    def artifact(self, digest_or_prefix: str) -> Artifact:
        """An artifact with its producers and consumers, by digest or unique hex prefix."""
        digest = self.resolve_digest(digest_or_prefix)
        self.ensure_synced()
        art = self.artifact_row(digest)
        if art is None:
            if not self.store.has(digest):
                raise NotFoundError(f"no artifact {digest} in the store at {self.store.url}")
            kind = self.store.kind(digest)
            art = Artifact(digest, self.store.size(digest), kind)
        prod = self.runs_with_edge(digest, "out")
        cons = self.runs_with_edge(digest, "in")
        import attrs

        return attrs.evolve(art, producers=prod, consumers=cons)

    @files.healing
    def resolve_digest(self, text: str) -> str:
        """A full digest from a digest, ``algo:prefix`` or bare hex prefix (>= 6)."""
        algo = self.store.algorithm
        hexlen = _hexlen(algo)
        t = text.strip().lower()
        if ":" in t:
            a, _, h = t.partition(":")
            if a != algo:
                raise NotFoundError(f"{text!r}: this store hashes with {algo}, not {a}")
        else:
            h = t
        if len(h) == hexlen and all(c in "0123456789abcdef" for c in h):
            return f"{algo}:{h}"
        if len(h) < 6 or not all(c in "0123456789abcdef" for c in h):
            raise NotFoundError(
                f"{text!r} is not a digest or a hex prefix of at least 6 characters "
                f"(expected {algo}:<{hexlen} hex> or a prefix of it)"
            )
        self.ensure_synced()
        full = f"{algo}:{h}"
        rows = self.digests_from(full)
        # objects no run lists (files inside a tree, records) count too, or a prefix
        # could silently pick one of two objects: one folder listing of the store
        sub = self.store.backend.list_dir(f"objects/{algo}/{h[:2]}")
        rows |= {f"{algo}:{h[:2]}{n}" for n in sub if (h[:2] + n).startswith(h)}
        if not rows:
            raise NotFoundError(f"no artifact matches {text!r} in the store at {self.store.url}")
        if len(rows) > 1:
            cands = sorted(rows)[:10]
            raise AmbiguousError(
                f"{text!r} matches {len(rows)} artifacts: {', '.join(cands)}; give more characters",
                cands,
            )
        return str(rows.pop())

    def unknown_fields(
        self, where: str | None = None, order_by: str | None = None, name: str | None = None
    ) -> list[tuple[str, list[str]]]:
        """The fields (``params.lrr``) and run name a query names that no run has, each with
        up to three close names that runs do have: why a query matched nothing."""
        self.ensure_synced()
        return self.missing_fields(where, order_by, name)

    def damaged_runs(self) -> list[str]:
        """Ids of runs whose entries are damaged (``mlledger verify`` says what is wrong)."""
        self.ensure_synced()
        return self.damaged_ids()

    def all_run_ids(self) -> list[str]:
        self.ensure_synced()
        return self.run_ids()


def _hexlen(algo: str) -> int:
    from ..hashing import ALGORITHMS

    return ALGORITHMS[algo][1]
