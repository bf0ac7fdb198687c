"""Checks benchmarks: ``ledger.check`` of one run against a ref baseline in a big ledger.

The ledger is built as the catalog benchmarks build theirs (``bench_catalog.build``:
100,000 runs really run through ``ledger.run()`` in a child process, ids spread over
100 past days).  Timed against reading the judged run's record alone
(``ledger.get(run_id)``: its entries read from the store and merged), in the same
rounds (A B A B).  Each check is recorded in the store, as a user's is.  Run through
``python benchmarks/run.py checks`` or alone: ``python benchmarks/bench_checks.py
[--quick]``.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from _common import Parts, Row, ab, fs_type, workdir
from bench_catalog import build, stores_dir

FULL = {"small": 0, "big": 100_000, "big_days": 100, "cold": 0, "repeat": 9}
QUICK = {"small": 0, "big": 5_000, "big_days": 10, "cold": 0, "repeat": 5}

#: the target (BENCHMARKS.md): one check against a ref baseline, absolute
CHECK_S = 0.020
RULE = "metrics.acc max_drop=0.01 vs @model/prod"
POLICY_RULE = {
    "name": "acc-holds",
    "runs": "name = 'train' and params.optimizer = 'adam'",
    "field": "metrics.acc",
    "baseline": "@model/prod",
    "max_drop": 0.01,
}


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("checks", quick)
    with workdir("checks") as tmp:
        stores, on_shm = stores_dir(tmp, cfg)
        try:
            _main(tmp, stores, cfg, parts)
        finally:
            shutil.rmtree(stores, ignore_errors=True)
    parts.notes.append(
        "ratio = median over rounds of (ours / baseline in the same round); target on the "
        f"median time; page cache warm; stores on {fs_type(stores)}"
        + (" (tmpfs)" if on_shm else "")
    )
    return parts.report()


def _main(tmp: Path, stores: Path, cfg: dict[str, int], parts: Parts) -> None:
    import mlledger

    n, repeat = cfg["big"], cfg["repeat"]
    root = stores / "big"
    seconds = build(str(root), n, cfg["big_days"], tmp / "plain.sqlite3", 7)
    parts.rows.append(
        Row(f"   build: {n:,} runs through ledger.run()", seconds, target="info",
            note=f"{n / seconds:,.0f} runs/s")
    )
    ledger = mlledger.Ledger(root)
    ledger.sync()
    trains = ledger.runs(where="params.optimizer = 'adam'", name="train", limit=2)
    judged, prod = trains[0].id, trains[1].id
    ledger.refs.set("model/prod", prod, message="the baseline")

    def given() -> tuple[list[Row], list[str]]:
        res = ab(lambda: ledger.check(judged, rules=[RULE]), lambda: ledger.get(judged), repeat)
        rows = Row.from_ab(
            f"check {judged[:12]} vs @model/prod, {n:,} runs (rule given, recorded)",
            res,
            "ledger.get(run_id): the run's record read from the store",
            target=f"<= {CHECK_S * 1e3:g} ms",
        )
        rows[0].passed = res.a.median <= CHECK_S
        return rows, []

    def from_policy() -> tuple[list[Row], list[str]]:
        ledger.policy.set(checks=[POLICY_RULE], message="bench")
        res = ab(lambda: ledger.check(judged), lambda: ledger.get(judged), repeat)
        rows = Row.from_ab(
            f"check {judged[:12]} with the policy's rule (its where clause selects it)",
            res,
            "ledger.get(run_id)",
            target=f"<= {CHECK_S * 1e3:g} ms",
        )
        rows[0].passed = res.a.median <= CHECK_S
        return rows, [f"policy rule: {POLICY_RULE}"]

    def median() -> tuple[list[Row], list[str]]:
        rule = "metrics.acc max_drop=0.01 vs median:10 runs=\"name = 'train'\""
        res = ab(lambda: ledger.check(judged, rules=[rule]), lambda: ledger.get(judged), repeat)
        rows = Row.from_ab(
            f"check {judged[:12]} vs median:10 of the train runs", res, "ledger.get(run_id)",
            target="info",
        )  # fmt: skip
        return rows, []

    t0 = time.perf_counter()
    parts.run("check vs ref", given)
    parts.run("check with the policy", from_policy)
    parts.run("check vs median", median)
    parts.notes.append(
        f"{len(mlledger.checks_of(ledger.store, judged))} check reports recorded for the "
        f"judged run in {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
