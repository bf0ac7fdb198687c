"""The numbers a rule reads from a run: ``field_value`` and a metric's recent mean.

Reused by everything that shows a run's figures against another's (the
changelog, the report, watching): one reading of ``metrics.X``, ``params.X``,
``resources.X`` and ``cost``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..rules import parse_duration

if TYPE_CHECKING:
    from ..runs import Run

__all__ = ["field_value", "metric_points", "recent_mean"]

_STATS = ("last", "min", "max")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _metric(run: Run, key: str) -> float | None:
    stats = run.metric_stats
    stat = "last"
    if key not in stats:
        base, _, suffix = key.rpartition(".")
        if suffix in _STATS and base:
            key, stat = base, suffix
    st = stats.get(key)
    if st is not None:
        return float(getattr(st, stat))
    if run.status != "running":
        return None
    # a live run read from the store has no summaries yet: its flushed points do
    values = [v for _s, v, _t in run.metric_history(key) if not math.isnan(v)]
    if not values:
        return None
    return {"last": values[-1], "min": min(values), "max": max(values)}[stat]


def _dig(value: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def field_value(run: Run, field: str) -> float | None:
    """The number ``field`` names in ``run``, or None when the run has none.

    ``metrics.X`` is the metric's last value (``metrics.X.min``, ``.max``, ``.last``);
    ``params.X`` a numeric param (``params.cfg.X`` reaches into a dict param);
    ``resources.X`` a resource figure (``wall_s``, ``peak_rss_bytes``...); ``cost``
    the run's cost (``resources.cost``, set when the policy has rates).
    """
    if field == "cost":
        return _number(run.resources.get("cost"))
    section, _, key = field.partition(".")
    if not key:
        return None
    if section == "metrics":
        return _metric(run, key)
    if section == "params":
        params = run.params
        if key in params:
            return _number(params[key])
        return _number(_dig(params, key.split(".")))
    if section == "resources":
        return _number(run.resources.get(key))
    return None


def metric_points(run: Run, field: str) -> list[tuple[int, float, float]]:
    """Every ``(step, value, time)`` of the metric ``field`` (``metrics.X``) names."""
    key = field.partition(".")[2]
    points = run.metric_history(key)
    if not points and key.rpartition(".")[2] in _STATS:
        points = run.metric_history(key.rpartition(".")[0])
    return points


def recent_mean(
    run: Run, field: str, *, window: Any = None, last: int | None = None
) -> tuple[float | None, int]:
    """``(mean, points)`` of the metric's recent values: the last ``last`` points, or
    those logged within ``window`` (``"1h"``) before the newest one.  NaN is left out;
    ``(None, 0)`` when there is no point."""
    points = [(s, v, t) for s, v, t in metric_points(run, field) if not math.isnan(v)]
    if not points:
        return None, 0
    if last is not None:
        chosen = points[-last:]
    else:
        span = parse_duration(window, "window")
        newest = max(t for _s, _v, t in points)
        chosen = [p for p in points if p[2] >= newest - span]
    return sum(v for _s, v, _t in chosen) / len(chosen), len(chosen)
