"""Catalog benchmarks: filter, lineage and sync on ledgers of 1,000 and 100,000 runs.

The ledgers are built by really running the runs through ``ledger.run()``
(params, ``run.log`` calls, one ``end.json`` each), in a child process, with
run ids spread over past days as in a ledger used for months (the id clock,
``mlledger.ids.time``, is replaced in that child).  Each figure is timed
against a plain baseline in the same rounds (A B A B): one SQLite SELECT on a
plain table of the same runs, a recursive SQLite query, plain directory
listings, plain reads of the same files.  Run through ``python
benchmarks/run.py`` or alone: ``python benchmarks/bench_catalog.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, Parts, Row, ab, fs_type, measure, moto_s3, s3_missing, workdir

FULL = {
    "small": 1_000,
    "small_days": 10,
    "big": 100_000,
    "big_days": 100,
    "cold": 10_000,
    "cold_days": 10,
    "s3_runs": 10_000,
    "chain": 10,
    "new_runs": 100,
    "repeat": 9,
    "sync_repeat": 5,
}
QUICK = {
    "small": 1_000,
    "small_days": 10,
    "big": 5_000,
    "big_days": 10,
    "cold": 1_000,
    "cold_days": 3,
    "s3_runs": 100,
    "chain": 10,
    "new_runs": 20,
    "repeat": 5,
    "sync_repeat": 5,
}

#: targets (BENCHMARKS.md), absolute
FILTER_SMALL_S = 0.005
FILTER_BIG_S = 0.050
LINEAGE_S = 0.020
SYNC_NOTHING_S = 0.050
#: where the stores go when it is a tmpfs with room (see ``stores_dir``)
SHM = "/dev/shm"

#: (ours, plain SQL on the plain table)
FILTERS = (
    ("metrics.loss < 0.5", "loss < 0.5"),
    ("metrics.loss < 0.001", "loss < 0.001"),
    ("params.lr > 0.01 and metrics.loss < 0.5", "lr > 0.01 AND loss < 0.5"),
)

_BUILD_CHILD = r"""
import json, random, sqlite3, sys, time, types
import mlledger
from mlledger import ids

