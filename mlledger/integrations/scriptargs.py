"""A script's command-line arguments as params, while it runs under ``mlledger run``.

``mlledger run train.py --lr 0.2`` records ``argv`` as it is; this module adds
what the script's own parser made of it: ``params.lr = 0.2`` as a float, so
``--where "params.lr > 0.1"`` and ``diff`` see it.  While the script runs (and
only then: :class:`ScriptArgs` is a context manager that puts everything back)
two parsers are hooked at their class:

- ``argparse.ArgumentParser.parse_known_args`` (``parse_args`` calls it): the
  namespace parsed from ``sys.argv[1:]`` (``args=None`` or that very list; a
  parser given other words, a library's own or a subparser's, is left alone);
- ``click.Command.make_context`` (typer builds click commands): the params of a
  command parsed from ``sys.argv[1:]`` and of its subcommands;
- Hydra (only when the script imported it): ``@hydra.main`` reads ``sys.argv``
  with an argparse parser; its namespace goes to
  :class:`~mlledger.integrations.hydra.HydraHook`, which records the composed
  config instead.

Simple values are kept (numbers, strings, bools, None, lists of those; a
path-like as its string); anything else (an open file of ``FileType``) is
named in one run warning.  A param the script gave the run itself wins: a
name already among the run's params that this hook did not set is not
touched (``argv`` among them).  A parser that exits (``--help``, a usage
error) leaves a warning on the run saying so; the exit status is the
script's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .argvalues import NOT_SIMPLE, simple_value

if TYPE_CHECKING:
    from .hydra import HydraHook

__all__ = ["NOT_SIMPLE", "ScriptArgs", "simple_value"]

class ScriptArgs:
    """While entered: arguments parsed from ``sys.argv[1:]`` become params of ``run``."""

    def __init__(self, run: Any, ledger: Any = None) -> None:
        self.run = run
        #: the Ledger the run belongs to (a Hydra sweep's jobs are child runs made on it)
        self.ledger = ledger
        #: the script's Hydra app, once Hydra's parser read the command line
        self.hydra: HydraHook | None = None
        #: the last message argparse's ``error`` gave (a usage error on its way out)
        self.parser_error: str | None = None
        #: the params this hook set (a later parse may change them; the script's own win)
        self.mine: set[str] = set()
        self._saved: list[tuple[type, str, Any]] = []
        #: click contexts whose words came from sys.argv (their subcommands' count too)
        self._roots: set[int] = set()

    # -- recording ---------------------------------------------------------------------
    def record(
        self,
        values: Mapping[str, Any],
        source: str,
        *,
        into: Any = None,
        convert: Callable[[Any], Any] = simple_value,
    ) -> None:
        """Log the simple values among ``values`` as params of the run (see the docstring).

        ``into``: another run (a Hydra sweep's job) instead of the script's; ``convert``:
        a value as a param, or NOT_SIMPLE (Hydra's nested configs are kept whole)."""
        run = self.run if into is None else into
        if not getattr(run, "active", False):
            return
        mine = self.mine if into is None else set()
        have = run.params
        keep: dict[str, Any] = {}
        skipped: list[str] = []
        for k, v in values.items():
            if not isinstance(k, str) or k.startswith("_"):
                continue
            if k in have and k not in mine:
                continue  # the script's own param, or argv
            sv = convert(v)
            if sv is NOT_SIMPLE:
                skipped.append(f"{k} (a {type(v).__qualname__})")
                continue
            keep[k] = sv
        try:
            if keep:
                run.log_params(**keep)
                mine.update(keep)
            if skipped:
                run.state.warn(
                    f"{source} argument(s) not recorded as params (not a number, text, bool, "
                    f"None or a list of those): {', '.join(skipped)}"
                )
        except Exception as e:  # capture never breaks the user's code
            run.state.warn(f"{source} arguments not recorded as params: {e!r}")

    def exited(self, source: str, code: Any, message: str | None) -> None:
        """A parser ended the script (``--help``, ``--version``, a usage error)."""
        run = self.run
        if not getattr(run, "active", False):
            return
        status = 0 if code is None else code
        what = "ended the script" if status == 0 else "refused the command line"
        why = f": {message.strip()}" if message and message.strip() else ""
        run.state.warn(f"the script's {source} parser {what} (exit status {status}){why}")

    def ended(self, status: int, exc: BaseException | None) -> None:
        """The script ended with ``status`` (``exc``: what ended it, if anything)."""
        if self.hydra is not None:
            self.hydra.ended(status, exc)

    # -- hooks -------------------------------------------------------------------------
    def __enter__(self) -> ScriptArgs:
        self._hook_argparse()
        click = sys.modules.get("click")
        if click is not None:  # mlledger's own CLI imported it: it is always there under run
            self._hook_click(click)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hydra is not None:
            self.hydra.close()
            self.hydra = None
        while self._saved:
            cls, name, orig = self._saved.pop()
            setattr(cls, name, orig)
        self._roots.clear()

    def _patch(self, cls: type, name: str, new: Any) -> Any:
        orig = cls.__dict__[name]
        self._saved.append((cls, name, orig))
        setattr(cls, name, new)
        return orig

    def _hook_argparse(self) -> None:
        hook = self
        state: dict[str, str | None] = {"message": None}

        def parse_known_args(
            parser: argparse.ArgumentParser, args: Any = None, namespace: Any = None
        ) -> Any:
            from_argv = args is None or _same_words(args, sys.argv[1:])
            hydra = from_argv and _is_hydra(parser)
            try:
                result = orig_parse(parser, args, namespace)
            except SystemExit as e:
                if from_argv:
                    hook.exited("Hydra" if hydra else "argparse", e.code, state["message"])
                raise
            if hydra:
                hook.hydra_parsed(result[0])
            elif from_argv:
                ns = result[0]
                hook.record(dict(vars(ns)) if hasattr(ns, "__dict__") else {}, "argparse")
            return result

        def error(parser: argparse.ArgumentParser, message: str) -> Any:
            state["message"] = hook.parser_error = message
            return orig_error(parser, message)

        orig_parse = self._patch(argparse.ArgumentParser, "parse_known_args", parse_known_args)
        orig_error = self._patch(argparse.ArgumentParser, "error", error)

    def hydra_parsed(self, ns: Any) -> None:
        """Hydra's parser read the command line: its app is hooked through its callbacks."""
        if not getattr(self.run, "active", False):
            return
        try:
            from .hydra import HydraHook

            if self.hydra is None:
                self.hydra = HydraHook(self)
            self.hydra.parsed(ns)
        except Exception as e:  # capture never breaks the user's code
            self.run.state.warn(f"Hydra config not recorded as params: {e!r}")

    def _hook_click(self, click: Any) -> None:
        hook = self
        roots = self._roots

        def make_context(
            cmd: Any, info_name: Any, args: Any, parent: Any = None, **extra: Any
        ) -> Any:
            from_argv = (
                id(parent.find_root()) in roots
                if parent is not None
                else _same_words(args, sys.argv[1:])
            )
            try:
                ctx = orig(cmd, info_name, args, parent=parent, **extra)
            except click.exceptions.Exit as e:  # --help, --version
                if from_argv:
                    hook.exited("click", e.exit_code, None)
                raise
            except click.exceptions.ClickException as e:  # a usage error
                if from_argv:
                    hook.exited("click", e.exit_code, e.format_message())
                raise
            if from_argv:
                if parent is None:
                    roots.add(id(ctx))
                hook.record(dict(ctx.params), "click")
            return ctx

        orig = self._patch(click.Command, "make_context", make_context)


def _is_hydra(parser: argparse.ArgumentParser) -> bool:
    """``parser`` is the one ``@hydra.main`` builds (the script imported Hydra)."""
    return parser.description == "Hydra" and "hydra" in sys.modules


def _same_words(args: Any, argv: list[str]) -> bool:
    try:
        return list(args) == argv
    except TypeError:
        return False
