"""The ``Ledger``: the one object users hold."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from ._settings import default_url, spool_waiting
from .errors import NotFoundError, UsageError
from .ids import is_run_id
from .store.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:  # and what a run needs is imported when first used, not by Ledger()
    from pathlib import Path
    from typing import Any

    from fsspec.callbacks import Callback

    from .alerts.alert import Alert
    from .alerts.watch import Watcher
    from .catalog import Catalog, RunList
    from .changelog import Changelog
    from .checks import CheckReport
    from .diff import RunDiff
    from .gc import GcReport
    from .lineage import Lineage
    from .policy import Policy
    from .records import Artifact
    from .resolve import LedgerRefs
    from .runs import Run, RunContext
    from .runs.writer import RunWriter
    from .store import VerifyReport
    from .usage import CostReport, DiskUsage

__all__ = ["Ledger", "default_ledger", "set_default_ledger"]


class Ledger:
    """A ledger of runs in a store.

    ``Ledger()`` opens ``$MLLEDGER_URL``, else a folder in the user data dir;
    ``Ledger("s3://bucket/ml", endpoint_url=...)`` passes extra keyword
    arguments to fsspec as storage options.

    Capture options: ``capture_files`` (see files opened during a run),
    ``capture_include``/``capture_exclude`` (glob patterns on absolute paths),
    ``env_vars`` (more environment variable names to record),
    ``inline_limit`` (bytes of JSON a param may take before it is stored as
    an artifact instead of inline), ``start_delay`` (seconds a run may last
    before its start entry is written: shorter runs write one entry, not
    two; 0 writes it at once, so even a process killed in its first
    instant leaves an ``incomplete`` run).  ``algorithm`` (``xxh128`` or ``sha256``)
    applies when the store is created; ``create=False`` refuses to create a
    store that does not exist yet (NotFoundError).
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        capture_files: bool = True,
        capture_include: Iterable[str] = (),
        capture_exclude: Iterable[str] = (),
        env_vars: Iterable[str] = (),
        inline_limit: int = 64 * 1024,
        start_delay: float = 0.1,
        algorithm: str | None = None,
        create: bool = True,
        **storage_options: Any,
    ) -> None:
        self.store = Store(url, algorithm=algorithm, create=create, **storage_options)
        self.url = self.store.url
        self.capture_files = capture_files
        self.capture_include = tuple(capture_include)
        self.capture_exclude = tuple(capture_exclude)
        self.start_delay = start_delay
        self._env_vars = tuple(env_vars)
        self._inline_limit = inline_limit
        self._writer: RunWriter | None = None
        self._catalog: Catalog | None = None
        if spool_waiting(self.url):  # runs kept while the store refused them
            self.writer.push_spool(quiet=True)

    @property
    def writer(self) -> RunWriter:
        """Writes runs into the store (and the local spool); runs and contexts hold it."""
        if self._writer is None:
            from .capture.environment import DEFAULT_ENV_VARS
            from .runs.writer import RunWriter

            self._writer = RunWriter(
                self.store,
                env_vars=tuple(dict.fromkeys((*DEFAULT_ENV_VARS, *self._env_vars))),
                inline_limit=self._inline_limit,
            )
            if self._catalog is not None:
                self._writer.index = self._catalog  # each ended run is added to it
        return self._writer

    def __repr__(self) -> str:
        return f"Ledger({self.url!r})"

    # ------------------------------------------------------------------ runs
    def run(
        self,
        name: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        message: str | None = None,
        tags: dict[str, Any] | None = None,
        capture_files: bool | None = None,
        kind: str = "block",
        baseline: str | None = None,
        sample: float | None = None,
    ) -> RunContext:
        """A run around a block: ``with ledger.run("train", params={...}) as run:``.

        ``kind="monitor"`` makes a long-lived run (a deployed model) whose logged metrics
        reach the store every few seconds; ``baseline`` (``@REF``, a run id or
        ``median:N``) is what check rules without a baseline of their own compare it with.
        ``sample=10`` records the process's CPU and memory (and GPUs where NVML answers)
        every 10 seconds as metrics ``sys.*`` of the run.
        """
        from .capture import files as _files
        from .runs import RunContext

        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"ledger.run() takes the run's name as a string, not {type(name).__qualname__}"
            )
        if kind not in ("block", "monitor"):
            raise UsageError(
                f"ledger.run(kind=...) is 'block' (the default) or 'monitor', not {kind!r}"
            )
        if baseline is not None:
            from .rules import check_baseline

            baseline = check_baseline(baseline, "ledger.run(baseline=...)")
        with _files.quiet():  # hashing the calling file is no enclosing run's input
            code, warns = self.writer.code.caller_code()
        return RunContext(
            self,
            name,
            params=params,
            message=message,
            tags=tags,
            capture_files=capture_files,
            code=code,
            code_warnings=warns,
            kind=kind,
            baseline=baseline,
            sample=sample,
        )

    def tracked(self, fn: Any = None, **options: Any) -> Any:
        """Decorator: every call of the function is a run.

        ``@ledger.tracked`` or ``@ledger.tracked(name=..., ignore=[...], capture_files=True,
        sample=10)``.  ``cache=True`` memoizes it: a call already made returns its recorded
        value without running (``cache="pickle"`` also loads values stored as pickle).
        """
        from .runs import make_tracked

        return make_tracked(lambda: self, fn, **options)

    # ------------------------------------------------- spool and settings
    def push_spool(self) -> int:
        """Write runs kept in the local spool (while the store refused writes) to the store."""
        return self.writer.push_spool(quiet=False)

    @property
    def env_vars(self) -> tuple[str, ...]:
        """Environment variable names recorded with each run."""
        return self.writer.env_vars

    @env_vars.setter
    def env_vars(self, names: tuple[str, ...]) -> None:
        self.writer.env_vars = names

    @property
    def inline_limit(self) -> int:
        """Bytes of JSON a param may take before it is stored as an artifact instead."""
        return self.writer.inline_limit

    @inline_limit.setter
    def inline_limit(self, limit: int) -> None:
        self.writer.inline_limit = limit

    # ------------------------------------------------------------- reading
    def get(self, run_id: str | Run) -> Run:
        """A run by id (or unique id prefix, once the catalog knows it)."""
        from .runs import Run

        if isinstance(run_id, Run):
            return run_id
        if not isinstance(run_id, str) or not run_id:
            raise NotFoundError(f"a run id is a non-empty string, not {run_id!r}")
        full = run_id.upper() if is_run_id(run_id.upper()) else self.catalog.resolve_run(run_id)
        return self._load_run(full)

    @property
    def catalog(self) -> Catalog:
        """The local SQLite index of this store (synced on use)."""
        if self._catalog is None:
            from .catalog import Catalog

            self._catalog = Catalog(self.store, self._load_run, self._run_of_record)
            if self._writer is not None:  # each ended run is added to it (see ``writer``)
                self._writer.index = self._catalog
        return self._catalog

    def _load_run(self, run_id: str) -> Run:
        """A run read back from the store (the catalog's loader)."""
        from .runs.load import load_run

        return load_run(self.writer, run_id)

    def _run_of_record(self, record: dict[str, Any]) -> Run:
        """A run from its indexed record (the catalog's), a stale ``running`` resolved."""
        from .runs import Run

        run = Run(self.writer, record)
        run.resolve_status()
        return run

    def load(self, target: str, *, allow_pickle: bool = False) -> Any:
        """A stored value back as a Python object (pickles only with ``allow_pickle=True``)."""
        from .capture.values import load_value
        from .resolve import resolve_value

        digest, fmt = resolve_value(self, target)
        return load_value(self.store.get(digest), fmt, allow_pickle=allow_pickle)

    def resolve(self, target: str) -> Artifact | Run:
        """Resolve a target to an artifact or a run.

        A target is a digest or unique hex prefix (at least 6), a run id or
        unique prefix, ``RUN/NAME`` for one named output (or input) of a run,
        ``@REF`` for a ref's current target, or a file or folder on disk that
        none of those readings finds (the artifact holding exactly its bytes).
        """
        from .resolve import resolve

        return resolve(self, target)

    def restore(
        self,
        target: str,
        dest: str | os.PathLike[str],
        overwrite: bool = False,
        *,
        callback: Callback | None = None,
    ) -> Path:
        """Write an artifact (file or folder) to ``dest``, byte-identical.

        Refuses to replace an existing ``dest`` unless ``overwrite=True``.
        """
        from .resolve import single_output
        from .runs import Run

        got = self.resolve(target)
        if isinstance(got, Run):
            got = single_output(got)
        return self.store.restore(got.digest, dest, overwrite=overwrite, callback=callback)

    # ----------------------------------------------------------- queries
    def runs(
        self,
        name: str | None = None,
        status: str | Iterable[str] | None = None,
        where: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> RunList:
        """Runs matching a filter, newest first (or by ``order_by``, ``-`` for descending).

        ``where`` is the query language: ``"params.lr > 0.01 and metrics.loss < 0.5"``.
        """
        from .catalog import RunList

        ids = self.catalog.query(
            name=name, status=status, where=where, order_by=order_by, limit=limit
        )
        return RunList(self.catalog.run, ids, self.catalog)

    def sync(self) -> int:
        """Bring the local catalog up to date with the store; returns how many runs changed."""
        return int(self.catalog.sync())

    def reindex(self) -> int:
        """Rebuild the local catalog from the store alone; returns how many runs it holds."""
        return int(self.catalog.reindex())

    def artifact(self, digest: str) -> Artifact:
        """An artifact by digest or unique prefix, with ``.producers`` and ``.consumers``."""
        from .records import Artifact

        if isinstance(digest, Artifact):
            digest = digest.digest
        if not isinstance(digest, str):
            raise UsageError(f"artifact() takes a digest string, not {type(digest).__qualname__}")
        return self.catalog.artifact(digest)

    def lineage(
        self,
        target: str | Run | Artifact,
        direction: str = "upstream",
        depth: int | None = None,
    ) -> Lineage:
        """Runs and artifacts around ``target``.

        ``upstream``: what produced it; ``downstream``: what was built from it; ``both``.
        ``depth`` counts runs, each with its direct inputs (upstream) or outputs: 1 is
        the run, or the runs that made (used) an artifact, with theirs; None: no limit.
        """
        from .lineage import Lineage, traverse
        from .records import Artifact
        from .runs import Run

        got = self.resolve(target)  # type: ignore[arg-type]
        cat = self.catalog
        cat.ensure_synced()
        if isinstance(got, Run):
            root = got.id
            run_ids, digests, edges, names = traverse(
                cat, runs=[got.id], direction=direction, depth=depth
            )
        else:
            root = got.digest
            run_ids, digests, edges, names = traverse(
                cat, digests=[got.digest], direction=direction, depth=depth
            )
        runs = [cat.run(r) for r in sorted(run_ids)]
        arts: list[Artifact] = []
        for d in sorted(digests):
            row = cat.artifact_row(d)
            arts.append(row if row is not None else Artifact(d, 0, "file"))
        return Lineage(root, direction, runs, arts, edges, names, all_run_ids=cat.all_run_ids)

    def diff(self, a: str | Run, b: str | Run) -> RunDiff:
        """What changed from run ``a`` to run ``b``: params, metrics, inputs, outputs, code, env."""
        from .diff import diff_runs

        return diff_runs(self.store.get, self.get(a), self.get(b))  # get() passes a Run through

    def report(
        self,
        path: str | os.PathLike[str] | None = "mlledger-report.html",
        where: str | None = None,
        *,
        limit: int | None = None,
        format: str = "html",
        publish: bool = False,
        curve_runs: int = 200,
    ) -> str:
        """Write a report of the runs (``where`` filters them, ``limit`` keeps the newest):
        ONE self-contained HTML file (or ``format="markdown"``, a summary) at ``path``.

        ``publish=True`` writes it into the store too, create-only under ``reports/``
        (``path=None``: only there).  Returns where it went.  Curves are embedded for
        the first ``curve_runs`` runs.
        """
        from .report import write_report  # imported on use: it brings the page assets

        return write_report(
            self,
            path,
            where,
            limit=limit,
            format=format,
            publish=publish,
            curve_runs=curve_runs,
        )

    def cost(self, by: str = "name", since: Any = None, where: str | None = None) -> CostReport:
        """Recorded cost by group (``name``, ``user``, ``host``, ``day``, ``status`` or
        ``tags.X``) of the runs ``where`` selects that started ``since`` (``"30d"``, a
        date); runs recorded before rates were set count as not priced."""
        from .usage import cost_report

        return cost_report(self.catalog, by=by, since=since, where=where)

    def du(self, by: str | None = None) -> DiskUsage:
        """Bytes stored, bytes the runs reference, bytes deduplication saves and the
        storage cost per month (``rates.storage_gb_month``); ``by="name"`` or ``"ref"``
        attributes referenced bytes to run names or to what each ref's lineage keeps."""
        from .usage import du

        rates = self.policy.get().get("rates")
        return du(self.store, self.catalog, by=by, rates=rates, resolve=self.resolve)

    def changelog(self, ref: str, *, limit: int | None = None) -> Changelog:
        """Each move of ``ref``, newest first (the newest ``limit``): who, when, the message,
        the target and its run, and against the move before: the causes (params, data, code,
        packages, environment), the effect on every metric both runs have, the cost and the
        newest check report.  NotFoundError naming close refs for a ref never set; damage
        (an entry that does not parse, a run that cannot be read) is shown, not raised."""
        from .changelog import build_changelog

        return build_changelog(self, ref, limit=limit)

    def check(self, run: str | Run, rules: Any = None, *, record: bool = True) -> CheckReport:
        """Judge a run by check rules; returns the :class:`~mlledger.checks.CheckReport`.

        ``run`` is a run id or prefix, ``@REF`` naming a run, or a Run.  ``rules``: a
        list of rules (dicts or one-line strings: ``"metrics.accuracy max_drop=0.01 vs
        @model/prod"``); None takes the policy's ``checks`` whose ``runs`` clause selects
        the run.  The report is recorded in the store (``record=False``: not), and read
        back by ``checks_of`` and ``mlledger show``.  UsageError for a bad rule or no rule
        at all; NotFoundError for a baseline ref or run that does not exist.
        """
        from .checks.api import check_run

        return check_run(self, run, rules, record=record)

    @property
    def policy(self) -> Policy:
        """The team's rules, versioned in the store: ``get``, ``set``, ``history``."""
        return self.writer.policy

    def watch(
        self,
        once: bool = True,
        *,
        every: float = 60.0,
        since: str | float = "24h",
        name: str = "default",
        sinks: list[dict[str, Any]] | None = None,
        stop: threading.Event | None = None,
    ) -> list[Alert]:
        """Look at what happened since this watcher last looked and send the alerts it
        calls for to the policy's ``alerts`` sinks (or ``sinks``), each once across every
        watcher; returns the alerts found.

        ``once=False`` repeats a pass every ``every`` seconds until ``stop`` is set (or
        Ctrl-C).  A first pass looks back ``since`` (``"24h"``).  Kinds: ``failed``,
        ``stale``, ``check`` (finished runs the policy's checks judge) and ``monitor``
        (live monitor runs judged by ``window``/``last`` rules).
        """
        watcher = self.watcher(name=name, since=since, sinks=sinks)
        if once:
            return watcher.run_pass()
        try:
            return watcher.loop(every, stop or threading.Event())
        except KeyboardInterrupt:
            return []

    def watcher(self, **options: Any) -> Watcher:
        """The :class:`~mlledger.alerts.watch.Watcher` behind :meth:`watch` (its
        ``run_pass()``, ``loop()`` and last ``deliveries``)."""
        from .alerts.judges import Judges
        from .alerts.watch import Watcher

        judges = Judges(self)
        options.setdefault("judge_finished", judges.finished)
        options.setdefault("judge_monitor", judges.monitor)
        return Watcher(self, **options)

    @property
    def refs(self) -> LedgerRefs:
        """Named refs (``model/prod``): set, get, history, rollback; targets resolved first.

        A ref the policy protects moves only with a message and passing checks on the
        target's run (``force=True`` overrides; recorded)."""
        from .resolve import LedgerRefs

        return LedgerRefs(self, gate=self._gate_ref)

    def _gate_ref(
        self, name: str, run: str | None, message: str | None, force: bool, rollback: bool
    ) -> None:
        """Refuse a move of a protected ref the policy does not allow (see checks.gate)."""
        from .checks.api import gate_ref

        gate_ref(self, name, run, message, force=force, rollback=rollback)

    def verify(self, *, callback: Callback | None = None) -> VerifyReport:
        """Rehash every object; check every object a run or ref references exists and is
        sound, that every run entry is a readable record (``damaged`` lists those not), and
        every seal and link of the audit trail (``.trail``; ``.unchained`` counts entries
        from before the chain)."""
        from .soundness import verify_ledger

        return verify_ledger(self.store, self.catalog, self.resolve, callback=callback)

    def gc(
        self,
        dry_run: bool = True,
        *,
        keep_days: float | None = None,
        grace_seconds: float = 3600.0,
    ) -> GcReport:
        """Delete what nothing keeps; by default only reports (``dry_run=True``).

        Kept: every ref's target and its whole upstream lineage; every run
        started within ``keep_days`` (all runs when None) with everything it
        references; any object younger than ``grace_seconds``; and every object
        a live run (in any process, on any machine) names in its start or pin
        entries, read last, so a run in progress never loses an object, however
        old.  Runs not kept are deleted too.
        """
        from .gc import collect
        from .runs.pins import live_digests

        return collect(
            self.store,
            self.catalog,
            resolve=self.resolve,
            live=lambda **seen: live_digests(self, **seen),
            stored=self.writer.known,
            dry_run=dry_run,
            keep_days=keep_days,
            grace_seconds=grace_seconds,
        )


_default: tuple[str, Ledger] | None = None
_explicit_default: Ledger | None = None
_default_lock = threading.Lock()


def set_default_ledger(ledger: Ledger | None) -> None:
    """Make ``ledger`` the one behind ``mlledger.tracked`` and ``mlledger.run`` (None: back to
    ``$MLLEDGER_URL`` / the user data dir)."""
    global _explicit_default
    _explicit_default = ledger


def default_ledger() -> Ledger:
    """The ledger behind ``mlledger.tracked`` and ``mlledger.run``: made on first use.

    One set with :func:`set_default_ledger` wins; otherwise it is made again
    when ``$MLLEDGER_URL`` (or the user data dir) changes.
    """
    global _default
    if _explicit_default is not None:
        return _explicit_default
    url = default_url()
    got = _default
    if got is None or got[0] != url:
        with _default_lock:
            got = _default
            if got is None or got[0] != url:
                got = (url, Ledger(url))
                _default = got
    return got[1]
