"""``mlledger run``: a script or any program as one recorded run (mlledger.cli.run)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import (
    console,
    invoke,
    make_workdir,
    one_error_line,
    runs_in,
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with data.csv and train.py, made the current directory."""
    return make_workdir(tmp_path, monkeypatch)


# ------------------------------------------------------------------------------- run


def _only_run(url: str) -> dict[str, Any]:
    runs = runs_in(url)
    assert len(runs) == 1, runs
    result = invoke("show", "--json", runs[0]["id"], url=url)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_run_script_full_capture(workdir: Path, tmp_path: Path) -> None:
    """A script runs in-process as one run: argv params, reads, writes, code digest, metrics."""
    url = str(tmp_path / "store")
    result = invoke("run", "-m", "first try", "--tag", "team=cv", "train.py", "--lr", "0.5",
                    url=url)
    assert result.exit_code == 0, result.stderr
    assert "trained 0.5" in result.stdout
    assert "finished" in result.stderr
    rec = _only_run(url)
    assert rec["name"] == "train"
    assert rec["kind"] == "script"
    assert rec["status"] == "finished"
    assert rec["params"] == {"argv": ["train.py", "--lr", "0.5"]}
    assert rec["message"] == "first try"
    assert rec["tags"] == {"team": "cv"}
    assert set(rec["inputs"]) == {"train.py", "data.csv"}
    assert set(rec["outputs"]) == {"model.txt"}
    assert rec["code"]["source_digest"] == rec["inputs"]["train.py"]["digest"]
    assert rec["metrics"]["loss"]["last"] == 2.0
    assert rec["environment"]["process"]["argv"] == ["train.py", "--lr", "0.5"]
    assert sys.argv[0] != "train.py"


def test_run_script_options_after_script_are_its_own(workdir: Path, tmp_path: Path) -> None:
    """After the script, options belong to it; '--' also ends mlledger's options."""
    url = str(tmp_path / "store")
    result = invoke("run", "--name", "custom", "--", "train.py", "--name", "x", url=url)
    assert result.exit_code == 0, result.stderr
    rec = _only_run(url)
    assert rec["name"] == "custom"
    assert rec["params"]["argv"] == ["train.py", "--name", "x"]


def test_run_script_exit_status(workdir: Path, tmp_path: Path) -> None:
    """sys.exit(3) in the script: the run failed, the CLI exits 3; exit 0 is success."""
    url = str(tmp_path / "store")
    result = invoke("run", "train.py", "--exit", "3", url=url)
    assert result.exit_code == 3
    rec = _only_run(url)
    assert rec["status"] == "failed"
    assert rec["error"]["type"] == "SystemExit"
    ok = invoke("run", "-q", "train.py", "--exit", "0", url=url)
    assert ok.exit_code == 0
    assert ok.stderr == ""


def test_run_script_exception(workdir: Path, tmp_path: Path) -> None:
    """An exception in the script: traceback printed from the script's frame, run failed, exit 1."""
    url = str(tmp_path / "store")
    result = invoke("run", "train.py", "--raise", url=url)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: the script broke" in result.stderr
    assert "runpy" not in result.stderr
    assert "click" not in result.stderr
    rec = _only_run(url)
    assert rec["status"] == "failed"
    assert rec["error"]["type"] == "ValueError"
    assert "train.py" in rec["error"]["traceback"]


def test_run_script_imports_modules_beside_it(workdir: Path, tmp_path: Path) -> None:
    """The script's folder comes first on sys.path, as with ``python sub/main.py``."""
    sub = workdir / "sub"
    sub.mkdir()
    (sub / "helper.py").write_text("VALUE = 42\n")
    (sub / "main.py").write_text("import helper\nprint('value', helper.VALUE)\n")
    url = str(tmp_path / "store")
    result = invoke("run", "sub/main.py", url=url)
    assert result.exit_code == 0, result.stderr
    assert "value 42" in result.stdout
    assert str(sub) not in sys.path
    assert _only_run(url)["name"] == "main"


def test_diff_of_script_runs_counts_argv_once(workdir: Path, tmp_path: Path) -> None:
    """Two runs of one script with other arguments: argv changes once, under params."""
    url = str(tmp_path / "store")
    assert invoke("run", "-q", "train.py", "--lr", "0.5", url=url).exit_code == 0
    assert invoke("run", "-q", "train.py", "--lr", "0.25", url=url).exit_code == 0
    new, old = (r["id"] for r in runs_in(url))
    changes = json.loads(invoke("diff", "--json", old, new, url=url).stdout)["changes"]
    argv = [c for c in changes if c["key"] == "argv"]
    assert argv == [{"section": "params", "key": "argv", "kind": "changed",
                     "old": ["train.py", "--lr", "0.5"], "new": ["train.py", "--lr", "0.25"]}]
    assert {c["section"] for c in changes} <= {"params", "metrics", "outputs"}


def test_run_missing_script(workdir: Path, tmp_path: Path) -> None:
    """A script that is not there: exit 2, one line, no run recorded."""
    url = str(tmp_path / "store")
    result = invoke("run", "nope.py", url=url)
    assert result.exit_code == 2
    assert "nope.py" in one_error_line(result.stderr)


