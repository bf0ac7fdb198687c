"""What the work cost and what the store holds: ``mlledger cost`` and ``mlledger du``."""

from __future__ import annotations

import click

from .._fmt import human_size, money
from .options import json_option
from .state import State, echo_json, pass_state

__all__ = ["cost", "du"]


def _table(head: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Rows with aligned columns: the first ``left`` columns to the left, the rest right."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return [
        "  ".join(
            c.ljust(widths[i]) if i < left else c.rjust(widths[i]) for i, c in enumerate(r)
        ).rstrip()
        for r in [head, *rows]
    ]


# ------------------------------------------------------------------------ cost


@click.command()
@click.option(
    "--by",
    default="name",
    show_default=True,
    metavar="FIELD",
    help="Group by name, user, host, day, status or tags.X (tags.team).",
)
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="Only runs started since then: a duration back from now (30d, 12h, 2w) or a date "
    "(2026-11-01). Default: all runs.",
)
@click.option(
    "--where",
    default=None,
    metavar="EXPR",
    help='Only the runs this filter selects ("tags.team = \'cv\'", "cost > 1").',
)
@json_option()
@pass_state
def cost(state: State, by: str, since: str | None, where: str | None, as_json: bool) -> None:
    """Sum the cost runs recorded, by group, most expensive first.

    A run's cost is priced when it ends, at the policy's rates then
    (mlledger policy set rates=...).  Runs recorded before rates were set
    have no cost: they are counted as "not priced", never priced after the
    fact.  A nested run runs in its parent's time and is counted once, with
    the parent, when both are selected.
    """
    report = state.ledger().cost(by=by, since=since, where=where)
    if as_json:
        echo_json(report.to_json())
        return
    if not report.groups:
        state.echo("no runs match", err=True)
        return
    rows = []
    for g in [*report.groups, report.total]:
        if len(g.costs) > 1:
            spent = ", ".join(money(v, k or None) for k, v in sorted(g.costs.items()))
        else:
            spent = money(g.cost, g.currency) if g.priced else "-"
        label = "(no value)" if g.group is None else str(g.group)
        hours = f"{g.hours:.2f}" if g.hours >= 1 or g.hours == 0 else f"{g.hours:.2g}"
        rows.append([label, str(g.runs), hours, spent, str(g.not_priced or "")])
    lines = _table([by, "runs", "hours", "cost", "not priced"], rows)
    lines.insert(-1, "-" * len(lines[0]))
    for line in lines:
        state.echo(line)
    if report.total.not_priced:
        state.echo(
            f"{report.total.not_priced} run(s) have no cost: they ended before rates were set "
            "(or are still going)",
            err=True,
        )


# -------------------------------------------------------------------------- du


@click.command()
@click.option(
    "--by",
    type=click.Choice(["name", "ref"]),
    default=None,
    help="Attribute referenced bytes to run names, or to what each ref's lineage keeps.",
)
@json_option()
@pass_state
def du(state: State, by: str | None, as_json: bool) -> None:
    """Show bytes stored, referenced by runs, and saved by deduplication.

    Stored: every object in the store (one listing).  Referenced: the bytes
    of each run's inputs and outputs, summed run by run (what a copy per run
    would take).  Saved: referenced less stored.  Storage cost per month at
    the policy's rates.storage_gb_month (per GiB).
    """
    usage = state.ledger().du(by=by)
    if as_json:
        echo_json(usage.to_json())
        return
    pct = f" ({100 * usage.saved_bytes / usage.logical_bytes:.0f}%)" if usage.logical_bytes else ""
    lines = [
        f"stored      {human_size(usage.stored_bytes)} in {usage.objects} objects",
        f"referenced  {human_size(usage.logical_bytes)} by {usage.runs} runs "
        f"({human_size(usage.distinct_bytes)} in {usage.artifacts} distinct artifacts)",
        f"saved       {human_size(usage.saved_bytes)}{pct} by deduplication",
    ]
    monthly = usage.monthly_cost
    if monthly is not None:
        lines.append(f"storage     {money(monthly, usage.currency)} per month")
    else:
        lines.append("storage     (set rates.storage_gb_month in the policy for a monthly cost)")
    for line in lines:
        state.echo(line)
    if usage.groups:
        state.echo("")
        rows = [
            [
                g.group,
                str(g.runs),
                human_size(g.referenced),
                human_size(g.distinct),
                human_size(g.exclusive),
            ]
            for g in usage.groups
        ]
        for line in _table([by or "", "runs", "referenced", "distinct", "only here"], rows):
            state.echo(line)
