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
  command parsed from ``sys.argv[1:]`` and of its subcommands.

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
import os
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["NOT_SIMPLE", "ScriptArgs", "simple_value"]

_SCALARS = (bool, int, float, str, type(None))
#: what simple_value returns for a value that is not simple
NOT_SIMPLE = object()


def simple_value(v: Any) -> Any:
    """``v`` as a param if it is simple (see the module docstring), else a sentinel."""
    if isinstance(v, _SCALARS) and type(v) in _SCALARS:
        return v
    if isinstance(v, os.PathLike):
        try:
            return os.fspath(v)
        except (TypeError, ValueError):
            return NOT_SIMPLE
    if isinstance(v, (list, tuple)):
        out = [simple_value(x) for x in v]
        return NOT_SIMPLE if any(x is NOT_SIMPLE for x in out) else out
    return NOT_SIMPLE


class ScriptArgs:
    """While entered: arguments parsed from ``sys.argv[1:]`` become params of ``run``."""

    def __init__(self, run: Any) -> None:
        self.run = run
        #: the params this hook set (a later parse may change them; the script's own win)
        self.mine: set[str] = set()
        self._saved: list[tuple[type, str, Any]] = []
        #: click contexts whose words came from sys.argv (their subcommands' count too)
        self._roots: set[int] = set()

    # -- recording ---------------------------------------------------------------------
    def record(self, values: Mapping[str, Any], source: str) -> None:
        """Log the simple values among ``values`` as params of the run (see the docstring)."""
        run = self.run
        if not getattr(run, "active", False):
            return
        have = run.params
        keep: dict[str, Any] = {}
        skipped: list[str] = []
        for k, v in values.items():
            if not isinstance(k, str) or k.startswith("_"):
                continue
            if k in have and k not in self.mine:
                continue  # the script's own param, or argv
            sv = simple_value(v)
            if sv is NOT_SIMPLE:
                skipped.append(f"{k} (a {type(v).__qualname__})")
                continue
            keep[k] = sv
        try:
            if keep:
                run.log_params(**keep)
                self.mine.update(keep)
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

    # -- hooks -------------------------------------------------------------------------
    def __enter__(self) -> ScriptArgs:
        self._hook_argparse()
        click = sys.modules.get("click")
        if click is not None:  # mlledger's own CLI imported it: it is always there under run
            self._hook_click(click)
        return self

    def __exit__(self, *exc: object) -> None:
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
            try:
                result = orig_parse(parser, args, namespace)
            except SystemExit as e:
                if from_argv:
                    hook.exited("argparse", e.code, state["message"])
                raise
            if from_argv:
                ns = result[0]
                hook.record(dict(vars(ns)) if hasattr(ns, "__dict__") else {}, "argparse")
            return result

        def error(parser: argparse.ArgumentParser, message: str) -> Any:
            state["message"] = message
            return orig_error(parser, message)

        orig_parse = self._patch(argparse.ArgumentParser, "parse_known_args", parse_known_args)
        orig_error = self._patch(argparse.ArgumentParser, "error", error)

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


def _same_words(args: Any, argv: list[str]) -> bool:
    try:
        return list(args) == argv
    except TypeError:
        return False
