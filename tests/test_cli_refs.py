"""``mlledger ref set|get|log|rollback|list`` (mlledger.cli.refs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import (
    Shared,
    build_shared,
    console,
    copy_store,
    invoke,
    one_error_line,
    runs_in,
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """A store with prep -> train x2 (one a ref target), a failed run and a folder output."""
    yield from build_shared(tmp_path_factory)


@pytest.fixture
def store_copy(shared: Shared, tmp_path: Path) -> str:
    """A private copy of the shared store, for tests that change it."""
    return copy_store(shared, tmp_path)


# ------------------------------------------------------------------------------- ref


def test_ref_get_log_list(shared: Shared) -> None:
    """ref get prints the current target first; log is newest first; list has every ref."""
    got = invoke("ref", "get", "model/prod", url=shared.url)
    assert got.exit_code == 0, got.stderr
    assert got.stdout.split()[0] == shared.model2
    entry = json.loads(invoke("ref", "get", "--json", "model/prod", url=shared.url).stdout)
    assert set(entry) == {"name", "seq", "target", "at", "user", "host", "message", "action",
                          "restores", "run", "run_entry", "prev", "seal"}
    assert entry["seq"] == 2
    assert entry["run"] == shared.train2
    assert entry["message"] == "better"
    lines = invoke("ref", "log", "model/prod", url=shared.url).stdout.splitlines()
    assert lines[0].startswith("#2")
    assert lines[1].startswith("#1")
    history = json.loads(invoke("ref", "log", "--json", "model/prod", url=shared.url).stdout)
    assert [e["seq"] for e in history] == [1, 2]
    listed = json.loads(invoke("ref", "list", "--json", url=shared.url).stdout)
    assert [(e["name"], e["target"]) for e in listed] == [("model/prod", shared.model2)]
    assert "model/prod" in invoke("ref", "list", url=shared.url).stdout


def test_ref_set_and_rollback(store_copy: str) -> None:
    """ref set appends; rollback goes back, to a #SEQ, or to a target; history only grows."""
    ids = [r["id"] for r in runs_in(store_copy)]
    prep = ids[-1]
    made = invoke("ref", "set", "data/raw", f"{prep}/raw.csv", "-m", "raw data", url=store_copy)
    assert made.exit_code == 0, made.stderr
    assert made.stdout.startswith("data/raw -> xxh128:")
    assert "(#1)" in made.stdout
    back = json.loads(invoke("ref", "rollback", "--json", "model/prod", url=store_copy).stdout)
    assert back["seq"] == 3
    assert back["action"] == "rollback"
    assert back["restores"] == 1
    forward = json.loads(
        invoke("ref", "rollback", "--to", "#2", "--json", "model/prod", url=store_copy).stdout)
    assert forward["restores"] == 2
    to_target = invoke("ref", "rollback", "--to", f"{prep}/data.csv", "model/prod", "-m", "why",
                       url=store_copy)
    assert to_target.exit_code == 0, to_target.stderr
    history = json.loads(invoke("ref", "log", "--json", "model/prod", url=store_copy).stdout)
    assert [e["seq"] for e in history] == [1, 2, 3, 4, 5]
    assert history[-1]["message"] == "why"
    assert history[-1]["run"] == prep  # the run that made the target, also on a rollback
    assert history[2]["run"] == history[0]["run"]
    for args in (("log", "model/prod"), ("get", "model/prod"), ("list",)):
        assert f"run {prep}" in invoke("ref", *args, url=store_copy).stdout, args


def test_ref_errors(shared: Shared) -> None:
    """An unset ref and a bad ref name are one-line errors, exit 2."""
    unset = invoke("ref", "get", "no/such", url=shared.url)
    assert unset.exit_code == 2
    line = one_error_line(unset.stderr)
    assert "no/such" in line
    assert "mlledger ref set no/such TARGET" in line
    assert "the refs: model/prod" in line
    typo = invoke("ref", "get", "model/prd", url=shared.url)
    assert "did you mean 'model/prod'?" in one_error_line(typo.stderr)
    bad = invoke("ref", "set", "bad name", shared.model1, url=shared.url)
    assert bad.exit_code == 2
    one_error_line(bad.stderr)


def test_ref_console(store_copy: str) -> None:
    """ref set, get, log, rollback and list, each in a real process."""
    first = runs_in(store_copy)[-1]["id"]
    set_ = console("ref", "set", "x/y", f"{first}/data.csv", url=store_copy)
    assert set_.returncode == 0, set_.stderr
    get = console("ref", "get", "--json", "x/y", url=store_copy)
    assert json.loads(get.stdout)["seq"] == 1
    rollback = console("ref", "rollback", "model/prod", url=store_copy)
    assert rollback.returncode == 0, rollback.stderr
    log = console("ref", "log", "model/prod", url=store_copy)
    assert log.stdout.splitlines()[0].startswith("#3")
    listed = console("ref", "list", url=store_copy)
    assert [ln.split()[0] for ln in listed.stdout.splitlines()] == ["model/prod", "x/y"]
