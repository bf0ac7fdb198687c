"""Stores written by real MLflow for the import tests (not a test module itself).

A subprocess runs MLflow's own fluent API and client (mlflow-skinny, the test
extra) to write a ``mlruns`` folder or a ``sqlite:///`` database, and dumps what
MLflow's client reads back from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

__all__ = ["WRITER", "write_store", "written_stores"]

WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    import mlflow
    from mlflow.tracking import MlflowClient

    uri, work, out = sys.argv[1], sys.argv[2], sys.argv[3]
    os.chdir(work)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("exp-a")
    with open("model.bin", "wb") as f:
        f.write(os.urandom(3000))
    os.makedirs("plots", exist_ok=True)
    with open("plots/loss.txt", "w") as f:
        f.write("a loss curve")
    with mlflow.start_run(run_name="train") as parent:
        mlflow.log_params({"lr": "0.1", "epochs": 10, "opt": "adam", "api_token": "s3cret",
                           "big": str(2**60), "ratio": "1e-3", "zip": "007"})
        for s in range(5):
            mlflow.log_metric("loss", 1.0 / (s + 1), step=s)
        mlflow.log_metric("acc", 0.5, step=0)
        mlflow.log_metric("acc", 0.9, step=10)
        mlflow.set_tag("team", "cv")
        mlflow.set_tag("mlflow.note.content", "the baseline")
        mlflow.log_artifact("model.bin")
        mlflow.log_artifact("plots/loss.txt", artifact_path="plots")
        with mlflow.start_run(run_name="fold-1", nested=True):
            mlflow.log_param("lr", "0.05")
            mlflow.log_metric("loss", 0.7, step=0)
    with mlflow.start_run(run_name="broken"):
        mlflow.log_param("lr", "0.3")
        mlflow.end_run(status="FAILED")
    with mlflow.start_run(run_name="stopped"):
        mlflow.end_run(status="KILLED")
    client = MlflowClient(uri)
    live = client.create_run(mlflow.get_experiment_by_name("exp-a").experiment_id,
                             run_name="live")
    mlflow.set_experiment("exp-b")
    with mlflow.start_run(run_name="other"):
        mlflow.log_param("lr", "0.2")

    dump = {}
    exps = client.search_experiments()
    for r in client.search_runs([e.experiment_id for e in exps]):
        dump[r.info.run_id] = {
            "name": r.info.run_name, "status": r.info.status, "start": r.info.start_time,
            "end": r.info.end_time, "user": r.info.user_id, "params": r.data.params,
            "tags": r.data.tags, "metrics": r.data.metrics,
            "history": {k: [[m.step, m.value, m.timestamp]
                            for m in client.get_metric_history(r.info.run_id, k)]
                        for k in r.data.metrics},
        }
    with open(out, "w") as f:
        json.dump(dump, f)
    """
)


def write_store(uri: str, work: Path, out: Path, writer: str = WRITER) -> dict[str, Any]:
    """Run the MLflow script ``writer`` (``uri``, ``work``, ``out`` as its arguments) and
    return what it dumped to ``out``."""
    work.mkdir(parents=True, exist_ok=True)
    script = work.parent / f"writer-{work.name}.py"
    script.write_text(writer)
    proc = subprocess.run(
        [sys.executable, str(script), uri, str(work), str(out)],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    return data




def written_stores(base: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Both MLflow backends written by real MLflow under ``base``: kind -> (folder or
    database path, what MLflow's client reads of it)."""
    files = base / "files"
    db = base / "db"
    got_files = write_store(f"file://{files / 'mlruns'}", files, base / "files.json")
    got_db = write_store(f"sqlite:///{db / 'mlflow.db'}", db, base / "db.json")
    return {
        "file": (str(files / "mlruns"), got_files),
        "sqlite": (str(db / "mlflow.db"), got_db),
    }
