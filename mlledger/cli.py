"""The ``mlledger`` command line: ``mlledger [--store URL] [--option KEY=VALUE ...] COMMAND``.

Commands: ``init``, ``log``, ``show RUN``, ``diff A B``, ``lineage TARGET``,
``artifact TARGET``, ``restore TARGET DEST``, ``ref set|get|log|rollback|list``,
``verify``, ``gc``, ``sync``, ``reindex`` and ``run``.

The store is ``--store URL``, else ``$MLLEDGER_URL``, else the folder in the
user data directory that ``mlledger.Ledger()`` opens.  ``--option KEY=VALUE``
(repeatable) passes fsspec storage options: a value that parses as JSON
(numbers, ``true``/``false``, ``null``, lists, objects) is used decoded, any
other value as a string; a dotted key (``client_kwargs.endpoint_url=...``)
builds nested mappings.  Only ``init`` and ``run`` create a store; the other
commands refuse a URL where there is none, so a typo never makes an empty store.

A *target* is a digest or unique hex prefix (at least 6), a run id or unique
prefix, ``RUN/NAME`` for one named output (or input) of a run, ``@REF``, or a
file or folder on disk (the artifact holding exactly its bytes).

Short run ids: listings show the shortest prefix of each run id, at least 12
characters, that no other run in the local catalog shares (run ids are
time-sortable, so runs started in the same millisecond show longer prefixes).
Any unique prefix is accepted wherever a run is expected.

``mlledger run [OPTIONS] script.py [ARGS...]`` runs a Python script in this
process as one run, with full capture (the files it reads and writes, the
environment, the script's digest as its code identity, ``argv`` as its params).
``mlledger run [OPTIONS] [--exec] -- COMMAND [ARGS...]`` runs any other
program as a subprocess inside a run: the script form is chosen when the first
word ends in ``.py`` and ``--exec`` is not given.  A subprocess's file accesses
are not visible, so its inputs and outputs are the ``--input``/``--output``
paths (both forms accept them): inputs are stored when the run starts, outputs
when the program ends.  Exit status: the program's own; an exception in a
script is exit status 1; a declared output that a successful program did not
write fails the run with status 1.  The program's stdout is left alone;
mlledger's one summary line goes to stderr (``--quiet`` drops it).  Programs
that use mlledger themselves see ``$MLLEDGER_URL`` pointing at the same store.

Exit status: 0 success; 1 a check failed (``verify`` found damage, a stored
object did not match its digest, a ``run`` output is missing) or mlledger hit
an unexpected internal error (the message says so); 2 bad usage or bad input
(unknown or ambiguous run, bad ``--where``, existing destination without
``--force``, a store URL that cannot be opened...).  Errors print one line,
``mlledger: error: ...``, on stderr; ``--debug`` (or ``MLLEDGER_DEBUG=1``)
adds the traceback.  Progress bars (restore, verify) appear on stderr only
when stderr is a terminal.

JSON (``--json``), stable for scripts; timestamps are ISO 8601 UTC strings.
An *Artifact* is ``{"digest", "size", "kind": "file"|"tree"|"value"}`` plus
``"format"`` (values), ``"path"`` (files and trees), ``"files"`` (trees) when
known.  A *RefEntry* is ``{"name", "seq", "target", "at", "user", "host",
"message", "action": "set"|"rollback", "restores": int|null, "run": id|null}``,
plus the audit chain's ``"prev"``, ``"seal"`` and ``"run_entry"`` (digests) in
entries that have them.

- ``log``: a list of ``{"id", "name", "status", "kind", "started_at",
  "ended_at", "wall_s", "parent_id", "message", "user", "host", "tags",
  "params", "metrics": {KEY: last value}}``, in the listing's order.
- ``show``: the run's whole record (``Run.record``: ``id``, ``name``,
  ``kind``, ``status``, ``started_at``, ``ended_at``, ``message``, ``tags``,
  ``params``, ``metrics: {KEY: {"last", "min", "max", "step", "count"}}``,
  ``inputs``/``outputs: {NAME: Artifact}``, ``code``, ``git``, ``env``
  (digest), ``process``, ``resources``, ``error: {"type", "message",
  "traceback"}`` when it failed, ``warnings``, ``parent_id``, ``user``,
  ``host``) plus ``"environment"``: the environment record (``python``,
  ``platform``, ``host``, ``packages``, ``env_vars``, ``process``).
- ``diff``: ``{"a": id, "b": id, "changes": [{"section", "key", "old",
  "new", "kind": "added"|"removed"|"changed"}]}``.
- ``lineage``: ``{"root", "direction", "runs": [{"id", "name", "status",
  "started_at"}], "artifacts": [Artifact], "edges": [{"source", "label":
  "used"|"produced"|"child_of", "target"}]}``.
- ``artifact``: Artifact plus ``"producers"`` and ``"consumers"`` (run ids),
  and with ``--files`` ``"entries"``: ``[{"path", "digest", "size",
  "exec"} | {"path", "link"} | {"path", "dir": true}]``.
- ``restore``: ``{"target", "digest", "kind", "size", "path"}``.
- ``ref set``, ``ref get``, ``ref rollback``: a RefEntry; ``ref log``: the
  ref's RefEntries oldest first; ``ref list``: each ref's current RefEntry,
  by name.
- ``verify``: ``{"ok", "checked", "corrupt": [digest], "missing": [digest],
  "dangling": [{"referrer", "digest"}], "problems": [text], "trail": [text],
  "unchained": int, "damaged": [{"key", "reason"}]}`` (``trail``: damage to the audit
  trail; ``unchained``: entries from before it; ``damaged``: run entries that are not a
  readable record).
- ``gc``: ``{"dry_run", "runs": [id], "objects": [digest], "bytes",
  "kept_runs", "kept_objects", "temp_files", "uploads", "kept_because": {reason: runs}}``;
  deleted plus kept is every run (every object); a kept run's reason is ``ref``,
  ``running``, ``recent`` (``--keep-days``) or ``grace``.
- ``init``: ``{"url", "hash", "created"}``; ``sync``: ``{"changed"}``;
  ``reindex``: ``{"runs"}``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ._text import counted
from .diff import SECTIONS
from .errors import IntegrityError, LedgerError, NotFoundError, UsageError
from .ids import short_ids
from .records import param_fields

if TYPE_CHECKING:
    from types import TracebackType

    from fsspec.callbacks import Callback

    from .ledger import Ledger
    from .lineage import Lineage
    from .records import Artifact, RefEntry
    from .runs import Run

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])

#: hex characters of a digest shown in listings (a pasteable ``algo:prefix``)
SHORT_DIGEST = 12
STATUSES = ("running", "finished", "failed", "interrupted", "incomplete")
_STATUS_COLORS = {
    "finished": "green",
    "failed": "red",
    "interrupted": "yellow",
    "incomplete": "magenta",
    "running": "cyan",
}
_CONFIG_KEY = "mlledger.json"


class CliError(click.ClickException):
    """An error the command line reports as one line: bad usage, exit status 2."""

    exit_code = 2  # a class attribute, as click declares it

    def show(self, file: Any = None) -> None:
        click.echo(f"mlledger: error: {self.format_message()}", err=True)


class CliFailure(CliError):
    """An error the command line reports as one line: a failed check or a bug, exit 1."""

    exit_code = 1


def cli_error(message: str, exit_code: int) -> CliError:
    """The one-line error for ``exit_code`` (1: something failed; else bad usage, 2)."""
    return CliFailure(message) if exit_code == 1 else CliError(message)


class ProgramFailed(Exception):
    """``mlledger run``: the program exited with a non-zero status or was killed."""


class OutputMissing(Exception):
    """``mlledger run``: a declared ``--output`` was not there when the program ended."""


# --------------------------------------------------------------------------- state


class _State:
    """What the group's options decided, shared by every command (``ctx.obj``)."""

    def __init__(self, url: str | None, options: dict[str, Any], color: bool | None) -> None:
        self.url = url
        self.options = options
        if color is None and os.environ.get("NO_COLOR"):
            color = False
        self.color = color
        self._ledger: Ledger | None = None

    def store_url(self) -> str:
        from .store.store import default_url

        return self.url or default_url()

    def ledger(self, *, create: bool = False) -> Ledger:
        """The ledger of the store; unless ``create``, only if a store is already there."""
        if self._ledger is None:
            from .ledger import Ledger

            url = self.store_url()
            if not create:
                _require_store(url, self.options)
            self._ledger = Ledger(url, **self.options)
        return self._ledger

    def echo(self, text: str = "", *, err: bool = False, nl: bool = True) -> None:
        click.echo(text, err=err, nl=nl, color=self.color)


