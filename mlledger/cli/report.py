"""``mlledger report``: one self-contained HTML page of the runs, or a Markdown summary."""

from __future__ import annotations

import click

from .state import State, pass_state

__all__ = ["report"]


@click.command()
@click.option(
    "--where",
    default=None,
    metavar="EXPR",
    help="Only runs matching this filter (the query language, as in 'mlledger log --where').",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the newest N runs.")
@click.option(
    "-o",
    "--output",
    "path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write it (default mlledger-report.html, or .md for markdown).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "markdown"]),
    default="html",
    show_default=True,
    help="html: the interactive page; markdown: a summary for a CI step or a pull request.",
)
@click.option(
    "--publish",
    is_flag=True,
    help="Write it into the store (create-only, under reports/) and print its URL; "
    "also to -o when given.",
)
@click.option(
    "--curves",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Embed metric curves for the first N runs of the table.",
)
@pass_state
def report(
    state: State,
    *,
    where: str | None,
    limit: int | None,
    path: str | None,
    fmt: str,
    publish: bool,
    curves: int,
) -> None:
    """Write a report of the runs: ONE HTML file that needs no network.

    It shows the runs (sortable, filterable), metric curves of the runs you tick,
    the diff of two ticked runs, the lineage graph and the refs' histories.
    """
    if path is None and not publish:
        path = "mlledger-report.md" if fmt == "markdown" else "mlledger-report.html"
    where_to = state.ledger().report(
        path, where, limit=limit, format=fmt, publish=publish, curve_runs=curves
    )
    if publish and path is not None:
        state.echo(f"wrote {fmt} report: {path}")
    state.echo(f"{'published' if publish else 'wrote'} {fmt} report: {where_to}")
