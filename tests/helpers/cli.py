"""Helpers of the command line's tests: a shared store, click's runner, the console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mlledger import Ledger
from mlledger.cli import cli

SCRIPT_DIR = os.path.dirname(sys.executable)
MLLEDGER = shutil.which("mlledger", path=SCRIPT_DIR) or shutil.which("mlledger")

TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import mlledger

    args = sys.argv[1:]
    lr = float(args[args.index("--lr") + 1]) if "--lr" in args else 0.1
    text = open("data.csv").read()
    run = mlledger.current_run()
    if run is not None:  # None with MLLEDGER_DISABLE=1
        run.log(step=1, loss=1 / lr)
    with open("model.txt", "w") as f:
        f.write(f"model lr={lr} rows={len(text.splitlines())}")
    print("trained", lr)
    if "--exit" in args:
        sys.exit(int(args[args.index("--exit") + 1]))
    if "--raise" in args:
        raise ValueError("the script broke")
    """
)



@dataclass
class Shared:
    """One store built once for the module, with the ids and digests tests look for."""

    url: str
    prep: str
    train1: str
    train2: str
    failed: str
    export: str
    raw: str
    data: str
    model1: str
    model2: str
    bundle: str
    bundle_bytes: bytes


def invoke(*args: str, url: str | None = None, **kwargs: Any) -> Result:
    """``mlledger [--store url] args`` through click's runner (stdout and stderr apart)."""
    prefix = ["--store", url] if url else []
    return CliRunner().invoke(cli, [*prefix, *args], catch_exceptions=False, **kwargs)


def console(
    *args: str, url: str | None = None, cwd: Path | str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``mlledger [--store url] args`` as the installed console script, in a real process."""
    assert MLLEDGER is not None, "the mlledger console script is not installed (pip install -e .)"
    prefix = ["--store", url] if url else []
    return subprocess.run(
        [MLLEDGER, *prefix, *args], capture_output=True, text=True, cwd=cwd, timeout=60,
        env={**os.environ, **env}, check=False,
    )


def one_error_line(stderr: str) -> str:
    """The stderr of a failed command: exactly one ``mlledger: error:`` line, no traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mlledger: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def runs_in(url: str) -> list[dict[str, Any]]:
    """Every run of a store as ``log --json`` prints them."""
    result = invoke("log", "-n", "0", "--json", url=url)
    assert result.exit_code == 0, result.output
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def unique_prefix(url: str, run_id: str, at_least: int = 16) -> str:
    """The shortest prefix of ``run_id`` (``at_least`` characters or more) no other run shares.

    Runs started in the same millisecond share all but the last few characters
    of their ids, so a fixed-length prefix can be ambiguous.
    """
    others = [r["id"] for r in runs_in(url) if r["id"] != run_id]
    n = at_least
    while any(o.startswith(run_id[:n]) for o in others):
        n += 1
    return run_id[:n]


def build_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """A store with prep -> train x2 (one a ref target), a failed run and a folder output."""
    base = tmp_path_factory.mktemp("cli-shared")
    work = base / "work"
    work.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            mp.setenv(var, str(base / "xdg" / var.lower()))
        mp.delenv("MLLEDGER_URL", raising=False)
        mp.delenv("MLLEDGER_DISABLE", raising=False)
        mp.chdir(work)
        ledger = Ledger(str(base / "store"))
        (work / "raw.csv").write_text("x,y\n1,2\n3,4\n")
        with ledger.run("prep", params={"seed": 1}) as prep:
            rows = Path("raw.csv").read_text().splitlines()
            Path("data.csv").write_text("\n".join(rows[1:]) + "\n")
        runs = []
        for lr, losses in ((0.1, (0.9, 0.5, 0.7)), (0.2, (0.8, 0.3, 0.4))):
            msg = f"lr {lr}"
            with ledger.run("train", params={"lr": lr}, message=msg, tags={"team": "cv"}) as r:
                r.use("data.csv")
                for step, loss in enumerate(losses):
                    r.log(step=step, loss=loss, acc=1 - loss)
                Path("model.bin").write_bytes(f"weights {lr}".encode())
                r.save("model.bin")
            runs.append(r)
        try:
            with ledger.run("broken") as failed:
                raise ValueError("it broke")
        except ValueError:
            pass
        bundle = work / "bundle"
        (bundle / "sub").mkdir(parents=True)
        (bundle / "a.txt").write_text("alpha\n")
        (bundle / "sub" / "b.txt").write_text("beta\n")
        (bundle / "big.bin").write_bytes(os.urandom(300_000))
        with ledger.run("export") as export:
            art = export.save("bundle")
        bundle_bytes = (bundle / "big.bin").read_bytes()
        ledger.refs.set("model/prod", f"{runs[0].id}/model.bin", message="first")
        ledger.refs.set("model/prod", f"{runs[1].id}/model.bin", message="better")
        yield Shared(
            url=ledger.url, prep=prep.id, train1=runs[0].id, train2=runs[1].id, failed=failed.id,
            export=export.id, raw=prep.inputs["raw.csv"].digest,
            data=prep.outputs["data.csv"].digest,
            model1=runs[0].outputs["model.bin"].digest, model2=runs[1].outputs["model.bin"].digest,
            bundle=art.digest, bundle_bytes=bundle_bytes,
        )


def copy_store(shared: Shared, tmp_path: Path) -> str:
    """A private copy of the shared store, for tests that change it."""
    dest = tmp_path / "store-copy"
    shutil.copytree(shared.url, dest)
    return str(dest)


def make_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with data.csv and train.py, made the current directory."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("a,b\n1,2\n")
    (work / "train.py").write_text(TRAIN_SCRIPT)
    monkeypatch.chdir(work)
    return work


def assert_real_cli_line(argv: list[str]) -> None:
    """``argv`` (``mlledger ...``) names a real command and only the options its --help
    lists, with a value where the option takes one (what the README and examples show)."""
    import click

    from mlledger.cli import cli as group

    assert argv[0] == "mlledger"
    command: click.Command = group
    args = argv[1:]
    positional_seen = False
    while args:
        token = args.pop(0)
        if token == "--":
            break
        if token.startswith("-") and token != "-":
            interspersed = command.context_settings.get(
                "allow_interspersed_args", command.allow_interspersed_args
            )
            if positional_seen and not interspersed:
                break  # the rest belongs to the program `mlledger run` starts
            name = token.split("=", 1)[0]
            options = {o: p for p in command.params for o in [*p.opts, *p.secondary_opts]}
            assert name in options or name in ("-h", "--help"), (command.name, token)
            param = options.get(name)
            takes_value = isinstance(param, click.Option) and not param.is_flag
            if takes_value and "=" not in token:
                assert args, f"{token} needs a value"
                args.pop(0)
            continue
        if isinstance(command, click.Group) and not positional_seen:
            assert token in command.commands, f"no command {token!r} under {command.name}"
            command = command.commands[token]
            continue
        positional_seen = True
