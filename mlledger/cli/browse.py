"""Reading commands: ``log``, ``show``, ``diff``, ``lineage``, ``artifact``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .. import render
from ..diff import SECTIONS
from ..errors import LedgerError
from .options import json_option
from .state import State, echo_json, get_run, pass_state, resolve_artifact, stdout_is_terminal

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..runs import Run

__all__ = ["artifact", "diff", "lineage", "log", "show"]

STATUSES = ("running", "finished", "cached", "failed", "interrupted", "incomplete")


# ------------------------------------------------------------------------- log


def _run_summary(run: Run) -> dict[str, Any]:
    rec = run.record
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "kind": rec.get("kind"),
        "started_at": rec.get("started_at"),
        "ended_at": rec.get("ended_at"),
        "wall_s": run.resources.get("wall_s"),
        "cost": run.resources.get("cost"),
        "currency": run.resources.get("currency"),
        "parent_id": run.parent_id,
        "message": run.message,
        "user": run.user,
        "host": run.host,
        "tags": run.tags,
        "params": run.params,
        "metrics": run.metrics,
    }


@click.command()
@click.option("--name", default=None, help="Only runs with this name.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only runs with this status (repeatable).",
)
@click.option(
    "--where",
    default=None,
    metavar="EXPR",
    help='A filter such as "params.lr > 0.01 and metrics.loss < 0.5" (fields params.X, '
    "params.cfg.X for a config's fields, metrics.X[.min|.max], tags.X, resources.X, cost, "
    "name, status, started_at, user, host).",
)
@click.option(
    "--order-by",
    default=None,
    metavar="FIELD",
    help="Sort by a field, '-' in front for descending (-metrics.accuracy). Default: newest first.",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Show at most this many runs (0: all).",
)
@json_option()
@pass_state
def log(
    state: State,
    *,
    name: str | None,
    statuses: tuple[str, ...],
    where: str | None,
    order_by: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first, one a line.

    Each line: the short id (the shortest unique prefix, at least 12
    characters), age, name, status, cost (when priced) and up to four metrics
    (last values).
    """
    ledger = state.ledger()
    runs = ledger.runs(
        name=name,
        status=list(statuses) or None,
        where=where,
        order_by=order_by,
        limit=limit or None,
    )
    if as_json:
        echo_json([_run_summary(r) for r in runs])
        return
    unknown = ledger.catalog.unknown_fields(where, order_by, name) if not runs or order_by else []
    for what, close in unknown:  # a typo matches nothing, silently: say so
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        state.echo(f"no run has {what}{hint}", err=True)
    if not runs:
        state.echo("no runs match", err=True)
        return
    for line in render.run_lines(ledger, runs):
        state.echo(line)


# ------------------------------------------------------------------------ show


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--packages", is_flag=True, help="List every installed package of the run's environment."
)
@json_option()
@pass_state
def show(state: State, run_id: str, packages: bool, as_json: bool) -> None:
    """Show one run's whole record.

    Params, metrics (last, min, max), inputs and outputs with digests, code,
    git, environment, resources, error, warnings and the newest check's
    results ('checks' in --json).  RUN is a run id, a unique prefix of one,
    or @REF naming a run.
    """
    ledger = state.ledger()
    run = get_run(ledger, run_id)
    if as_json:
        from ..checks import checks_of

        reports = checks_of(ledger.store, run.id)
        checks = reports[-1].to_json() if reports else None
        echo_json({**run.record, "environment": run.env, "checks": checks})
        return
    state.echo(render.run_text(ledger, run, packages=packages))


# ------------------------------------------------------------------------ diff


