"""``mlledger changelog REF``: each move of a ref with its causes and effects."""

from __future__ import annotations

import click

from .state import State, pass_state

__all__ = ["changelog"]


@click.command()
@click.argument("ref")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="text for a terminal, markdown for a pull request or $GITHUB_STEP_SUMMARY, "
    "json for scripts (shape: python -m pydoc mlledger.changelog.log).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Only the newest N moves (each still compared with the move before it).",
)
@pass_state
def changelog(state: State, ref: str, fmt: str, limit: int | None) -> None:
    """Show each move of ref REF, newest first: who, when, why, the target and its run,
    and against the move before: what changed (params, data, code, packages,
    environment) and the effect on every metric both runs have, with cost.

    A damaged entry or a run that cannot be read is shown as such.
    """
    log = state.ledger().changelog(ref, limit=limit)
    if fmt == "json":
        click.echo(log.to_json())
    elif fmt == "markdown":
        click.echo(log.to_markdown(), nl=False)
    else:
        state.echo(log.to_text(color=True), nl=False)
