"""The gate of a protected ref: a message, and passing checks on the target's run.

A ref whose name matches the policy's ``protect`` patterns moves (set or
rollback) only with a message and when the run behind its new target passes
the policy's checks that select that run (a rollback leaves out the rules whose
baseline is that same ref: the target it leaves is what it turns away from).
``force`` overrides both (the ref entry records it).  A refusal is a
PolicyError naming the pattern, or the rule that failed, and how to get
through; nothing is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import PolicyError
from ..policy import protected
from .engine import CheckSource, rules_for, run_checks

if TYPE_CHECKING:
    from .result import CheckReport

__all__ = ["gate_ref_move"]


def gate_ref_move(
    source: CheckSource,
    policy: dict[str, Any],
    name: str,
    run_id: str | None,
    message: str | None,
    *,
    force: bool = False,
    rollback: bool = False,
) -> CheckReport | None:
    """Refuse (PolicyError) a move of the protected ref ``name`` the policy does not allow;
    the check report that let it through (to be recorded), or None when no check ran."""
    pattern = protected(policy, name)
    if pattern is None or force:
        return None
    verb, cmd = ("rolling it back", "rollback") if rollback else ("moving it", "set")
    why = f"ref {name!r} is protected (policy protect {pattern!r})"
    override = "or --force (force=True) to override, which the ref's history records"
    if not (isinstance(message, str) and message.strip()):
        raise PolicyError(
            f"{why}: {verb} needs a message: `mlledger ref {cmd} {name} ... -m 'why'` "
            f"(message='why'), {override}"
        )
    if not policy.get("checks"):
        return None
    if run_id is None:
        raise PolicyError(
            f"{why}: its new target comes from no single run, so the policy's checks cannot "
            f"judge it: point it at a run (RUN or RUN/NAME), {override}"
        )
    run = source.get(run_id)
    rules = rules_for(source, policy, run)
    if rollback:  # going back is judged against the ref's current target by no rule
        rules = [r for r in rules if r.get("baseline") != f"@{name}"]
    if not rules:
        return None
    report = run_checks(source, run, rules)
    failed = report.failed
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise PolicyError(
            f"{why}: run {run.id} fails the check {first.rule!r}{more}: {first.message}; "
            f"fix the run (see `mlledger check {run.id}`), {override}"
        )
    return report
