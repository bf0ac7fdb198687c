"""The direct readers of ``mlledger import mlflow`` (a ``mlruns`` folder read from its
files, an ``sqlite:///`` database from its tables) against MLflow's own client, on
stores real MLflow wrote; and their refusals of damaged or unknown stores.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sqlite3
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import BUCKET, s3_options
from helpers.cli import console, one_error_line
from helpers.mlflow_writer import write_store

from mlledger import Ledger
from mlledger.errors import FormatError
from mlledger.integrations.mlflow import import_mlflow

pytest.importorskip("mlflow", reason="the test extra installs mlflow-skinny")

#: runs with what a reader could get wrong: keys with "/", NaN and infinities, points on
#: the same step and time, text with newlines and spaces, a deleted run and experiment
EDGES = textwrap.dedent(
    """
    import json, os, sys
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    uri, work, out = sys.argv[1], sys.argv[2], sys.argv[3]
    os.chdir(work)
    client = MlflowClient(uri)
    os.makedirs("model/sub", exist_ok=True)
    with open("model/weights.bin", "wb") as f:
        f.write(os.urandom(5000))
    with open("model/sub/config.json", "w") as f:
        f.write('{"layers": 3}')
    with open("notes.txt", "w") as f:
        f.write("first try")
    exp = client.create_experiment("edges")
    t0 = 1_700_000_000_000
    parent = client.create_run(exp, start_time=t0, run_name="parent").info.run_id
    client.log_batch(
        parent,
        params=[Param("opt/lr", "0.1"), Param("text", "héllo wörld"), Param("pad", " 7 "),
                Param("neg", "-2.5e-3")],
        tags=[RunTag("a/b", "nested"), RunTag("multi", "line one\\nline two"),
              RunTag("mlflow.note.content", "a note"), RunTag("empty", "")],
        metrics=[Metric("eval/loss", v, t0 + i, i) for i, v in
                 enumerate([1.0, float("nan"), float("inf"), float("-inf"), -0.5])]
                + [Metric("tie", 0.3, t0 + 50, 2), Metric("tie", 0.1, t0 + 50, 2),
                   Metric("tie", 0.2, t0 + 40, 2), Metric("tie", 9.0, t0 + 10, 1),
                   Metric("big", 1e300, t0, 2**40)],
    )
    client.log_artifacts(parent, "model", artifact_path="model")
    client.log_artifact(parent, "notes.txt")
    client.set_terminated(parent, "FINISHED", end_time=t0 + 5000)
    child = client.create_run(exp, start_time=t0 + 100, run_name="child",
                              tags={"mlflow.parentRunId": parent}).info.run_id
    client.log_metric(child, "loss", 0.25, timestamp=t0 + 200, step=3)
    client.set_terminated(child, "KILLED", end_time=t0 + 300)
    live = client.create_run(exp, start_time=t0 + 400).info.run_id
    client.log_param(live, "seed", "7")
    gone = client.create_run(exp, start_time=t0 + 500, run_name="deleted").info.run_id
    client.delete_run(gone)
    old = client.create_experiment("old")
    client.create_run(old, start_time=t0 + 600, run_name="in-deleted-exp")
    client.delete_experiment(old)

    dump = {}
    for r in client.search_runs([exp]):
        dump[r.info.run_id] = {
            "tags": r.data.tags, "params": r.data.params, "status": r.info.status,
            "history": {k: [[m.step, repr(m.value), m.timestamp]
                            for m in client.get_metric_history(r.info.run_id, k)]
                        for k in r.data.metrics},
        }
    with open(out, "w") as f:
        json.dump(dump, f)
    """
)


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, dict[str, Any]]]:
    """The EDGES runs written by real MLflow into a folder and a database."""
    base = tmp_path_factory.mktemp("edges")
    files, db = base / "files", base / "db"
    return {
        "file": (
            str(files / "mlruns"),
            write_store(f"file://{files / 'mlruns'}", files, base / "f.json", EDGES),
        ),
        "sqlite": (
            str(db / "mlflow.db"),
            write_store(f"sqlite:///{db / 'mlflow.db'}", db, base / "d.json", EDGES),
        ),
    }


def _num(x: float) -> str:
    return repr(x) if not math.isnan(x) else "nan"


def _seen(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Every run of the ledger as plain comparable values (NaN as text)."""
    out = {}
    for r in ledger.runs():
        out[r.id] = {
            "name": r.name, "status": r.status, "user": r.user, "parent": r.parent_id,
            "started": r.started_at, "ended": r.ended_at, "message": r.message,
            "params": r.params, "tags": r.tags,
            "error": r.error.message if r.error else None,
            "metrics": {k: _num(v) for k, v in r.metrics.items()},
            "history": {k: [(s, _num(v), round(t * 1000)) for s, v, t in r.metric_history(k)]
                        for k in r.metrics},
            "outputs": {k: (a.digest, a.size, a.kind, a.path) for k, a in r.outputs.items()},
        }  # fmt: skip
    return out


