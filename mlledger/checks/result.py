"""What a check found: one :class:`CheckResult` per rule, gathered in a :class:`CheckReport`."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import attrs

from ..records import from_iso, to_iso, utcnow

__all__ = ["CheckReport", "CheckResult"]


def _num(v: Any) -> float | None:
    """A JSON number as a float (None, NaN and infinities stay None / as given)."""
    return None if v is None else float(v)


def _json_num(v: float | None) -> float | str | None:
    """A float for JSON: NaN and infinities are not JSON numbers, so they go as text."""
    if v is None or math.isfinite(v):
        return v
    return repr(v)


@attrs.frozen
class CheckResult:
    """How one rule judged one run.

    ``rule`` is the rule's name (``rules.rule_name``), ``field`` what it reads,
    ``value`` the run's value (None when the run has none), ``baseline`` the
    baseline's value (None when the rule has no baseline or it has no value),
    ``change`` is ``value - baseline``, ``ok`` whether every limit held, and
    ``message`` one line saying what moved how far past which limit, or why the
    rule could not be judged.  ``baseline_run`` is the run the baseline came from
    (None for a median or no baseline), ``spec`` the rule's baseline as written.
    """

    rule: str
    field: str
    value: float | None
    baseline: float | None
    change: float | None
    ok: bool
    message: str
    baseline_run: str | None = None
    spec: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "field": self.field,
            "value": _json_num(self.value),
            "baseline": _json_num(self.baseline),
            "change": _json_num(self.change),
            "ok": self.ok,
            "message": self.message,
            "baseline_run": self.baseline_run,
            "spec": self.spec,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            rule=str(data["rule"]),
            field=str(data["field"]),
            value=_num(data.get("value")),
            baseline=_num(data.get("baseline")),
            change=_num(data.get("change")),
            ok=bool(data["ok"]),
            message=str(data.get("message", "")),
            baseline_run=data.get("baseline_run"),
            spec=data.get("spec"),
        )


@attrs.frozen
class CheckReport:
    """Every rule's result on one run, in rule order; ``ok`` when all passed."""

    run_id: str
    results: tuple[CheckResult, ...]
    at: _dt.datetime = attrs.field(factory=utcnow)
    user: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "at": to_iso(self.at),
            "ok": self.ok,
            "results": [r.to_json() for r in self.results],
        }
        if self.user is not None:
            out["user"] = self.user
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckReport:
        return cls(
            run_id=str(data["run_id"]),
            results=tuple(CheckResult.from_json(r) for r in data.get("results", ())),
            at=from_iso(str(data["at"])),
            user=data.get("user"),
        )
