"""Parsing the command line's own option values: storage options, tags, ``--json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["json_option", "parse_storage_options", "parse_tags"]

F = TypeVar("F", bound=Callable[..., Any])


def parse_storage_options(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, Any]:
    import inspect

    from ..ledger import Ledger

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


def parse_tags(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx, param)
        out[key.strip()] = value
    return out


def json_option(
    help_text: str = "Print JSON for scripts (see 'mlledger --help').",
) -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)
