"""Watch benchmarks: a `watch` pass with nothing new, and with 100 new runs, on ledgers of
10,000 and 100,000 runs.

The ledgers are built as the catalog benchmarks build theirs (``bench_catalog.build``:
real ``ledger.run()`` calls in a child process, run ids over past days).  The policy
holds one check rule (judging every ``train`` run) and one webhook sink posting to an
``http.server`` on 127.0.0.1 in this process.  A pass with nothing new is timed
against the catalog's own ``sync()`` with nothing new (the part of the pass that
looks at the store) in the same rounds; a pass with new runs against ``sync()``
picking up the same number of new runs, written by another Ledger object before
each call (one in ten failed: those alerts are claimed and posted).  The claim is
that the pass's cost grows with the new runs, not with the ledger: the same figure at
10,000 and 100,000 runs.  Run through ``python benchmarks/run.py watch`` or alone.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import Parts, Row, ab, workdir
from bench_catalog import build, stores_dir

FULL = {"sizes": (10_000, 100_000), "days": (10, 100), "new": 100, "repeat": 7}
QUICK = {"sizes": (1_000, 5_000), "days": (3, 10), "new": 20, "repeat": 5}
#: target (BENCHMARKS.md): a pass with nothing new
NOTHING_S = 0.050


class _Hook(BaseHTTPRequestHandler):
    count = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Hook.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _ledger_with_policy(root: Path, hook: str) -> Any:
    import mlledger

    os.environ["BENCH_HOOK"] = hook
    led = mlledger.Ledger(root, capture_files=False)
    led.policy.set(
        checks=[{"name": "loss", "runs": "name = 'train'", "field": "metrics.loss", "max": 5}],
        alerts=[{"type": "webhook", "url": "$BENCH_HOOK"}],
    )
    return led


def bench_size(root: Path, n: int, hook: str, cfg: dict[str, Any]) -> tuple[list[Row], list[str]]:
    import mlledger

    led = _ledger_with_policy(root, hook)
    led.sync()
    led.watch(since="1000d")  # the first pass: past the horizon's runs once
    rows = Row.from_ab(
        f"1. watch pass, nothing new, {n:,} runs",
        ab(led.watch, led.sync, cfg["repeat"]),
        "sync() with nothing new (the store listing the pass includes)",
        target=f"<= {NOTHING_S * 1e3:g} ms",
    )
    rows[0].passed = rows[0].median <= NOTHING_S
    writer = mlledger.Ledger(root, capture_files=False)
    counter = itertools.count()
    failed = [0]

    def write_new() -> None:
        for _ in range(cfg["new"]):
            k = next(counter)
            try:
                with writer.run("train", params={"k": k}) as run:
                    run.log(step=0, loss=0.5)
                    if k % 10 == 0:
                        failed[0] += 1
                        raise RuntimeError("broken on purpose")
            except RuntimeError:
                pass

    sent = _Hook.count
    res = ab(led.watch, led.sync, cfg["repeat"], setup_a=write_new, setup_b=write_new)
    new = cfg["new"]
    rows += Row.from_ab(
        f"2. watch pass, {new} new runs ({new // 10} failed), {n:,} runs",
        res,
        f"sync() picking up {new} new runs",
        target="info",
        note=f"{(res.a.median / new) * 1e3:.2f} ms per new run",
    )
    led.watch()  # the failed runs the last baseline round wrote
    posted = _Hook.count - sent
    return rows, [
        f"{n:,} runs: {posted} alerts posted for the {failed[0]} failed runs written during "
        "row 2 (new runs are written before each call of either side)"
    ]


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("watch", quick)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        with workdir("watch") as tmp:
            stores, _ = stores_dir(tmp, {"small": 0, "big": max(cfg["sizes"]), "cold": 0})
            try:
                per_new: dict[int, float] = {}
                for n, days in zip(cfg["sizes"], cfg["days"], strict=True):
                    root = stores / f"runs-{n}"
                    build(str(root), n, days, tmp / f"plain-{n}.sqlite3", seed=n)
                    got: list[Row] = []

                    def one(root: Path = root, n: int = n, got: list[Row] = got) -> Any:
                        rows, notes = bench_size(root, n, hook, cfg)
                        got.extend(rows)
                        return rows, notes

                    parts.run(f"{n} runs", one)
                    for r, base in itertools.pairwise(got):
                        if r.figure.startswith("2."):  # the pass, minus its sync
                            per_new[n] = r.median - base.median
                if len(per_new) == 2:
                    small, big = (per_new[n] for n in cfg["sizes"])
                    parts.rows.append(
                        Row(
                            f"3. pass with {cfg['new']} new, beyond its sync: "
                            f"{cfg['sizes'][1]:,} vs {cfg['sizes'][0]:,} runs",
                            big / small,
                            unit="x",
                            target="~1 (grows with the new runs, not the total)",
                            passed=big / small <= 2.0,
                            note=f"{small * 1e3:.1f} ms vs {big * 1e3:.1f} ms: row 2 minus "
                            "its paired sync() (the catalog's sync, in bench_catalog, grows "
                            "with the runs in today's open folder)",
                        )
                    )
            finally:
                shutil.rmtree(stores, ignore_errors=True)
    finally:
        server.shutdown()
        server.server_close()
    parts.notes.append(
        "each pass: policy read from the store, catalog sync, the runs written since the "
        "cursor judged (failed, stale, the check rule), alerts claimed in the store and "
        "posted; ratio = median over rounds of (ours / baseline in the same round)"
    )
    return parts.report()


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
