"""``mlledger watch [--once | --every 60] [--json]``: alerts from what happened since the
last look, sent to the policy's sinks."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

import click

from .._fmt import one_line
from ..rules import parse_duration
from .options import json_option
from .state import State, pass_state

if TYPE_CHECKING:  # the alert sinks (email, http) load when watch runs, not for every command
    from ..alerts.alert import Alert
    from ..alerts.delivery import Delivery

__all__ = ["watch"]


def _text(d: Delivery) -> str:
    a = d.alert
    sent = ", ".join(
        f"{o.sink}: {o.state}" + (f" ({one_line(o.error)})" if o.error else "") for o in d.outcomes
    )
    return f"{a.kind:<8} {a.run_id[:12]}  {one_line(a.message)}" + (f"  -> {sent}" if sent else "")


def _number(text: str) -> str | float:
    """``"60"`` as 60 seconds; other text (``"5m"``) as it is."""
    try:
        return float(text)
    except ValueError:
        return text


@click.command()
@click.option("--once", "once", is_flag=True, help="One pass, then exit (the default).")
@click.option(
    "--every",
    "every",
    default=None,
    metavar="SECONDS",
    help="A pass every SECONDS (60, or 90s, 5m) until SIGINT/SIGTERM.",
)
@click.option(
    "--since",
    default="24h",
    show_default=True,
    metavar="DURATION",
    help="How far back the first pass of this watcher looks (30m, 24h, 7d).",
)
@click.option(
    "--name",
    default="default",
    show_default=True,
    help="The watcher's name: its own cursor, apart from other watchers on this machine.",
)
@json_option(
    "Print each alert as JSON with what each sink made of it (JSON lines with --every); "
    'a pending alert tried again has "retry": true.'
)
@pass_state
def watch(
    state: State, *, once: bool, every: str | None, since: str, name: str, as_json: bool
) -> None:
    """Alert on failed runs, stale runs, broken checks and monitor runs.

    Each pass looks at what happened since this watcher last looked and sends
    each alert to the policy's 'alerts' sinks, once across every watcher of
    the store.  A sink that fails is retried on the next pass.  Exit 0 when
    it ran (alerts or not), 2 on a bad rule or sink.
    """
    if once and every is not None:
        raise click.UsageError("--once and --every exclude each other: pick one")
    interval = None if every is None else parse_duration(_number(every), "--every")
    watcher = state.ledger().watcher(name=name, since=_number(since))

    def report(found: list[Alert], *, lines: bool) -> None:
        done = {d.alert.key: d for d in watcher.deliveries}
        new = {a.key for a in found}
        from ..alerts.delivery import Delivery

        items = [done.get(a.key) or Delivery(a, ()) for a in found]
        retried = [d for d in watcher.deliveries if d.alert.key not in new]
        if as_json:
            docs = [d.to_json() for d in items]
            docs += [{**d.to_json(), "retry": True} for d in retried]
            if lines:
                for doc in docs:
                    click.echo(json.dumps(doc, sort_keys=True))
            else:
                click.echo(json.dumps(docs, indent=2, sort_keys=True))
            return
        for d in items:
            state.echo(_text(d))
        for d in retried:
            state.echo(f"(retry) {_text(d)}")

    if interval is None:
        found = watcher.run_pass()
        report(found, lines=False)
        if not found and not as_json:
            state.echo("nothing new", err=True)
        return
    stop = threading.Event()

    def ask_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, ask_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        watcher.loop(interval, stop, on_pass=lambda found: report(found, lines=True))
    finally:
        for s, h in old.items():
            signal.signal(s, h)