cfg = json.loads(sys.argv[1])
# start_delay far beyond a run's length: each run writes its end.json only
ledger = mlledger.Ledger(cfg["url"], start_delay=3600, capture_files=False)
rng = random.Random(cfg["seed"])
n, span = cfg["n"], cfg["days"] * 86_400_000
end = time.time_ns() // 1_000_000
clock = [0]
real_time = ids.time
ids.time = types.SimpleNamespace(time_ns=lambda: clock[0])  # run ids from past days
names = ("train", "eval", "prep", "sweep")
rows = []
t0 = time.perf_counter()
try:
    for k in range(n):
        clock[0] = (end - span + k * span // n) * 1_000_000
        name = rng.choice(names)
        params = {
            "lr": 10 ** rng.uniform(-4, -1),
            "batch": rng.choice((16, 32, 64, 128)),
            "optimizer": rng.choice(("adam", "sgd", "adamw")),
            "epochs": rng.randint(1, 50),
            "dropout": round(rng.uniform(0, 0.5), 3),
            "weight_decay": rng.choice((0.0, 1e-5, 1e-4)),
            "model": rng.choice(("resnet18", "resnet50", "vit-b")),
            "seed": k,
        }
        loss, acc = rng.random(), rng.random()
        with ledger.run(name, params=params) as run:
            for i in range(5):
                run.log(step=i, loss=loss + (4 - i) * 0.1, acc=acc)
        rows.append((run.id, name, params["lr"], params["batch"], params["optimizer"], loss, acc))
finally:
    ids.time = real_time
seconds = time.perf_counter() - t0
db = sqlite3.connect(cfg["plain_db"])
db.execute(
    "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, name TEXT, lr REAL, batch INTEGER, "
    "optimizer TEXT, loss REAL, acc REAL, parent TEXT)"
)
db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, NULL)", rows)
db.commit()
db.close()
print("RESULT " + json.dumps({"seconds": seconds, "n": n}))
"""


class State:
    """What setup functions hand to the timed functions."""

    value: Any = None


def build(url: str, n: int, days: int, plain_db: Path, seed: int) -> float:
    """Write ``n`` runs to the store at ``url`` in a child process; returns seconds taken."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cfg = {"url": url, "n": n, "days": days, "seed": seed, "plain_db": str(plain_db)}
    proc = subprocess.run(
        [sys.executable, "-c", _BUILD_CHILD, json.dumps(cfg)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"building {n} runs failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    seconds: float = json.loads(line[len("RESULT ") :])["seconds"]
    return seconds


def stores_dir(tmp: Path, cfg: dict[str, int]) -> tuple[Path, bool]:
    """The folder for the stores: on tmpfs when there is room, else in ``tmp``.

    The stores hold ~2 files per run (~230,000 in a full run). Deleting that many
    files on ext4 slows every file creation on that filesystem for minutes after
    (ext4 passes over recently freed inodes), which would bend the modules that
    run after this one; on tmpfs deleting them costs nothing later.  What is timed
    here reads the stores with the page cache warm, where tmpfs and ext4 differ little.
    """
    runs = cfg["small"] + cfg["big"] + cfg["cold"]
    tmpfs = os.path.isdir(SHM) and fs_type(SHM) == "tmpfs"
    if tmpfs and shutil.disk_usage(SHM).free > 4 * runs * 8192:
        return Path(tempfile.mkdtemp(prefix="mlledger-bench-catalog-", dir=SHM)), True
    d = tmp / "stores"
    d.mkdir()
    return d, False


def plain_ids(db: sqlite3.Connection, cond: str) -> list[str]:
    return [r[0] for r in db.execute(f"SELECT id FROM runs WHERE {cond} ORDER BY id DESC")]


# ---------------------------------------------------------------------------
# 6. filter


def bench_filter(
    label: str, ledger: Any, plain: sqlite3.Connection, target_s: float, repeat: int
) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    counts = []
    for where, cond in FILTERS:
        res = ab(lambda w=where: ledger.runs(where=w), lambda c=cond: plain_ids(plain, c), repeat)
        ours, theirs = len(ledger.runs(where=where)), len(plain_ids(plain, cond))
        counts.append(f"{where!r}: {ours:,}" + ("" if ours == theirs else f" (plain {theirs:,}!)"))
        rows += Row.from_ab(
            f"6. runs(where={where!r}), {label} runs",
            res,
            f"SELECT id ... WHERE {cond} ORDER BY id DESC",
            target=f"<= {target_s * 1e3:g} ms",
        )
        rows[-2].passed = res.a.median <= target_s
    # informational: turning the first 20 ids into Run objects
    st = State()
    where = FILTERS[0][0]
    t = measure(
        lambda: st.value[:20], repeat, setup=lambda: setattr(st, "value", ledger.runs(where=where))
    )
    rows.append(
        Row.from_timing(f"   ... materialise the first 20 Runs ({label})", t, target="info")
    )
    return rows, [f"matches over {label} runs: " + "; ".join(counts)]


# ---------------------------------------------------------------------------
# 7. lineage


def make_chain(ledger: Any, steps: int) -> list[str]:
    """``steps + 1`` tracked calls, each taking the value the previous one returned."""
    import mlledger

    made: list[str] = []

    @ledger.tracked
    def step(data: list[float], k: int) -> list[float]:
        run = mlledger.current_run()
        assert run is not None
        made.append(run.id)
        return [x * 0.5 + k for x in data]

    value = [float(i) for i in range(16)]
    for k in range(steps + 1):
        value = step(value, k)
    return made


def bench_lineage(
    ledger: Any, plain: sqlite3.Connection, chain: list[str], label: str, repeat: int
) -> tuple[list[Row], list[str]]:
    plain.executemany(
        "INSERT INTO runs (id, name, parent) VALUES (?, 'step', ?)",
        [(rid, chain[i - 1] if i else None) for i, rid in enumerate(chain)],
    )
    plain.commit()
    q = (
        "WITH RECURSIVE up(id) AS (SELECT ? UNION ALL "
        "SELECT r.parent FROM runs r JOIN up ON r.id = up.id WHERE r.parent IS NOT NULL) "
        "SELECT id FROM up"
    )
    last = chain[-1]
    got = ledger.lineage(last)
    plain_n = len(plain.execute(q, (last,)).fetchall())
    res = ab(lambda: ledger.lineage(last), lambda: plain.execute(q, (last,)).fetchall(), repeat)
    rows = Row.from_ab(
        f"7. lineage({len(chain) - 1} steps upstream), {label} runs",
        res,
        f"recursive SQLite query over the {len(chain)}-run chain",
        target=f"<= {LINEAGE_S * 1e3:g} ms",
        note=f"{len(got.runs)} runs, {len(got.artifacts)} artifacts",
    )
    rows[0].passed = res.a.median <= LINEAGE_S and len(got.runs) == len(chain)
    notes = [
        f"row 7: a chain of {len(chain)} @tracked calls in the big ledger, each taking the list "
        "the previous one returned (a value artifact), so the walk from the last run goes "
        f"{len(chain) - 1} runs and {len(chain)} artifacts upstream "
        f"({2 * len(chain) - 1} run/artifact hops); ledger.lineage(run id) includes resolving "
        f"the id (reads its entries from the store) and building the Run objects; plain query "
        f"found {plain_n} rows"
    ]
    return rows, notes


# ---------------------------------------------------------------------------
# 8. sync


def open_day_dirs(root: Path, catalog: Any) -> list[Path]:
    """``runs/``, its year and month folders, and every day folder not sealed in the catalog."""
    sealed = catalog.sealed_days()
    out = [root / "runs"]
    for y in sorted(os.listdir(root / "runs")):
        out.append(root / "runs" / y)
        for m in sorted(os.listdir(root / "runs" / y)):
            out.append(root / "runs" / y / m)
            for d in sorted(os.listdir(root / "runs" / y / m)):
                # day folders only: a month folder also holds late markers (files)
                if len(d) == 2 and d.isdigit() and f"{y}/{m}/{d}" not in sealed:
                    out.append(root / "runs" / y / m / d)
    return out


def bench_sync_nothing(
    ledger: Any, root: Path, label: str, cfg: dict[str, int]
) -> tuple[list[Row], list[str]]:
    import mlledger

    dirs = open_day_dirs(root, ledger.catalog)
    res = ab(ledger.sync, lambda: [os.listdir(d) for d in dirs], cfg["repeat"])
    rows = Row.from_ab(
        f"8. sync() with nothing new, {label} runs",
        res,
        f"os.listdir of the {len(dirs)} folders it must look at",
        target=f"<= {SYNC_NOTHING_S * 1e3:g} ms",
    )
    rows[0].passed = res.a.median <= SYNC_NOTHING_S
    # informational: a few new runs (written by another Ledger object, as by another process)
    n_new = cfg["new_runs"]
    writer = mlledger.Ledger(root, capture_files=False)

    def write_new() -> None:
        for i in range(n_new):
            with writer.run("new", params={"i": i}) as run:
                run.log(loss=0.1)

    t = measure(ledger.sync, cfg["sync_repeat"], setup=write_new)
    rows.append(
        Row.from_timing(f"   sync() picking up {n_new} new runs, {label} runs", t, target="info")
    )
    # informational: what a fresh process pays before its first answer
    t2 = measure(lambda: mlledger.Ledger(root).runs(where=FILTERS[0][0]), cfg["sync_repeat"])
    rows.append(
        Row.from_timing(
            f"   Ledger(url).runs(where=...) fresh object, {label} runs",
            t2,
            target="info",
            note="includes opening the store and an incremental sync",
        )
    )
    sealed = len(ledger.catalog.sealed_days())
    marks = sum(1 for d in dirs for n in os.listdir(d) if ".late-" in n)
    notes = [
        f"row 8: {sealed} day folders sealed, {len(dirs)} folders listed per sync (runs/, "
        "years, months, and the days within the last 2 that stay open); the runs written "
        "today (lineage chain, new runs) are in today's open folder; the build writes runs "
        f"into past days, as an import does, so the month folders hold {marks} late markers"
    ]
    return rows, notes


def cold_catalog(catalog_class: Any, ledger: Any, path: str) -> Any:
    """A second, empty catalog of a ledger's store in ``path`` (it builds runs as the
    ledger's own catalog does)."""
    own = ledger.catalog
    return catalog_class(ledger.store, own.load_run, own.make_run, path=path)


def bench_cold_local(
    ledger: Any, root: Path, tmp: Path, n: int, repeat: int
) -> tuple[list[Row], list[str]]:
    from mlledger.catalog import Catalog

    st = State()
    fresh = iter(range(1_000_000))

    def new_catalog() -> None:
        if st.value is not None:
            st.value.close()
            for suffix in ("", "-wal", "-shm"):
                Path(st.value.path + suffix).unlink(missing_ok=True)
        st.value = cold_catalog(Catalog, ledger, str(tmp / f"cold-{next(fresh)}.sqlite3"))

    def read_all() -> int:
        total = 0
        for d, _, files in os.walk(root / "runs"):
            for f in files:
                with open(os.path.join(d, f), "rb") as fh:
                    total += len(fh.read())
        return total

    res = ab(lambda: st.value.sync(), read_all, repeat, setup_a=new_catalog)  # noqa: PLW0108
    new_catalog()
    st.value.close()
    Path(st.value.path).unlink(missing_ok=True)
    rows = Row.from_ab(
        f"8. cold sync of {n:,} runs, local store",
        res,
        "os.walk + read every file under runs/",
        target="info",
        note=f"{n / res.a.median:,.0f} runs/s",
    )
    return rows, []


def bench_cold_s3(local_root: Path, n: int) -> tuple[list[Row], list[str]]:
    """Cold sync of the first ``n`` runs of ``local_root`` copied to a moto S3 server.

    One round (ours, then the baseline) without warm-up: moto answers some
    100-200 requests/s on this 2-core machine, so a round takes minutes.
    """
    missing = s3_missing()
    if missing:
        return [], [f"S3 cold sync skipped: {missing}"]
    import mlledger
    from mlledger.catalog import Catalog

    # a run is a folder of entries, or one file <id>.json when it was shorter than start_delay
    run_items = sorted((local_root / "runs").glob("*/*/*/*"), key=lambda p: p.name)[:n]
    files = [p for p in local_root.rglob("*") if p.is_file() and "runs" not in p.parts]
    files += [f for d in run_items for f in (d.iterdir() if d.is_dir() else [d])]
    bucket = "mlledger-bench"
    tmp = Path(tempfile.mkdtemp(prefix="mlledger-bench-catalog-s3-"))
    try:
        with moto_s3(bucket) as (fs, opts):
            prefix = f"{bucket}/cold"
            keys = {f"{prefix}/{p.relative_to(local_root).as_posix()}": p for p in files}
            t0 = time.perf_counter()
            names = list(keys)
            for i in range(0, len(names), 1000):
                fs.pipe({k: keys[k].read_bytes() for k in names[i : i + 1000]})
            upload = time.perf_counter() - t0
            run_keys = [k for k in names if "/runs/" in k]
            ledger = mlledger.Ledger(f"s3://{prefix}", **opts)
            cat = cold_catalog(Catalog, ledger, str(tmp / "cold.sqlite3"))
            t0 = time.perf_counter()
            synced = cat.sync()
            ours = time.perf_counter() - t0
            cat.close()
            t0 = time.perf_counter()
            got = fs.cat(fs.find(f"{prefix}/runs"))
            raw = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if synced != len(run_items) or len(got) != len(run_keys):
        raise RuntimeError(f"S3 sync got {synced} runs, raw {len(got)} keys: expected {n}")
    rows = [
        Row(
            f"8. cold sync of {len(run_items):,} runs, S3 (moto)",
            ours,
            ratio=ours / raw,
            target="info",
            note=f"{len(run_items) / ours:,.0f} runs/s; one round",
        ),
        Row("  baseline: s3fs find + cat of every key under runs/", raw, ratio=1.0),
    ]
    notes = [
        f"S3 row: moto server on 127.0.0.1; the first {len(run_items):,} runs of the cold "
        f"ledger ({len(names):,} keys) uploaded with fs.pipe in {upload:.1f} s (untimed); one "
        "round, no warm-up (moto serves ~100-200 requests/s here, which bounds both sides); "
        f"the baseline reads the same {len(run_keys):,} run entries with one s3fs find and one "
        "cat of all keys at once; ours lists each day folder, then reads each short run's "
        "one file <id>.json, and end.json (and start.json when end.json lacks the start) of "
        "a run with a folder"
    ]
    return rows, notes


# ---------------------------------------------------------------------------


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("catalog", quick)
    with workdir("catalog") as tmp:
        stores, on_shm = stores_dir(tmp, cfg)
        try:
            _main(tmp, stores, on_shm, cfg, parts)
        finally:
            shutil.rmtree(stores, ignore_errors=True)
    parts.notes.append(
        "ratio = median over rounds of (ours / baseline in the same round); targets on the "
        "median time; page cache warm throughout"
    )
    return parts.report()


def _main(tmp: Path, stores: Path, on_shm: bool, cfg: dict[str, int], parts: Parts) -> None:
    import mlledger

    rows, notes, part, repeat = parts.rows, parts.notes, parts.run, cfg["repeat"]

    # build the ledgers (children: the runs' memory never lands in this process)
    small_root, big_root, cold_root = stores / "small", stores / "big", stores / "cold"
    small_db, big_db, cold_db = (
        tmp / "small-plain.sqlite3",
        tmp / "big-plain.sqlite3",
        tmp / "cold-plain.sqlite3",
    )
    built: dict[str, float] = {}
    for key, root, db, seed in (
        ("small", small_root, small_db, 1),
        ("big", big_root, big_db, 2),
        ("cold", cold_root, cold_db, 3),
    ):
        built[key] = build(str(root), cfg[key], cfg[f"{key}_days"], db, seed)
    cold_db.unlink(missing_ok=True)
    n_big = cfg["big"]
    rows.append(
        Row(
            f"   build: {n_big:,} runs through ledger.run(), per run",
            built["big"] / n_big,
            target="info",
            note=f"{built['big']:.0f} s in all, {n_big / built['big']:,.0f} runs/s",
        )
    )
    notes.append(
        f"stores in {stores} ({fs_type(stores)}"
        + (
            ", so that deleting their files does not slow later modules' file creation"
            if on_shm
            else ""
        )
        + f"), catalogs and plain SQLite tables in {tmp} ({fs_type(tmp)}): "
        f"{cfg['small']:,} runs over {cfg['small_days']} days, {n_big:,} over "
        f"{cfg['big_days']}, {cfg['cold']:,} over {cfg['cold_days']}; each run made by "
        "`with ledger.run(name, params=8 params):` and 5 x `run.log(step, loss, acc)` in a "
        "child process (capture_files=False, start_delay=3600: one end.json per run), run "
        "ids from past days (ids.time replaced); the plain table holds the same runs (id, "
        "name, lr, batch, optimizer, loss, acc, parent; primary key only)"
    )

    small = mlledger.Ledger(small_root)
    big = mlledger.Ledger(big_root)
    small.sync()
    t0 = time.perf_counter()
    got = big.sync()
    first_sync = time.perf_counter() - t0
    rows.append(
        Row(
            f"   first sync of the {n_big:,}-run ledger",
            first_sync,
            target="info",
            note=f"{got:,} runs, {got / first_sync:,.0f} runs/s",
        )
    )
    with sqlite3.connect(small_db) as small_plain, sqlite3.connect(big_db) as big_plain:
        part(
            "filter 1k",
            lambda: bench_filter(f"{cfg['small']:,}", small, small_plain, FILTER_SMALL_S, repeat),
        )
        part("filter big", lambda: bench_filter(f"{n_big:,}", big, big_plain, FILTER_BIG_S, repeat))
        chain = make_chain(big, cfg["chain"])
        big.sync()
        part("lineage", lambda: bench_lineage(big, big_plain, chain, f"{n_big:,}", repeat))
    part("sync nothing", lambda: bench_sync_nothing(big, big_root, f"{n_big:,}", cfg))
    small.catalog.close()
    big.catalog.close()
    cold = mlledger.Ledger(cold_root)
    part(
        "cold local",
        lambda: bench_cold_local(cold, cold_root, tmp, cfg["cold"], cfg["sync_repeat"]),
    )
    # moto serves ~100-200 requests/s here: MLLEDGER_BENCH_S3_RUNS shortens this row
    s3_runs = int(os.environ.get("MLLEDGER_BENCH_S3_RUNS", cfg["s3_runs"]))
    part("cold s3", lambda: bench_cold_s3(cold_root, s3_runs))


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
