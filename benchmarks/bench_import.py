"""Import benchmark: ``mlledger import mlflow`` from a local ``mlruns`` folder and a
``sqlite:///`` database, at 500 and 2,000 runs.

MLflow's own client (mlflow-skinny, the ``test`` extra) writes N runs into each
kind of store, each run with 10 params, 5 metrics of 100 steps, 3 tags and one
or two small artifacts (one ``log_batch`` per run).  The database is written on
``/dev/shm`` when there is one (MLflow commits each call: thousands of fsyncs)
and copied next to the folder store; its artifacts are on the temp folder.
Then, for each store, in rounds A B A B:

- A (ours): ``import_mlflow`` of the whole store into a fresh local ledger
  (the ledger's folder and catalog removed before each round and its empty
  catalog made, untimed): the direct reader, artifacts included;
- B (baseline): MLflow's client reading the same store: ``search_runs`` and
  ``get_metric_history`` of each metric of each run (what the import needs of
  it, artifacts left out).

The target is absolute: at least 100 runs/s (BENCHMARKS.md, "Integrations");
the ratio says how our whole import compares with MLflow's client merely
reading.  Page cache warm; the stores are on the temp folder's filesystem.
The 2,000-run stores are timed without a warm-up round (the 500-run ones warmed
the code; the build warmed the page cache).  The full run takes long (~40 min on
a loaded 2-core VM): MLflow's client reads the 2,000-run database at ~8 runs/s,
five rounds of it.  Run through
``python benchmarks/run.py import`` or alone: ``python benchmarks/bench_import.py
[--quick]``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import Parts, Row, ab, fs_type, workdir

FULL_SIZES = (500, 2000)
QUICK_SIZES = (100,)
REPEAT = 5
PARAMS = 10
METRICS = ("loss", "accuracy", "lr", "grad_norm", "val_loss")
STEPS = 100
#: runs imported per second, at least
TARGET_RUNS_S = 100.0


def _write_runs(uri: str, n: int, artifacts: Path, art_root: str | None) -> None:
    """``n`` runs written by MLflow's client into the store at ``uri``."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.create_experiment("bench", artifact_location=art_root)
    model, curve = artifacts / "model.bin", artifacts / "curve.txt"
    t0 = 1_700_000_000_000
    for i in range(n):
        run = client.create_run(exp, start_time=t0 + i * 1000, run_name=f"run-{i}")
        rid = run.info.run_id
        params = [Param(f"p{j}", str(i * 0.001 + j)) for j in range(PARAMS)]
        metrics = [
            Metric(m, 1.0 / (s + 1 + k + i), t0 + i * 1000 + s, s)
            for k, m in enumerate(METRICS)
            for s in range(STEPS)
        ]
        tags = [RunTag("team", "vision"), RunTag("seed", str(i)), RunTag("stage", "sweep")]
        client.log_batch(rid, metrics=metrics, params=params, tags=tags)
        client.log_artifact(rid, str(model))
        if i % 2:
            client.log_artifact(rid, str(curve), artifact_path="plots")
        client.set_terminated(rid, "FINISHED", end_time=t0 + i * 1000 + 900)


def _stores(tmp: Path, n: int) -> dict[str, str]:
    """A file store and an SQLite store of ``n`` runs each: kind -> what to import."""
    arts = tmp / "artifact-sources"
    arts.mkdir(exist_ok=True)
    (arts / "model.bin").write_bytes(os.urandom(4096))
    (arts / "curve.txt").write_text("0.9 0.5 0.3 0.2\n")
    folder = tmp / f"mlruns-{n}"
    _write_runs(f"file://{folder}", n, arts, None)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="mlledger-bench-", dir=shm or str(tmp)) as fast:
        built = Path(fast) / "mlflow.db"
        _write_runs(f"sqlite:///{built}", n, arts, str(tmp / f"sql-artifacts-{n}"))
        db = tmp / f"mlflow-{n}.db"
        shutil.copyfile(built, db)
    return {"mlruns folder": str(folder), "sqlite": f"sqlite:///{db}"}


def _mlflow_reads(uri: str) -> int:
    """MLflow's client reading every run and each metric's history: the baseline."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exps = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    n = 0
    token = None
    while True:
        page = client.search_runs(exps, max_results=1000, page_token=token)
        for r in page:
            for key in r.data.metrics:
                n += len(client.get_metric_history(r.info.run_id, key))
        token = page.token
        if not token:
            return n


def bench(tmp: Path, n: int, repeat: int) -> tuple[list[Row], list[str]]:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return [], ["skipped: mlflow-skinny is not installed (pip install -e '.[test]')"]
    from mlledger import Ledger
    from mlledger.integrations.mlflow import import_mlflow

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 asks for it to open a file store
    stores = _stores(tmp, n)
    ledger_dir = tmp / "store"
    holder: dict[str, Any] = {}

    def fresh() -> None:
        shutil.rmtree(ledger_dir, ignore_errors=True)
        shutil.rmtree(tmp / "xdg-cache", ignore_errors=True)  # its catalog too
        ledger = Ledger(str(ledger_dir))
        ledger.sync()  # its catalog made (once per ledger, SQLite's own fsyncs), untimed
        holder["ledger"] = ledger

    rows: list[Row] = []
    notes: list[str] = []
    for kind, uri in stores.items():

        def ours(uri: str = uri) -> None:
            report = import_mlflow(holder["ledger"], uri)
            assert len(report.imported) == n, report
            assert report.artifacts == n + n // 2, report

        res = ab(
            ours,
            lambda uri=uri: _mlflow_reads(uri),
            repeat=repeat,
            setup_a=fresh,
            warmup=n <= 500,
        )
        rate = n / res.a.median
        got = Row.from_ab(
            f"import mlflow, {kind}: {n} runs (10 params, 5x100 steps, 1-2 artifacts) "
            f"-> {rate:,.0f} runs/s",
            res,
            f"MLflow's client reading them ({kind}: search_runs + get_metric_history)",
            target=f">= {TARGET_RUNS_S:g} runs/s",
        )
        got[0].passed = rate >= TARGET_RUNS_S
        rows += got
        notes.append(
            f"{kind}, {n} runs: ours {rate:,.0f} runs/s (median; best {n / res.a.lo:,.0f}), "
            f"MLflow's client reading {n / res.b.median:,.0f} runs/s; per CPU-second ours "
            f"{n / statistics.median(res.a.cpu):,.0f}, MLflow's "
            f"{n / statistics.median(res.b.cpu):,.0f} runs/s"
        )
    return rows, notes


def main(quick: bool = False) -> list[Row]:
    parts = Parts("import", quick)
    with workdir("import") as tmp:
        for n in QUICK_SIZES if quick else FULL_SIZES:
            parts.run(f"mlflow-{n}", lambda n=n: bench(tmp, n, REPEAT))
        parts.notes.append(
            f"local stores on {fs_type(tmp)}, page cache warm; a fresh ledger each round (empty "
            "store, its catalog file made before the clock starts)"
        )
    parts.notes.append(
        "ratio = median over rounds of (ours / baseline in the same round); cpu ratio = the "
        "same for CPU time; per CPU-second = what an idle core does (the wall clock counts "
        "waiting for a busy machine)"
    )
    return parts.report()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