def test_run_disabled_records_nothing(workdir: Path, tmp_path: Path) -> None:
    """With MLLEDGER_DISABLE=1 the script just runs; no store is even made."""
    url = tmp_path / "store"
    result = invoke("run", "train.py", url=str(url), env={"MLLEDGER_DISABLE": "1"})
    assert result.exit_code == 0, result.stderr
    assert "trained" in result.stdout
    assert not url.exists()


def test_run_command_inputs_outputs(workdir: Path, tmp_path: Path) -> None:
    """A program runs as a subprocess; --input stored at start, --output at the end."""
    url = str(tmp_path / "store")
    result = invoke("run", "--input", "data.csv", "--output", "copy.csv", "--",
                    "cp", "data.csv", "copy.csv", url=url)
    assert result.exit_code == 0, result.stderr
    rec = _only_run(url)
    assert rec["name"] == "cp"
    assert rec["kind"] == "command"
    assert rec["status"] == "finished"
    assert rec["params"] == {"argv": ["cp", "data.csv", "copy.csv"]}
    assert rec["inputs"]["data.csv"]["digest"] == rec["outputs"]["copy.csv"]["digest"]


def test_run_command_exit_code_is_passed_on(workdir: Path, tmp_path: Path) -> None:
    """The program's exit status becomes the CLI's and fails the run."""
    url = str(tmp_path / "store")
    result = invoke("run", "--", "sh", "-c", "exit 7", url=url)
    assert result.exit_code == 7
    rec = _only_run(url)
    assert rec["status"] == "failed"
    assert "status 7" in rec["error"]["message"]


def test_run_command_missing_output_fails(workdir: Path, tmp_path: Path) -> None:
    """A declared output a successful program did not write: run failed, exit 1."""
    url = str(tmp_path / "store")
    result = invoke("run", "--output", "never.txt", "--", "true", url=url)
    assert result.exit_code == 1
    rec = _only_run(url)
    assert rec["status"] == "failed"
    assert "never.txt" in rec["error"]["message"]


def test_run_command_errors_before_start(workdir: Path, tmp_path: Path) -> None:
    """An unknown program or a missing --input is bad input: exit 2, nothing recorded."""
    url = tmp_path / "store"
    unknown = invoke("run", "--", "no-such-program-here", url=str(url))
    assert unknown.exit_code == 2
    assert "command not found" in one_error_line(unknown.stderr)
    missing = invoke("run", "--input", "gone.csv", "--", "true", url=str(url))
    assert missing.exit_code == 2
    one_error_line(missing.stderr)
    assert not url.exists()


def test_run_exec_flag_runs_py_as_program(workdir: Path, tmp_path: Path) -> None:
    """--exec runs a .py file as a subprocess, with the file as code identity and input."""
    tool = workdir / "tool.py"
    tool.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(0)\n")
    tool.chmod(0o755)
    url = str(tmp_path / "store")
    result = invoke("run", "--exec", "--", "./tool.py", url=url)
    assert result.exit_code == 0, result.stderr
    rec = _only_run(url)
    assert rec["kind"] == "command"
    assert rec["code"]["file"] == "tool.py"
    assert rec["code"]["module_digest"] == rec["inputs"]["tool.py"]["digest"]


def test_run_script_console(workdir: Path, tmp_path: Path) -> None:
    """``mlledger run train.py ...`` in a real process: output passes through, run recorded."""
    url = str(tmp_path / "store")
    out = console("run", "train.py", "--lr", "0.25", url=url, cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "trained 0.25"
    rec = _only_run(url)
    assert rec["params"]["argv"] == ["train.py", "--lr", "0.25"]
    assert set(rec["outputs"]) == {"model.txt"}
    failed = console("run", "train.py", "--raise", url=url, cwd=workdir)
    assert failed.returncode == 1
    assert "ValueError: the script broke" in failed.stderr


def test_run_command_console(workdir: Path, tmp_path: Path) -> None:
    """``mlledger run -- COMMAND`` in a real process: exit status passed on, outputs stored."""
    url = str(tmp_path / "store")
    out = console("run", "--output", "o.txt", "--", "sh", "-c", "echo hi > o.txt; exit 4",
                  url=url, cwd=workdir)
    assert out.returncode == 4
    rec = _only_run(url)
    assert rec["status"] == "failed"
    assert "o.txt" in rec["outputs"]


def test_nested_runs_go_to_the_same_store(workdir: Path, tmp_path: Path) -> None:
    """A script's own mlledger runs go to the --store store, as children of the script run."""
    (workdir / "nested.py").write_text(
        "import mlledger\nwith mlledger.run('inner') as r:\n    r.log(step=0, x=1)\n"
    )
    url = str(tmp_path / "store")
    result = invoke("run", "nested.py", url=url)
    assert result.exit_code == 0, result.stderr
    runs = {r["name"]: r for r in runs_in(url)}
    assert set(runs) == {"nested", "inner"}
    assert runs["inner"]["parent_id"] == runs["nested"]["id"]
    assert "MLLEDGER_URL" not in os.environ
