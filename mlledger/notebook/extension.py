"""The extension in one IPython shell: the magics, the cell hooks, and a tracked cell's
run from its start (names read) to its end (names bound or changed)."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import click

from .. import canonical, render
from .._settings import disabled
from ..capture import files as _files
from ..capture.code import source_code
from ..capture.redact import is_secret_name
from ..capture.values import encode_redacted, why_not_stored
from ..errors import LedgerError, LedgerWarning, PolicyError
from ..ledger import Ledger, default_ledger
from ..runs import Run, RunContext
from ..runs.sampler import check_interval
from .args import (
    ArgError,
    ArgExit,
    ledger_parser,
    parse,
    track_all_parser,
    track_parser,
    usage_error,
)
from .names import MISSING, is_data, names_read, only_magics

__all__ = ["Extension"]


class _CellRun:
    """A tracked cell in progress."""

    def __init__(
        self,
        ctx: RunContext,
        run: Run,
        *,
        before: dict[str, Any],
        read: Iterable[str],
        passive: bool,
        info: Any = None,
    ) -> None:
        self.ctx = ctx
        self.run = run
        self.before = before  # the namespace before the cell (name -> object)
        self.read = frozenset(read)  # the input names
        self.passive = passive  # tracking disabled or detached: record nothing more
        self.info = info  # the ExecutionInfo of a %track_all cell


class Extension:
    """The state of the extension in one IPython shell."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.chosen: Ledger | None = None
        self.track_all = False
        self.all_message: str | None = None
        self.all_tags: dict[str, str] = {}
        self.pending: _CellRun | None = None  # a %track_all cell in progress
        self.in_track = 0  # %%track cells in progress
        self.failed_outer: Any = None  # the outer result of a %%track cell that raised

    # -- registration -------------------------------------------------------------
    def register(self) -> None:
        shell = self.shell
        shell.register_magic_function(self.track, "cell", "track")
        shell.register_magic_function(self.track_all_magic, "line", "track_all")
        shell.register_magic_function(self.ledger_magic, "line", "ledger")
        shell.events.register("pre_run_cell", self.pre_run_cell)
        shell.events.register("post_run_cell", self.post_run_cell)

    def unregister(self) -> None:
        shell = self.shell
        for event in ("pre_run_cell", "post_run_cell"):
            with contextlib.suppress(ValueError):
                shell.events.unregister(event, getattr(self, event))
        magics = shell.magics_manager.magics
        for kind, name in (("cell", "track"), ("line", "track_all"), ("line", "ledger")):
            magics.get(kind, {}).pop(name, None)

    def ledger(self) -> Ledger:
        """The ledger runs go to: the one ``%ledger use`` chose, else the default ledger."""
        return self.chosen if self.chosen is not None else default_ledger()

    # -- a tracked cell -----------------------------------------------------------------
    def begin(
        self,
        source: str,
        *,
        name: str | None,
        message: str | None,
        tags: dict[str, str],
        cell_id: Any = None,
        info: Any = None,
        outer: Any = None,
        sample: float | None = None,
    ) -> _CellRun | None:
        """Start the run of a cell about to execute; None when it cannot be tracked.

        Raises PolicyError when the store refuses runs like this one.
        """
        shell = self.shell
        count = _cell_number(shell, outer)
        ledger = self.ledger()
        name = name or f"cell[{count}]"
        passive = disabled()
        warns: list[str] = []
        code: dict[str, Any] = {"kind": "cell", "qualname": name}
        try:
            # trailing blank lines and spaces are not code: the same cell gives the
            # same digest with %%track (IPython adds a newline) and %track_all
            code = source_code(source.rstrip(), "cell", name, ledger.store.algorithm)
            code["execution_count"] = count
            if cell_id:
                code["cell_id"] = str(cell_id)
            session = shell.user_ns.get("__session__")
            if isinstance(session, str) and session:
                code["notebook"] = session
        except Exception as e:
            warns.append(f"cell code identity not fully recorded: {e!r}")
        before: dict[str, Any] = {}
        params: dict[str, Any] = {}
        if not passive:
            before = dict(shell.user_ns)
            hidden = shell.user_ns_hidden
            try:
                for n in names_read(shell.transform_cell(source)):
                    value = before.get(n, MISSING)
                    if value is not MISSING and is_data(n, value, hidden):
                        params[n] = value
            except SyntaxError:
                pass  # the cell fails to compile and says so; it reads nothing
            except Exception as e:
                warns.append(f"cell inputs not found: {e!r}")
        ctx = RunContext(
            ledger,
            name,
            params=params,
            message=message,
            tags=tags,
            code=code,
            code_warnings=warns,
            kind="cell",
            sample=sample,
        )
        try:
            run = ctx.__enter__()
        except PolicyError:
            raise
        except Exception as e:  # capture never breaks the user's code: run it untracked
            warnings.warn(f"mlledger: cell not tracked: {e!r}", LedgerWarning, stacklevel=2)
            return None
        passive = passive or run.state.detached
        # a param recorded inline is the very list or dict the cell may change in
        # place: keep what it was when the cell started
        recorded: dict[str, Any] = run.state.record.get("params", {})  # the live mapping
        for k, v in list(recorded.items()):
            if isinstance(v, (list, dict)):
                with contextlib.suppress(Exception):
                    recorded[k] = canonical.loads(canonical.dumps(v))
        return _CellRun(ctx, run, before=before, read=list(params), passive=passive, info=info)

    def end(self, cr: _CellRun, error: BaseException | None) -> None:
        """Record what the cell bound and changed, then end its run with the cell's outcome."""
        try:
            if not cr.passive:
                with _files.suspend():
                    self._outputs(cr)
        finally:
            tb = _user_traceback(error.__traceback__) if error is not None else None
            try:
                cr.ctx.__exit__(type(error) if error is not None else None, error, tb)
            except Exception as e:
                warnings.warn(
                    f"mlledger: cell run not recorded: {e!r}", LedgerWarning, stacklevel=2
                )

    def _outputs(self, cr: _CellRun) -> None:
        run = cr.run
        writer = cr.ctx.ledger.writer
        hidden = self.shell.user_ns_hidden
        inputs = run.inputs
        for name, value in list(self.shell.user_ns.items()):
            try:
                old = cr.before.get(name, MISSING)
                if old is value:  # same object: an input changed in place?
                    art = inputs.get(name)
                    if name in cr.read and art is not None and art.kind == "value":
                        enc = encode_redacted(value)
                        if enc is not None and writer.store.digest(enc.data) != art.digest:
                            run.state.outputs[name] = writer.store_encoded(enc, run)
                    continue
                if not is_data(name, value, hidden):
                    continue
                if is_secret_name(name):
                    run.state.warn(f"output {name}: not stored, its name looks secret")
                    continue
                enc = encode_redacted(value)
                if enc is None:
                    run.state.warn(
                        f"output {name}: a {type(value).__qualname__} cannot be stored "
                        f"({why_not_stored(value)}); not recorded",
                    )
                    continue
                run.state.outputs[name] = writer.store_encoded(enc, run)
            except Exception as e:
                run.state.warn(f"output {name} not recorded: {e!r}")

    # -- %%track ------------------------------------------------------------------------
    def track(self, line: str, cell: str) -> None:
        """Run the cell as one run on the record.

        %%track [NAME] [-m MESSAGE] [--tag KEY=VALUE ...] [--sample SECONDS]

        The cell runs in the notebook's namespace exactly as without the magic
        (same output, same exceptions).  The run records the cell's source and
        execution count as its code, the variables it reads as inputs and the
        variables it binds or changes as outputs, each by value digest, plus
        files opened, environment and metrics logged with
        ``mlledger.current_run().log(...)``.  NAME defaults to cell[<count>].
        """
        try:
            args = parse(track_parser(), line)
        except ArgExit:
            return
        except ArgError as e:
            raise usage_error(str(e)) from None
        try:
            check_interval(args.sample)
        except LedgerError as e:
            raise usage_error(f"%%track --sample: {e}") from None
        shell = self.shell
        # IPython ends a cell magic's body with a newline the cell itself did not
        # have; without it the body is the very text the cell would run plainly
        # (ipykernel names the cell's code file, seen in a SyntaxError, after it)
        if cell.endswith("\n"):
            cell = cell[:-1]
        if _needs_running_loop(shell, cell):
            raise usage_error(
                "%%track cannot run a cell with top-level `await` inside the kernel's event "
                "loop; track it with `%track_all on` instead"
            )
        outer = getattr(shell.displayhook, "exec_result", None)
        info = getattr(outer, "info", None)
        cr: _CellRun | None = None
        try:
            cr = self.begin(
                cell,
                name=args.name,
                message=args.message,
                tags=args.tags,
                cell_id=getattr(info, "cell_id", None),
                outer=outer,
                sample=args.sample,
            )
        except PolicyError as e:
            raise usage_error(str(e)) from None
        except Exception as e:  # capture never breaks the user's code: run it untracked
            warnings.warn(f"mlledger: cell not tracked: {e!r}", LedgerWarning, stacklevel=2)
        hist = shell.history_manager.input_hist_parsed
        # the history's last entry is this very cell when the kernel stored it (In[0] is "")
        number = getattr(outer, "execution_count", None)
        swap = isinstance(number, int) and len(hist) == number + 1
        saved = hist[-1] if swap else None
        result = None
        self.in_track += 1
        try:
            if swap:  # the display hook reads the cell's trailing ';' from the history
                with contextlib.suppress(Exception):
                    hist[-1] = shell.transform_cell(cell)
            result = shell.run_cell(
                cell,
                store_history=False,
                silent=bool(getattr(info, "silent", False)),
                cell_id=getattr(info, "cell_id", None),
            )
        except BaseException as e:  # run_cell itself failed (it catches the cell's errors)
            if cr is not None:
                self.end(cr, e)
            raise
        finally:
            self.in_track -= 1
            if swap:
                hist[-1] = saved
            shell.displayhook.exec_result = outer
        error = _error_of(result)
        if cr is not None:
            self.end(cr, error)
        if error is not None and outer is not None:
            # as if the cell had raised at top level: the kernel replies "error" with
            # the traceback the cell already showed, and "run all" stops here
            outer.error_in_exec = error
            self.failed_outer = outer

    # -- %track_all ----------------------------------------------------------------------
    def track_all_magic(self, line: str) -> None:
        """Track every following cell as a run, without the magic.

        %track_all on [-m MESSAGE] [--tag KEY=VALUE ...]
        %track_all off

        Each cell is recorded as with %%track (name cell[<count>]).  Cells made
        only of magics and shell commands, and cell-magic cells, are not tracked.
        """
        try:
            args = parse(track_all_parser(), line)
        except ArgExit:
            return
        except ArgError as e:
            raise usage_error(str(e)) from None
        if args.state is None:
            print(f"track_all is {'on' if self.track_all else 'off'}")
            return
        self.track_all = args.state == "on"
        self.all_message = args.message
        self.all_tags = args.tags

    def pre_run_cell(self, info: Any) -> None:
        if not self.track_all or self.pending is not None or self.in_track:
            return
        if not getattr(info, "store_history", False) or getattr(info, "silent", False):
            return
        raw = getattr(info, "raw_cell", None)
        if not isinstance(raw, str) or only_magics(raw):
            return
        try:
            self.pending = self.begin(
                raw,
                name=None,
                message=self.all_message,
                tags=self.all_tags,
                cell_id=getattr(info, "cell_id", None),
                info=info,
            )
        except PolicyError as e:
            print(f"mlledger: cell not tracked: {e}", file=sys.stderr)
        except Exception as e:
            warnings.warn(f"mlledger: cell not tracked: {e!r}", LedgerWarning, stacklevel=2)

    def post_run_cell(self, result: Any) -> None:
        if result is not None and result is self.failed_outer:
            self.failed_outer = None
            self.shell.last_execution_succeeded = False
        cr = self.pending
        if cr is None or result is None or getattr(result, "info", None) is not cr.info:
            return
        self.pending = None
        error = _error_of(result)
        try:
            self.end(cr, error)
        except Exception as e:
            warnings.warn(f"mlledger: cell run not recorded: {e!r}", LedgerWarning, stacklevel=2)

    # -- %ledger -------------------------------------------------------------------------
    def ledger_magic(self, line: str) -> None:
        """The ledger, inline.

        %ledger log [-n N]          the latest runs, newest first
        %ledger show [RUN]          one run's record (default: the latest)
        %ledger use [URL|--reset]   send runs to another store (none: show the store)
        """
        parser = ledger_parser()
        try:
            args = parse(parser, line)
        except ArgExit:
            return
        except ArgError as e:
            raise usage_error(str(e)) from None
        try:
            if args.command == "log":
                print(_log_text(self.ledger(), args.n))
            elif args.command == "show":
                print(click.unstyle(render.run_text(self.ledger(), self._run(args.run))))
            elif args.command == "use":
                self._use(args.url, args.reset)
            else:
                raise usage_error(f"%ledger needs a command\n{parser.format_usage().rstrip()}")
        except LedgerError as e:
            raise usage_error(str(e)) from None

    def _run(self, run_id: str | None) -> Run:
        ledger = self.ledger()
        if run_id:
            return ledger.get(run_id)
        runs = ledger.runs(limit=1)
        if not runs:
            raise usage_error(f"no runs yet in {ledger.url}")
        return runs[0]

    def _use(self, url: str | None, reset: bool) -> None:
        if reset:
            self.chosen = None
        elif url:
            try:
                self.chosen = Ledger(url)
            except LedgerError:
                raise
            except Exception as e:  # fsspec: unknown protocol, missing package...
                raise usage_error(f"cannot open a store at {url!r}: {e}") from None
        print(f"runs go to {self.ledger().url}")


