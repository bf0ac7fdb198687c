"""``mlledger policy show|set|log``: the team's rules, versioned in the store."""

from __future__ import annotations

import json
from typing import Any

import click

from .._fmt import one_line
from ..errors import UsageError
from ..policy import KEYS, PolicyEntry
from ..records import to_iso
from .options import json_option
from .state import State, echo_json, pass_state

__all__ = ["parse_assignments", "policy"]


def parse_assignments(items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` words as policy changes: VALUE is JSON where it parses
    (``true``, ``["team"]``, ``{"instance_hour": 1.2}``), else the text; ``KEY=`` removes
    the key."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(
                f"{item!r} is not KEY=VALUE: write for example require_message=true "
                f"(the keys: {', '.join(KEYS)})"
            )
        if raw == "":
            out[key] = None
            continue
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


@click.group()
def policy() -> None:
    """The team's rules, versioned in the store.

    Keys: require_message (true/false), require_tags (names), protect (ref
    patterns such as 'model/*'), rates (cost per hour), checks (rules),
    alerts (sinks).  Every change is an entry of the store's audit trail.
    """


def _entry_json(e: PolicyEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": to_iso(e.at),
        "user": e.user,
        "host": e.host,
        "message": e.message,
        "changed": list(e.changed),
        "policy": e.policy,
    }


@policy.command("show")
@json_option()
@pass_state
def show(state: State, as_json: bool) -> None:
    """Print the policy in force."""
    got = state.ledger().policy.get()
    if as_json:
        echo_json(got)
        return
    if not got:
        state.echo("no policy is set (mlledger policy set KEY=VALUE -m WHY)")
        return
    for key in KEYS:
        if key in got:
            state.echo(f"{key} = {json.dumps(got[key])}")


@policy.command("set")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("-m", "--message", default=None, help="Why the rules change (kept in the history).")
@json_option()
@pass_state
def set_(state: State, assignments: tuple[str, ...], message: str | None, as_json: bool) -> None:
    """Change the policy: VALUE is JSON (true, ["team"], {...}) or text; KEY= removes KEY.

    Example: mlledger policy set require_message=true require_tags=team -m "audit asks"
    """
    entry = state.ledger().policy.set(message=message, **parse_assignments(assignments))
    if as_json:
        echo_json(_entry_json(entry))
        return
    state.echo(f"policy #{entry.seq}: set {', '.join(entry.changed)}")


@policy.command("log")
@json_option()
@pass_state
def log(state: State, as_json: bool) -> None:
    """Every change of the policy, newest first: who, when, why, what."""
    history = state.ledger().policy.history()
    if as_json:
        echo_json([_entry_json(e) for e in reversed(history)])
        return
    if not history:
        state.echo("the policy was never set")
        return
    for e in reversed(history):
        why = f"  {one_line(e.message)}" if e.message else ""
        state.echo(f"#{e.seq}  {to_iso(e.at)}  {e.user}@{e.host}  {', '.join(e.changed)}{why}")
