"""The README's quick tour runs as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _tour_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A quick tour") :]
    tour = tour[: tour.index("\n## ", 5)]
    return re.findall(r"```python\n(.*?)```", tour, flags=re.S)


def test_quick_tour_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both python blocks of the quick tour run, in order, on a fresh local store."""
    blocks = _tour_blocks()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLLEDGER_URL", str(tmp_path / "store"))
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # our own docs
    ledger = namespace["ledger"]
    assert len(ledger.runs(name="train")) == 2  # type: ignore[attr-defined]
    assert (tmp_path / "deploy" / "model.json").exists()
    assert os.path.exists(tmp_path / "model.json")


def _setup_commands() -> list[str]:
    """The two shell commands at the top of the README, in order."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, flags=re.S)
    assert block is not None
    return [ln for ln in block.group(1).splitlines() if ln and not ln.startswith("#")]


def test_ci_runs_readme_command_two_verbatim() -> None:
    """.ci/run runs exactly the README's second command, in a virtualenv it makes itself."""
    install, suite = _setup_commands()
    assert install.startswith("pip install .")
    assert "examples/quickstart.py" in install
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    runs = [ln for ln in ci if ln.startswith(suite)]
    assert runs == [f'{suite} "$@"']
    made = next(i for i, ln in enumerate(ci) if "-m venv" in ln)
    activated = next(i for i, ln in enumerate(ci) if ln.startswith("source ") and "activate" in ln)
    assert made < activated < ci.index(runs[0])
