"""Cost benchmarks: what sampling and a policy cost a run.

1. Sampling at 1 s: the sampler thread's own CPU time (its thread CPU clock)
   over a sampled run of ~20 s, in percent of one core (target <= 1 %); and a
   CPU-bound loop with and without sampling at 1 s, in rounds A B A B.
2. ``with ledger.run()`` (10 params + 10 logs) on a store whose policy sets
   require_message, rates, checks and alerts, against the same on a store with
   no policy, in rounds A B A B (target: no worse, <= 1.1x for noise).
3. ``ledger.cost()`` and ``ledger.du()`` over a ledger of 10,000 priced runs (every
   tenth with an output), against one plain ``GROUP BY name`` over the same catalog
   (informational: what the reports add to the SQL they need).

Run through ``python benchmarks/run.py cost`` (``--quick``: a 3 s sampled run).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import ABResult, Parts, Row, Timing, ab, workdir

FULL = {
    "sample_run_s": 20.0,
    "busy_s": 2.0,
    "busy_repeat": 5,
    "runs": 200,
    "repeat": 9,
    "ledger_runs": 10_000,
}
QUICK = {
    "sample_run_s": 3.0,
    "busy_s": 0.5,
    "busy_repeat": 5,
    "runs": 50,
    "repeat": 5,
    "ledger_runs": 1_000,
}

SAMPLER_MAX_PERCENT = 1.0
POLICY_MAX_RATIO = 1.1
PARAMS = {f"p{i}": i * 0.1 for i in range(10)}
LOSSES = [1.0 / (i + 1) for i in range(10)]


def _thread_cpu(t: threading.Thread) -> float:
    """CPU seconds a live thread used (its own CPU clock; Linux and macOS)."""
    assert t.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(t.ident))


def bench_sampler_thread(tmp: Path, cfg: dict[str, float]) -> tuple[list[Row], list[str]]:
    import mlledger
    from mlledger.runs import sampler

    ledger = mlledger.Ledger(tmp / "store-sampled")
    seconds = cfg["sample_run_s"]
    rows: list[Row] = []
    for interval in (1.0, 0.1):
        with ledger.run("sampled", sample=interval) as run:
            t = sampler.thread()
            assert t is not None
            t0 = time.monotonic()
            time.sleep(seconds)
            cpu = _thread_cpu(t)
            wall = time.monotonic() - t0
        n = len(run.metric_history("sys.cpu_percent"))
        pct = 100.0 * cpu / wall
        rows.append(
            Row(
                f"1. sampler thread CPU, sample={interval:g} s over {seconds:.0f} s "
                f"({n} samples), % of a core",
                pct,
                unit="%",
                target=f"<= {SAMPLER_MAX_PERCENT:g} %" if interval == 1.0 else "",
                passed=pct <= SAMPLER_MAX_PERCENT if interval == 1.0 else None,
                note=f"{cpu * 1e3:.2f} ms CPU in {wall:.1f} s; {cpu / max(n, 1) * 1e6:.0f} µs "
                "a sample",
            )
        )
    return rows, ["1. the sampler thread's CPU read from its own thread CPU clock"]


def bench_sampler_busy(tmp: Path, cfg: dict[str, float]) -> tuple[list[Row], list[str]]:
    import mlledger

    ledger = mlledger.Ledger(tmp / "store-busy")
    seconds = cfg["busy_s"]
    work = 0

    def calibrate() -> int:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            sum(range(10_000))
            n += 1
        return n

    work = calibrate()

    def loop() -> None:
        for _ in range(work):
            sum(range(10_000))

    def sampled() -> None:
        with ledger.run("busy", sample=1.0, capture_files=False):
            loop()

    def plain() -> None:
        with ledger.run("busy", capture_files=False):
            loop()

    res = ab(sampled, plain, int(cfg["busy_repeat"]))
    rows = Row.from_ab(
        f"1. CPU-bound loop of ~{seconds:g} s in a run, sampled at 1 s",
        res,
        "   same run, not sampled",
        note="informational: the thread's own CPU above is the measure",
    )
    return rows, ["1. the loop: wall ratio on a shared machine; the cpu ratio counts every thread"]


def bench_policy(tmp: Path, cfg: dict[str, float]) -> tuple[list[Row], list[str]]:
    import mlledger

    n = int(cfg["runs"])
    bare = mlledger.Ledger(tmp / "store-bare")
    ruled = mlledger.Ledger(tmp / "store-policy")
    ruled.policy.set(
        require_message=True,
        rates={"currency": "USD", "instance_hour": 1.2, "cpu_hour": 0.04, "gpu_hour": 2.5},
        checks=[
            {
                "name": "loss-holds",
                "runs": "name = 'bench'",
                "field": "metrics.loss",
                "baseline": "median:10",
                "max_rise": 0.1,
            }
        ],
        alerts=[{"type": "command", "command": "true"}],
        message="benchmark policy",
    )

    def runs_in(led: mlledger.Ledger) -> object:
        def runs() -> None:
            for _ in range(n):
                with led.run("bench", params=PARAMS, message="why") as run:
                    for i, loss in enumerate(LOSSES):
                        run.log(step=i, loss=loss)

        return runs

    res = ab(runs_in(ruled), runs_in(bare), int(cfg["repeat"]))
    scaled = ABResult(
        Timing([s / n for s in res.a.samples], [c / n for c in res.a.cpu]),
        Timing([s / n for s in res.b.samples], [c / n for c in res.b.cpu]),
        res.ratios,
        res.cpu_ratios,
    )
    priced = ruled.runs(limit=1)[0].resources.get("cost")
    rows = Row.from_ab(
        "2. ledger.run() + 10 logs, policy (message, rates, checks, alerts), per run",
        scaled,
        "   same, no policy",
        max_ratio=POLICY_MAX_RATIO,
        note="each run priced" if priced is not None else "NOT PRICED: rates not applied",
    )
    return rows, ["2. local store, start_delay 0.1 s (the default), warm process"]


def bench_reports(tmp: Path, cfg: dict[str, float]) -> tuple[list[Row], list[str]]:
    import mlledger

    n = int(cfg["ledger_runs"])
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp / "reports"
    try:
        ledger = mlledger.Ledger(root / "store", start_delay=3600, capture_files=False)
        ledger.policy.set(rates={"currency": "USD", "instance_hour": 1.2, "cpu_hour": 0.04})
        for k in range(n):
            with ledger.run(("train", "eval", "prep")[k % 3], tags={"team": f"t{k % 7}"}) as r:
                if k % 10 == 0:
                    r.save({"k": k % 50}, name="out")
        ledger.sync()
        db = ledger.catalog.db

        def plain() -> None:
            db.execute("SELECT name, COUNT(*) FROM runs GROUP BY name").fetchall()

        rows: list[Row] = []
        for figure, fn in (
            (f"3. ledger.cost(by='name'), {n:,} runs", lambda: ledger.cost(by="name")),
            (
                f"3. ledger.cost(by='tags.team', since='30d'), {n:,} runs",
                lambda: ledger.cost(by="tags.team", since="30d"),
            ),
            (f"3. ledger.du(by='name'), {n:,} runs", lambda: ledger.du(by="name")),
        ):
            res = ab(fn, plain, int(cfg["repeat"]))
            rows += Row.from_ab(figure, res, "   SELECT name, COUNT(*) ... GROUP BY name")
        return rows, [
            "3. store on /dev/shm when there is one; the catalog synced first; du lists "
            f"{ledger.du().objects:,} objects each time"
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("cost", quick)
    with workdir("cost") as tmp:
        parts.run("sampler thread", lambda: bench_sampler_thread(tmp, cfg))
        parts.run("sampler busy loop", lambda: bench_sampler_busy(tmp, cfg))
        parts.run("policy", lambda: bench_policy(tmp, cfg))
        parts.run("reports", lambda: bench_reports(tmp, cfg))
    return parts.report()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
