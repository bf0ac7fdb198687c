"""Check rules: a numeric field, a baseline and limits, checked when written.

A rule is a dict (in the policy, or passed to ``ledger.check``)::

    {"name": "accuracy-holds", "runs": "name = 'train'",
     "field": "metrics.accuracy", "baseline": "@model/prod", "max_drop": 0.01}

or the one-line form of ``mlledger check --rule``::

    metrics.accuracy max_drop=0.01 vs @model/prod

``field`` is ``metrics.X`` (``.min``/``.max``/``.last``), ``params.X``,
``resources.X`` or ``cost``.  ``baseline`` is ``@REF``, a run id (or unique
prefix) or ``median:N`` (the median of the last N runs the rule selects, the
judged run excluded).  Limits: ``max_drop``, ``max_rise`` (in the field's
units), ``max_drop_pct``, ``max_rise_pct`` (percent of the baseline: 10 means
10 %), which need a baseline, and ``min``, ``max``, which do not.  ``window``
(``"1h"``, ``"30m"``) or ``last`` (a number of points) judge the mean of a
live ``monitor`` run's recent values instead of the metric's last value.
"""

from __future__ import annotations

import contextlib
import math
import re
import shlex
from typing import Any

from .errors import QueryError, UsageError
from .query import compile_where

__all__ = [
    "LIMITS",
    "RELATIVE",
    "check_baseline",
    "check_rule",
    "parse_duration",
    "parse_rule_text",
    "rule_name",
]

#: every limit a rule may set
LIMITS = ("max_drop", "max_rise", "max_drop_pct", "max_rise_pct", "min", "max")
#: the limits measured against a baseline
RELATIVE = ("max_drop", "max_rise", "max_drop_pct", "max_rise_pct")
_KEYS = {"name", "runs", "field", "baseline", "window", "last", "description", *LIMITS}
_FIELD_RE = re.compile(r"(metrics|params|resources)\.[A-Za-z0-9_\-./]+|cost")
_DURATION_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*(s|m|h|d|w)\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MEDIAN_RE = re.compile(r"median:([0-9]+)")
_REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
_RUN_RE = re.compile(r"[0-9A-Za-z]{4,26}")


def parse_duration(text: Any, what: str = "a duration") -> float:
    """Seconds in ``"90s"``, ``"30m"``, ``"1h"``, ``"7d"``, ``"2w"`` (or a number of seconds)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text > 0 and math.isfinite(text):
            return float(text)
    elif isinstance(text, str) and (m := _DURATION_RE.fullmatch(text)) and float(m[1]) > 0:
        return float(m[1]) * _UNITS[m[2]]
    raise UsageError(f"{what} is a positive number with a unit (90s, 30m, 1h, 7d), not {text!r}")


def check_baseline(baseline: Any, where: str = "baseline") -> str:
    """A baseline as written (``@REF``, a run id or prefix, ``median:N``), stripped; UsageError
    naming ``where`` otherwise.  Whether the ref or run exists is asked when it is used."""
    if not isinstance(baseline, str) or not baseline.strip():
        raise UsageError(f"{where}: baseline is '@REF', a run id or 'median:N', not {baseline!r}")
    spec = str(baseline).strip()
    if spec.startswith("median"):
        m = _MEDIAN_RE.fullmatch(spec)
        if m is None or int(m[1]) < 1:
            raise UsageError(
                f"{where}: baseline {spec!r} is 'median:N' with N a number of runs (median:10)"
            )
    elif spec.startswith("@"):
        if not _REF_RE.fullmatch(spec[1:]):
            raise UsageError(
                f"{where}: baseline {spec!r} is not '@REF': write a ref name such as "
                "'@model/prod'"
            )
    elif not _RUN_RE.fullmatch(spec):
        raise UsageError(
            f"{where}: baseline {spec!r} is '@REF' (a ref such as @model/prod), a run id "
            "(or a prefix of one) or 'median:N'"
        )
    return spec


def rule_name(rule: dict[str, Any]) -> str:
    """A rule's name: its own, else ``field`` and its limits (``metrics.acc max_drop=0.01``)."""
    if rule.get("name"):
        return str(rule["name"])
    limits = " ".join(f"{k}={rule[k]:g}" for k in LIMITS if k in rule)
    return f"{rule['field']} {limits}".strip()


