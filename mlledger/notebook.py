"""The IPython extension: notebook cells as runs.

``%load_ext mlledger`` registers:

- ``%%track [NAME] [-m MESSAGE] [--tag K=V ...]`` (cell magic): the cell
  runs in the user's namespace as one run of kind ``cell``.  Its output,
  its exceptions and their tracebacks are those of the same cell without the
  magic; the cell is only watched.
- ``%track_all on|off [-m MESSAGE] [--tag K=V ...]``: track every following
  cell without the magic (cells made only of magics, shell escapes and cell
  magics are not tracked).
- ``%ledger log [-n N]``, ``%ledger show [RUN]``: the record, inline as text;
  ``%ledger use [URL | --reset]``: send runs to another store (by default
  :func:`mlledger.default_ledger`, which honours ``$MLLEDGER_URL``).

What a cell run records:

- **code**: the digest of the cell's source (trailing whitespace aside; not
  the text, which may hold a secret), the execution count, and the cell id
  and notebook when the frontend gives them;
- **inputs**: the names the cell reads (found by parsing it: names loaded
  before the cell binds them) that existed before it ran, except modules,
  functions, classes, files, mlledger's own objects, IPython's names and
  ``_``-prefixed names.  They take the path of a tracked function's
  arguments: scalars and strings are params (a string naming an existing
  file is also that file as an input); every other value is a param and an
  input artifact by value digest under the variable's name;
- **outputs**: the names the cell binds or rebinds (new names, and names
  whose object changed), and inputs it changed in place (hashed again after
  the cell), each an artifact by value digest under the variable's name, so
  a value one cell produces and a later cell reads links the two runs;
- files opened, environment, git state, metrics logged with
  ``mlledger.current_run().log(...)``: as for any run.

Only this module imports IPython, and only when the extension is loaded.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as _dt
import inspect
import io
import json
import os
import shlex
import sys
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from . import canonical
from .capture import files as _files
from .capture.code import source_code
from .capture.redact import is_secret_name
from .capture.values import encode_redacted, why_not_stored
from .errors import LedgerError, LedgerWarning, PolicyError
from .ledger import Ledger, default_ledger
from .records import Artifact
from .runs import Run, RunContext

__all__ = ["load_ipython_extension", "names_read", "unload_ipython_extension"]

#: names IPython puts in the user namespace: never inputs or outputs
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
_MISSING = object()
#: objects that are not data: mlledger's own, and open (or closed) files
_NOT_DATA = (Run, RunContext, Ledger, io.IOBase)


# ---------------------------------------------------------------------------
# which names a cell reads


_Comprehension = ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp


class _Reads(ast.NodeVisitor):
    """Names a piece of module-level code loads before binding them, in order.

    Statements are visited in evaluation order (an assignment's value before
    its targets); names bound inside functions, lambdas, comprehensions and
    class bodies are local to them.  Branches and loops are read in source
    order, so a name bound in one branch and read after it counts as bound:
    an approximation that errs on the side of fewer inputs only there.
    """

    def __init__(self) -> None:
        self.reads: dict[str, None] = {}
        self.bound: set[str] = set()
        self.scopes: list[set[str]] = []

    def load(self, name: str) -> None:
        if any(name in s for s in self.scopes) or name in self.bound:
            return
        self.reads.setdefault(name)

    def store(self, name: str) -> None:
        (self.scopes[-1] if self.scopes else self.bound).add(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.load(node.id)
        else:
            self.store(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for t in node.targets:
            self.visit(t)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.load(node.target.id)
            self.store(node.target.id)
        else:
            self.visit(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.annotation)
        self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def _for(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for stmt in (*node.body, *node.orelse):
            self.visit(stmt)

    visit_For = _for
    visit_AsyncFor = _for

    def _with(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_With = _with
    visit_AsyncWith = _with

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.store(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.store(alias.asname or alias.name.split(".", 1)[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.store(alias.asname or alias.name)

    def visit_Global(self, node: ast.Global) -> None:
        return None

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        return None

    def visit_MatchAs(self, node: Any) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.store(node.name)

    def visit_MatchStar(self, node: Any) -> None:
        if node.name:
            self.store(node.name)

    def visit_MatchMapping(self, node: Any) -> None:
        for k in node.keys:
            self.visit(k)
        for p in node.patterns:
            self.visit(p)
        if node.rest:
            self.store(node.rest)

    def _arguments(self, args: ast.arguments) -> set[str]:
        """Visit defaults and annotations (evaluated outside); return the parameter names."""
        for d in (*args.defaults, *(d for d in args.kw_defaults if d is not None)):
            self.visit(d)
        every = (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
        names: set[str] = set()
        for a in every:
            if a is None:
                continue
            names.add(a.arg)
            if a.annotation is not None:
                self.visit(a.annotation)
        return names

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        local = self._arguments(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self.store(node.name)
        declared = {
            n
            for sub in ast.walk(node)
            if isinstance(sub, (ast.Global, ast.Nonlocal))
            for n in sub.names
        }
        local |= {
            sub.id
            for stmt in node.body
            for sub in ast.walk(stmt)
            if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load)
        }
        self.scopes.append(local - declared)
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.scopes.append(self._arguments(node.args))
        self.visit(node.body)
        self.scopes.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in (*node.decorator_list, *node.bases, *node.keywords):
            self.visit(d)
        self.store(node.name)
        self.scopes.append(set())
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    def _comprehension(self, node: _Comprehension) -> None:
        gens = node.generators
        self.visit(gens[0].iter)  # evaluated in the enclosing scope
        self.scopes.append(set())
        for i, gen in enumerate(gens):
            if i:
                self.visit(gen.iter)
            self.visit(gen.target)
            for cond in gen.ifs:
                self.visit(cond)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self.scopes.pop()

    visit_ListComp = _comprehension
    visit_SetComp = _comprehension
    visit_GeneratorExp = _comprehension
    visit_DictComp = _comprehension


def names_read(source: str) -> list[str]:
    """The names Python ``source`` reads at module level before binding them, in first-read order.

    ``x = data + 1; y = x`` reads ``data`` only.  Raises SyntaxError on code
    that does not parse (run IPython's ``transform_cell`` on a cell first).
    """
    tree = ast.parse(source)
    v = _Reads()
    for stmt in tree.body:
        v.visit(stmt)
    return list(v.reads)


def _is_data(name: str, value: Any, hidden: dict[str, Any]) -> bool:
    """True for a user variable holding data, not a module, function, class or IPython's own."""
    if name.startswith("_") or name in _IPYTHON_NAMES:
        return False
    if hidden.get(name, _MISSING) is value or isinstance(value, _NOT_DATA):
        return False
    try:
        return not (inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value))
    except Exception:  # a proxy whose attribute lookup fails: not ours to judge
        return False


