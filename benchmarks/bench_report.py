"""Report benchmarks: write the HTML report of 100 and 10,000 runs (1,000 metric points
each), its size, and the first paint of its table in headless Chromium.

The ledgers are built by really running the runs through ``ledger.run()`` and
``run.log`` in a child process (ids spread over past days, as in bench_catalog).
Baselines in the same rounds (A B A B): for the write, reading the same runs'
records from the catalog and dumping them as JSON to a file (what any report must
at least do); for the first paint, a page of the same bytes with no script (what
reading the file costs the browser).  Run through ``python benchmarks/run.py
report [--quick]`` or alone: ``python benchmarks/bench_report.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import REPO, Parts, Row, ab, workdir

FULL = {"small": 100, "big": 10_000, "points": 1_000, "days": 30, "repeat": 5, "paint": 7}
QUICK = {"small": 100, "big": 1_000, "points": 200, "days": 5, "repeat": 5, "paint": 5}

#: targets (BENCHMARKS.md), absolute
WRITE_BIG_S = 5.0
SIZE_BIG = 10 * 1024 * 1024
SIZE_SMALL = 1024 * 1024
PAINT_S = 1.0

_BUILD_CHILD = r"""
import json, math, random, sys, time, types
import mlledger
from mlledger import ids

cfg = json.loads(sys.argv[1])
ledger = mlledger.Ledger(cfg["url"], start_delay=3600, capture_files=False)
rng = random.Random(cfg["seed"])
n, pts, span = cfg["n"], cfg["points"], cfg["days"] * 86_400_000
end = time.time_ns() // 1_000_000
clock = [0]
real_time = ids.time
ids.time = types.SimpleNamespace(time_ns=lambda: clock[0])
t0 = time.perf_counter()
try:
    for k in range(n):
        clock[0] = (end - span + k * span // n) * 1_000_000
        lr = 10 ** rng.uniform(-4, -1)
        params = {"lr": lr, "batch": rng.choice((16, 32, 64)), "model": rng.choice(("a", "b")),
                  "seed": k}
        with ledger.run(rng.choice(("train", "eval")), params=params,
                        message=f"sweep point {k}") as run:
            scale = rng.uniform(0.5, 2)
            for i in range(pts):
                loss = scale * math.exp(-i / (pts / 4)) + rng.random() * 0.05
                run.log(step=i, loss=loss, acc=1 - loss / 3)
finally:
    ids.time = real_time
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0}))
"""

_PAINT = r"""
import json, sys
from playwright.sync_api import sync_playwright
cfg = json.loads(sys.argv[1])
out = {"ours": [], "plain": []}
with sync_playwright() as p:
    b = p.chromium.launch(executable_path=cfg["chromium"], args=["--no-sandbox"])
    def paint(url, selector):
        ctx = b.new_context(viewport={"width": 1280, "height": 800})
        asked = []
        def route(r):
            if r.request.url == url:
                r.continue_()
            else:
                asked.append(r.request.url)
                r.abort()
        ctx.route("**/*", route)
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_selector(selector, state="attached")
        # first contentful paint, from navigation start: the table is drawn before it
        t = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
        rows = page.evaluate("document.querySelectorAll('#runs-body tr').length")
        ctx.close()
        assert not asked, asked
        return t / 1000, rows
    paint(cfg["ours"], "#runs-body tr"); paint(cfg["plain"], "body")  # warm-up
    for i in range(cfg["repeat"]):
        pair = [("ours", cfg["ours"], "#runs-body tr"), ("plain", cfg["plain"], "body")]
        for side, url, sel in (pair if i % 2 == 0 else pair[::-1]):
            t, rows = paint(url, sel)
            out[side].append(t)
            if side == "ours":
                out["rows"] = rows
    b.close()
