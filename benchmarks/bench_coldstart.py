"""Cold start: what the first use of mlledger costs in a fresh process.

Each round starts fresh Python processes (page cache warm, bytecode compiled once
before the rounds, as an installed package has it) on a local store that exists:

- ``import mlledger``, then the first ``Ledger(url)`` (the target: <= 20 ms), timed
  inside the child, wall clock and CPU;
- then the first ``with ledger.run(): run.log(...)`` and a second one (a warm run);
- the first ``mlledger log`` (click, the catalog opened and synced): the whole
  command's process, wall clock;
- the baseline of every round: a whole ``python -c pass`` process, wall clock.

The 20 ms target is judged on the CPU time of ``Ledger()`` (what an idle core spends;
the wall clock adds waiting for a busy machine), its wall clock is shown beside it.
Run through ``python benchmarks/run.py coldstart`` or alone:
``python benchmarks/bench_coldstart.py [--quick]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, Parts, Row, Timing, workdir

FULL = {"repeat": 11}
QUICK = {"repeat": 5}
#: targets (BENCHMARKS.md): the first Ledger() of a process
FIRST_LEDGER_S = 0.020

#: timed inside a fresh child: import, Ledger(), first run, second run (wall, CPU)
_CHILD = r"""
import sys, time
clock, cpu = time.perf_counter, time.process_time
w0, c0 = clock(), cpu()
import mlledger
w1, c1 = clock(), cpu()
ledger = mlledger.Ledger(sys.argv[1])
w2, c2 = clock(), cpu()
with ledger.run("cold", params={"lr": 0.1, "batch": 32}) as run:
    run.log(step=1, loss=0.5)
w3, c3 = clock(), cpu()
with ledger.run("warm", params={"lr": 0.1, "batch": 32}) as run:
    run.log(step=1, loss=0.5)
w4, c4 = clock(), cpu()
print(w1 - w0, w2 - w1, w3 - w2, w4 - w3, c1 - c0, c2 - c1, c3 - c2, c4 - c3)
"""

_LOG = "from mlledger.cli import main; import sys; sys.argv[0] = 'mlledger'; main()"

_FIGURES = (
    "import mlledger",
    "first Ledger(url) after the import",
    "first `with ledger.run(): run.log(...)`",
    "second run (warm process)",
)


def _env() -> dict[str, str]:
    """This environment with the repo first on the path and bytecode writes allowed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _process(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of a whole child process (its output dropped)."""
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    env = _env()
    url = str(tmp / "store")
    child = [sys.executable, "-c", _CHILD, url]
    log = [sys.executable, "-c", _LOG, "--store", url, "log", "--limit", "20"]
    plain = [sys.executable, "-c", "pass"]
    for argv in (child, log, plain):  # warm-up: the store made, bytecode written
        _process(argv, env, tmp)
    wall = [Timing() for _ in _FIGURES]
    cpu = [Timing() for _ in _FIGURES]
    both, cli, base = Timing(), Timing(), Timing()
    for i in range(cfg["repeat"]):
        steps = ("child", "log", "plain") if i % 2 == 0 else ("plain", "log", "child")
        for step in steps:
            if step == "plain":
                base.samples.append(_process(plain, env, tmp))
            elif step == "log":
                cli.samples.append(_process(log, env, tmp))
            else:
                out = subprocess.run(
                    child, env=env, cwd=tmp, check=True, capture_output=True, text=True
                ).stdout.split()
                got = [float(x) for x in out]
                for k in range(len(_FIGURES)):
                    wall[k].samples.append(got[k])
                    cpu[k].samples.append(got[len(_FIGURES) + k])
                both.samples.append(got[0] + got[1])
    p = base.median
    rows = [
        Row.from_timing(
            f"{_FIGURES[1]}: CPU",
            cpu[1],
            ratio=cpu[1].median / p,
            target=f"<= {FIRST_LEDGER_S * 1e3:g} ms",
            passed=cpu[1].median <= FIRST_LEDGER_S,
        ),
        Row.from_timing(f"{_FIGURES[1]}: wall", wall[1], ratio=wall[1].median / p, target="info"),
        Row.from_timing(
            f"{_FIGURES[0]}: wall",
            wall[0],
            ratio=wall[0].median / p,
            target="info",
            note=f"CPU {cpu[0].median * 1e3:.1f} ms",
        ),
        Row.from_timing("import mlledger + first Ledger(): wall", both, ratio=both.median / p),
    ]
    for k in (2, 3):
        rows.append(
            Row.from_timing(
                f"{_FIGURES[k]}: wall",
                wall[k],
                ratio=wall[k].median / p,
                target="info",
                note=f"CPU {cpu[k].median * 1e3:.1f} ms",
            )
        )
    rows.append(
        Row.from_timing(
            "first `mlledger log` (a whole process)", cli, ratio=cli.median / p, target="info"
        )
    )
    rows.append(Row.from_timing("  baseline: a whole `python -c pass` process", base, ratio=1.0))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    notes = [
        f"{cfg['repeat']} rounds, each a fresh child for the in-process figures, one for "
        "`mlledger log` and one `python -c pass`, their order alternating; ratios are to "
        "the median `python -c pass` process",
        f"local store in {tmp}; page cache warm; bytecode compiled before the rounds "
        f"(PYTHONDONTWRITEBYTECODE dropped for the children); load average {load:.1f} at "
        "the end",
    ]
    return rows, notes


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("coldstart", quick)
    with workdir("coldstart") as tmp:
        parts.run("fresh process", lambda: bench(tmp, cfg))
    return parts.report()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
