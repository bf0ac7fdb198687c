"""``mlledger ref set|get|log|rollback|list``: named refs."""

from __future__ import annotations

import click

from .. import render
from .options import json_option
from .state import State, echo_json, pass_state

__all__ = ["ref"]


@click.group()
def ref() -> None:
    """Named refs (model/prod): append-only histories of targets."""


#: ``--force`` of ``ref set`` and ``ref rollback``
force_option = click.option(
    "--force",
    is_flag=True,
    help="Move a protected ref (the policy's protect) without a message or failing checks; "
    "the entry records it.",
)


@ref.command("set")
@click.argument("name")
@click.argument("target")
@click.option("-m", "--message", default=None, help="Why the ref moves.")
@force_option
@json_option()
@pass_state
def ref_set(
    state: State, *, name: str, target: str, message: str | None, force: bool, as_json: bool
) -> None:
    """Point ref NAME at TARGET.

    TARGET is a digest or hex prefix, a run id or prefix, RUN/NAME, @OTHER or
    a file or folder on disk.  A protected ref (policy protect) needs -m and
    a target whose run passes the policy's checks, or --force.
    """
    entry = state.ledger().refs.set(name, target, message=message, force=force)
    if as_json:
        echo_json(entry.to_json())
        return
    state.echo(f"{entry.name} -> {entry.target} (#{entry.seq})")


@ref.command("get")
@click.argument("name")
@json_option()
@pass_state
def ref_get(state: State, name: str, as_json: bool) -> None:
    """Print ref NAME's current target (the first word) and its entry."""
    entry = state.ledger().refs.get(name)
    if as_json:
        echo_json(entry.to_json())
        return
    state.echo(render.ref_current(entry))


@ref.command("log")
@click.argument("name")
@json_option("Print JSON: the entries oldest first.")
@pass_state
def ref_log(state: State, name: str, as_json: bool) -> None:
    """Show every move of ref NAME, newest first (rollbacks included)."""
    history = state.ledger().refs.history(name)
    have = {e.seq for e in history}
    gone = [s for s in range(1, max(have, default=0)) if s not in have]
    if gone:
        state.echo(
            f"warning: ref {name} has no entry {', '.join(f'#{s}' for s in gone)}: its history "
            "was damaged; run 'mlledger verify'",
            err=True,
        )
    if as_json:
        echo_json([e.to_json() for e in history])
        return
    for e in reversed(history):
        state.echo(render.ref_line(e))


@ref.command("rollback")
@click.argument("name")
@click.option(
    "--to",
    "to",
    default=None,
    metavar="TARGET|#SEQ",
    help="Move to this target, or to the target of entry #SEQ ('#3', or a plain number under "
    "100000). Default: the target before the current one.",
)
@click.option("-m", "--message", default=None, help="Why the ref moves back.")
@force_option
@json_option()
@pass_state
def ref_rollback(
    state: State, *, name: str, to: str | None, message: str | None, force: bool, as_json: bool
) -> None:
    """Move ref NAME back; the history only grows.

    A rollback appends an entry pointing at the earlier target: the audit
    trail is never rewritten.  A protected ref is gated as in 'ref set'.
    """
    dest: str | int | None = to
    if to is not None:
        t = to.strip()
        digits = t[1:] if t.startswith("#") else t
        if digits.isdigit() and (t.startswith("#") or len(digits) < 6):
            dest = int(digits)
    entry = state.ledger().refs.rollback(name, to=dest, message=message, force=force)
    if as_json:
        echo_json(entry.to_json())
        return
    back = f", the target of #{entry.restores}" if entry.restores is not None else ""
    state.echo(f"{entry.name} -> {entry.target} (#{entry.seq}{back})")


@ref.command("list")
@json_option("Print JSON: each ref's current entry.")
@pass_state
def ref_list(state: State, as_json: bool) -> None:
    """List every ref with its current target."""
    refs = state.ledger().refs
    entries = [refs.get(n) for n in refs.names()]
    if as_json:
        echo_json([e.to_json() for e in entries])
        return
    if not entries:
        state.echo("no refs", err=True)
        return
    for line in render.ref_list_lines(entries):
        state.echo(line)
