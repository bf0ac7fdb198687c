"""Reading a ref's history into a :class:`~mlledger.changelog.model.Changelog`.

The ref's entries are listed and read once (one batched read); each entry's
target is resolved to its run through the catalog (records come from the
SQLite index, or from the store for a run it does not hold yet); each run is
read once, each environment object and each stored object the diff needs
once by digest, however many moves name them.  Damage is shown, never
raised: an entry that does not parse, a gap in the history, a run whose
record cannot be read, a target gone from the store each become a problem
line of their entry.  Checks are the newest report recorded for the target's run
(``checks_of``).
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any, Protocol

from .. import canonical
from ..checks import CheckReport, checks_of
from ..diff import diff_runs
from ..errors import LedgerError, UsageError
from ..ids import is_run_id
from ..records import Artifact, RefEntry
from ..resolve import resolve
from ..runs import Run
from ..store import Refs
from ..store.chain import SEAL, seal_ok
from ..store.history import History
from ..store.layout import ref_prefix
from ..store.refs import check_ref_name
from .entry import CAUSE_OF_SECTION, ChangelogEntry, MetricEffect
from .log import Changelog

if TYPE_CHECKING:
    from ..diff import Change
    from ..store import Store

__all__ = ["RunIndex", "Source", "build_changelog"]

#: what reading a record that cannot be read raises, besides LedgerError (malformed data)
_UNREADABLE = (LedgerError, ValueError, KeyError, TypeError)

_Target = tuple["str | None", "Artifact | None", "str | None"]


class RunIndex(Protocol):
    """What the changelog asks the catalog: runs by id, artifacts with their producers."""

    def run(self, run_id: str) -> Run: ...

    def artifact(self, digest: str) -> Artifact: ...


class Source(Protocol):
    """What the changelog reads (the Ledger): its store, its catalog, targets resolved."""

    store: Store

    @property
    def catalog(self) -> RunIndex: ...

    def get(self, run_id: str) -> Run: ...

    def resolve(self, target: str) -> Artifact | Run: ...


class _Reader:
    """Runs, targets, environments and objects of one changelog, each read once."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.store = source.store
        self.runs: dict[str, Run | str] = {}
        self.envs: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, bytes] = {}
        self.targets: dict[tuple[str, str | None], _Target] = {}
        self.reports: dict[str, CheckReport | None] = {}

    def run(self, run_id: str) -> Run | str:
        """The run (from the catalog when it holds it), or why it cannot be read."""
        got = self.runs.get(run_id)
        if got is None:
            try:
                got = self.source.catalog.run(run_id)
            except _UNREADABLE as e:
                got = f"run {run_id} cannot be read: {e}"
            self.runs[run_id] = got
        return got

    def read(self, digest: str) -> bytes:
        """A stored object's bytes (verified), read once."""
        data = self.objects.get(digest)
        if data is None:
            data = self.objects[digest] = self.store.get(digest)
        return data

    def checks(self, run_id: str) -> CheckReport | None:
        """The newest check report recorded for a run (one listing per run)."""
        if run_id not in self.reports:
            reports = checks_of(self.store, run_id)
            self.reports[run_id] = reports[-1] if reports else None
        return self.reports[run_id]

    def env(self, run: Run) -> dict[str, Any]:
        """A run's environment record, each environment object read and parsed once."""
        digest = run.state.record.get("env")
        if not digest:
            return {}
        got = self.envs.get(digest)
        if got is None:
            try:
                got = dict(canonical.loads(self.read(digest)))
            except _UNREADABLE as e:
                got = {"error": str(e)}
            self.envs[digest] = got
        return got

    def target(self, entry: RefEntry) -> _Target:
        """``(run id, artifact, problem)`` of a move's target: the run it stands for and,
        when the target is bytes, its artifact (memoized: moves often share targets)."""
        key = (entry.target, entry.run)
        got = self.targets.get(key)
        if got is None:
            got = self.targets[key] = self._target(entry.target, entry.run)
        return got

    def _target(self, target: str, run_id: str | None) -> _Target:
        if is_run_id(target):
            return run_id or target, None, None
        try:
            got = None if ":" in target else resolve(self.source, target)
            if isinstance(got, Run):
                return run_id or got.id, None, None
            art = self.source.catalog.artifact(target if got is None else got.digest)
        except _UNREADABLE as e:
            return run_id, None, f"the target {target} cannot be found: {e}"
        if run_id is None and len(art.producers) == 1:
            run_id = art.producers[0]  # never a guess among several runs that made it
        return run_id, art, None


def _parse(
    name: str, seq: int, raw: bytes | None, algorithm: str
) -> tuple[RefEntry | None, str, list[str]]:
    """``(entry, action, problems)``: the parsed entry, or None with ``missing`` or
    ``damaged`` and why; problems of an entry that parsed (its seal, its number)."""
    if raw is None:
        return None, "missing", [f"entry #{seq} vanished while it was read: look again"]
    try:
        doc = canonical.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        entry = RefEntry.from_json(doc)
    except Exception as e:  # any way a damaged entry fails to parse is shown, not raised
        what = str(e).splitlines()[0] if str(e) else type(e).__name__
        return (
            None,
            "damaged",
            [
                f"entry #{seq} of ref {name} does not parse ({what}): the store is damaged; "
                "'mlledger verify' lists it; restore it from a backup"
            ],
        )
    problems: list[str] = []
    if SEAL in doc and not seal_ok(doc, algorithm):
        problems.append(f"entry #{seq} does not match its seal: it was edited after it was written")
    if entry.seq != seq:
        problems.append(f"entry #{seq} says it is #{entry.seq}: it was renamed")
    return entry, entry.action, problems