def _require_store(url: str, options: dict[str, Any]) -> None:
    """Refuse a URL with no store at it (opening a Store would create one)."""
    hint = (
        "create one with 'mlledger init', or point --store (or $MLLEDGER_URL) at an existing store"
    )
    if "://" not in url or url.startswith(("file://", "local://")):
        path = os.path.abspath(os.path.expanduser(url.split("://", 1)[1] if "://" in url else url))
        if not os.path.isfile(os.path.join(path, _CONFIG_KEY)):
            raise NotFoundError(f"no mlledger store at {path}: {hint}")
        return
    from .store.backends import open_backend

    backend = open_backend(url, options)
    if not backend.exists(_CONFIG_KEY):
        raise NotFoundError(f"no mlledger store at {url}: {hint}")


pass_state = click.make_pass_decorator(_State, ensure=False)


# ------------------------------------------------------------------ error handling


def _one_line(message: str) -> str:
    """An error message as one line (a query error's caret lines become ``: text``)."""
    lines = [ln.strip() for ln in str(message).splitlines()]
    lines = [ln for ln in lines if ln and set(ln) != {"^"}]
    return ": ".join(lines) if lines else "unknown error"


class _Group(click.Group):
    """The top-level group: turns every failure into one line and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            raise
        except LedgerError as e:
            self._debug_traceback(ctx, e)
            code = 1 if isinstance(e, IntegrityError) else 2
            raise cli_error(_one_line(str(e)), code) from e
        except OSError as e:  # the operating system refused something the user asked for
            self._debug_traceback(ctx, e)
            where = f": {e.filename!r}" if getattr(e, "filename", None) else ""
            raise CliError(f"{e.strerror or e}{where}") from e
        except Exception as e:
            self._debug_traceback(ctx, e)
            hint = "" if ctx.params.get("debug") else "; rerun with --debug for the traceback"
            raise CliFailure(
                f"internal error ({type(e).__name__}: {_one_line(str(e))}); this is a bug in "
                f"mlledger, please report it{hint}"
            ) from e

    @staticmethod
    def _debug_traceback(ctx: click.Context, e: BaseException) -> None:
        if ctx.params.get("debug"):
            traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args,
                prog_name,
                complete_var,
                False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        try:
            rv = super().main(
                args,
                prog_name or "mlledger",
                complete_var,
                False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            click.echo(f"mlledger: error: {_one_line(e.format_message())}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("mlledger: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


# --------------------------------------------------------------------- formatting


def _dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _echo_json(data: Any) -> None:
    click.echo(_dump_json(data))


def _human_size(n: float | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _human_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    if s < 60:
        return f"{s:.3g}s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m}m {sec}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m}m"
    d, h = divmod(h, 24)
    return f"{d}d {h}h"


def _age(t: _dt.datetime | None, now: _dt.datetime | None = None) -> str:
    """``3m ago``; dates older than two months as the date."""
    if t is None:
        return "?"
    now = now or _dt.datetime.now(_dt.timezone.utc)
    s = (now - t).total_seconds()
    if s < 0:
        return "just now" if s > -60 else "in the future"
    if s < 60:
        return f"{int(s)}s ago"
    if s < 3600:
        return f"{int(s // 60)}m ago"
    if s < 48 * 3600:
        return f"{int(s // 3600)}h ago"
    if s < 60 * 86400:
        return f"{int(s // 86400)}d ago"
    return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d")


def _when(t: _dt.datetime | None) -> str:
    if t is None:
        return "-"
    utc = t.astimezone(_dt.timezone.utc)
    return f"{utc.strftime('%Y-%m-%d %H:%M:%S')} UTC ({_age(t)})"


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _value(v: Any, limit: int = 100) -> str:
    if isinstance(v, float):
        s = _num(v)
    elif isinstance(v, str):
        s = v
    else:
        s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _short_digest(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:SHORT_DIGEST]}" if hexpart else digest[:SHORT_DIGEST]


def _short_ids(ledger: Ledger, ids: Iterable[str]) -> dict[str, str]:
    """The shortest unique prefix (12 characters or more) of each run id, per the catalog."""
    ids = list(ids)
    return short_ids(ids, ledger.catalog.all_run_ids()) if ids else {}


def _status(status: str) -> str:
    return click.style(status, fg=_STATUS_COLORS.get(status))


def _artifact_line(name: str, art: Artifact, width: int) -> str:
    extra = ""
    if art.kind == "tree" and art.files is not None:
        extra = f", {art.files} files"
    elif art.format:
        extra = f", {art.format}"
    return f"  {name:<{width}}  {art.digest}  {art.kind}, {_human_size(art.size)}{extra}"


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _progress(desc: str, unit: str) -> Callback | None:
    """A tqdm progress bar on stderr when it is a terminal; None otherwise."""
    if not _stderr_is_terminal():
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


def _close(cb: Callback | None) -> None:
    if cb is not None:
        cb.close()


# ----------------------------------------------------------------- option parsing


def _parse_storage_options(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, Any]:
    import inspect

    from .ledger import Ledger

    own = {  # Ledger()'s own keyword arguments are not storage options
        p.name
        for p in inspect.signature(Ledger).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    }
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx, param)
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if key in own:
            raise click.BadParameter(
                f"{key!r} is an option of mlledger itself, not a storage option", ctx, param
            )
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise click.BadParameter(
                    f"{key!r} sets a key inside the value of {p!r}", ctx, param
                )
            node = child
        node[parts[-1]] = value
    return out


def _parse_tags(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx, param)
        out[key.strip()] = value
    return out


def _json_option(
    help_text: str = "Print JSON for scripts (see 'mlledger --help').",
) -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


# ------------------------------------------------------------------------ the group


@click.group(
    cls=_Group,
    name="mlledger",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--store",
    "url",
    envvar="MLLEDGER_URL",
    show_envvar=True,
    metavar="URL",
    help="The store: a folder or any fsspec URL (s3://bucket/ml, memory://x...). "
    "Default: $MLLEDGER_URL, else the user data folder.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_storage_options,
    help="A storage option for fsspec (repeatable); VALUE is decoded as JSON when it parses, "
    "a dotted KEY nests (client_kwargs.endpoint_url=...).",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="MLLEDGER_DEBUG",
    help="Show the traceback of an error, not just its one-line message.",
)
@click.option(
    "--color/--no-color",
    default=None,
    help="Colour the output (default: only when it is a terminal and $NO_COLOR is unset).",
)
@click.version_option(
    package_name="mlledger",
    message="mlledger %(version)s",
    help="Show mlledger's version and exit.",
)
@click.pass_context
def cli(
    ctx: click.Context, url: str | None, options: dict[str, Any], debug: bool, color: bool | None
) -> None:
    """A ledger of machine-learning runs: what each run read, ran with and produced.

    Targets: a digest or unique hex prefix (6+), a run id or unique prefix,
    RUN/NAME (one output or input of a run), @REF, or a file or folder on
    disk (the artifact holding its bytes).  Exit status: 0 success, 1 a
    failed check, 2 bad usage or input.  '--json' on reading commands prints
    stable JSON (shapes in the module docs: python -m pydoc mlledger.cli).
    """
    ctx.obj = _State(url, options, color)


# ------------------------------------------------------------------------ init


@cli.command()
@click.option(
    "--hash",
    "algorithm",
    type=click.Choice(["xxh128", "sha256"]),
    default=None,
    help="Digest algorithm of a new store (default xxh128; sha256 for adversarial settings). "
    "Fixed once the store exists.",
)
@_json_option()
@pass_state
def init(state: _State, algorithm: str | None, as_json: bool) -> None:
    """Create the store, or say where it already is."""
    from .store.backends import open_backend
    from .store.store import Store

    url = state.store_url()
    existed = open_backend(url, state.options).exists(_CONFIG_KEY)
    store = Store(url, algorithm=algorithm, **state.options)
    if as_json:
        _echo_json({"url": store.url, "hash": store.algorithm, "created": not existed})
        return
    if existed:
        state.echo(f"mlledger store already at {store.url} ({store.algorithm})")
    else:
        state.echo(f"created an mlledger store at {store.url} ({store.algorithm})")


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
        "parent_id": run.parent_id,
        "message": run.message,
        "user": run.user,
        "host": run.host,
        "tags": run.tags,
        "params": run.params,
        "metrics": run.metrics,
    }


def _metrics_text(run: Run, limit: int = 4) -> str:
    items = list(run.metrics.items())
    text = " ".join(f"{k}={_num(v)}" for k, v in items[:limit])
    if len(items) > limit:
        text += f" (+{len(items) - limit})"
    return text


@cli.command()
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
    "params.cfg.X for a config's fields, metrics.X[.min|.max], tags.X, name, status, "
    "started_at, user, host).",
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
@_json_option()
@pass_state
def log(
    state: _State,
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
    characters), age, name, status and up to four metrics (last values).
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
        _echo_json([_run_summary(r) for r in runs])
        return
    unknown = ledger.catalog.unknown_fields(where, order_by, name) if not runs or order_by else []
    for what, close in unknown:  # a typo matches nothing, silently: say so
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        state.echo(f"no run has {what}{hint}", err=True)
    if not runs:
        state.echo("no runs match", err=True)
        return
    now = _dt.datetime.now(_dt.timezone.utc)
    shorts = _short_ids(ledger, runs.ids)
    rows = [
        (shorts[r.id], _age(r.started_at, now), r.name, r.status, _metrics_text(r)) for r in runs
    ]
    w_id = max(len(r[0]) for r in rows)
    w_age = max(len(r[1]) for r in rows)
    w_name = max(len(r[2]) for r in rows)
    w_status = max(len(r[3]) for r in rows)
    for rid, age, rname, status, metrics in rows:
        line = (
            f"{click.style(rid.ljust(w_id), fg='yellow')}  {age.ljust(w_age)}  "
            f"{rname.ljust(w_name)}  {_status(status)}{' ' * (w_status - len(status))}"
        )
        state.echo(f"{line}  {metrics}".rstrip())


# ------------------------------------------------------------------------ show


def _get_run(ledger: Ledger, text: str) -> Run:
    """A run by id, unique prefix, or @REF pointing at a run."""
    from .runs import Run

    if text.startswith("@"):
        got = ledger.resolve(text)
        if not isinstance(got, Run):
            raise UsageError(
                f"{text} points at the artifact {got.digest}, not a run; "
                f"see 'mlledger artifact {text}'"
            )
        return got
    return ledger.get(text)


def _env_lines(env: dict[str, Any], packages: bool) -> list[str]:
    lines: list[str] = []
    if "error" in env:
        lines.append(f"  not readable: {env['error']}")
    py = env.get("python") or {}
    if py:
        lines.append(
            f"  python     {py.get('version', '?')} ({py.get('implementation', '?')}) "
            f"{py.get('executable', '')}".rstrip()
        )
    plat = env.get("platform") or {}
    if plat:
        bits = [plat.get("system"), plat.get("release"), plat.get("machine"), plat.get("libc")]
        lines.append("  platform   " + " ".join(str(b) for b in bits if b))
    host = env.get("host") or {}
    if host:
        hw = [f"{host.get('cpu_count', '?')} CPUs"]
        if host.get("cpu"):
            hw.insert(0, str(host["cpu"]))
        if host.get("memory"):
            hw.append(f"{_human_size(host['memory'])} memory")
        gpus = host.get("gpus") or []
        if gpus:
            hw.append(
                f"{counted(len(gpus), 'GPU')} "
                f"({', '.join(str(g.get('name', '?')) for g in gpus)})"
            )
        lines.append(f"  host       {host.get('hostname', '?')}: {', '.join(hw)}")
    pkgs = env.get("packages") or {}
    lines.append(
        f"  packages   {len(pkgs)} installed"
        + ("" if packages or not pkgs else " (--packages lists them)")
    )
    if packages:
        width = max((len(k) for k in pkgs), default=0)
        lines.extend(f"    {k:<{width}}  {v}" for k, v in sorted(pkgs.items()))
    for k, v in sorted((env.get("env_vars") or {}).items()):
        lines.append(f"  env        {k}={v}")
    proc = env.get("process") or {}
    if proc.get("argv") is not None:
        lines.append(f"  argv       {' '.join(str(a) for a in proc['argv'])}")
    if proc.get("cwd"):
        lines.append(f"  cwd        {proc['cwd']}")
    if proc.get("pid"):
        lines.append(f"  pid        {proc['pid']}")
    return lines


def _code_lines(ledger: Ledger, code: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key in (
        "kind",
        "qualname",
        "module",
        "file",
        "line",
        "executable",
        "source_digest",
        "closure_digest",
        "module_digest",
    ):
        if code.get(key) is not None:
            lines.append(f"  {key:<14} {code[key]}")
    if code.get("source_from"):
        lines.append(f"  {'source_from':<14} {code['source_from']}")
    mods = code.get("modules")
    if mods:
        try:
            n = len(json.loads(ledger.store.get(mods)))
            lines.append(f"  {'user modules':<14} {n} ({mods})")
        except (LedgerError, ValueError):
            lines.append(f"  {'user modules':<14} {mods} (not readable)")
    return lines


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--packages", is_flag=True, help="List every installed package of the run's environment."
)
@_json_option()
@pass_state
def show(state: _State, run_id: str, packages: bool, as_json: bool) -> None:
    """Show one run's whole record.

    Params, metrics (last, min, max), inputs and outputs with digests, code,
    git, environment, resources, error and warnings.  RUN is a run id, a
    unique prefix of one, or @REF naming a run.
    """
    ledger = state.ledger()
    run = _get_run(ledger, run_id)
    if as_json:
        _echo_json({**run.record, "environment": run.env})
        return
    out: list[str] = []
    out.append(click.style(f"run {run.id}", fg="yellow"))
    out.append(f"name       {run.name}")
    status = _status(run.status)
    out.append(f"status     {status}")
    if run.status_reason:  # incomplete: why, and what may be missing
        out.append(f"           {run.status_reason}; metrics of its last seconds may be missing")
    if run.record.get("kind"):
        out.append(f"kind       {run.record['kind']}")
    out.append(f"started    {_when(run.started_at)}")
    if run.ended_at is not None:
        wall = run.resources.get("wall_s")
        if wall is None:
            wall = (run.ended_at - run.started_at).total_seconds()
        out.append(f"ended      {_when(run.ended_at)}, took {_human_seconds(wall)}")
    if run.user or run.host:
        out.append(f"by         {run.user}@{run.host}")
    if run.parent_id:
        out.append(f"parent     {run.parent_id}")
    if run.message:
        out.append(f"message    {run.message}")
    if run.tags:
        out.append("tags       " + ", ".join(f"{k}={v}" for k, v in sorted(run.tags.items())))
    if run.params:
        out += ["", click.style("params", bold=True)]
        fields = param_fields(run.params)  # a config field by field, as where and diff name it
        width = max(len(k) for k in fields)
        out += [f"  {k:<{width}} = {_value(v)}" for k, v in sorted(fields.items())]
    stats = run.metric_stats
    if stats:
        width = max(len("metric"), *(len(k) for k in stats))
        out += ["", click.style("metrics", bold=True)]
        out.append(
            f"  {'':<{width}}  {'last':>12} {'min':>12} {'max':>12} {'step':>8} {'count':>7}"
        )
        for k, m in stats.items():
            step = "-" if m.step is None else str(m.step)
            out.append(
                f"  {k:<{width}}  {_num(m.last):>12} {_num(m.min):>12} {_num(m.max):>12} "
                f"{step:>8} {m.count:>7}"
            )
    for title, arts in (("inputs", run.inputs), ("outputs", run.outputs)):
        if arts:
            width = max(len(k) for k in arts)
            out += ["", click.style(title, bold=True)]
            out += [_artifact_line(k, a, width) for k, a in sorted(arts.items())]
    returned = run.record.get("returned")
    if returned:
        out += ["", click.style("returned", bold=True), f"  {_value(returned)}"]
    code = run.code
    if code:
        out += ["", click.style("code", bold=True), *_code_lines(ledger, code)]
    git = run.git
    if git:
        out += ["", click.style("git", bold=True)]
        for key in ("commit", "branch", "remote", "dirty", "diff"):
            if git.get(key) is not None:
                out.append(f"  {key:<8} {git[key]}")
    out += ["", click.style("environment", bold=True), *_env_lines(run.env, packages)]
    res = run.resources
    if res:
        parts = []
        if "wall_s" in res:
            parts.append(f"wall {_human_seconds(res['wall_s'])}")
        if "cpu_user_s" in res:
            parts.append(f"cpu user {_human_seconds(res['cpu_user_s'])}")
        if "cpu_system_s" in res:
            parts.append(f"system {_human_seconds(res['cpu_system_s'])}")
        if "peak_rss_bytes" in res:
            parts.append(f"peak RSS {_human_size(res['peak_rss_bytes'])}")
        if "gpu_peak_memory_bytes" in res:
            parts.append(f"GPU peak {_human_size(res['gpu_peak_memory_bytes'])}")
        out += ["", click.style("resources", bold=True), "  " + ", ".join(parts)]
    err = run.error
    if err is not None:
        out += ["", click.style("error", bold=True, fg="red"), f"  {err.summary}"]
        out += ["  " + ln for ln in err.traceback.rstrip().splitlines()]
    if run.warnings:
        out += ["", click.style("warnings", bold=True)]
        out += [f"  - {w}" for w in run.warnings]
    state.echo("\n".join(out))


# ------------------------------------------------------------------------ diff


@cli.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option(
    "--section",
    "sections",
    multiple=True,
    type=click.Choice(SECTIONS),
    help="Only this section (repeatable).",
)
@_json_option()
@pass_state
def diff(state: _State, a: str, b: str, sections: tuple[str, ...], as_json: bool) -> None:
    """Show what changed from run A to run B, by section.

    A and B are run ids, unique prefixes or @REFs naming runs.  Times and
    resource figures are never changes.  Coloured when stdout is a terminal
    (see --color).
    """
    import attrs

    ledger = state.ledger()
    d = ledger.diff(_get_run(ledger, a), _get_run(ledger, b))
    if sections:
        d = attrs.evolve(d, changes=tuple(c for c in d.changes if c.section in sections))
    if as_json:
        _echo_json({"a": d.a, "b": d.b, "changes": d.to_json()})
        return
    color = state.color
    if color is None:
        color = _stdout_is_terminal()
    state.echo(d.to_text(color=color).rstrip("\n"))


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------- lineage


def _lineage_text(ledger: Ledger, lin: Lineage) -> str:
    """Runs with what each used and produced; ids and digests as pasteable prefixes."""
    shorts = _short_ids(ledger, [r.id for r in lin.runs])
    runs = {r.id: r for r in lin.runs}
    root = lin.root
    root_label = shorts[root] if root in shorts else _short_digest(root)
    n_runs, n_arts = len(lin.runs), len(lin.artifacts)
    lines = [
        f"lineage of {root_label} ({lin.direction}): {counted(n_runs, 'run')}, "
        f"{counted(n_arts, 'artifact')}"
    ]
    by_run: dict[str, list[tuple[int, str, str]]] = {}
    for e in lin.edges:
        if e.label == "child_of":
            by_run.setdefault(e.source, []).append((2, "child of", shorts.get(e.target, e.target)))
            continue
        r = runs.get(e.source)
        side = (r.inputs if e.label == "used" else r.outputs) if r is not None else {}
        # a run may use and produce the same bytes under different names: name each side
        names = sorted(k for k, a in side.items() if a.digest == e.target)
        if not names and lin.names.get((e.source, e.target)):
            names = [lin.names[(e.source, e.target)]]
        short = _short_digest(e.target)
        label = f"{', '.join(names)}  {short}" if names else short
        by_run.setdefault(e.source, []).append((0 if e.label == "used" else 1, e.label, label))
    for r in lin.runs:
        lines.append(
            f"{click.style(shorts[r.id], fg='yellow')}  {r.name}  {_status(r.status)}  "
            f"{_age(r.started_at)}"
        )
        for _, label, what in sorted(by_run.get(r.id, [])):
            lines.append(f"  {label:<8}  {what}")
    if not lin.runs:
        lines.append("  (no run used or produced it)")
    return "\n".join(lines)


@cli.command()
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
    type=click.Choice(["text", "dot", "mermaid", "json"]),
    default="text",
    show_default=True,
    help="Text for people, Graphviz DOT, Mermaid, or JSON.",
)
@_json_option("Same as --format json.")
@pass_state
def lineage(
    state: _State, *, target: str, direction: str, depth: int | None, fmt: str, as_json: bool
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
    else:
        state.echo(_lineage_text(ledger, lin))


# -------------------------------------------------------------------- artifact


def _resolve_artifact(ledger: Ledger, target: str) -> Artifact:
    from .runs import Run

    got = ledger.resolve(target)
    if isinstance(got, Run):
        outs = got.outputs
        if len(outs) != 1:
            names = ", ".join(sorted(outs)) or "none"
            raise UsageError(
                f"{target!r} is the run {got.id}, with {len(outs)} outputs ({names}); "
                f"name one as {got.id}/NAME, or see 'mlledger show {got.id}'"
            )
        return next(iter(outs.values()))
    return got


@cli.command()
@click.argument("target")
@click.option("--files", is_flag=True, help="For a folder (tree): list every entry.")
@_json_option()
@pass_state
def artifact(state: _State, target: str, files: bool, as_json: bool) -> None:
    """Show an artifact: digest, kind, size, producers and consumers.

    TARGET is a digest or hex prefix, RUN/NAME, @REF, a file on disk, or a run with
    exactly one output.
    """
    import attrs

    ledger = state.ledger()
    found = _resolve_artifact(ledger, target)
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
        _echo_json(data)
        return
    out = [click.style(f"artifact {art.digest}", fg="yellow")]
    out.append(f"kind       {art.kind}" + (f" ({art.format})" if art.format else ""))
    size = _human_size(art.size)
    if art.kind == "tree" and art.files is not None:
        size += f" in {art.files} files"
    elif art.kind == "tree":
        size += " (manifest)"
    out.append(f"size       {size}")
    if found.path:
        out.append(f"path       {found.path}")
    cat = ledger.catalog
    all_ids = list(art.producers) + list(art.consumers)
    shorts = _short_ids(ledger, all_ids)
    for title, ids in (("producers", art.producers), ("consumers", art.consumers)):
        if not ids:
            out.append(f"{title:<10} none")
            continue
        out.append(f"{title}")
        for rid in ids[:20]:
            r = cat.run(rid)
            out.append(f"  {shorts[rid]}  {r.name}  {_status(r.status)}  {_age(r.started_at)}")
        if len(ids) > 20:
            out.append(f"  ... and {len(ids) - 20} more (--json lists all)")
    if entries is not None:
        out.append("entries")
        for e in entries:
            if e.kind == "file":
                x = "  (exec)" if e.executable else ""
                out.append(f"  {e.path}  {e.digest}  {_human_size(e.size)}{x}")
            elif e.kind == "link":
                out.append(f"  {e.path} -> {e.link}")
            else:
                out.append(f"  {e.path}/")
    state.echo("\n".join(out))


# --------------------------------------------------------------------- restore


@cli.command()
@click.argument("target")
@click.argument("dest")
@click.option("-f", "--force", is_flag=True, help="Replace DEST if it exists.")
@_json_option()
@pass_state
def restore(state: _State, target: str, dest: str, force: bool, as_json: bool) -> None:
    """Write a stored file or folder to DEST, byte-identical.

    TARGET is a digest or hex prefix, RUN/NAME, @REF, a file or folder on
    disk, or a run with exactly one output.  Every byte is verified before
    DEST appears; an existing
    DEST is refused unless --force.  A progress bar shows on stderr when it
    is a terminal.  DEST "-" writes a file's bytes to stdout once all of
    them are checked (through a temp copy: a damaged object exits 1 with
    nothing written).
    """
    ledger = state.ledger()
    art = _resolve_artifact(ledger, target)
    if dest == "-":
        if art.kind == "tree":
            raise UsageError(f"{target!r} is a folder: restore it to a path, not to stdout")
        from .store.stream import copy_verified

        copy_verified(ledger.store, art.digest, sys.stdout.buffer)
        return
    cb = _progress("restore", "file" if art.kind == "tree" else "B")
    try:
        path = ledger.restore(art.digest, dest, overwrite=force, callback=cb)
    finally:
        _close(cb)
    if as_json:
        _echo_json(
            {
                "target": target,
                "digest": art.digest,
                "kind": art.kind,
                "size": art.size,
                "path": str(path),
            }
        )
        return
    what = f"{art.files} files, " if art.kind == "tree" and art.files is not None else ""
    state.echo(f"restored {art.kind} {art.digest} ({what}{_human_size(art.size)}) to {path}")


# ------------------------------------------------------------------------- ref


def _ref_line(e: RefEntry, *, with_name: bool = False) -> str:
    head = f"{e.name}  " if with_name else ""
    what = e.action if e.restores is None else f"{e.action} to #{e.restores}"
    msg = f"  {e.message}" if e.message else ""
    run = f"  run {e.run}" if e.run and e.run != e.target else ""  # which run made it
    return f"{head}#{e.seq}  {e.target}  {what}{run}  {_age(e.at)}  {e.user}@{e.host}{msg}"


@cli.group()
def ref() -> None:
    """Named refs (model/prod): append-only histories of targets."""


@ref.command("set")
@click.argument("name")
@click.argument("target")
@click.option("-m", "--message", default=None, help="Why the ref moves.")
@_json_option()
@pass_state
def ref_set(state: _State, name: str, target: str, message: str | None, as_json: bool) -> None:
    """Point ref NAME at TARGET.

    TARGET is a digest or hex prefix, a run id or prefix, RUN/NAME, @OTHER or
    a file or folder on disk.
    """
    entry = state.ledger().refs.set(name, target, message=message)
    if as_json:
        _echo_json(entry.to_json())
        return
    state.echo(f"{entry.name} -> {entry.target} (#{entry.seq})")


@ref.command("get")
@click.argument("name")
@_json_option()
@pass_state
def ref_get(state: _State, name: str, as_json: bool) -> None:
    """Print ref NAME's current target (the first word) and its entry."""
    entry = state.ledger().refs.get(name)
    if as_json:
        _echo_json(entry.to_json())
        return
    msg = f"  {entry.message}" if entry.message else ""
    run = f"  run {entry.run}" if entry.run and entry.run != entry.target else ""
    state.echo(
        f"{entry.target}  #{entry.seq}{run}  {_age(entry.at)}  {entry.user}@{entry.host}{msg}"
    )


