"""What a run costs: the policy's ``rates`` applied to its resources.

``rates`` (in the policy)::

    {"currency": "USD", "instance_hour": 1.2, "cpu_hour": 0.04,
     "gpu_hour": {"default": 2.5, "H100": 4.0}, "storage_gb_month": 0.023}

A run's cost is its wall hours x ``instance_hour`` + CPU hours (user and
system) x ``cpu_hour`` + GPU hours (wall hours x ``gpu_count``) x the rate of
its GPU model (``gpu_hour`` a number: every model; a dict: by model name, a
model it does not name at ``default``).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from .errors import UsageError

__all__ = ["RATE_KEYS", "check_rates", "priced", "run_cost"]

#: the keys of ``rates`` (``gpu_hour`` may also be a dict by GPU model)
RATE_KEYS = ("currency", "instance_hour", "cpu_hour", "gpu_hour", "storage_gb_month")


def _rate(key: str, v: Any) -> float:
    if isinstance(v, str):
        with contextlib.suppress(ValueError):
            v = float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise UsageError(f"rates: {key} is a price, a number 0 or more, not {v!r}")
    return float(v)


def check_rates(rates: Any) -> dict[str, Any]:
    """``rates`` checked and normalized; UsageError naming the bad key otherwise."""
    if not isinstance(rates, dict):
        raise UsageError(
            "rates is a dict such as {'currency': 'USD', 'instance_hour': 1.2, "
            f"'gpu_hour': {{'default': 2.5, 'H100': 4.0}}}}, not {rates!r}"
        )
    out: dict[str, Any] = {}
    for key, v in rates.items():
        if key not in RATE_KEYS:
            raise UsageError(f"rates: unknown key {key!r}; the keys are {', '.join(RATE_KEYS)}")
        if key == "currency":
            if not isinstance(v, str) or not v.strip():
                raise UsageError(f"rates: currency is a name such as 'USD', not {v!r}")
            out[key] = v.strip()
        elif key == "gpu_hour" and isinstance(v, dict):
            out[key] = {str(m): _rate(f"gpu_hour[{m!r}]", r) for m, r in v.items()}
        else:
            out[key] = _rate(key, v)
    return out


def _gpu_rate(rates: dict[str, Any], model: str | None) -> float:
    g = rates.get("gpu_hour")
    if g is None:
        return 0.0
    if not isinstance(g, dict):
        return float(g)
    if model:
        for name, r in g.items():  # "H100" matches "NVIDIA H100 80GB HBM3"
            if name != "default" and (name == model or name.lower() in model.lower()):
                return float(r)
    return float(g.get("default", 0.0))


def run_cost(resources: dict[str, Any], rates: dict[str, Any]) -> float | None:
    """The cost of a run with these ``resources`` at these ``rates`` (None: no rate applies
    or the run has no wall time)."""
    wall = resources.get("wall_s")
    if not isinstance(wall, (int, float)) or not rates:
        return None
    priced = [k for k in ("instance_hour", "cpu_hour", "gpu_hour") if k in rates]
    if not priced:
        return None
    hours = float(wall) / 3600
    cost = hours * float(rates.get("instance_hour", 0.0))
    cpu = float(resources.get("cpu_user_s") or 0) + float(resources.get("cpu_system_s") or 0)
    cost += cpu / 3600 * float(rates.get("cpu_hour", 0.0))
    gpus = resources.get("gpu_count") or 0
    if isinstance(gpus, (int, float)) and gpus > 0:
        cost += hours * float(gpus) * _gpu_rate(rates, resources.get("gpu_model"))
    return round(cost, 6)


def priced(resources: dict[str, Any], rates: dict[str, Any]) -> dict[str, Any]:
    """``{"cost": ..., "currency": ...}`` for a run's ``resources`` at ``rates`` (what a
    run's end adds to its resources); ``{}`` when no rate applies."""
    cost = run_cost(resources, rates)
    if cost is None:
        return {}
    out: dict[str, Any] = {"cost": cost}
    if rates.get("currency"):
        out["currency"] = str(rates["currency"])
    return out