@click.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option(
    "--section",
    "sections",
    multiple=True,
    type=click.Choice(SECTIONS),
    help="Only this section (repeatable).",
)
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when the runs differ in anything the diff reports (within --section), "
    "0 when they are the same (as git diff --exit-code).",
)
@json_option()
@pass_state
def diff(
    state: State, a: str, b: str, *, sections: tuple[str, ...], exit_code: bool, as_json: bool
) -> int:
    """Show what changed from run A to run B, by section.

    A and B are run ids, unique prefixes or @REFs naming runs.  Times and
    resource figures are never changes.  Coloured when stdout is a terminal
    (see --color).
    """
    import attrs

    ledger = state.ledger()
    d = ledger.diff(get_run(ledger, a), get_run(ledger, b))
    if sections:
        d = attrs.evolve(d, changes=tuple(c for c in d.changes if c.section in sections))
    differ = 1 if exit_code and d.changes else 0
    if as_json:
        echo_json({"a": d.a, "b": d.b, "changes": d.to_json()})
        return differ
    color = state.color
    if color is None:
        color = stdout_is_terminal()
    state.echo(d.to_text(color=color).rstrip("\n"))
    return differ


# --------------------------------------------------------------------- lineage


@click.command()
@click.argument("target")
@click.option(
    "--up",
    "direction",
    flag_value="upstream",
    default=True,
    help="What produced TARGET: its inputs, their producers... (the default).",
)
@click.option("--down", "direction", flag_value="downstream", help="What was built from TARGET.")
@click.option("--both", "direction", flag_value="both", help="Upstream and downstream.")
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    default=None,
    help="At most this many runs deep, each with its direct inputs (--down: outputs): 1 is "
    "the run (or the runs that made TARGET) and its inputs. Default: no limit.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "dot", "mermaid", "json", "openlineage"]),
    default="text",
    show_default=True,
    help="Text for people, Graphviz DOT, Mermaid, JSON, or OpenLineage run events "
    "(JSON lines: a START and an end event per run).",
)
@json_option("Same as --format json.")
@pass_state
def lineage(
    state: State, *, target: str, direction: str, depth: int | None, fmt: str, as_json: bool
) -> None:
    """Show what produced TARGET, or (--down) what came from it.

    TARGET is a digest or hex prefix, a run id or prefix, RUN/NAME, @REF or a
    file or folder on disk (the artifact holding its bytes).
    """
    ledger = state.ledger()
    lin = ledger.lineage(target, direction=direction, depth=depth)
    if as_json or fmt == "json":
        click.echo(lin.to_json())
    elif fmt == "dot":
        click.echo(lin.to_dot(), nl=False)
    elif fmt == "mermaid":
        click.echo(lin.to_mermaid(), nl=False)
    elif fmt == "openlineage":
        from ..integrations.openlineage import to_jsonl

        click.echo(to_jsonl(lin, ledger.url, lambda rid: _run_name(ledger, rid)), nl=False)
    else:
        state.echo(render.lineage_text(ledger, lin))


def _run_name(ledger: Ledger, run_id: str) -> str | None:
    """A run's name, or None when the store no longer has it (gc)."""
    try:
        return ledger.get(run_id).name
    except LedgerError:
        return None


# -------------------------------------------------------------------- artifact


@click.command()
@click.argument("target")
@click.option("--files", is_flag=True, help="For a folder (tree): list every entry.")
@json_option()
@pass_state
def artifact(state: State, target: str, files: bool, as_json: bool) -> None:
    """Show an artifact: digest, kind, size, producers and consumers.

    TARGET is a digest or hex prefix, RUN/NAME, @REF, a file on disk, or a run with
    exactly one output.
    """
    import attrs

    ledger = state.ledger()
    found = resolve_artifact(ledger, target)
    art = ledger.artifact(found.digest)
    tree = ledger.store.read_tree(art.digest) if art.kind == "tree" else None
    if tree is not None and art.files is None:
        art = attrs.evolve(art, files=len(tree.files))
    entries = tree.entries if files and tree is not None else None
    if as_json:
        data = {**art.to_json(), "producers": list(art.producers), "consumers": list(art.consumers)}
        if found.path and "path" not in data:
            data["path"] = found.path
        if entries is not None:
            data["entries"] = [e.to_json() for e in entries]
        echo_json(data)
        return
    state.echo(render.artifact_text(ledger, art, path=found.path, entries=entries))
