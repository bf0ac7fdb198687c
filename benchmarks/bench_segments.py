"""Catalogs at the speed of the bucket: a simulated ledger of years of runs.

The runs are generated (``_synth``: each a short run's one sealed entry,
written straight into the store's day folders), not made through
``ledger.run()``: a million real runs would take a quarter of an hour to make.
Figures, each against a plain baseline in the same rounds:

- sync with nothing new, when 20,000 runs were made today;
- first sync of the whole ledger: the first catalog (it reads every entry
  and writes each sealed day's segment), then a new team member's (segments);
- a filter over the whole ledger, and turning its matches into ``.metrics``;
- the first ``Ledger()`` in a fresh process;
- a first sync from S3 (moto), without segments and with them.

Run through ``python benchmarks/run.py segments`` or alone:
``python benchmarks/bench_segments.py [--quick]``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, Parts, Row, Timing, ab, fs_type, measure, s3_missing, workdir
from _synth import write_local

from mlledger.ids import day_path

DAY_MS = 86_400_000
FULL = {
    "runs": 200_000, "days": 3 * 365, "today": 20_000,
    "s3_runs": 100_000, "s3_days": 100, "s3_today": 200,
}  # fmt: skip
#: ``--million`` (or MLLEDGER_BENCH_SEGMENT_MILLION=1): the simulation of issue 18, on local
#: disk and on moto (~30 min, ~5 GiB for moto's server)
MILLION = {**FULL, "runs": 1_000_000, "s3_runs": 1_000_000, "s3_days": 3 * 365}
QUICK = {
    "runs": 20_000, "days": 30, "today": 2_000, "s3_runs": 2_000, "s3_days": 10, "s3_today": 50,
}  # fmt: skip
REPEAT = 7
#: targets (BENCHMARKS.md)
SYNC_NOTHING_S = 0.010
FILTER_S = 0.100
MATERIALISE_RATIO = 3.0
FIRST_LEDGER_S = 0.020
S3_COLD_100K_S = 30.0
WHERE = "metrics.loss < {x}"

_FIRST_LEDGER = r"""
import sys, time
t0 = time.perf_counter()
import mlledger
t1 = time.perf_counter()
mlledger.Ledger(sys.argv[1])
t2 = time.perf_counter()
print(f"{t1 - t0} {t2 - t1}")
"""


def _child_times(args: list[str], n: int) -> list[list[float]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = []
    for _ in range(n):
        got = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=env, check=True
        )
        out.append([float(x) for x in got.stdout.split()] if got.stdout.strip() else [])
    return out


def bench_first_ledger(root: Path) -> tuple[list[Row], list[str]]:
    """The first ``Ledger()`` in a fresh process (timed inside it), rounds paired with a
    fresh ``python -c pass`` (wall time of the process, for the machine's load)."""
    ours, plain = Timing(), Timing()
    for _ in range(REPEAT):
        (t,) = _child_times(["-c", _FIRST_LEDGER, str(root)], 1)
        ours.samples.append(t[1])
        t0 = time.perf_counter()
        _child_times(["-c", "pass"], 1)
        plain.samples.append(time.perf_counter() - t0)
    rows = [
        Row.from_timing(
            "first Ledger(url) in a fresh process (after import mlledger)",
            ours,
            target=f"<= {FIRST_LEDGER_S * 1e3:g} ms",
            passed=ours.median <= FIRST_LEDGER_S,
            ratio=ours.median / plain.median,
        ),
        Row.from_timing("  baseline: a whole `python -c pass` process", plain, ratio=1.0),
    ]
    return rows, []


def bench_local(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    import mlledger
    from mlledger.catalog import Catalog

    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and fs_type(shm) == "tmpfs" else tmp
    root = Path(tempfile.mkdtemp(prefix="mlledger-bench-segments-", dir=base))
    rows: list[Row] = []
    notes: list[str] = []
    try:
        now = time.time_ns() // 1_000_000
        today0 = now - now % DAY_MS
        mlledger.Ledger(root)
        t0 = time.perf_counter()
        write_local(root, cfg["runs"], today0 - cfg["days"] * DAY_MS, today0 - 2 * DAY_MS, 1)
        write_local(root, cfg["today"], today0 + 1, min(now - 5000, today0 + DAY_MS - 1), 2)
        made = time.perf_counter() - t0
        total = cfg["runs"] + cfg["today"]
        notes.append(
            f"local store in {root.parent} ({fs_type(root)}): {cfg['runs']:,} generated runs "
            f"over {cfg['days']} days before yesterday plus {cfg['today']:,} today, written "
            f"in {made:.0f} s (untimed); catalogs in {tmp} ({fs_type(tmp)})"
        )
        ledger = mlledger.Ledger(root)
        first = cold_sync(ledger, Catalog, tmp / "first.sqlite3")
        segs = sum(1 for _ in (root / "segments").rglob("*.json.gz"))
        rows.append(
            Row(
                f"first sync of {total:,} runs, no segments yet (reads every entry, writes "
                "each sealed day's segment)",
                first,
                target="info",
                note=f"{total / first:,.0f} runs/s; {segs:,} segments written",
            )
        )
        second = cold_sync(ledger, Catalog, tmp / "second.sqlite3")
        t0 = time.perf_counter()
        for p in (root / "segments").rglob("*.json.gz"):
            p.read_bytes()
        for p in (root / "runs").glob("*/*/*"):
            if p.is_dir():
                os.listdir(p)
        raw = time.perf_counter() - t0
        rows.append(
            Row(
                f"first sync of {total:,} runs by a new team member (segments)",
                second,
                ratio=second / first,
                target="info",
                note=f"{total / second:,.0f} runs/s; ratio to the row above; reading the "
                f"segments and listing every day folder alone takes {raw:.2f} s",
            )
        )
        ledger.sync()
        today = next(p for p in (root / "runs").glob("*/*/*") if len(os.listdir(p)) >= 1000)
        res = ab(ledger.sync, lambda: os.listdir(today), REPEAT)
        rows += Row.from_ab(
            f"sync() with nothing new ({cfg['today']:,} runs today, {total:,} in all)",
            res,
            "os.listdir of today's folder",
            target=f"<= {SYNC_NOTHING_S * 1e3:g} ms",
        )
        rows[-2].passed = res.a.median <= SYNC_NOTHING_S
        x = 16_700 / total
        where = WHERE.format(x=x)
        db = ledger.catalog.db
        plain = f"SELECT run_id FROM metrics WHERE key = 'loss' AND \"last\" < {x}"
        res = ab(lambda: ledger.runs(where=where), lambda: db.execute(plain).fetchall(), REPEAT)
        n = len(ledger.runs(where=where))
        rows += Row.from_ab(
            f"runs(where={where!r}) over {total:,} runs",
            res,
            "one SQLite SELECT on the catalog's metrics table",
            target=f"<= {FILTER_S * 1e3:g} ms",
            note=f"{n:,} matches",
        )
        rows[-2].passed = res.a.median <= FILTER_S
        query, mat, each = Timing(), Timing(), Timing()
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            got = ledger.runs(where=where)
            t1 = time.perf_counter()
            _ = got.metrics
            t2 = time.perf_counter()
            query.samples.append(t1 - t0)
            mat.samples.append(t2 - t1)
        t0 = time.perf_counter()
        _ = [r.metrics for r in ledger.runs(where=where)]
        each.samples.append(time.perf_counter() - t0 - query.median)
        ratio = statistics.median(m / q for m, q in zip(mat.samples, query.samples, strict=True))
        rows.append(
            Row.from_timing(
                f"runs(where=...).metrics for the {n:,} matches",
                mat,
                ratio=ratio,
                target=f"<= {MATERIALISE_RATIO:g}x the query",
                passed=ratio <= MATERIALISE_RATIO,
                note=f"[r.metrics for r in runs] (Run objects, bulk-built): {each.median:.2f} s",
            )
        )
        rows.append(Row.from_timing("  baseline: the query itself (same rounds)", query, ratio=1.0))
        df_t = measure(lambda: ledger.runs(where=where).to_pandas(), 3)
        rows.append(
            Row.from_timing(f"runs(where=...).to_pandas(), {n:,} rows", df_t, target="info")
        )
        ledger.catalog.close()
        r, n2 = bench_first_ledger(root)
        rows += r
        notes += n2
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows, notes


def cold_sync(ledger: Any, catalog_class: Any, path: Path) -> float:
    """Seconds a fresh, empty catalog of the ledger's store takes to sync."""
    own = ledger.catalog
    cat = catalog_class(ledger.store, own.load_run, own.make_run, path=str(path))
    t0 = time.perf_counter()
    cat.sync()
    took = time.perf_counter() - t0
    cat.close()
    return took


def bench_s3(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    """First sync from moto S3 of a sealed store (one segment per day) against the bucket's
    own floor (listing every month folder and reading every segment, nothing else); a store
    never sealed (one read per run) at a tenth of the size; then the sync with nothing new
    and the filter on that catalog."""
    missing = s3_missing()
    if missing:
        return [], [f"S3 rows skipped: {missing}"]
    from _moto_bulk import bulk_moto_s3, server_rss_mib

    import mlledger

    n, days = cfg["s3_runs"], cfg["s3_days"]
    few, few_days = min(max(100, n // 10), 10_000), max(2, min(days // 10, 10))
    #: listing every day folder takes ~1.2 s a day at 1,000,000 objects on moto: measured
    #: up to this size only (to show what a first sync no longer does)
    with_days = n <= 200_000
    now = time.time_ns() // 1_000_000
    today0 = now - now % DAY_MS
    old = today0 - 2 * DAY_MS
    jobs = [
        {"prefix": "sealed", "n": n, "start_ms": old - days * DAY_MS, "end_ms": old,
         "seed": 3, "segments": True},
        {"prefix": "sealed", "n": cfg["s3_today"], "start_ms": today0 + 1,
         "end_ms": min(now - 5000, today0 + DAY_MS - 1), "seed": 4, "segments": False},
        {"prefix": "never", "n": few, "start_ms": old - few_days * DAY_MS, "end_ms": old,
         "seed": 5, "segments": False},
    ]  # fmt: skip
    bucket = "mlledger-bench"
    total = n + cfg["s3_today"]
    rows: list[Row] = []
    with bulk_moto_s3(bucket, jobs) as (fs, opts, ready):
        _, objects, loaded, _ = ready.split(maxsplit=3)
        ledger = mlledger.Ledger(f"s3://{bucket}/sealed", **opts)
        own = ledger.catalog
        from mlledger.catalog import Catalog

        first = cold_sync(ledger, Catalog, tmp / "s3-sealed.sqlite3")
        t0 = time.perf_counter()
        months = [
            m
            for y in fs.ls(f"{bucket}/sealed/runs", detail=False)
            for m in fs.ls(y, detail=False)
        ]
        day_folders = [d for m in months for d in fs.ls(m, detail=False)]
        listed = time.perf_counter() - t0
        t0 = time.perf_counter()
        fs.cat(fs.find(f"{bucket}/sealed/segments"))
        floor = listed + time.perf_counter() - t0
        t0 = time.perf_counter()
        for d in day_folders if with_days else ():
            fs.invalidate_cache(d)
            fs.ls(d, detail=False)
        days_listed = time.perf_counter() - t0
        rows.append(
            Row(
                f"first sync of {total:,} runs from S3 (moto), with segments "
                f"({days} sealed days, {cfg['s3_today']:,} runs today)",
                first,
                ratio=first / floor,
                target=f"100k runs <= {S3_COLD_100K_S:g} s",
                passed=first * 100_000 / total <= S3_COLD_100K_S,
                note=f"{total / first:,.0f} runs/s"
                + "; ratio to the bucket's floor below"
                + (
                    f"; listing every day folder too would add {days_listed:.1f} s"
                    if days_listed
                    else ""
                ),
            )
        )
        rows.append(
            Row(
                "  baseline: the bucket's floor: s3fs ls of every year and month "
                "folder + find and cat of every segment, nothing else",
                floor,
                ratio=1.0,
                note=f"of which the month listings {listed:.1f} s",
            )
        )
        cat = Catalog(ledger.store, own.load_run, own.make_run, path=str(tmp / "s3-sealed.sqlite3"))
        cat.sync()
        today = f"{bucket}/sealed/{day_path(_today_id(today0)).rsplit('/', 1)[0]}"
        res = ab(cat.sync, lambda: (fs.invalidate_cache(today), fs.ls(today)), 5)
        rows += Row.from_ab(
            f"S3: sync() with nothing new ({cfg['s3_today']:,} runs today, {total:,} in all)",
            res,
            "s3fs ls of today's folder",
            target="info",
        )
        x = 16_700 / total
        where = WHERE.format(x=x)
        plain = f"SELECT run_id FROM metrics WHERE key = 'loss' AND \"last\" < {x}"
        db = cat.db
        res = ab(lambda: cat.select_runs(where=where), lambda: db.execute(plain).fetchall(), 5)
        rows += Row.from_ab(
            f"S3: catalog query {where!r} over {total:,} runs",
            res,
            "one SQLite SELECT on the catalog's metrics table",
            target="info",
        )
        cat.close()
        never = mlledger.Ledger(f"s3://{bucket}/never", **opts)
        without = cold_sync(never, Catalog, tmp / "s3-never.sqlite3")
        rows.append(
            Row(
                f"first sync of {few:,} runs from S3 (moto), no segments (reads each run)",
                without,
                target="info",
                note=f"{few / without:,.0f} runs/s, so {total:,} runs in ~"
                f"{without * total / few:,.0f} s at this rate (extrapolated); writes the "
                f"{few_days} days' segments",
            )
        )
    notes = [
        f"S3 rows: moto server on 127.0.0.1 holding {int(objects):,} generated objects "
        f"(runs' entries; each sealed day's segment as a sealing sync writes it), built in "
        f"its memory by moto's own put_object in {float(loaded):.0f} s (untimed; "
        f"benchmarks/_moto_bulk.py), server peak RSS {server_rss_mib(ready):,.0f} MiB; "
        "every read of the rows goes over HTTP; one round for first syncs"
    ]
    return rows, notes


def _today_id(today0: int) -> str:
    from mlledger.ids import fixed_run_id

    return fixed_run_id(today0 + 1000, b"today")


def main(quick: bool = False, million: bool = False) -> list[Row]:
    million = million or os.environ.get("MLLEDGER_BENCH_SEGMENT_MILLION") == "1"
    cfg = dict(QUICK if quick else MILLION if million else FULL)
    for key in ("runs", "s3_runs", "s3_days"):  # MLLEDGER_BENCH_SEGMENT_RUNS, ...: sizes
        got = os.environ.get(f"MLLEDGER_BENCH_SEGMENT_{key.upper()}")
        if got:
            cfg[key] = int(got)
    which = os.environ.get("MLLEDGER_BENCH_SEGMENT_PARTS", "local,s3").split(",")
    parts = Parts("segments", quick)
    with workdir("segments") as tmp:
        if "local" in which:
            parts.run("local", lambda: bench_local(tmp, cfg))
        if "s3" in which:
            parts.run("s3", lambda: bench_s3(tmp, cfg))
    parts.notes.append(
        "sizes: --million (MLLEDGER_BENCH_SEGMENT_MILLION=1) for 1,000,000 runs on local "
        "disk and on moto; "
        "MLLEDGER_BENCH_SEGMENT_RUNS, _S3_RUNS and _S3_DAYS override the counts, "
        "MLLEDGER_BENCH_SEGMENT_PARTS=local or s3 runs one part; page cache warm"
    )
    return parts.report()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:], million="--million" in sys.argv[1:])