@ref.command("log")
@click.argument("name")
@_json_option("Print JSON: the entries oldest first.")
@pass_state
def ref_log(state: _State, name: str, as_json: bool) -> None:
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
        _echo_json([e.to_json() for e in history])
        return
    for e in reversed(history):
        state.echo(_ref_line(e))


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
@_json_option()
@pass_state
def ref_rollback(
    state: _State, name: str, to: str | None, message: str | None, as_json: bool
) -> None:
    """Move ref NAME back; the history only grows.

    A rollback appends an entry pointing at the earlier target: the audit
    trail is never rewritten.
    """
    dest: str | int | None = to
    if to is not None:
        t = to.strip()
        digits = t[1:] if t.startswith("#") else t
        if digits.isdigit() and (t.startswith("#") or len(digits) < 6):
            dest = int(digits)
    entry = state.ledger().refs.rollback(name, to=dest, message=message)
    if as_json:
        _echo_json(entry.to_json())
        return
    back = f", the target of #{entry.restores}" if entry.restores is not None else ""
    state.echo(f"{entry.name} -> {entry.target} (#{entry.seq}{back})")


@ref.command("list")
@_json_option("Print JSON: each ref's current entry.")
@pass_state
def ref_list(state: _State, as_json: bool) -> None:
    """List every ref with its current target."""
    refs = state.ledger().refs
    entries = [refs.get(n) for n in refs.names()]
    if as_json:
        _echo_json([e.to_json() for e in entries])
        return
    if not entries:
        state.echo("no refs", err=True)
        return
    width = max(len(e.name) for e in entries)
    for e in entries:
        run = f"  run {e.run}" if e.run and e.run != e.target else ""
        state.echo(f"{e.name:<{width}}  {e.target}  #{e.seq}{run}  {_age(e.at)}")


