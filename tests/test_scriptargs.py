"""A script's parsed arguments as params under ``mlledger run`` (mlledger.integrations.scriptargs).

The scripts are real argparse and click programs run by the real console script
in a subprocess; the store they write is read back with the public API.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import click
import pytest
from helpers.cli import console

from mlledger import Ledger
from mlledger.integrations.scriptargs import NOT_SIMPLE, ScriptArgs, simple_value

ARGPARSE_SCRIPT = textwrap.dedent(
    """
    import argparse, pathlib, sys
    import mlledger

    if "--explicit" in sys.argv:  # the script gives the run a param itself, before parsing
        mlledger.current_run().log_params(epochs=99)
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out.txt"))
    p.add_argument("--layers", type=int, nargs="+", default=[64, 64])
    p.add_argument("--fast", action="store_true")
    p.add_argument("--note", default=None)
    p.add_argument("--log", type=argparse.FileType("w"), default=None)
    p.add_argument("--argv", default="mine")
    p.add_argument("--explicit", action="store_true")
    # a library's parser given its own words is not the script's command line
    argparse.ArgumentParser().parse_args([])
    args = p.parse_args()
    print("lr", args.lr)
    """
)

CLICK_SCRIPT = textwrap.dedent(
    """
    import click

    @click.group()
    @click.option("--seed", type=int, default=0)
    def cli(seed):
        pass

    @cli.command()
    @click.option("--lr", type=float, default=0.1)
    @click.option("--tag", multiple=True)
    def train(lr, tag):
        print("lr", lr)

    cli()
    """
)


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """A folder with train.py (argparse) and cli.py (a click group)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text(ARGPARSE_SCRIPT)
    (work / "cli.py").write_text(CLICK_SCRIPT)
    return work


def _run(work: Path, url: str, *args: str) -> tuple[int, str]:
    out = console("run", *args, url=url, cwd=work)
    return out.returncode, out.stderr


def test_argparse_values_become_typed_params(scripts: Path, tmp_path: Path) -> None:
    """--lr 0.2 is params.lr == 0.2 (a float), lists and paths keep their form, argv stays."""
    url = str(tmp_path / "store")
    rc, err = _run(scripts, url, "train.py", "--lr", "0.2", "--layers", "3", "4", "--fast")
    assert rc == 0, err
    (run,) = Ledger(url).runs()
    assert run.params["argv"] == ["train.py", "--lr", "0.2", "--layers", "3", "4", "--fast"]
    assert run.params["lr"] == 0.2
    assert isinstance(run.params["lr"], float)
    assert run.params["epochs"] == 3
    assert run.params["layers"] == [3, 4]
    assert run.params["fast"] is True
    assert run.params["note"] is None
    assert run.params["out"] == "out.txt"
    assert "log" in run.params
    assert run.params["log"] is None


def test_script_params_are_queried_and_diffed(scripts: Path, tmp_path: Path) -> None:
    """Two runs differing in --lr: where params.lr > 0.1 picks one, diff names params.lr."""
    url = str(tmp_path / "store")
    assert _run(scripts, url, "train.py", "--lr", "0.05")[0] == 0
    assert _run(scripts, url, "train.py", "--lr", "0.5")[0] == 0
    ledger = Ledger(url)
    (high,) = ledger.runs(where="params.lr > 0.1")
    assert high.params["lr"] == 0.5
    low = ledger.runs(where="params.lr < 0.1")[0]
    changes = {(c.section, c.key): (c.old, c.new) for c in ledger.diff(low, high)}
    assert changes[("params", "lr")] == (0.05, 0.5)


def test_the_scripts_own_param_and_argv_win(scripts: Path, tmp_path: Path) -> None:
    """A param the script logged itself and mlledger's argv are not replaced by parsed values."""
    url = str(tmp_path / "store")
    rc, err = _run(scripts, url, "train.py", "--explicit", "--epochs", "7", "--argv", "x")
    assert rc == 0, err
    (run,) = Ledger(url).runs()
    assert run.params["epochs"] == 99
    assert run.params["argv"][0] == "train.py"
    assert run.params["lr"] == 0.1


