"""The ``mlledger`` command line: its group, help, store selection, options and errors,
through click's runner and the installed console script."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import click
import fsspec
import pytest
from helpers.cli import (
    Shared,
    build_shared,
    console,
    invoke,
    one_error_line,
)

from mlledger import Ledger
from mlledger.cli import cli
from mlledger.cli import options as cli_options


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """A store with prep -> train x2 (one a ref target), a failed run and a folder output."""
    yield from build_shared(tmp_path_factory)


# ------------------------------------------------------------------------ help, usage


def _commands(cmd: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, (*path, name))


def test_every_command_and_option_has_help() -> None:
    """Every command and every option in the whole command tree has help text."""
    missing = []
    for path, cmd in _commands(cli, ("mlledger",)):
        if not (cmd.help or "").strip():
            missing.append(path)
        for param in cmd.get_params(click.Context(cmd)):
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {'/'.join(param.opts)}")
    assert not missing, f"no help text: {missing}"


def test_commands_are_all_there() -> None:
    """The group has the commands the design names."""
    expected = {"init", "log", "show", "diff", "lineage", "artifact", "restore", "ref", "verify",
                "gc", "sync", "reindex", "run"}
    assert expected <= set(cli.commands)
    assert isinstance(cli.commands["ref"], click.Group)
    assert {"set", "get", "log", "rollback", "list"} <= set(cli.commands["ref"].commands)


def test_help_through_console_script() -> None:
    """``mlledger --help`` in a real process lists the commands and exits 0."""
    out = console("--help")
    assert out.returncode == 0, out.stderr
    for name in ("log", "show", "run", "verify", "ref"):
        assert name in out.stdout


def test_version() -> None:
    """``--version`` prints mlledger's version."""
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("mlledger ")


def test_unknown_command_is_one_line_exit_2() -> None:
    """A mistyped command is bad usage: exit 2 and one error line."""
    result = invoke("lgo")
    assert result.exit_code == 2
    assert "lgo" in one_error_line(result.stderr)


def test_bad_option_value_is_one_line_exit_2(shared: Shared) -> None:
    """A bad option value names the option, on one line, exit 2."""
    result = invoke("log", "-n", "many", url=shared.url)
    assert result.exit_code == 2
    assert "--limit" in one_error_line(result.stderr)


# ------------------------------------------------------------------ store selection


def test_unknown_protocol_store_url() -> None:
    """A store URL with an unknown protocol is bad input: one line, exit 2."""
    result = invoke("log", url="nosuchproto://bucket/x")
    assert result.exit_code == 2
    assert "nosuchproto" in one_error_line(result.stderr)


def test_unknown_protocol_store_url_console() -> None:
    """The same from the console script: one line on stderr, exit 2, no traceback."""
    out = console("log", url="nosuchproto://bucket/x")
    assert out.returncode == 2
    assert "unknown protocol" in one_error_line(out.stderr)


def test_reading_command_refuses_missing_store(tmp_path: Path) -> None:
    """A reading command on a URL with no store says so and creates nothing."""
    where = tmp_path / "nothing-here"
    result = invoke("log", url=str(where))
    assert result.exit_code == 2
    assert "mlledger init" in one_error_line(result.stderr)
    assert not where.exists()


def test_store_from_environment(shared: Shared) -> None:
    """``$MLLEDGER_URL`` picks the store when --store is not given."""
    result = invoke("log", "--json", env={"MLLEDGER_URL": shared.url})
    assert result.exit_code == 0, result.stderr
    assert {r["id"] for r in json.loads(result.stdout)} >= {shared.train1, shared.train2}


def test_storage_options_parse() -> None:
    """--option values decode as JSON when they parse, dotted keys nest, the rest are strings."""
    ctx = click.Context(cli)
    param = next(p for p in cli.params if p.name == "options")
    got = cli_options.parse_storage_options(
        ctx, param, ("anon=true", "n=3", "client_kwargs.endpoint_url=http://h:1", "name=abc")
    )
    assert got == {"anon": True, "n": 3, "client_kwargs": {"endpoint_url": "http://h:1"},
                   "name": "abc"}


def test_storage_option_without_equals_is_usage_error(shared: Shared) -> None:
    """--option without KEY=VALUE, or naming a Ledger option, is bad usage (exit 2)."""
    for bad in ("justakey", "capture_files=false"):
        result = invoke("--option", bad, "log", url=shared.url)
        assert result.exit_code == 2
        one_error_line(result.stderr)


def test_storage_options_reach_the_filesystem() -> None:
    """A memory:// store opened with --option works end to end (init, then log)."""
    url = f"memory://cli-{os.getpid()}-opts"
    try:
        assert invoke("--option", "skip_instance_cache=true", "init", url=url).exit_code == 0
        result = invoke("--option", "skip_instance_cache=true", "log", "--json", url=url)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == []
    finally:
        fsspec.filesystem("memory").rm(url, recursive=True)


# ---------------------------------------------------------------------- error paths


def test_debug_shows_traceback(shared: Shared) -> None:
    """--debug prints the traceback before the one-line error."""
    result = invoke("--debug", "show", "ZZZZZZZZ", url=shared.url)
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("mlledger: error: ")


def test_internal_error_is_one_line_exit_1(shared: Shared, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception is reported as a bug on one line, exit 1."""
    def broken(self: Ledger) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(Ledger, "sync", broken)
    result = invoke("sync", url=shared.url)
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert "internal error" in line
    assert "kaboom" in line
    assert "--debug" in line