# ---------------------------------------------------------------------- verify


@cli.command()
@_json_option()
@pass_state
def verify(state: _State, as_json: bool) -> None:
    """Check the store; exit status 1 when anything is damaged.

    Rehashes every object and checks that everything a run, tree or ref
    references exists and is sound, and that no run, ref or policy entry
    was edited, removed or replaced (the seals and links of the audit trail).
    """
    ledger = state.ledger()
    cb = _progress("verify", "obj")
    try:
        report = ledger.verify(callback=cb)
    finally:
        _close(cb)
    if as_json:
        _echo_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "corrupt": list(report.corrupt),
                "missing": list(report.missing),
                "dangling": [{"referrer": r, "digest": d} for r, d in report.dangling],
                "problems": list(report.problems),
                "trail": list(report.trail),
                "unchained": report.unchained,
                "damaged": [{"key": k, "reason": r} for k, r in report.damaged],
            }
        )
    else:
        n = len(report.corrupt) + len(report.missing) + len(report.problems) + len(report.trail)
        n += len(report.damaged)
        verdict = (
            click.style("ok", fg="green")
            if report.ok
            else click.style(counted(n, "problem"), fg="red")
        )
        state.echo(f"checked {counted(report.checked, 'object')}: {verdict}")
        for d in report.corrupt:
            state.echo(f"corrupt   {d}  (its bytes do not hash to its name)")
        referrers: dict[str, list[str]] = {}
        for r, d in report.dangling:
            referrers.setdefault(d, []).append(r)
        for d in report.missing:
            by = referrers.get(d)
            state.echo(f"missing   {d}" + (f"  (referenced by {', '.join(by)})" if by else ""))
        for p in report.problems:
            state.echo(f"problem   {p}")
        for p in report.trail:
            state.echo(f"damaged   {p}")
        if report.unchained:
            state.echo(
                f"note      {report.unchained} entries from before the audit chain "
                "(unsealed: not checked for edits)"
            )
        for key, why in report.damaged:
            state.echo(f"damaged   {key}  ({why}; its run is skipped)")
    if not report.ok:
        click.get_current_context().exit(1)


