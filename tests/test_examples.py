"""The examples in examples/ run end to end, as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["MLLEDGER_URL"] = str(tmp_path / "store")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300,
        cwd=tmp_path, check=False,
    )


def test_quickstart_runs_and_verifies(tmp_path: Path) -> None:
    """The quickstart trains twice, shows the diff and restores byte-identical copies."""
    out = _run(EXAMPLES / "quickstart.py", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "~ lr: 0.1 -> 0.5" in out.stdout
    assert "byte-identical=True" in out.stdout
    assert "verify: ok" in out.stdout
    import mlledger

    ledger = mlledger.Ledger(str(tmp_path / "store"))
    runs = ledger.runs(name="train")
    assert len(runs) == 2
    assert {r.params["lr"] for r in runs} == {0.1, 0.5}
    assert ledger.refs.get("quickstart/model").target == runs[0].outputs["model.json"].digest


def test_sklearn_example_links_runs(tmp_path: Path) -> None:
    """The scikit-learn example links both fits to the dataset run by one digest."""
    pytest.importorskip("sklearn")
    out = _run(EXAMPLES / "sklearn_train.py", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "both fits read the dataset produced by make_dataset: True" in out.stdout
