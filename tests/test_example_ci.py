"""The GitHub Actions example: its mlledger commands exist, and its steps gate for real."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.cli import MLLEDGER, assert_real_cli_line

from mlledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "github-actions-check.yml"


def _steps() -> dict[str, str]:
    """Each step's name and its one-line ``run:`` command (read without a YAML parser)."""
    steps: dict[str, str] = {}
    name = None
    for line in WORKFLOW.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"\s*- name: (.+)", line):
            name = m[1].strip()
        elif (m := re.match(r"\s*run: (.+)", line)) and name:
            steps[name] = m[1].strip()
    return steps


def test_the_workflow_runs_on_pull_requests_and_gates_on_check() -> None:
    """On pull_request it installs, trains under mlledger run, writes the markdown summary
    and the JUnit file."""
    text = WORKFLOW.read_text(encoding="utf-8")
    assert re.search(r"^on:\n  pull_request:", text, flags=re.M)
    steps = _steps()
    assert steps["Install"].startswith("pip install")
    assert steps["Train"].startswith("mlledger run ")
    assert "--format markdown >> \"$GITHUB_STEP_SUMMARY\"" in steps["Check against production"]
    assert "--format junit" in steps["JUnit report"]


@pytest.mark.parametrize("step", ["Train", "Check against production", "JUnit report"])
def test_each_mlledger_command_of_the_workflow_is_real(step: str) -> None:
    """Every option the workflow gives mlledger is one its --help lists."""
    argv = shlex.split(_steps()[step].split(">")[0])
    assert_real_cli_line(argv)


def _run_step(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A step's command in bash -e (as GitHub runs it), in a checkout-like folder."""
    assert MLLEDGER is not None
    path = f"{os.path.dirname(MLLEDGER)}{os.pathsep}{env.get('PATH', '')}"
    if not (cwd / "examples").exists():
        (cwd / "examples").symlink_to(ROOT / "examples")
    return subprocess.run(
        ["bash", "-e", "-c", command], cwd=cwd, env={**env, "PATH": path},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("prod_noise", "passes"), [("0.1", True), ("0.0", False)])
def test_the_steps_gate_a_pull_request(tmp_path: Path, prod_noise: str, passes: bool) -> None:
    """Run as the workflow runs them: a PR as good as prod passes (exit 0, ✅ summary, no
    <failure>); one worse than prod fails the job (exit 1, ❌, a <failure> per broken rule)."""
    env = {**os.environ, "MLLEDGER_URL": str(tmp_path / "store"), "PR": "7",
           "PR_TITLE": "try a seed", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    env.pop("MLLEDGER_DISABLE", None)
    work = tmp_path / "checkout"
    work.mkdir()
    prod = _run_step(
        f"mlledger run --name train -q examples/ci/train.py --seed 3 --noise {prod_noise}",
        env,
        work,
    )
    assert prod.returncode == 0, prod.stderr
    ledger = Ledger(env["MLLEDGER_URL"])
    ledger.refs.set("model/prod", ledger.runs(name="train")[0].id, message="prod")
    steps = _steps()
    train = _run_step(steps["Train"], env, work)
    assert train.returncode == 0, train.stderr
    ledger.sync()  # the run came from another process
    pr_run = ledger.runs(where="tags.pr = '7'")
    assert len(pr_run) == 1
    assert pr_run[0].message == "PR 7: try a seed"
    gate = _run_step(steps["Check against production"], env, work)
    assert gate.returncode == (0 if passes else 1), gate.stderr
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert summary.startswith("### ✅" if passes else "### ❌")
    assert pr_run[0].id in summary
    junit = _run_step(steps["JUnit report"], env, work)
    assert junit.returncode == gate.returncode
    suite = ET.parse(work / "mlledger-checks.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "2"
    assert suite.get("failures") == ("0" if passes else "1")
    assert len(ledger.check(pr_run[0].id, rules=["metrics.accuracy min=0"]).results) == 1
