"""``mlledger import mlflow`` (mlledger.integrations.mlflow) against stores real MLflow wrote.

A subprocess runs MLflow's own fluent API and client (mlflow-skinny, the test
extra) to write a ``mlruns`` folder and a ``sqlite:///`` database with the same
runs, and dumps what MLflow's client reads back from each; the tests import
those stores and compare.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import console, one_error_line
from helpers.mlflow_writer import written_stores

from mlledger import Ledger
from mlledger.capture.redact import REDACTED
from mlledger.errors import FormatError, LedgerError, MissingExtraError, NotFoundError
from mlledger.integrations.mlflow import import_mlflow, mlflow_run_id

pytest.importorskip("mlflow", reason="the test extra installs mlflow-skinny")

@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, dict[str, Any]]]:
    """Both MLflow backends written by real MLflow: kind -> (folder or db path, what it reads)."""
    return written_stores(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """An empty ledger in a local folder."""
    return Ledger(str(tmp_path / "store"))


def _by_mlflow_id(ledger: Ledger) -> dict[str, Any]:
    return {r.tags["mlflow.run_id"]: r for r in ledger.runs()}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["file", "sqlite"])
def test_import_brings_every_run_whole(
    written: dict[str, tuple[str, dict[str, Any]]], ledger: Ledger, backend: str
) -> None:
    """Params typed, whole metric histories, tags, statuses, times, user, artifacts, parent."""
    path, seen = written[backend]
    report = import_mlflow(ledger, path)
    assert len(report.imported) == len(seen) == 6
    assert report.skipped == ()
    assert report.experiments == 3  # Default, exp-a, exp-b
    runs = _by_mlflow_id(ledger)
    assert set(runs) == set(seen)
    statuses = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "interrupted",
                "RUNNING": "incomplete"}
    for mid, want in seen.items():
        run = runs[mid]
        assert run.id == mlflow_run_id(mid, want["start"])
        assert run.name == want["name"]
        assert run.status == statuses[want["status"]]
        assert run.user == want["user"]
        assert round(run.started_at.timestamp() * 1000) == want["start"]
        if want["end"]:
            assert run.ended_at is not None
            assert round(run.ended_at.timestamp() * 1000) == want["end"]
        for k, v in want["tags"].items():
            assert run.tags[k] == v or "token" in k.lower()
        assert run.tags["mlflow.experiment"] in ("exp-a", "exp-b")
        for key, hist in want["history"].items():
            ordered = sorted(hist, key=lambda m: (m[0], m[2]))
            got = run.metric_history(key)
            assert [(s, v) for s, v, _ in got] == [(s, v) for s, v, _ in ordered]
            assert [round(t * 1000) for _, _, t in got] == [t for _, _, t in ordered]
            assert run.metrics[key] == want["metrics"][key]
    train = next(r for r in runs.values() if r.name == "train")
    assert train.params == {"lr": 0.1, "epochs": 10, "opt": "adam", "api_token": REDACTED,
                            "big": str(2**60), "ratio": 0.001, "zip": "007"}
    assert train.message == "the baseline"
    assert train.tags["team"] == "cv"
    assert set(train.outputs) == {"model.bin", "plots"}
    assert train.outputs["plots"].kind == "tree"
    fold = next(r for r in runs.values() if r.name == "fold-1")
    assert fold.parent_id == train.id
    broken = next(r for r in runs.values() if r.name == "broken")
    assert broken.error is not None
    assert "FAILED" in broken.error.message


@pytest.mark.slow
def test_artifacts_restore_byte_identical(
    written: dict[str, tuple[str, dict[str, Any]]], ledger: Ledger, tmp_path: Path
) -> None:
    """An artifact MLflow stored comes back from the ledger with the same bytes."""
    path, _ = written["file"]
    import_mlflow(ledger, path)
    train = next(r for r in ledger.runs(name="train"))
    ledger.restore(f"{train.id}/model.bin", str(tmp_path / "model.bin"))
    source = Path(path).parent / "model.bin"
    assert (tmp_path / "model.bin").read_bytes() == source.read_bytes()
    ledger.restore(f"{train.id}/plots", str(tmp_path / "plots"))
    assert (tmp_path / "plots" / "loss.txt").read_text() == "a loss curve"


@pytest.mark.slow
def test_a_second_import_adds_nothing(
    written: dict[str, tuple[str, dict[str, Any]]], ledger: Ledger, tmp_path: Path
) -> None:
    """Importing again writes no entry: every run is found by its MLflow id and skipped."""
    path, seen = written["sqlite"]
    import_mlflow(ledger, path)
    store = tmp_path / "store"
    before = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    again = import_mlflow(ledger, path)
    after = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    assert again.imported == ()
    assert sorted(again.skipped) == sorted(seen)
    assert after == before
    assert len(ledger.runs()) == len(seen)


@pytest.mark.slow
def test_imported_runs_are_ordinary_runs(
    written: dict[str, tuple[str, dict[str, Any]]], ledger: Ledger, tmp_path: Path
) -> None:
    """Query, diff and verify treat them like any run; a fresh catalog finds them (reindex)."""
    path, _ = written["file"]
    import_mlflow(ledger, path)
    (train,) = ledger.runs(where="tags.mlflow.experiment = 'exp-a' and params.lr > 0.09 "
                                 "and metrics.loss < 0.3")
    assert train.name == "train"
    other = ledger.runs(name="other")[0]
    changes = {(c.section, c.key): (c.old, c.new) for c in ledger.diff(train, other)}
    assert changes[("params", "lr")] == (0.1, 0.2)
    report = ledger.verify()
    assert report.ok, report
    fresh = Ledger(str(tmp_path / "store"))
    assert fresh.reindex() == 6
    assert {r.id for r in fresh.runs()} == {r.id for r in ledger.runs()}


@pytest.mark.slow
def test_an_import_cut_short_is_finished(
    written: dict[str, tuple[str, dict[str, Any]]], ledger: Ledger, tmp_path: Path
) -> None:
    """A run with its start and chunks but no end (a killed import) is completed, verified."""
    path, _ = written["file"]
    import_mlflow(ledger, path)
    train = ledger.runs(name="train")[0]
    ends = list((tmp_path / "store" / "runs").rglob(f"{train.id}/end.json"))
    assert len(ends) == 1
    ends[0].unlink()
    again = import_mlflow(ledger, path)
    assert again.imported == (train.id,)
    assert ledger.verify().ok
    assert Ledger(str(tmp_path / "store")).get(train.id).metrics["loss"] == 0.2


@pytest.mark.slow
def test_only_the_experiments_asked_for(
    written: dict[str, tuple[str, dict[str, Any]]], ledger: Ledger
) -> None:
    """--experiment keeps one experiment; an unknown name is a NotFoundError naming it."""
    path, _ = written["sqlite"]
    report = import_mlflow(ledger, path, experiments=["exp-b"])
    assert len(report.imported) == 1
    assert [r.name for r in ledger.runs()] == ["other"]
    with pytest.raises(NotFoundError, match="no-such-exp"):
        import_mlflow(ledger, path, experiments=["no-such-exp"])


@pytest.mark.slow
def test_a_half_written_run_is_skipped_with_a_warning(
    written: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """A run folder without meta.yaml: the CLI warns naming the file, imports the others."""
    src, seen = written["file"]
    copy = tmp_path / "mlruns"
    shutil.copytree(src, copy)
    exp = next(p.parent for p in copy.glob("*/meta.yaml") if "exp-a" in p.read_text())
    half = exp / ("ab" * 16)
    (half / "params").mkdir(parents=True)
    out = console("import", "mlflow", str(copy), url=str(tmp_path / "store"))
    assert out.returncode == 0, out.stderr
    assert f"skipped a half-written run: {half / 'meta.yaml'} is missing" in out.stderr
    assert f"imported {len(seen)} runs" in out.stdout


@pytest.mark.slow
def test_cli_import_and_json(
    written: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """The console script imports a sqlite:/// URI; --json reports the ids, then the skips."""
    path, seen = written["sqlite"]
    url = str(tmp_path / "store")
    out = console("import", "mlflow", "--json", f"sqlite:///{path}", url=url)
    assert out.returncode == 0, out.stderr
    first = json.loads(out.stdout)
    assert len(first["imported"]) == len(seen)
    out = console("import", "mlflow", "--json", path, url=url)
    second = json.loads(out.stdout)
    assert second["imported"] == []
    assert sorted(second["skipped"]) == sorted(seen)


