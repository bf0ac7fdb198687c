"""The arguments of the magics: ``%%track``, ``%track_all`` and ``%ledger``, parsed with
argparse as a shell splits them (a ``#`` that starts a word begins a comment)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterable
from typing import NoReturn

__all__ = [
    "ArgError",
    "ArgExit",
    "Parser",
    "ledger_parser",
    "parse",
    "track_all_parser",
    "track_parser",
    "usage_error",
]


class ArgError(Exception):
    """A magic's arguments are wrong: the message says how and shows the usage."""


class ArgExit(Exception):
    """``-h``: argparse printed the help; nothing more to do."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ArgError(f"{self.prog}: {message}\n{self.format_usage().rstrip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr, end="")
        raise ArgExit()


def track_parser() -> Parser:
    p = Parser(
        prog="%%track",
        description="Run the cell as one run: its reads are inputs, what it binds are outputs.",
    )
    p.add_argument("name", nargs="?", help="the run's name (default: cell[<execution count>])")
    p.add_argument("-m", "--message", help="why this run")
    _tag_option(p)
    p.add_argument(
        "--sample",
        type=float,
        metavar="SECONDS",
        help="record CPU and memory every SECONDS as metrics sys.cpu_percent, sys.rss_bytes",
    )
    return p


def _tag_option(p: Parser) -> None:
    p.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag (repeatable)"
    )


def track_all_parser() -> Parser:
    p = Parser(
        prog="%track_all", description="Track every following cell as a run (on) or stop (off)."
    )
    p.add_argument("state", nargs="?", choices=["on", "off"], help="on, off (none: show the state)")
    p.add_argument("-m", "--message", help="the message of every tracked cell")
    _tag_option(p)
    return p


def ledger_parser() -> Parser:
    p = Parser(prog="%ledger", description="Show the ledger's runs, or choose their store.")
    sub = p.add_subparsers(dest="command", metavar="{log,show,use}")
    log = sub.add_parser("log", help="the latest runs, newest first")
    log.add_argument("-n", type=int, default=20, metavar="N", help="how many (default 20)")
    show = sub.add_parser("show", help="one run's record (default: the latest run)")
    show.add_argument("run", nargs="?", help="a run id or unique id prefix")
    use = sub.add_parser("use", help="send runs to the store at URL (none: show the current store)")
    use.add_argument("url", nargs="?")
    use.add_argument("--reset", action="store_true", help="back to the default store")
    return p


def parse(parser: Parser, line: str) -> argparse.Namespace:
    try:
        argv = shlex.split(_strip_comment(line))  # "%ledger log   # the latest runs"
    except ValueError as e:
        raise ArgError(f"{parser.prog}: {e}\n{parser.format_usage().rstrip()}") from None
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


def _tags(parser: Parser, items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            parser.error(f"--tag takes KEY=VALUE, not {item!r}")
        out[key] = value
    return out


def usage_error(message: str) -> Exception:
    from IPython.core.error import UsageError

    error: Exception = UsageError(message)
    return error