def _only_magics(raw: str) -> bool:
    """True for an empty cell, a cell magic, or only line magics, shell escapes and comments."""
    text = raw.lstrip()
    if not text or text.startswith("%%"):
        return True
    for line in raw.splitlines():
        t = line.strip()
        if not t or t.startswith("#") or t[0] in "%!?" or t.endswith("?"):
            continue
        return False
    return True


# ---------------------------------------------------------------------------
# arguments of the magics


class _ArgError(Exception):
    """A magic's arguments are wrong: the message says how and shows the usage."""


class _ArgExit(Exception):
    """``-h``: argparse printed the help; nothing more to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _ArgError(f"{self.prog}: {message}\n{self.format_usage().rstrip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr, end="")
        raise _ArgExit()


def _track_parser() -> _Parser:
    p = _Parser(
        prog="%%track",
        description="Run the cell as one run: its reads are inputs, what it binds are outputs.",
    )
    p.add_argument("name", nargs="?", help="the run's name (default: cell[<execution count>])")
    p.add_argument("-m", "--message", help="why this run")
    _tag_option(p)
    return p


def _tag_option(p: _Parser) -> None:
    p.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag (repeatable)"
    )


def _track_all_parser() -> _Parser:
    p = _Parser(
        prog="%track_all", description="Track every following cell as a run (on) or stop (off)."
    )
    p.add_argument("state", nargs="?", choices=["on", "off"], help="on, off (none: show the state)")
    p.add_argument("-m", "--message", help="the message of every tracked cell")
    _tag_option(p)
    return p


def _ledger_parser() -> _Parser:
    p = _Parser(prog="%ledger", description="Show the ledger's runs, or choose their store.")
    sub = p.add_subparsers(dest="command", metavar="{log,show,use}")
    log = sub.add_parser("log", help="the latest runs, newest first")
    log.add_argument("-n", type=int, default=20, metavar="N", help="how many (default 20)")
    show = sub.add_parser("show", help="one run's record (default: the latest run)")
    show.add_argument("run", nargs="?", help="a run id or unique id prefix")
    use = sub.add_parser("use", help="send runs to the store at URL (none: show the current store)")
    use.add_argument("url", nargs="?")
    use.add_argument("--reset", action="store_true", help="back to the default store")
    return p


def _parse(parser: _Parser, line: str) -> argparse.Namespace:
    try:
        argv = shlex.split(_strip_comment(line))  # "%ledger log   # the latest runs"
    except ValueError as e:
        raise _ArgError(f"{parser.prog}: {e}\n{parser.format_usage().rstrip()}") from None
    ns = parser.parse_args(argv)
    tags = getattr(ns, "tag", None)
    if tags is not None:
        ns.tags = _tags(parser, tags)
    return ns


def _strip_comment(line: str) -> str:
    """``line`` up to a ``#`` that starts a word outside quotes, as a shell reads it:
    ``-m "fix #3"`` and ``--tag issue=#12`` keep their ``#``."""
    quote = ""
    escaped = False
    for i, c in enumerate(line):
        if escaped:
            escaped = False
        elif c == "\\" and quote != "'":
            escaped = True
        elif quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _tags(parser: _Parser, items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            parser.error(f"--tag takes KEY=VALUE, not {item!r}")
        out[key] = value
    return out


def _usage_error(message: str) -> Exception:
    from IPython.core.error import UsageError

    error: Exception = UsageError(message)
    return error


# ---------------------------------------------------------------------------
# the extension


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


class _Extension:
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
    ) -> _CellRun | None:
        """Start the run of a cell about to execute; None when it cannot be tracked.

        Raises PolicyError when the store refuses runs like this one.
        """
        from ._settings import disabled as _is_disabled

        shell = self.shell
        count = _cell_number(shell, outer)
        ledger = self.ledger()
        name = name or f"cell[{count}]"
        passive = _is_disabled()
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
                    value = before.get(n, _MISSING)
                    if value is not _MISSING and _is_data(n, value, hidden):
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
        recorded = run.state.record.get("params", {})
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
        writer = cr.ctx.writer
        hidden = self.shell.user_ns_hidden
        for name, value in list(self.shell.user_ns.items()):
            try:
                old = cr.before.get(name, _MISSING)
                if old is value:  # same object: an input changed in place?
                    art = run.state.inputs.get(name)
                    if name in cr.read and art is not None and art.kind == "value":
                        enc = encode_redacted(value)
                        if enc is not None and writer.store.digest(enc.data) != art.digest:
                            run.state.outputs[name] = writer.store_encoded(enc, run)
                    continue
                if not _is_data(name, value, hidden):
                    continue
                if is_secret_name(name):
                    run.state.warn(f"output {name}: not stored, its name looks secret")
                    continue
                enc = encode_redacted(value)
                if enc is None:
                    run.state.warn(
                        f"output {name}: a {type(value).__qualname__} cannot be stored "
                        f"({why_not_stored(value)}); not recorded"
                    )
                    continue
                run.state.outputs[name] = writer.store_encoded(enc, run)
            except Exception as e:
                run.state.warn(f"output {name} not recorded: {e!r}")

    # -- %%track ------------------------------------------------------------------------
    def track(self, line: str, cell: str) -> None:
        """Run the cell as one run on the record.

        %%track [NAME] [-m MESSAGE] [--tag KEY=VALUE ...]

        The cell runs in the notebook's namespace exactly as without the magic
        (same output, same exceptions).  The run records the cell's source and
        execution count as its code, the variables it reads as inputs and the
        variables it binds or changes as outputs, each by value digest, plus
        files opened, environment and metrics logged with
        ``mlledger.current_run().log(...)``.  NAME defaults to cell[<count>].
        """
        try:
            args = _parse(_track_parser(), line)
        except _ArgExit:
            return
        except _ArgError as e:
            raise _usage_error(str(e)) from None
        shell = self.shell
        # IPython ends a cell magic's body with a newline the cell itself did not
        # have; without it the body is the very text the cell would run plainly
        # (ipykernel names the cell's code file, seen in a SyntaxError, after it)
        if cell.endswith("\n"):
            cell = cell[:-1]
        if _needs_running_loop(shell, cell):
            raise _usage_error(
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
            )
        except PolicyError as e:
            raise _usage_error(str(e)) from None
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
            args = _parse(_track_all_parser(), line)
        except _ArgExit:
            return
        except _ArgError as e:
            raise _usage_error(str(e)) from None
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
        if not isinstance(raw, str) or _only_magics(raw):
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
        parser = _ledger_parser()
        try:
            args = _parse(parser, line)
        except _ArgExit:
            return
        except _ArgError as e:
            raise _usage_error(str(e)) from None
        try:
            if args.command == "log":
                print(_format_log(self.ledger(), args.n))
            elif args.command == "show":
                print(_format_run(self._run(args.run)))
            elif args.command == "use":
                self._use(args.url, args.reset)
            else:
                raise _usage_error(f"%ledger needs a command\n{parser.format_usage().rstrip()}")
        except LedgerError as e:
            raise _usage_error(str(e)) from None

    def _run(self, run_id: str | None) -> Run:
        ledger = self.ledger()
        if run_id:
            return ledger.get(run_id)
        runs = ledger.runs(limit=1)
        if not runs:
            raise _usage_error(f"no runs yet in {ledger.url}")
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
                raise _usage_error(f"cannot open a store at {url!r}: {e}") from None
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