def build_changelog(
    source: Source,
    name: str,
    *,
    limit: int | None = None,
) -> Changelog:
    """The changelog of ref ``name`` (``@name`` too): its newest ``limit`` moves (all when
    None), newest first, each against the move before it.  NotFoundError naming close
    refs when ``name`` was never set."""
    if isinstance(name, str) and name.startswith("@"):
        name = name[1:]
    check_ref_name(name)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UsageError(
            f"limit is how many moves to show, a whole number 1 or more, not {limit!r}"
        )
    store = source.store
    history = History(store, ref_prefix(name))
    seqs = history.seqs()
    if not seqs:
        Refs(store).get(name)  # raises NotFoundError naming the refs there are
        seqs = history.seqs()  # set since the first listing
    last = seqs[-1]
    first = 1 if limit is None else max(1, last - limit + 1)
    parsed = {
        seq: _parse(name, seq, raw, store.algorithm)
        for seq, raw in history.read_all([s for s in seqs if s >= first - 1])
    }
    earlier = [s for s in seqs if s < first - 1]
    if earlier and not any(p[0] is not None for s, p in parsed.items() if s < first):
        # the move before the oldest one shown is damaged: read further back for a "before"
        parsed.update(
            (seq, _parse(name, seq, raw, store.algorithm)) for seq, raw in history.read_all(earlier)
        )
    readable = sorted(s for s, p in parsed.items() if p[0] is not None)
    reader = _Reader(source)
    entries: list[ChangelogEntry] = []
    for seq in range(last, first - 1, -1):
        got = parsed.get(seq)
        if got is None:
            entries.append(_gap(name, seq))
            continue
        entry, action, problems = got
        if entry is None:
            entries.append(ChangelogEntry(seq, action, problems=tuple(problems)))
            continue
        at = bisect.bisect_left(readable, seq)  # the nearest readable move before this one
        before = parsed[readable[at - 1]][0] if at else None
        entries.append(_describe(reader, entry, before, problems))
    return Changelog(ref=name, entries=tuple(entries), moves=last)


def _gap(name: str, seq: int) -> ChangelogEntry:
    return ChangelogEntry(
        seq,
        "missing",
        problems=(
            f"entry #{seq} of ref {name} is missing (a gap in its history): it was deleted; "
            "restore it from a backup ('mlledger verify' checks the whole trail)",
        ),
    )


def _describe(
    reader: _Reader,
    entry: RefEntry,
    before: RefEntry | None,
    problems: list[str],
) -> ChangelogEntry:
    """One readable move: its target's run, and causes and effects against ``before``."""
    run_id, art, problem = reader.target(entry)
    if problem:
        problems.append(problem)
    run = _run(reader, run_id, problems, None)
    output = None
    if run is not None and art is not None:
        output = next((k for k, a in sorted(run.outputs.items()) if a.digest == art.digest), None)
    before_run_id: str | None = None
    before_run: Run | None = None
    if before is not None:
        before_run_id = reader.target(before)[0]
        before_run = _run(reader, before_run_id, problems, f"no comparison with #{before.seq}")
    causes: tuple[Change, ...] = ()
    effects: list[MetricEffect] = []
    if run is not None:
        new = run.metrics
        if before is not None and before_run is not None:
            old = before_run.metrics
            effects = [MetricEffect(k, old[k], v) for k, v in new.items() if k in old]
            if before_run.id != run.id:
                try:
                    d = diff_runs(reader.read, before_run, run, env=reader.env)
                except _UNREADABLE as e:
                    problems.append(f"the diff against #{before.seq} failed: {e}")
                else:
                    causes = tuple(c for c in d if c.section in CAUSE_OF_SECTION)
        else:
            effects = [MetricEffect(k, None, v) for k, v in new.items()]
    report: CheckReport | None = None
    if run is not None:
        try:
            report = reader.checks(run.id)
        except _UNREADABLE as e:
            problems.append(f"the checks of run {run.id} cannot be read: {e}")
    cost, currency = _cost(run)
    return ChangelogEntry(
        seq=entry.seq,
        action=entry.action,
        restores=entry.restores,
        forced=entry.force,
        at=entry.at,
        user=entry.user,
        host=entry.host,
        message=entry.message,
        target=entry.target,
        run_id=run_id,
        run_name=None if run is None else run.name,
        run_status=None if run is None else run.status,
        artifact=art,
        output=output,
        before_seq=None if before is None else before.seq,
        before_target=None if before is None else before.target,
        before_run=before_run_id,
        causes=causes,
        metrics=tuple(effects),
        cost=cost,
        currency=currency,
        before_cost=_cost(before_run)[0],
        checks=report,
        problems=tuple(problems),
    )


def _run(reader: _Reader, run_id: str | None, problems: list[str], what: str | None) -> Run | None:
    """The run ``run_id`` (None when there is none); a run that cannot be read is a
    problem line (prefixed by ``what``)."""
    if run_id is None:
        return None
    got = reader.run(run_id)
    if isinstance(got, str):
        problems.append(got if what is None else f"{what}: {got}")
        return None
    return got


def _cost(run: Run | None) -> tuple[float | None, str | None]:
    """The run's ``resources.cost`` and ``resources.currency`` when it has them."""
    if run is None:
        return None, None
    res = run.resources
    cost = res.get("cost")
    if isinstance(cost, bool) or not isinstance(cost, (int, float)):
        return None, None
    currency = res.get("currency")
    return float(cost), currency if isinstance(currency, str) else None