def check_rule(rule: Any, i: int = 0) -> dict[str, Any]:
    """``rule`` checked and normalized (the one-line form parsed); UsageError naming the
    rule and what to write otherwise.  ``i`` numbers the rule in messages."""
    where = f"check rule #{i + 1}"
    if isinstance(rule, str):
        rule = parse_rule_text(rule)
    if not isinstance(rule, dict):
        raise UsageError(
            f"{where} is a dict such as {{'field': 'metrics.accuracy', 'baseline': "
            f"'@model/prod', 'max_drop': 0.01}}, not {type(rule).__qualname__}"
        )
    if isinstance(rule.get("name"), str) and rule["name"]:
        where = f"check rule {rule['name']!r}"
    unknown = sorted(set(rule) - _KEYS)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(_KEYS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(
            f"{where} has the unknown key {unknown[0]!r}{hint}: a rule's keys are "
            f"{', '.join(sorted(_KEYS))}"
        )
    out: dict[str, Any] = {}
    field = rule.get("field")
    if not isinstance(field, str) or not _FIELD_RE.fullmatch(field):
        raise UsageError(
            f"{where} needs a numeric 'field': metrics.X, params.X, resources.X or cost "
            f"(got {field!r})"
        )
    out["field"] = field
    for key in ("name", "description"):
        if key in rule and rule[key] is not None:
            if not isinstance(rule[key], str):
                raise UsageError(f"{where}: {key} is a string, not {rule[key]!r}")
            out[key] = rule[key]
    if rule.get("runs") is not None:
        runs = rule["runs"]
        if not isinstance(runs, str):
            raise UsageError(f"{where}: 'runs' is a where clause such as \"name = 'train'\"")
        try:
            compile_where(runs)
        except QueryError as e:
            first = str(e).splitlines()[0] if str(e) else "a syntax error"
            raise UsageError(f"{where}: 'runs' does not parse: {first}") from e
        out["runs"] = runs
    for key in LIMITS:
        if key not in rule or rule[key] is None:
            continue
        v = rule[key]
        if isinstance(v, str):
            with contextlib.suppress(ValueError):
                v = float(v)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise UsageError(
                f"{where}: {key} is a number, not {rule[key]!r} (for example {key}=0.01)"
            )
        if key in RELATIVE and v < 0:
            raise UsageError(f"{where}: {key} is a size of change, 0 or more, not {v}")
        out[key] = v
    if not any(k in out for k in LIMITS):
        raise UsageError(f"{where} sets no limit: give one of {', '.join(LIMITS)}")
    baseline = rule.get("baseline")
    if baseline is not None:
        out["baseline"] = check_baseline(baseline, where)
    if rule.get("window") is not None and rule.get("last") is not None:
        raise UsageError(f"{where}: give window or last, not both")
    if rule.get("window") is not None:
        parse_duration(rule["window"], f"{where}: window")
        out["window"] = rule["window"]
    if rule.get("last") is not None:
        last = rule["last"]
        if isinstance(last, bool) or not isinstance(last, int) or last < 1:
            raise UsageError(f"{where}: last is a number of points, 1 or more, not {last!r}")
        out["last"] = last
    if ("window" in out or "last" in out) and not field.startswith("metrics."):
        raise UsageError(f"{where}: window and last judge a metric; {field} is not one")
    live = "window" in out or "last" in out  # a monitor run brings its own baseline
    if "baseline" not in out and not live and any(k in out for k in RELATIVE):
        raise UsageError(
            f"{where}: {', '.join(k for k in RELATIVE if k in out)} is measured against a "
            "baseline: add baseline='@model/prod' (a ref), a run id or 'median:10'"
        )
    return out


def parse_rule_text(text: str) -> dict[str, Any]:
    """The one-line form: ``FIELD KEY=VALUE... [vs BASELINE]`` (``runs=`` and ``name=``
    take a quoted value: ``runs="name = 'train'"``)."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise UsageError(f"check rule {text!r} does not parse ({e})") from e
    if not words:
        raise UsageError("a check rule is FIELD KEY=VALUE... [vs BASELINE], not empty")
    rule: dict[str, Any] = {"field": words[0]}
    rest = words[1:]
    while rest:
        word = rest.pop(0)
        if word == "vs":
            if not rest:
                raise UsageError(f"check rule {text!r}: 'vs' is followed by a baseline")
            rule["baseline"] = rest.pop(0)
            continue
        key, eq, value = word.partition("=")
        if not eq:
            raise UsageError(
                f"check rule {text!r}: {word!r} is not KEY=VALUE; write for example "
                "'metrics.accuracy max_drop=0.01 vs @model/prod'"
            )
        rule[key] = int(value) if key == "last" and value.isdigit() else value
    return rule
