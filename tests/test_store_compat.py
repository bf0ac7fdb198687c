"""Old stores keep loading: ``tests/data/store_v1`` was written by mlledger before the
audit chain (``tests/data/make_store_v1.py``) and must read, restore and verify."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlledger import Ledger

DATA = Path(__file__).parent / "data" / "store_v1"


@pytest.fixture
def old_ledger(tmp_path: Path) -> Ledger:
    """A copy of the committed pre-chain store (tests never write into tests/data)."""
    root = tmp_path / "store_v1"
    shutil.copytree(DATA, root)
    return Ledger(str(root), create=False)


def test_old_store_runs_read(old_ledger: Ledger) -> None:
    """The three runs of the old store load with their names, status, params and outputs."""
    runs = {r.name: r for r in old_ledger.runs()}
    assert sorted(runs) == ["prepare", "quick", "train"]
    assert all(r.status == "finished" for r in runs.values())
    assert runs["prepare"].params == {"n": 3}
    assert runs["quick"].params == {"lr": 0.2}
    assert runs["prepare"].outputs["model"].kind == "tree"
    assert old_ledger.load(f"{runs['train'].id}/scores") == {"acc": 0.9}


def test_old_store_refs_read(old_ledger: Ledger) -> None:
    """The old ref histories read: a set, a set, a rollback to #1; a run as a target."""
    runs = {r.name: r for r in old_ledger.runs()}
    hist = old_ledger.refs.history("model/prod")
    assert [(e.seq, e.action, e.restores) for e in hist] == [
        (1, "set", None), (2, "set", None), (3, "rollback", 1)]
    assert hist[2].target == hist[0].target == runs["prepare"].outputs["model"].digest
    assert hist[2].run == runs["prepare"].id
    assert old_ledger.refs.get("eval/best").target == runs["quick"].id


def test_old_store_restores_a_tree(old_ledger: Ledger, tmp_path: Path) -> None:
    """The old tree artifact restores byte-identical through its ref."""
    out = old_ledger.restore("@model/prod", tmp_path / "model")
    assert (out / "weights.bin").read_bytes() == bytes(range(256)) * 8
    assert (out / "config.json").read_text() == '{"layers": 2}\n'


def test_old_store_verifies_ok(old_ledger: Ledger) -> None:
    """verify passes on the old store: entries from before the chain are unchained, not damage."""
    report = old_ledger.verify()
    assert report.ok, report
    assert report.checked == 6
    entries = [*DATA.joinpath("runs").rglob("*.json"), *DATA.joinpath("refs").rglob("*.json")]
    assert report.unchained == len(entries) == 9


def test_old_history_grows_chained(old_ledger: Ledger) -> None:
    """A move of an old ref appends a chained entry linked to the old newest one; verify ok."""
    runs = {r.name: r for r in old_ledger.runs()}
    entry = old_ledger.refs.set("model/prod", f"{runs['train'].id}/scores")
    assert entry.seq == 4
    assert entry.prev is not None
    assert entry.run_entry is not None
    old_ledger.refs.rollback("model/prod")
    report = old_ledger.verify()
    assert report.ok, report
    assert report.unchained == 9