def _entries(root: Path, run_id: str) -> dict[str, bytes]:
    (folder,) = (p for p in (root / "runs").rglob(run_id) if p.is_dir())
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_direct_reader_equals_mlflows_client(
    edges: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path, kind: str
) -> None:
    """Read directly or through MLflow's client, the same store gives the same runs, field
    for field (params, histories with steps and times, tags, times, status, artifacts'
    digests), down to the same bytes of every entry; and what the client reads is there."""
    path, dumped = edges[kind]
    direct, client = Ledger(str(tmp_path / "a")), Ledger(str(tmp_path / "b"))
    got = import_mlflow(direct, path)
    want = import_mlflow(client, path, via_client=True)
    assert sorted(got.imported) == sorted(want.imported)
    assert len(got.imported) == 3  # the deleted run and the deleted experiment's are left out
    assert got.artifacts == want.artifacts == 2
    seen = _seen(direct)
    assert seen == _seen(client)
    for rid in got.imported:
        assert _entries(tmp_path / "a", rid) == _entries(tmp_path / "b", rid)
    by_mlflow = {s["tags"]["mlflow.run_id"]: s for s in seen.values()}
    assert set(by_mlflow) == set(dumped)
    for mid, run in dumped.items():
        mine = by_mlflow[mid]
        assert {k: mine["tags"][k] for k in run["tags"]} == run["tags"]
        for key, points in run["history"].items():
            ordered = sorted(points, key=lambda p: (p[0], p[2]))
            assert mine["history"][key] == [(s, _num(float(v)), t) for s, v, t in ordered]
    parent = next(s for s in seen.values() if s["name"] == "parent")
    assert parent["params"] == {"opt/lr": 0.1, "text": "héllo wörld", "pad": " 7 ",
                                "neg": -0.0025}  # fmt: skip
    assert parent["tags"]["multi"] == "line one\nline two"
    # by step, then time; points on the same step and time as the store keeps them: the
    # folder in the order logged, the database by value (as MLflow's client reads them)
    same = [("0.3", "0.1"), ("0.1", "0.3")][kind == "sqlite"]
    t = 1_700_000_000_000
    assert parent["history"]["tie"] == [(1, "9.0", t + 10), (2, "0.2", t + 40),
                                        (2, same[0], t + 50), (2, same[1], t + 50)]  # fmt: skip
    assert set(parent["outputs"]) == {"model", "notes.txt"}
    child = next(s for s in seen.values() if s["name"] == "child")
    assert child["parent"] == next(i for i, s in seen.items() if s["name"] == "parent")


