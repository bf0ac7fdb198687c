"""Judging a run by rules: baselines found, values read, limits applied.

``run_checks(source, run, rules)`` is what ``ledger.check`` does before it
records the report.  A baseline is ``@REF`` (the run the ref's entry names, or
the run that produced its artifact), a run id or prefix, or ``median:N`` (the
median over the last N finished runs the rule's ``runs`` selects, the judged
run left out).  A rule without a baseline judging a ``monitor`` run uses the
run's own ``baseline``.  A value or a baseline that is missing makes a failed
result that says so; a ref or run that does not exist is a NotFoundError.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .. import _settings
from ..errors import NotFoundError, UsageError
from ..rules import RELATIVE, check_rule, rule_name
from ..store import Refs
from .fields import field_value, recent_mean
from .result import CheckReport, CheckResult

if TYPE_CHECKING:
    from ..policy import Policy
    from ..records import Artifact
    from ..runs import Run
    from ..store import Store

__all__ = ["CheckSource", "judge", "normalize_rules", "rules_for", "run_checks", "selects"]


class _Producers(Protocol):
    @property
    def producers(self) -> Sequence[str]: ...


class _Index(Protocol):
    def artifact(self, digest: str) -> Artifact: ...


class CheckSource(Protocol):
    """What checking reads (the Ledger): its store, policy, catalog, runs by id and query."""

    store: Store

    @property
    def catalog(self) -> Any: ...

    @property
    def policy(self) -> Policy: ...

    def get(self, run_id: str) -> Run: ...

    def resolve(self, target: str) -> Artifact | Run: ...

    def runs(
        self,
        name: str | None = None,
        status: str | Iterable[str] | None = None,
        where: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> Sequence[Run]: ...


def _g(v: float | None) -> str:
    return "none" if v is None else f"{v:.6g}"


def _signed(v: float) -> str:
    return f"{v:+.6g}"


def normalize_rules(rules: Any) -> list[dict[str, Any]]:
    """Rules as given (a dict, a one-line string, or a list of those) checked and
    normalized; UsageError naming the bad one."""
    if isinstance(rules, (str, dict)):
        rules = [rules]
    if not isinstance(rules, (list, tuple)):
        raise UsageError(
            "rules= takes a list of rules (dicts, or strings such as "
            f"'metrics.accuracy max_drop=0.01 vs @model/prod'), not {type(rules).__qualname__}"
        )
    return [check_rule(r, i) for i, r in enumerate(rules)]


def selects(source: CheckSource, rule: dict[str, Any], run: Run) -> bool:
    """Whether the rule's ``runs`` clause (none: every run) selects ``run``."""
    clause = rule.get("runs")
    if not clause:
        return True
    return bool(source.catalog.run_matches(run.id, clause))


def rules_for(source: CheckSource, policy: dict[str, Any], run: Run) -> list[dict[str, Any]]:
    """The policy's rules whose ``runs`` clause selects ``run``, in policy order."""
    rules = normalize_rules(policy.get("checks") or [])
    return [r for r in rules if selects(source, r, run)]


def judge(rule: dict[str, Any], value: float, baseline: float | None) -> tuple[bool, str]:
    """Apply the rule's limits: ``(ok, what moved past which limit)``; ``baseline`` is None
    only when the rule has no relative limit."""
    broken: list[str] = []
    held: list[str] = []
    change = None if baseline is None else value - baseline
    for key in ("max_drop", "max_rise", "max_drop_pct", "max_rise_pct", "min", "max"):
        if key not in rule:
            continue
        limit = float(rule[key])
        if key in RELATIVE:
            assert change is not None
            assert baseline is not None
            if key.endswith("_pct"):
                if baseline == 0:
                    if change == 0:
                        held.append(f"{key}={limit:g}")
                        continue
                    broken.append(f"{key}={limit:g} cannot be judged against a baseline of 0")
                    continue
                moved = change / abs(baseline) * 100
                size = -moved if key == "max_drop_pct" else moved
                what = f"{'dropped' if moved < 0 else 'rose'} {abs(moved):.3g} %"
            else:
                size = -change if key == "max_drop" else change
                what = f"{'dropped' if change < 0 else 'rose'} {abs(change):.6g}"
            if size > limit:
                broken.append(f"{what}, past {key}={limit:g}")
            else:
                held.append(f"{key}={limit:g}")
        elif key == "min":
            if not value >= limit:
                broken.append(f"{_g(value)} is below min={limit:g}")
            else:
                held.append(f"min={limit:g}")
        elif not value <= limit:
            broken.append(f"{_g(value)} is above max={limit:g}")
        else:
            held.append(f"max={limit:g}")
    return (not broken, "; ".join(broken) if broken else f"within {', '.join(held)}")