# ---------------------------------------------------------------------------
# rendering


def _when(t: _dt.datetime | None) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S") if t is not None else "-"


def _seconds(run: Run) -> str:
    wall = run.resources.get("wall_s")
    return f"{wall:.2f}s" if isinstance(wall, (int, float)) else "-"


def _num(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _short(value: Any, width: int = 70) -> str:
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _artifact(a: Artifact) -> str:
    kind = f"{a.kind}/{a.format}" if a.format else a.kind
    where = f"  {a.path}" if a.path else ""
    return f"{a.digest}  {kind}  {a.size} B{where}"


def _format_log(ledger: Ledger, n: int = 20) -> str:
    """``%ledger log``: the latest ``n`` runs, newest first, one line each."""
    runs: Sequence[Run] = ledger.runs(limit=n) if n > 0 else []
    if not runs:
        return f"no runs in {ledger.url}"
    lines = [f"runs in {ledger.url} (newest first)"]
    for r in runs:
        metrics = " ".join(f"{k}={_num(v)}" for k, v in r.metrics.items())
        line = f"{r.id}  {r.status:<11} {_when(r.started_at)}  {_seconds(r):>8}  {r.name}"
        if metrics:
            line += f"  {metrics}"
        if r.message:
            line += f"  # {r.message}"
        lines.append(line)
    return "\n".join(lines)


def _format_run(run: Run) -> str:
    """``%ledger show``: one run's record as text."""
    rec = run.record
    lines = [f"run {run.id}  {run.name}  {run.status}"]

    def field(label: str, value: Any) -> None:
        lines.append(f"  {label:<10} {value}")

    field("kind", rec.get("kind", "-"))
    field("started", f"{_when(run.started_at)}  ({_seconds(run)})")
    if run.parent_id:
        field("parent", run.parent_id)
    if run.message:
        field("message", run.message)
    if run.tags:
        field("tags", ", ".join(f"{k}={v}" for k, v in sorted(run.tags.items())))
    code = run.code
    if code:
        keys = ("execution_count", "cell_id", "notebook", "file")
        extra = "".join(f"  {k} {code[k]}" for k in keys if code.get(k))
        field("code", f"{code.get('kind', '-')} {code.get('qualname', '-')}{extra}")
        if code.get("source_digest"):
            field("source", code["source_digest"])
    for title, items in (("params", run.params), ("inputs", run.inputs), ("outputs", run.outputs)):
        if not items:
            continue
        lines.append(f"  {title}")
        width = max(len(k) for k in items)
        for k, v in sorted(items.items()):
            shown = _artifact(v) if isinstance(v, Artifact) else _short(v)
            lines.append(f"    {k:<{width}}  {shown}")
    stats = run.metric_stats
    if stats:
        lines.append("  metrics")
        width = max(len(k) for k in stats)
        for k, s in stats.items():
            lines.append(
                f"    {k:<{width}}  {_num(s.last)}  (min {_num(s.min)}, max {_num(s.max)}, "
                f"{s.count} values)"
            )
    if run.error is not None:
        field("error", run.error.summary)
    if run.warnings:
        lines.append("  warnings")
        lines.extend(f"    - {w}" for w in run.warnings)
    return "\n".join(lines)


# ---------------------------------------------------------------------------


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext mlledger``: register ``%%track``, ``%track_all`` and ``%ledger``."""
    old = getattr(ipython, "_mlledger_extension", None)
    if isinstance(old, _Extension):
        old.unregister()
    ext = _Extension(ipython)
    ext.register()
    ipython._mlledger_extension = ext


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and the cell hooks again."""
    ext = getattr(ipython, "_mlledger_extension", None)
    if isinstance(ext, _Extension):
        ext.unregister()
        ipython._mlledger_extension = None
