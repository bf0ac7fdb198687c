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
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_changelog_block_runs_after_the_tour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The changelog block runs on the ledger the tour leaves: model/prod's three moves."""
    (block,) = _blocks("Changelog of a ref", "python")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLLEDGER_URL", str(tmp_path / "store"))
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for code in [*_tour_blocks(), block]:
        exec(compile(code, str(README), "exec"), namespace)  # our own docs
    log = namespace["log"]
    assert [e.seq for e in log.entries] == [3, 2, 1]  # type: ignore[attr-defined]
    assert namespace["latest"].action == "rollback"  # type: ignore[attr-defined]
    assert "| metric | old | new | change | % |" in str(namespace["summary"])


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


def _section(title: str) -> str:
    """The text of the ``## title`` section (to the next ``##``) or the ``### title``
    subsection (to the next heading of either level)."""
    text = README.read_text(encoding="utf-8")
    if f"\n## {title}\n" in text:
        body = text[text.index(f"\n## {title}\n") + 1 :]
        return body[: body.index("\n## ", 5)]
    body = text[text.index(f"\n### {title}\n") + 1 :]
    ends = [i for i in (body.find("\n## ", 5), body.find("\n### ", 5)) if i != -1]
    return body[: min(ends)] if ends else body


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _section(section), flags=re.S)


def test_ledger_signature_block_is_the_real_signature() -> None:
    """The README's Ledger(...) block lists every parameter, in order, with its real default."""
    import inspect

    import mlledger

    (block,) = [b for b in _blocks("Options worth knowing", "python") if "mlledger.Ledger(" in b]
    call = block[block.index("mlledger.Ledger(") : block.index("\n)\n")]
    documented: list[tuple[str, object]] = []
    for line in call.splitlines()[1:]:
        code = line.split("#")[0].strip().rstrip(",")
        if code.startswith("**"):
            documented.append((code[2:], inspect.Parameter.empty))
        elif code:
            name, default = code.split("=", 1)
            documented.append((name, eval(default)))  # our own docs: small literals
    real = [
        (p.name, p.default)
        for p in inspect.signature(mlledger.Ledger).parameters.values()
    ]
    assert documented == real


def _command_lines() -> list[list[str]]:
    """Every ``mlledger ...`` line of every bash block of the README."""
    import shlex

    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return [
        shlex.split(ln, comments=True)
        for block in blocks
        for ln in block.splitlines()
        if ln.strip().startswith("mlledger ")
    ]


@pytest.mark.parametrize("argv", _command_lines(), ids=lambda a: " ".join(a[:3]))
def test_cli_line_uses_only_real_commands_and_options(argv: list[str]) -> None:
    """Each line of the README's command blocks (the command line, checks) names a real
    command and only the options its --help lists, with a value where the option takes one."""
    from helpers.cli import assert_real_cli_line

    assert_real_cli_line(argv)


def test_checks_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Checks section's Python block runs as written: the check fails, the gate refuses."""
    import contextlib
    import io

    monkeypatch.setenv("MLLEDGER_URL", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)
    (block,) = _blocks("Checks", "python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md (Checks)", "exec"), {})
    printed = out.getvalue()
    assert printed.startswith("False metrics.accuracy 0.88 vs 0.91 (@model/prod): -0.03")
    assert "fails the check 'accuracy-holds'" in printed


def test_notebook_block_runs_in_a_kernel(tmp_path: Path, kernel_env: dict[str, str]) -> None:
    """The README's notebook block, one cell a paragraph, runs in a real kernel and records
    the %%track cell with its message, tag and output, and the cells after %track_all on."""
    pytest.importorskip("pandas")
    from helpers.notebooks import by_name, execute

    (block,) = _blocks("Notebooks", "python")
    cells = [c.strip() for c in block.split("\n\n") if c.strip()]
    (tmp_path / "data.csv").write_text("x,y\n1,2\n,4\n3,6\n")
    setup = 'import pandas\nload = pandas.read_csv\nraw = "data.csv"'
    done = execute(tmp_path, [setup, *cells, "total = len(frame)"], kernel_env)
    assert done.raised == {}
    ledger = done.ledger()
    prepare = by_name(ledger, "prepare")
    assert prepare.status == "finished"
    assert prepare.message == "drop nulls"
    assert prepare.tags == {"team": "cv"}
    assert "frame" in prepare.outputs
    assert "prepare" in done.text(3)  # %ledger log lists it
    last = by_name(ledger, f"cell[{done.nb.cells[4].execution_count}]")
    assert last.inputs["frame"].digest == prepare.outputs["frame"].digest


def test_alerts_block_runs_and_sends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The "Alerts and watch" block runs on a store with a prod model, and a failed run
    after it reaches both of its sinks (the webhook as a slack message)."""
    from helpers.alerts import webhook_server

    import mlledger

    (block,) = _blocks("Alerts and watch", "python")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLLEDGER_URL", str(tmp_path / "store"))
    prod = mlledger.Ledger()
    with prod.run("train") as run:
        run.log(accuracy=0.93)
    prod.refs.set("model/prod", run.id)
    with webhook_server() as inbox:
        monkeypatch.setenv("SLACK_URL", inbox.url + "/slack")
        namespace: dict[str, object] = {"__name__": "__readme__"}
        exec(compile(block, str(README), "exec"), namespace)  # our own docs
        assert namespace["alerts"] == []
        with pytest.raises(ValueError), prod.run("train"):
            raise ValueError("broken")
        (alert,) = prod.watch()
        (body,) = inbox.bodies("/slack")
    assert alert.kind == "failed"
    assert body["text"].startswith("[mlledger failed]")
    assert (tmp_path / "alerts.jsonl").read_text().count(alert.run_id) >= 1
def test_resources_and_cost_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The python block of "Resources and cost" runs as written: a priced, sampled run."""
    (block,) = _blocks("Resources and cost", "python")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLLEDGER_URL", str(tmp_path / "store"))
    namespace: dict[str, object] = {"__name__": "__readme__"}
    exec(compile(block, str(README), "exec"), namespace)  # our own docs
    run = namespace["run"]
    assert run.resources["cost"] > 0  # type: ignore[attr-defined]
    assert run.metrics["sys.rss_bytes"] > 0  # type: ignore[attr-defined]
