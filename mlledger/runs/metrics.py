"""A run's metrics between ``run.log`` and a chunk entry: rows folded into per-metric
columns, the summaries (last, min, max, last step, count) kept up to date, and the
columns written as one chunk document."""

from __future__ import annotations

import math
from typing import Any

from .encodable import safe_text

__all__ = ["Column", "SampleStep", "chunk_doc", "fold_rows", "fold_stats"]


class SampleStep(int):
    """The step of a row the sampling thread logged: the row is recorded at it, and the
    run's running step (what ``run.log()`` without a step counts from) does not move."""

    __slots__ = ()

#: a metric's buffered steps, values and times
Column = tuple[list[int], list[float], list[float]]


def fold_stats(
    cols: dict[str, Column], folded: dict[str, int], stats: dict[str, list[Any]]
) -> None:
    """Update each metric's summary in ``stats`` with the values of ``cols`` not folded
    yet (``folded`` counts those folded, per metric)."""
    for k, (steps, vals, _times) in cols.items():
        done = folded.get(k, 0)
        if done == len(vals):
            continue
        folded[k] = len(vals)
        new = vals[done:] if done else vals
        if math.isnan(new[0]):  # a NaN first would win every comparison min/max makes
            real = [v for v in new if not math.isnan(v)]
            lo, hi = (min(real), max(real)) if real else (new[0], new[0])
        else:
            lo, hi = min(new), max(new)
        st = stats.get(k)
        if st is None:
            stats[k] = [new[-1], lo, hi, steps[-1], len(new)]
        else:
            st[0] = new[-1]
            if lo < st[1] or st[1] != st[1]:
                st[1] = lo
            if hi > st[2] or st[2] != st[2]:
                st[2] = hi
            st[3] = steps[-1]
            st[4] += len(new)


def fold_rows(
    rows: list[tuple[Any, float, dict[str, Any]]],
    cols: dict[str, Column],
    step: int,
    stats: dict[str, list[Any]],
) -> tuple[int, list[str]]:
    """Row by row into ``cols``: any mix of metrics and steps.  Returns the last step and
    the warnings (bad steps and values)."""
    bad: list[str] = []
    for s, t, values in rows:
        if s is None:
            step += 1
        elif type(s) is int:
            step = s
        elif type(s) is SampleStep:  # the sampler's row: at its own step, this one unmoved
            bad += fold_rows([(None, t, values)], cols, int(s) - 1, stats)[1]
            continue
        else:
            try:
                step = int(s)
            except (TypeError, ValueError, OverflowError):
                bad.append(f"metric step {s!r} is not an integer; used {step + 1}")
                step += 1
        for k, raw in values.items():
            v = raw
            if type(v) is not float:
                try:
                    v = float(raw)
                except (TypeError, ValueError, OverflowError):
                    bad.append(f"metric {k}={raw!r} is not a number; not recorded")
                    continue
            col = cols.get(k)
            if col is None and not k.isascii() and safe_text(k) is not k:
                col = _escaped_column(k, cols, stats, bad)
            if col is None:
                col = cols[k] = ([], [], [])
            col[0].append(step)
            col[1].append(v)
            col[2].append(t)
    return step, bad


def _escaped_column(
    key: str, cols: dict[str, Column], stats: dict[str, list[Any]], bad: list[str]
) -> Column:
    """The column of a metric whose name has no UTF-8 form, under its escaped name."""
    name = safe_text(key)
    col = cols.get(name)
    if col is None:
        if name not in stats:
            bad.append(f"metric name '{name}' is not valid Unicode; escaped")
        col = cols[name] = ([], [], [])
    return col


def chunk_doc(cols: dict[str, Column]) -> dict[str, Any]:
    """The chunk document of some folded columns."""
    # times as integer milliseconds after t0: a third of the bytes and of the encoding time
    t0 = min([c[2][0] for c in cols.values()])
    doc = {
        k: {"step": c[0], "value": c[1], "ms": [int((t - t0) * 1000) for t in c[2]]}
        for k, c in cols.items()
    }
    return {"t0": t0, "metrics": doc}
