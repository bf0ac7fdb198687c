"""Import benchmark: ``mlledger import mlflow`` from a local ``mlruns`` folder.

MLflow's own client (mlflow-skinny, the ``test`` extra) writes N runs into a
file store, each with 20 params and 3 metrics of 100 steps (one ``log_batch``
per run, so building it is quick).  Then, in rounds A B A B:

- A (ours): ``import_mlflow`` of the whole store into a fresh local ledger
  (the store folder and its catalog are removed before each round and the new
  ledger's empty catalog made, untimed);
- B (baseline): MLflow's client reading the same runs: ``search_runs`` and
  ``get_metric_history`` of each metric of each run (what the import reads).

The target is absolute: at least 100 runs/s (BENCHMARKS.md, "Integrations");
the ratio to the baseline says what writing the ledger adds to MLflow's own
reading.  Page cache warm; the stores are on the temp folder's filesystem.
Run through ``python benchmarks/run.py import`` or alone:
``python benchmarks/bench_import.py [--quick]``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from _common import Parts, Row, ab, fs_type, workdir

FULL = {"runs": 500, "repeat": 7}
QUICK = {"runs": 100, "repeat": 5}
PARAMS = 20
METRICS = ("loss", "accuracy", "lr")
STEPS = 100
#: runs imported per second, at least
TARGET_RUNS_S = 100.0


def _write_mlruns(root: Path, n: int) -> str:
    """A file store with ``n`` runs written by MLflow's client; returns its URI."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri = f"file://{root}"
    client = MlflowClient(uri)
    exp = client.create_experiment("bench")
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
        client.log_batch(rid, metrics=metrics, params=params)
        client.set_terminated(rid, "FINISHED", end_time=t0 + i * 1000 + 900)
    return uri


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


def bench(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return [], ["skipped: mlflow-skinny is not installed (pip install -e '.[test]')"]
    from mlledger import Ledger
    from mlledger.integrations.mlflow import import_mlflow

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 asks for it to open a file store
    n = cfg["runs"]
    uri = _write_mlruns(tmp / "mlruns", n)
    store = tmp / "store"
    holder: dict[str, Any] = {}

    def fresh() -> None:
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(tmp / "xdg-cache", ignore_errors=True)  # its catalog too
        ledger = Ledger(str(store))
        ledger.sync()  # its catalog made (once per ledger, SQLite's own fsyncs), untimed
        holder["ledger"] = ledger

    def ours() -> None:
        report = import_mlflow(holder["ledger"], uri)
        assert len(report.imported) == n, report

    res = ab(ours, lambda: _mlflow_reads(uri), repeat=cfg["repeat"], setup_a=fresh)
    rate = n / res.a.median
    rows = Row.from_ab(
        f"import mlflow: {n} runs (20 params, 3x100 metric steps) -> {rate:,.0f} runs/s",
        res,
        "MLflow's client reading them (search_runs + get_metric_history)",
        target=f">= {TARGET_RUNS_S:g} runs/s",
    )
    rows[0].passed = rate >= TARGET_RUNS_S
    cpu_rate = n / statistics.median(res.a.cpu)
    notes = [
        f"ours: {rate:,.0f} runs/s (median), best {n / res.a.lo:,.0f} runs/s; "
        f"MLflow's reads alone: {n / res.b.median:,.0f} runs/s",
        f"per CPU-second (what an idle core does; the wall clock counts waiting for a busy "
        f"machine): ours {cpu_rate:,.0f} runs/s, MLflow's reads "
        f"{n / statistics.median(res.b.cpu):,.0f} runs/s",
        f"local stores on {fs_type(tmp)}, page cache warm; a fresh ledger each round (empty "
        "store, its catalog file made before the clock starts: SQLite creating it costs "
        "~0.1-0.9 s once per ledger, whatever is imported)",
    ]
    return rows, notes


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("import", quick)
    with workdir("import") as tmp:
        parts.run("mlflow", lambda: bench(tmp, cfg))
    parts.notes.append(
        "ratio = median over rounds of (ours / baseline in the same round); cpu ratio = the "
        "same for CPU time"
    )
    return parts.report()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
