"""Protected refs: a message and passing checks on the target's run, or force (recorded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import console, invoke, one_error_line

from mlledger import Ledger, PolicyError, checks_of

RULE = {
    "name": "acc-holds",
    "runs": "name = 'train'",
    "field": "metrics.accuracy",
    "baseline": "@model/prod",
    "max_drop": 0.01,
}


def _train(ledger: Ledger, acc: float) -> str:
    with ledger.run("train", params={"acc": acc}) as run:
        run.log(accuracy=acc)
    return run.id


@pytest.fixture
def guarded(tmp_path: Path, workdir: Path) -> tuple[Ledger, str]:
    """A store whose policy protects model/* with a check; model/prod at a 0.90 run."""
    ledger = Ledger(str(tmp_path / "store"))
    prod = _train(ledger, 0.90)
    ledger.refs.set("model/prod", prod, message="first")
    ledger.policy.set(protect=["model/*"], checks=[RULE], message="guard prod")
    return ledger, prod


def test_a_protected_ref_needs_a_message(guarded: tuple[Ledger, str]) -> None:
    """No message: PolicyError naming the pattern and -m / --force; nothing is written."""
    ledger, _prod = guarded
    good = _train(ledger, 0.92)
    with pytest.raises(PolicyError, match=r"protect 'model/\*'.*needs a message.*-m.*--force"):
        ledger.refs.set("model/prod", good)
    with pytest.raises(PolicyError, match="needs a message"):
        ledger.refs.set("model/prod", good, message="  ")
    assert len(ledger.refs.history("model/prod")) == 1
    entry = ledger.refs.set("model/prod", good, message="better")
    assert entry.seq == 2
    assert entry.force is False
    assert "force" not in entry.to_json()
    assert [r.ok for r in checks_of(ledger.store, good)] == [True]  # the gate's check


def test_a_target_failing_the_checks_is_refused(guarded: tuple[Ledger, str]) -> None:
    """A run worse than prod past the limit: PolicyError naming the rule, nothing written."""
    ledger, prod = guarded
    bad = _train(ledger, 0.80)
    with pytest.raises(PolicyError, match=r"fails the check 'acc-holds'.*dropped 0\.1.*--force"):
        ledger.refs.set("model/prod", bad, message="ship it")
    assert ledger.refs.get("model/prod").target == prod
    assert checks_of(ledger.store, bad) == []


def test_force_overrides_and_is_recorded(guarded: tuple[Ledger, str]) -> None:
    """force=True moves the ref past a failing check and without a message; the entry says so."""
    ledger, _prod = guarded
    bad = _train(ledger, 0.80)
    entry = ledger.refs.set("model/prod", bad, force=True)
    assert entry.force is True
    assert ledger.refs.history("model/prod")[-1].force is True
    assert json.loads(json.dumps(entry.to_json()))["force"] is True
    assert ledger.verify().ok


def test_rollback_of_a_protected_ref_is_gated_too(guarded: tuple[Ledger, str]) -> None:
    """A rollback needs a message like a move; with one, back to the previous target."""
    ledger, prod = guarded
    ledger.refs.set("model/prod", _train(ledger, 0.95), message="better")
    with pytest.raises(PolicyError, match="rolling it back needs a message"):
        ledger.refs.rollback("model/prod")
    assert len(ledger.refs.history("model/prod")) == 2
    back = ledger.refs.rollback("model/prod", message="revert")
    assert back.target == prod
    assert back.action == "rollback"


def test_unprotected_refs_move_freely(guarded: tuple[Ledger, str]) -> None:
    """A ref no pattern matches needs neither message nor checks."""
    ledger, _prod = guarded
    assert ledger.refs.set("data/raw", _train(ledger, 0.1)).seq == 1


def test_cli_refuses_with_exit_2_and_force_moves(guarded: tuple[Ledger, str]) -> None:
    """ref set without -m exits 2 with one line; --force moves and log shows (forced)."""
    ledger, prod = guarded
    bad = _train(ledger, 0.80)
    res = console("ref", "set", "model/prod", bad, url=ledger.url)
    assert res.returncode == 2
    assert "needs a message" in one_error_line(res.stderr)
    res = console("ref", "set", "model/prod", bad, "-m", "try", url=ledger.url)
    assert res.returncode == 2
    assert "acc-holds" in one_error_line(res.stderr)
    assert ledger.refs.get("model/prod").target == prod
    res = invoke("ref", "set", "model/prod", bad, "--force", "--json", url=ledger.url)
    assert res.exit_code == 0
    assert json.loads(res.stdout)["force"] is True
    assert "(forced)" in invoke("ref", "log", "model/prod", url=ledger.url).stdout
    res = invoke("ref", "rollback", "model/prod", "-m", "undo", url=ledger.url)
    assert res.exit_code == 0, res.output
    assert ledger.refs.get("model/prod").target == prod


def test_a_rollback_is_judged_by_the_rules_not_against_the_ref_itself(
    guarded: tuple[Ledger, str],
) -> None:
    """Rolling back skips rules whose baseline is the ref moved, but keeps the others."""
    ledger, _prod = guarded
    floor = {"name": "floor", "field": "metrics.accuracy", "min": 0.93}
    ledger.policy.set(checks=[RULE, floor], message="a floor too")
    ledger.refs.set("model/prod", _train(ledger, 0.95), message="better")
    with pytest.raises(PolicyError, match="fails the check 'floor'"):
        ledger.refs.rollback("model/prod", message="revert")
    assert len(ledger.refs.history("model/prod")) == 2