class _Baselines:
    """Baselines found once per check (several rules may share one)."""

    def __init__(self, source: CheckSource, run: Run) -> None:
        self.source = source
        self.run = run
        self.runs: dict[str, Run | str] = {}

    def run_of(self, spec: str) -> Run | str:
        """The baseline run ``spec`` names, or why there is none (a sentence)."""
        got = self.runs.get(spec)
        if got is None:
            got = self.runs[spec] = self._find(spec)
        return got

    def _find(self, spec: str) -> Run | str:
        src = self.source
        if spec.startswith("@"):
            entry = Refs(src.store).get(spec[1:])  # NotFoundError naming close refs
            if entry.run:
                return src.get(entry.run)
            target = src.resolve(entry.target)
            if not hasattr(target, "digest"):
                return target
            producers = src.catalog.artifact(target.digest).producers
            if len(producers) == 1:
                return src.get(producers[0])
            return (
                f"ref {spec[1:]!r} points at {target.digest}, which "
                f"{'no run' if not producers else f'{len(producers)} runs'} produced: "
                "point the ref at a run to compare against"
            )
        try:
            return src.get(spec)
        except NotFoundError as e:
            raise NotFoundError(
                f"baseline {spec!r} is not a run or ref in {src.store.url} ({e}); give "
                "'@REF' (a ref such as @model/prod), a run id or 'median:N'"
            ) from None

    def median(self, rule: dict[str, Any], n: int) -> tuple[float | None, str]:
        field = rule["field"]
        runs = self.source.runs(where=rule.get("runs"), status="finished", limit=n + 1)
        values = [
            v
            for r in [r for r in runs if r.id != self.run.id][:n]
            if (v := field_value(r, field)) is not None
        ]
        if not values:
            which = f"selected by {rule['runs']!r}" if rule.get("runs") else "in the ledger"
            return None, f"no finished run {which} has {field} to take a median of"
        n_runs = f"{len(values)} run{'' if len(values) == 1 else 's'}"
        return statistics.median(values), f"median of {n_runs}"


def _check_one(rule: dict[str, Any], run: Run, baselines: _Baselines) -> CheckResult:
    field = rule["field"]
    name = rule_name(rule)
    spec: str | None = rule.get("baseline")
    if spec is None and run.record.get("kind") == "monitor":
        spec = run.record.get("baseline")
    if "window" in rule or "last" in rule:
        value, n = recent_mean(run, field, window=rule.get("window"), last=rule.get("last"))
        span = f"last {rule['last']} points" if "last" in rule else f"{rule['window']} window"
        what = f"{field} (mean of {n} points, {span})"
    else:
        value, what = field_value(run, field), field

    def failed(message: str, baseline: float | None = None, brun: str | None = None) -> CheckResult:
        return CheckResult(name, field, value, baseline, None, False, message, brun, spec)

    if value is None:
        return failed(f"run {run.id} has no {field}: nothing to judge (did it log it?)")
    needs = any(k in rule for k in RELATIVE)
    baseline: float | None = None
    brun: str | None = None
    against = ""
    if spec is not None and (needs or spec == rule.get("baseline")):
        if spec.startswith("median:"):
            baseline, said = baselines.median(rule, int(spec.partition(":")[2]))
            if baseline is None:
                return failed(f"no baseline for {what}: {said}")
            against = f" vs {_g(baseline)} ({said})"
        else:
            got = baselines.run_of(spec)
            if isinstance(got, str):
                return failed(f"no baseline for {what}: {got}")
            brun = got.id
            baseline = field_value(got, field)
            if baseline is None:
                return failed(
                    f"the baseline {spec} (run {got.id}) has no {field}: nothing to compare with",
                    None,
                    brun,
                )
            against = f" vs {_g(baseline)} ({spec})"
    elif needs:
        return failed(
            f"no baseline for {what}: the rule names none and run {run.id} is no monitor "
            "run with one (ledger.run(..., kind='monitor', baseline='@REF'))"
        )
    ok, said = judge(rule, value, baseline)
    change = None if baseline is None else value - baseline
    moved = "" if change is None else f": {_signed(change)}"
    message = f"{what} {_g(value)}{against}{moved}, {said}"
    return CheckResult(name, field, value, baseline, change, ok, message, brun, spec)


def run_checks(source: CheckSource, run: Run, rules: list[dict[str, Any]]) -> CheckReport:
    """Judge ``run`` by ``rules`` (normalized): a report, results in rule order."""
    baselines = _Baselines(source, run)
    results = tuple(_check_one(rule, run, baselines) for rule in rules)
    return CheckReport(run.id, results, user=_settings.user_name())
