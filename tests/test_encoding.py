"""A field that UTF-8 or JSON cannot hold becomes a warning and a stand-in; the run is kept."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from helpers.runs import python_env, reopen

from mlledger import Ledger, Run
from mlledger.ids import is_run_id

SURROGATE = "a\ud800b"  # a lone surrogate: no UTF-8 form
HUGE = 10**5000  # past Python's int-to-str limit (4,300 digits)
BAD_NAME = os.fsdecode(b"bad\xff.txt")  # a file name that is not valid UTF-8


@pytest.fixture(params=[0.1, 0.0], ids=["short-run", "start-at-once"])
def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Ledger:
    """A local ledger whose runs write one entry (short) or a start entry at once."""
    monkeypatch.chdir(tmp_path)
    return Ledger(str(tmp_path / "store"), start_delay=request.param)


def _recorded(ledger: Ledger, run: Run) -> Run:
    """The run as the store holds it (it must be there, finished and sound)."""
    got = reopen(ledger).get(run.id)
    assert got.status == "finished"
    assert reopen(ledger).verify().ok
    return got


def _quiet_run(ledger: Ledger, **kwargs: Any) -> Run:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may be lost loudly either
        with ledger.run("r", **kwargs) as run:
            pass
    return run


def test_a_lone_surrogate_param_is_a_stand_in(ledger: Ledger) -> None:
    """A param string with a lone surrogate is recorded as type and escaped repr, with a warning."""
    run = _quiet_run(ledger, params={"s": SURROGATE, "lr": 0.1})
    got = _recorded(ledger, run)
    assert got.params["s"] == {"type": "str", "repr": "a\\ud800b"}
    assert got.params["lr"] == 0.1
    assert any("params.s" in w for w in got.warnings), got.warnings


def test_a_5000_digit_int_param_is_a_stand_in(ledger: Ledger) -> None:
    """An int past the int-to-str limit is recorded as its type and size, with a warning."""
    run = _quiet_run(ledger, params={"n": HUGE})
    got = _recorded(ledger, run)
    assert got.params["n"]["type"] == "int"
    assert "digits" in got.params["n"]["repr"]
    assert any("params.n" in w for w in got.warnings), got.warnings
    assert ledger.runs(where="params.n is not null").ids == [run.id]


def test_tags_message_and_param_names_with_lone_surrogates(ledger: Ledger) -> None:
    """A tag value and name, a message and a param name that UTF-8 cannot hold are escaped."""
    run = _quiet_run(
        ledger, params={"k\ud800": 1}, tags={"team": SURROGATE, "t\udcff": "x"},
        message=f"why {SURROGATE}",
    )
    got = _recorded(ledger, run)
    assert got.params == {"k\\ud800": 1}
    assert got.tags == {"team": "a\\ud800b", "t\\xff": "x"}
    assert got.message == "why a\\ud800b"
    assert len(got.warnings) >= 4, got.warnings


def test_metric_names_and_artifact_names_with_lone_surrogates(ledger: Ledger) -> None:
    """A metric key and a saved value's name that UTF-8 cannot hold are escaped, values kept."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ledger.run("r") as run:
            run.log(step=0, **{f"lo{SURROGATE}ss": 1.0})
            run.log(step=1, **{f"lo{SURROGATE}ss": 0.5})
            run.save([1, 2], name=f"out{SURROGATE}")
    got = _recorded(ledger, run)
    assert got.metrics == {"loa\\ud800bss": 0.5}
    assert [v for _s, v, _t in got.metric_history("loa\\ud800bss")] == [1.0, 0.5]
    assert list(got.outputs) == ["outa\\ud800b"]
    assert ledger.load(f"{run.id}/outa\\ud800b") == [1, 2]
    assert any("metric" in w and "loa\\ud800bss" in w for w in got.warnings), got.warnings
    assert any("outputs" in w and "outa\\ud800b" in w for w in got.warnings), got.warnings


def test_a_file_name_that_is_not_utf8(ledger: Ledger, tmp_path: Path) -> None:
    """A file with a non-UTF-8 name, used explicitly and opened by the code, is recorded."""
    path = os.path.join(str(tmp_path), BAD_NAME)
    with open(path, "w") as f:
        f.write("x,y\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ledger.run("r") as run:
            art = run.use(path)
            with open(BAD_NAME) as f:  # seen by the audit hook, relative to the cwd
                f.read()
    got = _recorded(ledger, run)
    assert set(got.inputs) == {"bad\\xff.txt"}
    assert got.inputs["bad\\xff.txt"].digest == art.digest
    assert any("bad\\xff.txt" in w for w in got.warnings), got.warnings


def test_an_environment_value_that_is_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An allow-listed environment variable with undecodable bytes is escaped, not dropped."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(os.environb, b"MLL_TEST_ODD", b"v\xff")  # type: ignore[attr-defined]
    ledger = Ledger(str(tmp_path / "store"), env_vars=["MLL_TEST_ODD"])
    run = _quiet_run(ledger)
    got = _recorded(ledger, run)
    assert got.env["env_vars"]["MLL_TEST_ODD"] == "v\\xff"
    assert any("MLL_TEST_ODD" in w for w in got.warnings), got.warnings


@pytest.mark.slow
def test_an_argument_that_is_not_utf8(tmp_path: Path) -> None:
    """A script started with a non-UTF-8 argument records its run, argv escaped."""
    script = (
        "import sys, mlledger\n"
        "led = mlledger.Ledger(sys.argv[1], start_delay=0)\n"
        "with led.run('r') as run:\n"
        "    pass\n"
        "print(run.id)\n"
    )
    store = str(tmp_path / "store")
    out = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", script, store, b"x\xff".decode(
            "utf-8", "surrogateescape")],
        capture_output=True, text=True, env=python_env(), cwd=tmp_path, timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    assert is_run_id(run_id)
    got = Ledger(store).get(run_id)
    assert got.status == "finished"
    assert got.env["process"]["argv"][-1] == "x\\xff"


def test_a_tracked_call_with_unencodable_arguments_and_return(ledger: Ledger) -> None:
    """@tracked: a lone-surrogate argument and a 5,000-digit int return value keep the run."""

    @ledger.tracked
    def grow(label: str, n: int) -> int:
        return n * 10

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert grow(SURROGATE, HUGE) == HUGE * 10
    (got,) = ledger.runs()
    got = _recorded(ledger, got)
    assert got.params["label"] == {"type": "str", "repr": "a\\ud800b"}
    assert got.params["n"]["type"] == "int"
    assert any("return" in w for w in got.warnings), got.warnings
