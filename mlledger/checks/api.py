"""What ``Ledger.check`` and a protected ref's gate do, on any :class:`CheckSource`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError, UsageError
from ..runs import Run
from .engine import CheckSource, normalize_rules, rules_for, run_checks
from .gate import gate_ref_move
from .record import write_report

if TYPE_CHECKING:
    from .result import CheckReport

__all__ = ["check_run", "gate_ref", "run_of"]


def run_of(source: CheckSource, target: str | Run) -> Run:
    """A run from a run id, prefix, ``@REF`` naming a run (or its output), or a Run."""
    if isinstance(target, Run):
        return target
    if isinstance(target, str) and target.strip().startswith("@"):
        got = source.resolve(target)
        if isinstance(got, Run):
            return got
        producers = source.catalog.artifact(got.digest).producers
        if len(producers) == 1:
            return source.get(producers[0])
        raise NotFoundError(f"{target} names {got.digest}, which no single run produced")
    return source.get(target)


def check_run(
    source: CheckSource, run: str | Run, rules: Any = None, *, record: bool = True
) -> CheckReport:
    """``Ledger.check``: judge ``run`` by ``rules`` (None: the policy's that select it),
    and record the report unless ``record`` is False."""
    target = run_of(source, run)
    cat = source.catalog
    if cat.record_of(target.id) is None:  # a run from elsewhere: the rules' where clauses
        cat.sync()  # and median baselines see it and its peers
    if rules is None:
        policy = source.policy.get()
        if not policy.get("checks"):
            raise UsageError(
                f"no check rules: the policy of {source.store.url} sets none; pass "
                "rules=[...] or set them with `mlledger policy set checks=[...] -m why`"
            )
        chosen = rules_for(source, policy, target)
    else:
        chosen = normalize_rules(rules)
        if not chosen:
            raise UsageError("rules=[] holds no rule: give at least one, or None for the policy's")
    report = run_checks(source, target, chosen)
    if record and report.results:
        write_report(source.store, report)
    return report


def gate_ref(
    source: CheckSource,
    name: str,
    run: str | None,
    message: str | None,
    *,
    force: bool,
    rollback: bool,
) -> None:
    """Refuse a move of a protected ref the policy does not allow (PolicyError); record
    the check that let it through."""
    policy = source.policy.get()
    if not policy.get("protect"):
        return
    report = gate_ref_move(source, policy, name, run, message, force=force, rollback=rollback)
    if report is not None:
        write_report(source.store, report)
