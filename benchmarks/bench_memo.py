"""Memo benchmarks: a memoized hit and miss on a call whose argument is a large numpy array.

- **hit** (``tracked(cache=True)``, the call answered from the ledger) against one
  xxh3-128 pass over the array's buffer, the least any content-keyed cache must
  pay, and against ``joblib.Memory``'s hit on the same call (its own store);
- **miss** (a new value of a scalar param each round, the array already stored)
  against the same call tracked without ``cache``: what memoizing adds to a call
  that runs (the key, one failed read, the memo entry) must not exceed what the
  tracked call itself costs (ratio <= 2).

The function body is trivial, so the figures are the caches' own cost.  The store
is a local folder in a fresh temp dir, page cache warm.  joblib is the anchor of
the second row (``pip install joblib``, the ``bench`` extra); without it that row
is skipped with a note.  Run through ``python benchmarks/run.py memo`` or alone:
``python benchmarks/bench_memo.py [--quick]``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

from _common import Parts, Row, ab, fs_type, workdir

FULL = {"mib": 100, "repeat": 9}
QUICK = {"mib": 100, "repeat": 5}  # the target is for 100 MB: fewer rounds only

#: targets (BENCHMARKS.md)
HIT_VS_HASH = 1.5
HIT_VS_JOBLIB = 0.2
#: a miss adds no more than a normal tracked call: at most twice that call
MISS_VS_TRACKED = 2.0


def _array(mib: int) -> Any:
    import numpy as np

    return np.random.default_rng(0).random(mib * 1024 * 1024 // 8)


def bench_hit(tmp: Path, cfg: dict[str, Any]) -> tuple[list[Row], list[str]]:
    import xxhash

    import mlledger

    ledger = mlledger.Ledger(str(tmp / "store"))
    a = _array(cfg["mib"])

    @ledger.tracked(cache=True)
    def first_value(a: Any, scale: float = 2.0) -> float:
        return float(a[0]) * scale

    first_value(a)  # the run the hits reuse
    expected = first_value(a)
    runs = ledger.runs(status="cached")
    if not runs or first_value(a) != expected:
        raise RuntimeError("the memoized call did not hit: nothing to measure")

    def one_pass() -> None:
        xxhash.xxh3_128(a.data).hexdigest()

    res = ab(lambda: first_value(a), one_pass, repeat=cfg["repeat"])
    label = f"{cfg['mib']} MiB"
    rows = Row.from_ab(
        f"1. memoized hit, {label} numpy argument",
        res,
        "one xxh3-128 pass over the buffer",
        max_ratio=HIT_VS_HASH,
    )
    notes = [f"store: local folder ({fs_type(tmp)}), page cache warm; function body trivial"]
    try:
        import joblib
    except ImportError as e:
        notes.append(f"2. joblib.Memory hit skipped: {e} (pip install joblib)")
        return rows, notes
    memory = joblib.Memory(str(tmp / "joblib"), verbose=0)

    def plain_first_value(a: Any, scale: float = 2.0) -> float:
        return float(a[0]) * scale

    cached = memory.cache(plain_first_value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joblib's note that it persists a large input
        cached(a)
    res = ab(lambda: first_value(a), lambda: cached(a), repeat=cfg["repeat"])
    rows += Row.from_ab(
        f"2. memoized hit, {label} numpy argument",
        res,
        f"joblib.Memory {joblib.__version__} hit on the same call",
        max_ratio=HIT_VS_JOBLIB,
    )
    return rows, notes


def bench_miss(tmp: Path, cfg: dict[str, Any]) -> tuple[list[Row], list[str]]:
    import mlledger

    ledger = mlledger.Ledger(str(tmp / "store-miss"))
    a = _array(cfg["mib"])
    scales = iter(range(1, 1_000_000))

    def body(a: Any, scale: float) -> float:
        return float(a[0]) * scale

    memoized = ledger.tracked(cache=True, name="memoized")(body)
    tracked = ledger.tracked(name="tracked")(body)
    memoized(a, 0.5)  # the array is stored once: later rounds find it
    tracked(a, 0.5)
    res = ab(
        lambda: memoized(a, next(scales)),
        lambda: tracked(a, next(scales)),
        repeat=cfg["repeat"],
    )
    if ledger.runs(status="cached"):
        raise RuntimeError("a call meant to miss was answered from the memo")
    rows = Row.from_ab(
        f"3. memoized miss, {cfg['mib']} MiB numpy argument, new scalar param",
        res,
        "the same call tracked without cache",
        max_ratio=MISS_VS_TRACKED,
    )
    return rows, []


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("memo", quick)
    with workdir("memo") as tmp:
        parts.run("hit", lambda: bench_hit(tmp, cfg))
        parts.run("miss", lambda: bench_miss(tmp, cfg))
    parts.notes.append(
        "ratio = median over rounds of (ours / baseline in the same round); cpu ratio = the "
        "same for CPU time"
    )
    return parts.report()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
