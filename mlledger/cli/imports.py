"""``mlledger import``: runs recorded by another tracker brought into the ledger."""

from __future__ import annotations

import click

from .._fmt import counted
from .options import json_option
from .state import State, echo_json, pass_state, stderr_is_terminal

__all__ = ["import_group"]


@click.group(name="import")
def import_group() -> None:
    """Bring runs recorded by another tracker into the ledger."""


@import_group.command(name="mlflow")
@click.argument("source", metavar="PATH_OR_URI")
@click.option(
    "--experiment",
    "experiments",
    multiple=True,
    metavar="NAME",
    help="Only this experiment (a name or an id; repeatable). Default: every active one.",
)
@click.option("--no-artifacts", is_flag=True, help="Leave the runs' artifacts out.")
@click.option(
    "--via-client",
    is_flag=True,
    help="Read a mlruns folder or sqlite database through MLflow's client (slower): for a "
    "layout or schema version the direct reader does not know.",
)
@json_option()
@pass_state
def mlflow(
    state: State,
    *,
    source: str,
    experiments: tuple[str, ...],
    no_artifacts: bool,
    via_client: bool,
    as_json: bool,
) -> None:
    """Import an MLflow tracking store: a mlruns folder, a sqlite:/// database or a URI.

    Each active run becomes a run of the ledger: params (numbers typed), every
    metric's history, tags (with mlflow.run_id and mlflow.experiment), artifacts
    as outputs, times, user and status.  Runs imported before are skipped, so
    running it again adds only new runs.  A folder and a sqlite database are
    read directly (their layout checked); other URIs through MLflow's client.
    Needs: pip install 'mlledger[mlflow]'.
    """
    from ..integrations.mlflow import import_mlflow

    ledger = state.ledger(create=True)
    bar = None
    if not as_json and stderr_is_terminal():
        from tqdm import tqdm

        bar = tqdm(unit="run", desc="importing", leave=False)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        report = import_mlflow(
            ledger,
            source,
            experiments=experiments or None,
            artifacts=not no_artifacts,
            progress=progress,
            via_client=via_client,
        )
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        echo_json(report.to_json())
        return
    for w in report.warnings:
        state.echo(f"mlledger: warning: {w}", err=True)
    already = f" ({len(report.skipped)} imported before)" if report.skipped else ""
    state.echo(
        f"imported {counted(len(report.imported), 'run')}{already} and "
        f"{counted(report.artifacts, 'artifact')} from {counted(report.experiments, 'experiment')} "
        f"of {report.source}"
    )
