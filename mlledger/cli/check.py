"""``mlledger check [RUN] [--rule ...] [--format ...]``: judge runs, exit 0 / 1 / 2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..checks import normalize_rules
from ..checks.formats import FORMATS, format_reports
from ..errors import UsageError
from ..rules import rule_name
from .state import State, get_run, pass_state

if TYPE_CHECKING:
    from ..checks import CheckReport
    from ..ledger import Ledger
    from ..runs import Run

__all__ = ["check"]


def _newest_per_rule(ledger: Ledger, rules: list[dict[str, Any]]) -> list[tuple[Run, list[Any]]]:
    """For each rule, the newest finished run its ``runs`` clause selects (a ``window`` or
    ``last`` rule: the newest running or finished one, a live monitor run); the rules
    grouped by that run, in the order the runs first come up."""
    groups: dict[str, tuple[Run, list[Any]]] = {}
    for rule in rules:
        live = "window" in rule or "last" in rule
        status = ("running", "finished") if live else "finished"
        found = ledger.runs(where=rule.get("runs"), status=status, limit=1)
        if not found:
            which = f"selected by runs={rule['runs']!r}" if rule.get("runs") else "in the store"
            raise UsageError(
                f"check rule {rule_name(rule)!r}: no {' or '.join(status) if live else status} "
                f"run {which}; name the run to judge (mlledger check RUN) or run one first"
            )
        run = found[0]
        groups.setdefault(run.id, (run, []))[1].append(rule)
    return list(groups.values())


@click.command()
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option(
    "--rule",
    "rules",
    multiple=True,
    metavar="RULE",
    help="A rule instead of the policy's (repeatable): FIELD LIMIT=N... [vs BASELINE], such as "
    '"metrics.accuracy max_drop=0.01 vs @model/prod" (limits max_drop, max_rise, '
    "max_drop_pct, max_rise_pct, min, max; baseline @REF, a run id or median:N; "
    "runs=\"name = 'train'\" picks the runs it judges).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Text for people, JSON, Markdown (a table for $GITHUB_STEP_SUMMARY or a pull request "
    "comment) or JUnit XML.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--no-record", is_flag=True, help="Do not record the check in the store (a dry run).")
@pass_state
def check(
    state: State,
    *,
    run_id: str | None,
    rules: tuple[str, ...],
    fmt: str,
    as_json: bool,
    no_record: bool,
) -> int:
    """Judge a run by check rules; exit 0 when all pass, 1 when a rule failed.

    RUN is a run id, a unique prefix or @REF naming a run.  The rules are
    the --rule options, else the policy's checks (those whose runs clause
    selects RUN).  Without RUN, each rule judges the newest finished run
    its runs clause selects (a window or last rule: the newest running or
    finished one, such as a live monitor run).  Each check is recorded in the store (see
    'mlledger show RUN').  Exit 2 on a bad rule, an unknown baseline or no
    rule at all.
    """
    ledger = state.ledger()
    given: list[Any] | None = normalize_rules(list(rules)) if rules else None
    if given is None:
        policy_rules = normalize_rules(ledger.policy.get().get("checks") or [])
        if not policy_rules:
            raise UsageError(
                'no check rules: give --rule "metrics.accuracy max_drop=0.01 vs @model/prod" '
                "or set the policy's: mlledger policy set 'checks=[...]' -m why"
            )
    reports: list[CheckReport] = []
    if run_id is not None:
        run = get_run(ledger, run_id)
        report = ledger.check(run, rules=given, record=not no_record)
        if not report.results:
            raise UsageError(
                f"no rule of the policy selects run {run.id} (their runs clauses leave it out); "
                "give --rule to judge it"
            )
        reports.append(report)
    else:
        for run, chosen in _newest_per_rule(ledger, given or policy_rules):
            reports.append(ledger.check(run, rules=chosen, record=not no_record))
    state.echo(format_reports(reports, "json" if as_json else fmt))
    return 0 if all(r.ok for r in reports) else 1
