"""What every command shares: the store the group's options chose, the one check that a
store exists, the run or artifact a target names, JSON output and progress bars."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from .._settings import default_url
from ..errors import NotFoundError, UsageError
from ..resolve import single_output
from ..store import store_exists

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from ..ledger import Ledger
    from ..records import Artifact
    from ..runs import Run

__all__ = [
    "State",
    "close_progress",
    "dump_json",
    "echo_json",
    "get_run",
    "pass_state",
    "progress",
    "require_store",
    "resolve_artifact",
    "stderr_is_terminal",
    "stdout_is_terminal",
]



class State:
    """What the group's options decided, shared by every command (``ctx.obj``)."""

    def __init__(self, url: str | None, options: dict[str, Any], color: bool | None) -> None:
        self.url = url
        self.options = options
        if color is None and os.environ.get("NO_COLOR"):
            color = False
        self.color = color
        self._ledger: Ledger | None = None

    def store_url(self) -> str:
        return self.url or default_url()

    def ledger(self, *, create: bool = False) -> Ledger:
        """The ledger of the store; unless ``create``, only if a store is already there."""
        if self._ledger is None:
            from ..ledger import Ledger

            url = self.store_url()
            if not create:
                require_store(url, self.options)
            self._ledger = Ledger(url, **self.options)
        return self._ledger

    def echo(self, text: str = "", *, err: bool = False, nl: bool = True) -> None:
        click.echo(text, err=err, nl=nl, color=self.color)


def require_store(url: str, options: dict[str, Any]) -> None:
    """Refuse a URL with no store at it (opening a Store would create one)."""
    if store_exists(url, options):  # the store's own check: nothing is created
        return
    hint = (
        "create one with 'mlledger init', or point --store (or $MLLEDGER_URL) at an existing store"
    )
    where = _local_root(url) if _is_local(url) else url
    raise NotFoundError(f"no mlledger store at {where}: {hint}")


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith(("file://", "local://"))


def _local_root(url: str) -> str:
    return os.path.abspath(os.path.expanduser(url.split("://", 1)[1] if "://" in url else url))


pass_state = click.make_pass_decorator(State, ensure=False)


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def echo_json(data: Any) -> None:
    click.echo(dump_json(data))


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress(desc: str, unit: str) -> Callback | None:
    """A tqdm progress bar on stderr when it is a terminal; None otherwise."""
    if not stderr_is_terminal():
        return None
    from fsspec.callbacks import TqdmCallback

    kwargs: dict[str, Any] = {
        "desc": desc,
        "unit": unit,
        "file": sys.stderr,
        "leave": False,
        "dynamic_ncols": True,
    }
    if unit == "B":
        kwargs.update(unit_scale=True, unit_divisor=1024)
    cb: Callback = TqdmCallback(tqdm_kwargs=kwargs)
    return cb


def close_progress(cb: Callback | None) -> None:
    if cb is not None:
        cb.close()


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def get_run(ledger: Ledger, text: str) -> Run:
    """A run by id, unique prefix, or @REF pointing at a run."""
    from ..runs import Run

    if text.startswith("@"):
        got = ledger.resolve(text)
        if not isinstance(got, Run):
            raise UsageError(
                f"{text} points at the artifact {got.digest}, not a run; "
                f"see 'mlledger artifact {text}'"
            )
        return got
    return ledger.get(text)


def resolve_artifact(ledger: Ledger, target: str) -> Artifact:
    from ..runs import Run

    got = ledger.resolve(target)
    return single_output(got, target) if isinstance(got, Run) else got
