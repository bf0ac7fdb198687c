"""Checks: a baseline, a threshold, an exit code.

A rule (see :mod:`mlledger.rules`) names a numeric field, a baseline and
limits; :func:`run_checks` judges a run by rules into a :class:`CheckReport`,
which is recorded in the store (:func:`write_report`) and read back with
:func:`checks_of`.  :func:`field_value` is the one reading of a run's numbers.
"""

from __future__ import annotations

from .engine import CheckSource, judge, normalize_rules, rules_for, run_checks, selects
from .fields import field_value, metric_points, recent_mean
from .record import checks_of, write_report
from .result import CheckReport, CheckResult

__all__ = [
    "CheckReport",
    "CheckResult",
    "CheckSource",
    "checks_of",
    "field_value",
    "judge",
    "metric_points",
    "normalize_rules",
    "recent_mean",
    "rules_for",
    "run_checks",
    "selects",
    "write_report",
]