@pytest.mark.slow
def test_a_second_direct_import_of_a_folder_adds_nothing(
    edges: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """Importing a mlruns folder again writes no file and reports every run as skipped."""
    path, dumped = edges["file"]
    ledger = Ledger(str(tmp_path / "store"))
    import_mlflow(ledger, path)
    before = sorted(p for p in (tmp_path / "store").rglob("*") if p.is_file())
    again = import_mlflow(ledger, path)
    assert again.imported == ()
    assert sorted(again.skipped) == sorted(dumped)
    assert sorted(p for p in (tmp_path / "store").rglob("*") if p.is_file()) == before


def _copy(src: str, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the folder store; its "parent" run's folder and experiment folder."""
    copy = tmp_path / "mlruns"
    shutil.copytree(src, copy)
    meta = next(p for p in copy.glob("*/*/meta.yaml") if "run_name: parent" in p.read_text())
    return copy, meta.parent, meta.parent.parent


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda t: "", "is empty"),
        (lambda t: t[: len(t) // 2], "half-written"),
        (lambda t: t.rstrip("\n"), "cut short"),
        (lambda t: t + "zz_future_field: 1\n", "zz_future_field"),
        (lambda t: t.replace("status: 3", "status: 9"), "unknown run status 9"),
        (lambda t: t + "start_time: [1\n", "not valid YAML"),
    ],
    ids=["empty", "truncated", "no-final-newline", "unknown-key", "unknown-status", "bad-yaml"],
)
def test_a_damaged_run_meta_is_refused_naming_it(
    edges: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path, damage: Any, says: str
) -> None:
    """A run's meta.yaml empty, cut short or of an unknown shape: a FormatError naming the
    file, before anything is written."""
    copy, run, _ = _copy(edges["file"][0], tmp_path)
    meta = run / "meta.yaml"
    meta.write_text(damage(meta.read_text()))
    ledger = Ledger(str(tmp_path / "store"))
    with pytest.raises(FormatError, match=says) as info:
        import_mlflow(ledger, copy)
    assert str(meta) in str(info.value)
    assert ledger.runs() == []


@pytest.mark.slow
def test_a_half_written_experiment_is_refused_by_the_cli(
    edges: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """An experiment's empty meta.yaml: exit 2, one line naming the file."""
    copy, _, exp = _copy(edges["file"][0], tmp_path)
    (exp / "meta.yaml").write_text("")
    out = console("import", "mlflow", str(copy), url=str(tmp_path / "store"))
    assert out.returncode == 2
    line = one_error_line(out.stderr)
    assert f"{exp / 'meta.yaml'} is empty" in line


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "says"),
    [("1700000000999 abc 4\n", "line 6"), ("1700000000999 0.5", "cut mid-line"),
     ("1 2 3 4\n", "line 6")],
    ids=["not-a-number", "cut-mid-line", "four-fields"],
)  # fmt: skip
def test_a_damaged_metric_file_is_refused_naming_it(
    edges: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path, extra: str, says: str
) -> None:
    """A metric line that does not parse: a FormatError naming the file (and line); the
    damaged run is not imported and every run that was is whole."""
    copy, run, _ = _copy(edges["file"][0], tmp_path)
    metric = run / "metrics" / "eval" / "loss"
    with open(metric, "a", encoding="utf-8") as f:
        f.write(extra)
    ledger = Ledger(str(tmp_path / "store"))
    with pytest.raises(FormatError, match=says) as info:
        import_mlflow(ledger, copy)
    assert str(metric) in str(info.value)
    assert "parent" not in [r.name for r in ledger.runs()]
    assert ledger.verify().ok


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_the_database_is_only_read(
    edges: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """The direct reader opens the database read-only: its bytes, time and folder unchanged."""
    db = tmp_path / "db" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(edges["sqlite"][0], db)
    before = (_digest(db), db.stat().st_mtime_ns, sorted(os.listdir(db.parent)))
    report = import_mlflow(Ledger(str(tmp_path / "store")), f"sqlite:///{db}")
    assert len(report.imported) == 3
    assert (_digest(db), db.stat().st_mtime_ns, sorted(os.listdir(db.parent))) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("UPDATE alembic_version SET version_num = 'fffffffffff0'", "version fffffffffff0"),
        ("DELETE FROM alembic_version", "version none"),
        ("ALTER TABLE tags RENAME COLUMN value TO val", "table tags has no value"),
    ],
    ids=["unknown-version", "no-version", "missing-column"],
)
def test_an_unknown_database_is_refused_naming_it(
    edges: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path, change: str, says: str
) -> None:
    """A schema version the reader does not know, or a column missing: a FormatError naming
    the file (an unknown version also says to try --via-client); nothing written."""
    db = tmp_path / "odd.db"
    shutil.copy(edges["sqlite"][0], db)
    con = sqlite3.connect(db)
    con.execute(change)
    con.commit()
    con.close()
    ledger = Ledger(str(tmp_path / "store"))
    with pytest.raises(FormatError, match=says) as info:
        import_mlflow(ledger, db)
    assert str(db) in str(info.value)
    if "version" in says:
        assert "--via-client" in str(info.value)
    assert ledger.runs() == []


@pytest.mark.slow
def test_import_into_s3_matches_a_local_import(
    edges: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path, s3_endpoint: str
) -> None:
    """Into a ledger on S3 (moto; several runs written at once) the runs are those a
    local import writes, verified whole; a second import adds nothing."""
    path, dumped = edges["file"]
    local = Ledger(str(tmp_path / "local"))
    import_mlflow(local, path)
    remote = Ledger(f"s3://{BUCKET}/{uuid.uuid4().hex}", **s3_options(s3_endpoint))
    report = import_mlflow(remote, path)
    assert len(report.imported) == len(dumped)
    assert _seen(remote) == _seen(local)
    assert remote.verify().ok
    again = import_mlflow(remote, path)
    assert again.imported == ()
    assert sorted(again.skipped) == sorted(dumped)


@pytest.mark.slow
def test_cli_via_client_writes_the_runs_the_direct_reader_finds(
    edges: dict[str, tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """``--via-client`` imports through MLflow's client; the direct reader then finds every
    run of it imported (the same ids) and adds nothing."""
    path, dumped = edges["sqlite"]
    url = str(tmp_path / "store")
    out = console("import", "mlflow", "--via-client", "--json", path, url=url)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["imported"]) == len(dumped)
    again = import_mlflow(Ledger(url), path)
    assert again.imported == ()
    assert sorted(again.skipped) == sorted(dumped)
