"""``mlledger run``: a Python script or any program as one recorded run."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from .._fmt import display_path, human_seconds, one_line
from .._settings import PARENT, URL, disabled
from ..errors import UsageError
from ..render import styled_status
from ..runs import current_run
from ..runs.sampler import check_interval, follow
from .options import parse_tags
from .state import State, pass_state

if TYPE_CHECKING:
    from types import TracebackType

    from ..ledger import Ledger
    from ..runs import Run

__all__ = ["OutputMissing", "ProgramFailed", "run"]


# A failed run records its error's type as "module.qualname": these two keep the names
# runs have recorded since mlledger/cli.py ("mlledger.cli.ProgramFailed"); the package
# re-exports them under those names.


class ProgramFailed(Exception):
    """``mlledger run``: the program exited with a non-zero status or was killed."""

    __module__ = "mlledger.cli"


class OutputMissing(Exception):
    """``mlledger run``: a declared ``--output`` was not there when the program ended."""

    __module__ = "mlledger.cli"


Body = Callable[[], "tuple[int, BaseException | None]"]


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
            env[URL] = url
        outer = current_run()
        if outer is not None and not outer.state.detached:
            # the program's own runs nest under this one, with its why and tags
            outer.ensure_started()  # their parent is in the store before they are
            record = outer.record
            env[PARENT] = json.dumps({
                "id": outer.id, "url": outer.writer.store.url, "message": record.get("message"),
                "tags": record.get("tags") or {},
            })
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            proc = subprocess.Popen(cmd, env=env)
        except OSError as e:
            why = f"cannot run {cmd[0]!r}: {e.strerror or e}"
            click.echo(f"mlledger: error: {why}", err=True)
            return (127 if isinstance(e, FileNotFoundError) else 126), ProgramFailed(why)
        run = current_run()
        if run is not None:  # a sampled run samples the program, not this process
            follow(run, proc.pid)
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
    old_argv, old_url, old_cwd = sys.argv, os.environ.get(URL), os.getcwd()
    script_dir = os.path.dirname(os.path.abspath(cmd[0]))
    sys.argv = list(cmd)
    sys.path.insert(0, script_dir)
    if url is not None:  # the script's own mlledger runs go to the same store
        os.environ[URL] = url
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
                os.environ.pop(URL, None)
            else:
                os.environ[URL] = old_url


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
    script_args: bool = False,
    sample: float | None = None,
) -> tuple[Run, int]:
    """Run ``body`` inside a run; returns the ended run and the exit status.

    ``script_args``: what the script's argparse, click or Hydra parses becomes params.
    """
    from ..capture.redact import redact_argv
    from ..integrations.scriptargs import ScriptArgs
    from ..runs import RunContext

    ctx = RunContext(
        ledger,
        name,
        message=message,
        tags=tags,
        capture_files=capture_files,
        code=code,
        kind=kind,
        sample=sample,
    )
    # where each output is and its name, fixed now: the program may change directory
    where = {p: os.path.abspath(p) for p in outputs}
    names = {p: display_path(where[p]) for p in outputs}
    run = ctx.__enter__()
    try:
        run.log_params(argv=redact_argv(list(argv)))
        for p in inputs:
            run.use(p)
        with ScriptArgs(run, ledger) if script_args else contextlib.nullcontext() as args:
            rc, exc = body()
            if args is not None:  # why a Hydra app ran no task, a sweep's job left open
                args.ended(rc, exc)
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


@click.command(
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
    callback=parse_tags,
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
@click.option(
    "--sample",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Record the script's (or program's) CPU and memory, and GPUs where NVML answers, "
    "every SECONDS as metrics sys.cpu_percent, sys.rss_bytes... of the run.",
)
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr when the run ends.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@pass_state
def run(
    state: State,
    *,
    name: str | None,
    message: str | None,
    tags: dict[str, str],
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    force_exec: bool,
    no_capture: bool,
    sample: float | None,
    quiet: bool,
    command: tuple[str, ...],
) -> None:
    """Run a Python script or any program as one recorded run.

    \b
    mlledger run [OPTIONS] script.py [ARGS...]
    mlledger run [OPTIONS] [--exec] -- COMMAND [ARGS...]

    A script (the first word ends in .py, no --exec) runs in this process with
    full capture: the files it reads and writes, the environment, its code
    (the script's digest), argv and the arguments its argparse or click
    parser reads (--lr 0.2 as params.lr = 0.2) or its Hydra app's composed config
    (lr=0.2 as params.lr = 0.2; a --multirun job as a child run) as params.  Any
    other COMMAND runs as a subprocess; its inputs and outputs are the
    --input/--output paths.
    Options after the script or COMMAND are its own; '--' ends mlledger's
    options.  Exit status: the program's (1 for an exception in a script).
    """
    ctx = click.get_current_context()
    cmd = list(command)
    for p in inputs:
        if not os.path.lexists(p):
            raise UsageError(f"--input {p!r}: no such file or folder")
    script_mode = cmd[0].endswith(".py") and not force_exec
    if sample is not None:
        check_interval(sample)
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

    if disabled():  # MLLEDGER_DISABLE=1: run it plainly, record nothing
        with scope(None):
            rc = body(None)()[0]
        ctx.exit(rc)

    from ..capture.code import file_digest

    ledger = state.ledger(create=True)
    user_file = cmd[0] if script_mode or (os.sep in cmd[0] and os.path.isfile(cmd[0])) else None
    code: dict[str, Any] = {
        "kind": "script" if script_mode else "command",
        "qualname": run_name if script_mode else os.path.basename(cmd[0]),
    }
    if not script_mode:
        code["executable"] = exe
    if user_file is not None:  # the script, or a program of the user's such as ./train.sh
        code["file"] = display_path(os.path.abspath(user_file))
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
            script_args=script_mode,
            sample=sample,
        )
    if not quiet:
        err = done.error
        why = ""
        if err is not None and done.status == "failed" and err.message:
            why = f": {err.type.rsplit('.', 1)[-1]}: {one_line(err.message)}"
        wall = done.resources.get("wall_s")
        took = f" in {human_seconds(wall)}" if wall is not None else ""
        state.echo(
            f"mlledger: run {done.id} ({done.name}) {styled_status(done.status)}{took}{why}",
            err=True,
        )
    ctx.exit(rc)