def test_a_value_that_is_not_simple_is_named_in_a_warning(scripts: Path, tmp_path: Path) -> None:
    """An open file from FileType is no param: one warning names the argument."""
    url = str(tmp_path / "store")
    rc, err = _run(scripts, url, "train.py", "--log", "train.log")
    assert rc == 0, err
    (run,) = Ledger(url).runs()
    assert "log" not in run.params
    assert any("log (a TextIOWrapper)" in w for w in run.warnings), run.warnings


def test_help_exits_zero_and_the_run_says_so(scripts: Path, tmp_path: Path) -> None:
    """--help: the shell gets status 0, the run is finished with a warning saying why it ended."""
    url = str(tmp_path / "store")
    out = console("run", "train.py", "--help", url=url, cwd=scripts)
    assert out.returncode == 0, out.stderr
    assert "usage: train.py" in out.stdout
    (run,) = Ledger(url).runs()
    assert run.status == "finished"
    assert any("argparse parser ended the script (exit status 0)" in w for w in run.warnings)


def test_a_usage_error_exits_two_and_fails_the_run(scripts: Path, tmp_path: Path) -> None:
    """--lr abc: status 2 to the shell, a failed run whose warning quotes argparse's message."""
    url = str(tmp_path / "store")
    rc, err = _run(scripts, url, "train.py", "--lr", "abc")
    assert rc == 2
    assert "invalid float value: 'abc'" in err
    (run,) = Ledger(url).runs()
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type == "SystemExit"
    assert any(
        "refused the command line (exit status 2): argument --lr: invalid float value" in w
        for w in run.warnings
    ), run.warnings


def test_click_group_and_command_params(scripts: Path, tmp_path: Path) -> None:
    """A click group's and its subcommand's options become params; multiple=True is a list."""
    url = str(tmp_path / "store")
    rc, err = _run(scripts, url, "cli.py", "--seed", "3", "train", "--lr", "0.3", "--tag", "a",
                   "--tag", "b")
    assert rc == 0, err
    (run,) = Ledger(url).runs()
    assert run.params["seed"] == 3
    assert run.params["lr"] == 0.3
    assert run.params["tag"] == ["a", "b"]


def test_click_usage_error_exits_two(scripts: Path, tmp_path: Path) -> None:
    """A click usage error: status 2, a failed run with click's message in a warning."""
    url = str(tmp_path / "store")
    rc, err = _run(scripts, url, "cli.py", "train", "--lr", "x")
    assert rc == 2, err
    (run,) = Ledger(url).runs()
    assert run.status == "failed"
    assert any("click parser refused the command line (exit status 2)" in w
               for w in run.warnings), run.warnings


def test_hooks_are_put_back_and_inactive_outside() -> None:
    """After the block argparse and click are the library's own again (nothing else changes)."""
    before = (argparse.ArgumentParser.parse_known_args, argparse.ArgumentParser.error,
              click.Command.make_context)

    class _Ended:
        active = False

    with ScriptArgs(_Ended()):
        assert argparse.ArgumentParser.parse_known_args is not before[0]
        assert click.Command.make_context is not before[2]
        # a run that ended records nothing and breaks nothing
        assert argparse.ArgumentParser().parse_args([]) == argparse.Namespace()
    after = (argparse.ArgumentParser.parse_known_args, argparse.ArgumentParser.error,
             click.Command.make_context)
    assert after == before


def test_simple_values() -> None:
    """Numbers, text, bools, None and lists of them are kept; a path is its string."""
    assert simple_value(0.5) == 0.5
    assert simple_value([1, "a", None]) == [1, "a", None]
    assert simple_value((True, 2)) == [True, 2]
    assert simple_value(Path("a/b")) == "a/b"
    assert simple_value({"a": 1}) is NOT_SIMPLE
    assert simple_value([1, object()]) is NOT_SIMPLE