# -------------------------------------------------------------------------- gc


def _why_kept(because: dict[str, int]) -> str:
    """`` (2 a ref needs, 4 within the grace period)``: why gc kept the runs it kept."""
    words = {
        "ref": "a ref needs",
        "running": "running",
        "recent": "within --keep-days",
        "grace": "within --grace",
    }
    parts = [f"{n} {words.get(k, k)}" for k, n in because.items() if n]
    return f" ({', '.join(parts)})" if parts else ""


@cli.command()
@click.option(
    "--dry-run/--delete",
    "dry_run",
    default=True,
    show_default=True,
    help="Only report what would go (the default), or really delete it.",
)
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0),
    default=None,
    metavar="DAYS",
    help="Keep runs started within DAYS (and what they reference); older runs no ref needs "
    "go. Default: keep every run.",
)
@click.option(
    "--grace",
    "grace",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="Never delete an object younger than this (protects runs in progress).",
)
@click.option("-v", "--verbose", is_flag=True, help="List every run and object that goes.")
@_json_option()
@pass_state
def gc(
    state: _State,
    *,
    dry_run: bool,
    keep_days: float | None,
    grace: float,
    verbose: bool,
    as_json: bool,
) -> None:
    """Delete what nothing needs (only a report unless --delete).

    Kept: every target in every ref's history with its upstream lineage, every
    run kept by --keep-days (all by default) with what it references, every
    object younger than --grace, and every object a live run uses.
    """
    report = state.ledger().gc(dry_run=dry_run, keep_days=keep_days, grace_seconds=grace)
    if as_json:
        _echo_json(report.to_json())
        return
    verb = "would delete" if dry_run else "deleted"
    temp = f", {counted(report.temp_files, 'temp file')}" if report.temp_files else ""
    if report.uploads:
        temp += f", {counted(report.uploads, 'unfinished upload')}"
    state.echo(
        f"{verb} {counted(len(report.runs), 'run')} and {counted(len(report.objects), 'object')} "
        f"({_human_size(report.bytes)}){temp}; kept {counted(report.kept_runs, 'run')}"
        f"{_why_kept(report.kept_because)} and {counted(report.kept_objects, 'object')}"
    )
    if verbose:
        for r in report.runs:
            state.echo(f"run     {r}")
        for d in report.objects:
            state.echo(f"object  {d}")
    if dry_run and (report.runs or report.objects or report.temp_files or report.uploads):
        state.echo("dry run: nothing was deleted; pass --delete to delete", err=True)