def _cell_number(shell: Any, outer: Any) -> int:
    """The execution count (``In [N]``) of the cell that is running or about to run.

    IPython 8 raises ``shell.execution_count`` after a cell ran; IPython 9 raises it
    before (ahead of ``pre_run_cell``), so the counter alone is off by one on one of
    them.  Inside a cell (``%%track``) the outer ExecutionResult carries the number;
    before a cell (``%track_all``) the cell is not yet in the input history, whose
    entry 0 is empty, so the history's length is its number on both.
    """
    number = getattr(outer, "execution_count", None)
    if isinstance(number, int):
        return number
    hist = getattr(getattr(shell, "history_manager", None), "input_hist_parsed", None)
    if outer is None and isinstance(hist, list) and hist:
        return len(hist)
    return int(shell.execution_count)


def _error_of(result: Any) -> BaseException | None:
    """The exception an IPython ExecutionResult ended with, before or during execution."""
    if result.error_before_exec is not None:
        return result.error_before_exec  # type: ignore[no-any-return]
    return result.error_in_exec  # type: ignore[no-any-return]


def _needs_running_loop(shell: Any, cell: str) -> bool:
    """True when ``cell`` has top-level await and the kernel's loop is already running."""
    try:
        if not shell.should_run_async(cell, transformed_cell=shell.transform_cell(cell)):
            return False
    except Exception:
        return False
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _user_traceback(tb: Any) -> Any:
    """The traceback from the cell's own frame on, without IPython's frames above it."""
    try:
        import IPython

        prefix = os.path.dirname(IPython.__file__) + os.sep
    except Exception:
        return tb
    while tb is not None and tb.tb_next is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(prefix):
            break
        tb = tb.tb_next
    return tb


def _log_text(ledger: Ledger, n: int = 20) -> str:
    """``%ledger log``: the latest ``n`` runs, newest first, one line each (as ``mlledger log``)."""
    runs: Sequence[Run] = ledger.runs(limit=n) if n > 0 else []
    if not runs:
        return f"no runs in {ledger.url}"
    lines = [f"runs in {ledger.url} (newest first)", *render.run_lines(ledger, runs)]
    return click.unstyle("\n".join(lines))