print("RESULT " + json.dumps(out))
"""


def _child(code: str, cfg: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(cfg)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return out


def build(url: str, n: int, points: int, days: int, seed: int) -> float:
    """Write ``n`` runs of ``points`` metric points to ``url`` in a child; returns seconds."""
    cfg = {"url": url, "n": n, "points": points, "days": days, "seed": seed}
    seconds: float = _child(_BUILD_CHILD, cfg)["seconds"]
    return seconds


def bench_write(root: Path, out: Path, n: int, repeat: int, size_target: int) -> list[Row]:
    """Write the report of ``n`` runs, against dumping their records as JSON."""
    import mlledger

    ledger = mlledger.Ledger(str(root))
    ledger.sync()
    dest = out / f"report-{n}.html"
    plain = out / f"plain-{n}.json"

    def ours() -> None:
        ledger.report(dest)

    def baseline() -> None:
        with plain.open("w") as f:
            json.dump([r.record for r in ledger.runs()], f)

    res = ab(ours, baseline, repeat=repeat)
    size = dest.stat().st_size
    rows = Row.from_ab(
        f"report of {n:,} runs: write",
        res,
        "read the records, json.dump them",
        target=f"<= {WRITE_BIG_S:g} s" if n > 1000 else "",
    )
    if n > 1000:
        rows[0].passed = res.a.median <= WRITE_BIG_S
    rows.append(
        Row(
            f"report of {n:,} runs: size",
            size / 2**20,
            unit="MiB",
            target=f"<= {size_target / 2**20:g} MiB",
            passed=size <= size_target,
            note=f"records as JSON: {plain.stat().st_size / 2**20:.1f} MiB",
        )
    )
    return rows


def bench_paint(page: Path, out: Path, repeat: int) -> tuple[list[Row], list[str]]:
    """First paint of the table in headless Chromium, against a script-less page of the
    same bytes."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
    except ImportError:
        return [], ["first paint skipped: Playwright's Python package is not installed"]
    if chromium is None:
        return [], ["first paint skipped: no system chromium (apt-get install chromium)"]
    html = page.read_text(encoding="utf-8")
    plain = out / "plain-page.html"
    # the same bytes, the code cut out: what parsing the file costs by itself
    start = html.index("<script>\n", html.index('id="data"'))
    plain.write_text(html[:start] + "</body></html>", encoding="utf-8")
    cfg = {
        "chromium": chromium,
        "ours": page.as_uri(),
        "plain": plain.as_uri(),
        "repeat": repeat,
    }
    got = _child(_PAINT, cfg)
    ours, base = sorted(got["ours"]), sorted(got["plain"])
    med = ours[len(ours) // 2]
    bmed = base[len(base) // 2]
    row = Row(
        "  first paint of the table",
        med,
        ours[0],
        ours[-1],
        ratio=med / bmed,
        target=f"<= {PAINT_S:g} s",
        passed=med <= PAINT_S,
        note=f"{got['rows']} rows drawn (one page)",
    )
    base_row = Row("  baseline: the same file, no script", bmed, base[0], base[-1], ratio=1.0)
    return [row, base_row], []


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("report", quick)
    with workdir("report") as tmp:
        built = {}
        for key, seed in (("small", 1), ("big", 2)):
            built[key] = build(str(tmp / key), cfg[key], cfg["points"], cfg["days"], seed)
        parts.notes.append(
            f"ledgers: {cfg['small']:,} and {cfg['big']:,} runs x {cfg['points']:,} points of 2 "
            f"metrics, local store, built in {built['small']:.0f} s and {built['big']:.0f} s; "
            "page cache warm"
        )

        def small() -> tuple[list[Row], list[str]]:
            return bench_write(tmp / "small", tmp, cfg["small"], cfg["repeat"], SIZE_SMALL), []

        def big() -> tuple[list[Row], list[str]]:
            return bench_write(tmp / "big", tmp, cfg["big"], cfg["repeat"], SIZE_BIG), []

        def paint() -> tuple[list[Row], list[str]]:
            return bench_paint(tmp / f"report-{cfg['big']}.html", tmp, cfg["paint"])

        parts.run("small", small)
        parts.run("big", big)
        parts.run("paint", paint)
    parts.notes.append(
        "curves are embedded for the first 200 runs (LTTB, 200 points a curve, values to 5 "
        "significant digits); every run is a table row"
    )
    return parts.report()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