def test_not_a_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    """A folder with no experiment, a text file, a missing path: exit 2, one line, no file made."""
    empty = tmp_path / "empty"
    empty.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    url = str(tmp_path / "store")
    for bad, says in ((empty, "is not an MLflow tracking store"),
                      (text, "not an SQLite database nor a folder"),
                      (tmp_path / "nowhere", "no such folder"),
                      (f"sqlite:///{tmp_path / 'none.db'}", "no such file")):
        out = console("import", "mlflow", str(bad), url=url)
        assert out.returncode == 2
        line = one_error_line(out.stderr)
        assert says in line
        assert str(bad).removeprefix("sqlite:///") in line
    assert list(empty.iterdir()) == []
    assert not (tmp_path / "none.db").exists()
    assert not (tmp_path / "store" / "runs").exists()


def test_a_database_mlflow_did_not_write_is_refused(tmp_path: Path) -> None:
    """An SQLite file without MLflow's tables: a FormatError naming it."""
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(FormatError, match=r"other\.db is an SQLite database but not an MLflow"):
        import_mlflow(Ledger(str(tmp_path / "store")), db)


@pytest.mark.slow
def test_an_unknown_schema_version_is_refused(
    written: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """A database whose schema version MLflow does not know: exit 2 naming the file."""
    db = tmp_path / "future.db"
    shutil.copy(written["sqlite"][0], db)
    con = sqlite3.connect(db)
    con.execute("UPDATE alembic_version SET version_num = 'fffffffffff0'")
    con.commit()
    con.close()
    out = console("import", "mlflow", str(db), url=str(tmp_path / "store"))
    assert out.returncode == 2
    line = one_error_line(out.stderr)
    assert str(db) in line
    assert "fffffffffff0" in line
    with pytest.raises(LedgerError):
        import_mlflow(Ledger(str(tmp_path / "store")), db)


def test_mlflow_is_not_imported_by_mlledger() -> None:
    """``import mlledger`` and its CLI never import MLflow (it is an optional extra)."""
    code = "import sys, mlledger, mlledger.cli; assert 'mlflow' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ}, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_without_mlflow_the_error_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's client not importable: a MissingExtraError (an ImportError) with the hint."""
    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'mlledger\[mlflow\]'") as info:
        import_mlflow(Ledger(str(tmp_path / "store")), tmp_path / "mlruns")
    assert isinstance(info.value, ImportError)
