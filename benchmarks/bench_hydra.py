"""Hydra apps under ``mlledger run``: what recording costs a run and a sweep.

A small Hydra app (a config with a model group; the task reads a data file,
writes a model file and logs one metric when a run is current) runs as a fresh
process in rounds A B A B:

1. one run: ``mlledger run app.py lr=0.2 model=big`` (A) against
   ``python app.py lr=0.2 model=big`` (B, Hydra alone, nothing recorded);
2. a sweep of N jobs: ``mlledger run app.py -m seed=range(N)`` (A: a run for the
   command and one child run per job, each with its config as params, its files
   and metric) against ``python app.py -m seed=range(N)`` (B).

Both sides pay Python's and Hydra's start; A also imports mlledger and records.
The per-job figure takes the one run's extra (mlledger's start, once a process) from
the sweep's: ((A - B) of the sweep - (A - B) of one run) / (N - 1), what each further
recorded job adds.
Targets: a run <= 1.5x Hydra alone, a sweep <= 1.5x.

Run through ``python benchmarks/run.py hydra`` (``--quick``: fewer jobs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from _common import REPO, Parts, Row, ab, rmtree, workdir

FULL = {"jobs": 20, "repeat": 7}
QUICK = {"jobs": 5, "repeat": 5}
MAX_RATIO = 1.5

APP = textwrap.dedent(
    """
    import pathlib
    import hydra
    from hydra.utils import to_absolute_path

    @hydra.main(config_path="conf", config_name="config", version_base=None)
    def main(cfg):
        rows = pathlib.Path(to_absolute_path(cfg.data)).read_text().splitlines()
        pathlib.Path("model.txt").write_text(f"{cfg.lr} {cfg.model.depth} {cfg.seed} {len(rows)}")
        try:
            import mlledger
        except ImportError:
            return
        run = mlledger.current_run()
        if run is not None:
            run.log(step=1, loss=cfg.lr * (cfg.seed + 1))

    if __name__ == "__main__":
        main()
    """
)

CONFIG = textwrap.dedent(
    """
    defaults:
      - model: small
      - _self_
    lr: 0.1
    seed: 0
    data: data.csv
    name: ${model.name}-${lr}
    hydra:
      job:
        chdir: true
    """
)


def _project(root: Path) -> Path:
    work = root / "app"
    (work / "conf" / "model").mkdir(parents=True)
    (work / "conf" / "config.yaml").write_text(CONFIG)
    (work / "conf" / "model" / "small.yaml").write_text("name: small\ndepth: 2\n")
    (work / "conf" / "model" / "big.yaml").write_text("name: big\ndepth: 8\n")
    (work / "data.csv").write_text("a,b\n" + "1,2\n" * 1000)
    (work / "app.py").write_text(APP)
    return work


def _runner(
    work: Path, store: Path, argv: list[str]
) -> tuple[Callable[[], None], Callable[[], None]]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLLEDGER_URL": str(store)}

    def go() -> None:
        proc = subprocess.run(
            argv, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stderr[-2000:]}")

    def clean() -> None:  # Hydra's output folders, so every round writes as much
        rmtree(work / "outputs")
        rmtree(work / "multirun")

    return go, clean


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("hydra", quick)
    mlledger = [sys.executable, "-c", "from mlledger.cli import main; main()", "run", "-q"]
    python = [sys.executable]
    jobs = cfg["jobs"]
    with workdir("hydra") as tmp:
        work = _project(tmp)
        store = tmp / "store"

        extra: dict[str, float] = {}

        def one_run() -> tuple[list[Row], list[str]]:
            args = ["app.py", "lr=0.2", "model=big"]
            a, clean = _runner(work, store, [*mlledger, *args])
            b, _ = _runner(work, store, [*python, *args])
            res = ab(a, b, cfg["repeat"], setup_a=clean, setup_b=clean)
            extra["run"] = res.a.median - res.b.median
            load = os.getloadavg()[0]
            return Row.from_ab(
                "1. one Hydra run, recorded (mlledger run app.py lr=0.2 model=big)",
                res,
                "python app.py lr=0.2 model=big (Hydra alone)",
                max_ratio=MAX_RATIO,
                note=f"load {load:.1f} on {os.cpu_count()} CPUs",
            ), []

        def sweep() -> tuple[list[Row], list[str]]:
            args = ["app.py", "-m", f"seed=range({jobs})"]
            a, clean = _runner(work, store, [*mlledger, *args])
            b, _ = _runner(work, store, [*python, *args])
            res = ab(a, b, cfg["repeat"], setup_a=clean, setup_b=clean)
            load = os.getloadavg()[0]
            rows = Row.from_ab(
                f"2. a Hydra sweep of {jobs} jobs, each a child run (-m seed=range({jobs}))",
                res,
                f"python app.py -m seed=range({jobs}) (Hydra alone)",
                max_ratio=MAX_RATIO,
                note=f"load {load:.1f} on {os.cpu_count()} CPUs",
            )
            if "run" in extra:
                per_job = (res.a.median - res.b.median - extra["run"]) / (jobs - 1)
                rows.append(Row("   what each further recorded job adds", per_job))
            return rows, []

        parts.run("one run", one_run)
        parts.run("sweep", sweep)
    return parts.report()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