# --------------------------------------------------------------- sync, reindex


@cli.command()
@_json_option()
@pass_state
def sync(state: _State, as_json: bool) -> None:
    """Bring the local catalog up to date with the store.

    Other commands sync as they need to; this is for scripts and cron.
    """
    n = state.ledger().sync()
    if as_json:
        _echo_json({"changed": n})
    else:
        state.echo(f"catalog synced: {counted(n, 'run')} changed")


@cli.command()
@_json_option()
@pass_state
def reindex(state: _State, as_json: bool) -> None:
    """Rebuild the local catalog from the store alone (it is a cache)."""
    n = state.ledger().reindex()
    if as_json:
        _echo_json({"runs": n})
    else:
        state.echo(f"catalog rebuilt: {counted(n, 'run')}")


# ------------------------------------------------------------------------- run

Body = Callable[[], "tuple[int, BaseException | None]"]


def _disabled() -> bool:
    return os.environ.get("MLLEDGER_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def _display(path: str) -> str:
    """A path relative to the working directory when inside it, else as given."""
    if not os.path.isabs(path):
        return os.path.normpath(path)
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _trim_traceback(tb: TracebackType | None, path: str) -> TracebackType | None:
    """The traceback from the script's first frame on (drops mlledger's and runpy's)."""
    target = os.path.realpath(path)
    t = tb
    while t is not None and os.path.realpath(t.tb_frame.f_code.co_filename) != target:
        t = t.tb_next
    return t or tb


def _script_body(path: str) -> Body:
    """Run the script as ``__main__``; its exit status and the exception that ended it."""

    def body() -> tuple[int, BaseException | None]:
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as e:
            code = e.code
            if code is None or code == 0:
                return 0, None
            if not isinstance(code, int):
                click.echo(str(code), err=True)
                code = 1
            return code, e.with_traceback(_trim_traceback(e.__traceback__, path))
        except KeyboardInterrupt as e:
            return 130, e.with_traceback(_trim_traceback(e.__traceback__, path))
        except BaseException as e:
            tb = _trim_traceback(e.__traceback__, path)
            sys.stdout.flush()
            traceback.print_exception(type(e), e, tb, file=sys.stderr)
            return 1, e.with_traceback(tb)
        finally:
            sys.stdout.flush()
        return 0, None

    return body


def _command_body(cmd: list[str], url: str | None) -> Body:
    """Run the program as a subprocess (``$MLLEDGER_URL`` set to ``url``); its exit status."""

    def body() -> tuple[int, BaseException | None]:
        env = dict(os.environ)
        if url is not None:
            env["MLLEDGER_URL"] = url
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            proc = subprocess.Popen(cmd, env=env)
        except OSError as e:
            why = f"cannot run {cmd[0]!r}: {e.strerror or e}"
            click.echo(f"mlledger: error: {why}", err=True)
            return (127 if isinstance(e, FileNotFoundError) else 126), ProgramFailed(why)
        try:
            rc = proc.wait()
        except KeyboardInterrupt as e:  # the program got the signal too: let it finish
            try:
                proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                proc.kill()
                proc.wait()
            return 130, e
        if rc == 0:
            return 0, None
        if rc < 0:
            if -rc == signal.SIGINT:
                return 130, KeyboardInterrupt()
            try:
                sname = signal.Signals(-rc).name
            except ValueError:
                sname = f"signal {-rc}"
            return 128 - rc, ProgramFailed(f"{cmd[0]} was killed by {sname}")
        return rc, ProgramFailed(f"{cmd[0]} exited with status {rc}")

    return body


@contextlib.contextmanager
def _as_script(cmd: list[str], url: str | None) -> Iterator[None]:
    """sys.argv, sys.path[0] and $MLLEDGER_URL as a script run by ``python`` expects them."""
    old_argv, old_url, old_cwd = sys.argv, os.environ.get("MLLEDGER_URL"), os.getcwd()
    script_dir = os.path.dirname(os.path.abspath(cmd[0]))
    sys.argv = list(cmd)
    sys.path.insert(0, script_dir)
    if url is not None:  # the script's own mlledger runs go to the same store
        os.environ["MLLEDGER_URL"] = url
    try:
        yield
    finally:
        sys.argv = old_argv
        with contextlib.suppress(OSError):
            os.chdir(old_cwd)
        with contextlib.suppress(ValueError):
            sys.path.remove(script_dir)
        if url is not None:
            if old_url is None:
                os.environ.pop("MLLEDGER_URL", None)
            else:
                os.environ["MLLEDGER_URL"] = old_url


def _execute(
    ledger: Ledger,
    body: Body,
    *,
    name: str,
    kind: str,
    code: dict[str, Any],
    argv: list[str],
    message: str | None,
    tags: dict[str, str],
    inputs: Sequence[str],
    outputs: Sequence[str],
    capture_files: bool,
) -> tuple[Run, int]:
    """Run ``body`` inside a run; returns the ended run and the exit status."""
    from .capture.redact import redact_argv
    from .runs import RunContext

    ctx = RunContext(
        ledger,
        name,
        message=message,
        tags=tags,
        capture_files=capture_files,
        code=code,
        kind=kind,
    )
    # where each output is and its name, fixed now: the program may change directory
    where = {p: os.path.abspath(p) for p in outputs}
    names = {p: _display(where[p]) for p in outputs}
    run = ctx.__enter__()
    try:
        run.log_params(argv=redact_argv(list(argv)))
        for p in inputs:
            run.use(p)
        rc, exc = body()
        missing = [p for p in outputs if not os.path.lexists(where[p])]
        for p in outputs:
            if p not in missing:
                run.save(where[p], name=names[p])
    except BaseException as e:  # mlledger itself failed: end the run, then report
        ctx.__exit__(type(e), e, e.__traceback__)
        raise
    if missing:
        note = f"declared output(s) not written: {', '.join(missing)}"
        if exc is None:
            exc, rc = OutputMissing(note), 1
        elif isinstance(exc, ProgramFailed):
            exc = ProgramFailed(f"{exc}; {note}")
    if exc is None:
        ctx.__exit__(None, None, None)
    else:
        ctx.__exit__(type(exc), exc, exc.__traceback__)
    return run, rc


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--name",
    default=None,
    help="The run's name (default: the script's stem or the program's name).",
)
@click.option("-m", "--message", default=None, help="Why this run (stored with it).")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_tags,
    help="A tag on the run (repeatable).",
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="PATH",
    help="A file or folder the program reads: stored when the run starts (repeatable).",
)
@click.option(
    "--output",
    "outputs",
    multiple=True,
    metavar="PATH",
    help="A file or folder the program writes: stored when it ends (repeatable); "
    "missing after a successful program, it fails the run.",
)
@click.option(
    "--exec",
    "force_exec",
    is_flag=True,
    help="Run COMMAND as a subprocess even when it ends in .py.",
)
@click.option(
    "--no-capture",
    is_flag=True,
    help="For a script: do not record the files it opens (only --input/--output).",
)
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr when the run ends.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@pass_state
def run(
    state: _State,
    *,
    name: str | None,
    message: str | None,
    tags: dict[str, str],
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    force_exec: bool,
    no_capture: bool,
    quiet: bool,
    command: tuple[str, ...],
) -> None:
    """Run a Python script or any program as one recorded run.

    \b
    mlledger run [OPTIONS] script.py [ARGS...]
    mlledger run [OPTIONS] [--exec] -- COMMAND [ARGS...]

    A script (the first word ends in .py, no --exec) runs in this process with
    full capture: the files it reads and writes, the environment, its code
    (the script's digest) and argv as params.  Any other COMMAND runs as a
    subprocess; its inputs and outputs are the --input/--output paths.
    Options after the script or COMMAND are its own; '--' ends mlledger's
    options.  Exit status: the program's (1 for an exception in a script).
    """
    ctx = click.get_current_context()
    cmd = list(command)
    for p in inputs:
        if not os.path.lexists(p):
            raise UsageError(f"--input {p!r}: no such file or folder")
    script_mode = cmd[0].endswith(".py") and not force_exec
    if script_mode:
        path = os.path.abspath(cmd[0])
        if not os.path.isfile(path):
            raise UsageError(f"no such script: {cmd[0]!r}")
        run_name = name or os.path.splitext(os.path.basename(path))[0]
    else:
        exe = shutil.which(cmd[0])
        if exe is None:
            raise UsageError(
                f"command not found: {cmd[0]!r} (a Python script must end in .py; give a path "
                "such as ./tool for a program in this folder)"
            )
        run_name = name or os.path.basename(cmd[0])

    def scope(url: str | None) -> contextlib.AbstractContextManager[None]:
        return _as_script(cmd, url) if script_mode else contextlib.nullcontext()

    def body(url: str | None) -> Body:
        return _script_body(path) if script_mode else _command_body(cmd, url)

    if _disabled():  # MLLEDGER_DISABLE=1: run it plainly, record nothing
        with scope(None):
            rc = body(None)()[0]
        ctx.exit(rc)

    from .capture.code import file_digest

    ledger = state.ledger(create=True)
    user_file = cmd[0] if script_mode or (os.sep in cmd[0] and os.path.isfile(cmd[0])) else None
    code: dict[str, Any] = {
        "kind": "script" if script_mode else "command",
        "qualname": run_name if script_mode else os.path.basename(cmd[0]),
    }
    if not script_mode:
        code["executable"] = exe
    if user_file is not None:  # the script, or a program of the user's such as ./train.sh
        code["file"] = _display(os.path.abspath(user_file))
        digest = file_digest(user_file, ledger.store.algorithm)
        if digest is not None:
            code["module_digest"] = digest
            if script_mode:
                code["source_digest"] = digest
    if script_mode:
        # mlledger's public names load lazily: load them now, or the files the import
        # reads would show as the script's inputs
        importlib.import_module("mlledger._api")
    with scope(ledger.url):
        done, rc = _execute(
            ledger,
            body(ledger.url),
            name=run_name,
            kind=code["kind"],
            code=code,
            argv=cmd,
            message=message,
            tags=tags,
            inputs=[*([user_file] if user_file else []), *inputs],
            outputs=outputs,
            capture_files=script_mode and not no_capture,
        )
    if not quiet:
        err = done.error
        why = ""
        if err is not None and done.status == "failed" and err.message:
            why = f": {err.type.rsplit('.', 1)[-1]}: {_one_line(err.message)}"
        wall = done.resources.get("wall_s")
        took = f" in {_human_seconds(wall)}" if wall is not None else ""
        state.echo(
            f"mlledger: run {done.id} ({done.name}) {_status(done.status)}{took}{why}", err=True
        )
    ctx.exit(rc)


def main() -> None:
    """The ``mlledger`` console script."""
    cli.main(prog_name="mlledger")
