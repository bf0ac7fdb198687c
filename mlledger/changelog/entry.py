"""One move of a ref in a changelog, its metric effects and check lines, and the
causes a diff's sections count under (the JSON shape is in :mod:`.log`)."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import attrs

from ..checks import CheckReport
from ..diff import Change
from ..records import Artifact, from_iso, to_iso

__all__ = [
    "CAUSES",
    "CAUSE_OF_SECTION",
    "ChangelogEntry",
    "MetricEffect",
]

#: the causes of a change, each with the diff sections it gathers, in the order shown
CAUSES: dict[str, tuple[str, ...]] = {
    "params": ("params",),
    "data": ("inputs",),
    "code": ("code", "git"),
    "packages": ("packages",),
    "environment": ("env_vars", "python", "platform"),
}
#: a diff section to the cause it counts under (metrics and outputs are effects)
CAUSE_OF_SECTION = {sec: cause for cause, secs in CAUSES.items() for sec in secs}


def _finite(v: Any) -> Any:
    """``v``, or None for a float that is not finite (JSON has no NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return _finite_map(v)
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _finite_map(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _finite(x) for k, x in d.items()}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@attrs.frozen
class MetricEffect:
    """A metric of the target's run against the run before: ``old`` is None on a first move."""

    key: str
    old: float | None
    new: float

    @property
    def change(self) -> float | None:
        """``new - old``, or None when there is no old value."""
        if _number(self.old) and _number(self.new):
            return float(self.new) - float(self.old)  # type: ignore[arg-type]
        return None

    @property
    def percent(self) -> float | None:
        """The change in percent of ``|old|`` (None when old is 0 or missing)."""
        d = self.change
        if d is None or not self.old:
            return None
        return d / abs(float(self.old)) * 100.0

    def to_json(self) -> dict[str, Any]:
        return _finite_map(
            {
                "key": self.key,
                "old": self.old,
                "new": self.new,
                "change": self.change,
                "percent": self.percent,
            }
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricEffect:
        return cls(data["key"], data.get("old"), data.get("new"))  # type: ignore[arg-type]


def _change_json(c: Change) -> dict[str, Any]:
    return _finite_map(
        {
            "cause": CAUSE_OF_SECTION.get(c.section, c.section),
            "section": c.section,
            "key": c.key,
            "old": c.old,
            "new": c.new,
            "kind": c.kind,
        }
    )


@attrs.frozen
class ChangelogEntry:
    """One move of a ref, with what changed against the move before it.

    ``action`` is ``set`` or ``rollback`` (``restores``: the entry it brings back;
    ``forced``: the move overrode a protected ref's policy), or ``damaged`` (the entry
    does not parse) or ``missing`` (a gap in the history): then ``problems`` says what is
    wrong and the other fields are empty; a readable entry's ``problems`` are damage
    found around it (a broken seal, a run that cannot be read).  ``run_id`` is the
    target's run (the target itself, or the run that produced the target artifact when
    the ref or the catalog names one); ``before_*`` the move compared against (None on a
    first move).  ``causes`` are the diff's changes in params, data, code, packages and
    environment; ``metrics`` every metric both runs have (all of the run's on a first move);
    ``cost`` and ``currency`` the run's ``resources.cost`` (``before_cost`` the run before's);
    ``checks`` the newest check report recorded for the run (None when never checked).
    """

    seq: int
    action: str
    restores: int | None = None
    forced: bool = False
    at: _dt.datetime | None = None
    user: str | None = None
    host: str | None = None
    message: str | None = None
    target: str | None = None
    run_id: str | None = None
    run_name: str | None = None
    run_status: str | None = None
    artifact: Artifact | None = None
    output: str | None = None
    before_seq: int | None = None
    before_target: str | None = None
    before_run: str | None = None
    causes: tuple[Change, ...] = ()
    metrics: tuple[MetricEffect, ...] = ()
    cost: float | None = None
    currency: str | None = None
    before_cost: float | None = None
    checks: CheckReport | None = None
    problems: tuple[str, ...] = ()

    @property
    def who(self) -> str:
        """``user@host`` of the move ("" for a damaged or missing entry)."""
        if self.user is None and self.host is None:
            return ""
        return f"{self.user or '?'}@{self.host or '?'}"

    @property
    def readable(self) -> bool:
        """Whether the entry itself could be read (not ``damaged`` or ``missing``)."""
        return self.action not in ("damaged", "missing")

    def causes_by(self) -> dict[str, list[Change]]:
        """The causes grouped as :data:`CAUSES` names them (groups with no change left out)."""
        out: dict[str, list[Change]] = {}
        for c in self.causes:
            out.setdefault(CAUSE_OF_SECTION.get(c.section, c.section), []).append(c)
        return {k: out[k] for k in (*CAUSES, *sorted(set(out) - set(CAUSES))) if k in out}

    def to_json(self) -> dict[str, Any]:
        run = None
        if self.run_id is not None:
            run = {"id": self.run_id, "name": self.run_name, "status": self.run_status}
        art = None
        if self.artifact is not None:
            art = {**self.artifact.to_json(), "output": self.output}
        before = None
        if self.before_seq is not None:
            before = {"seq": self.before_seq, "target": self.before_target, "run": self.before_run}
        cost = None
        if self.cost is not None or self.before_cost is not None:
            cost = {"value": self.cost, "currency": self.currency, "before": self.before_cost}
        return {
            "seq": self.seq,
            "action": self.action,
            "restores": self.restores,
            "forced": self.forced,
            "at": None if self.at is None else to_iso(self.at),
            "user": self.user,
            "host": self.host,
            "who": self.who,
            "message": self.message,
            "target": self.target,
            "run": run,
            "artifact": art,
            "before": before,
            "causes": [_change_json(c) for c in self.causes],
            "metrics": [m.to_json() for m in self.metrics],
            "cost": _finite(cost),
            "checks": None if self.checks is None else self.checks.to_json(),
            "problems": list(self.problems),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChangelogEntry:
        run = data.get("run") or {}
        art = data.get("artifact")
        before = data.get("before") or {}
        cost = data.get("cost") or {}
        return cls(
            seq=int(data["seq"]),
            action=str(data["action"]),
            restores=data.get("restores"),
            forced=bool(data.get("forced", False)),
            at=None if data.get("at") is None else from_iso(data["at"]),
            user=data.get("user"),
            host=data.get("host"),
            message=data.get("message"),
            target=data.get("target"),
            run_id=run.get("id"),
            run_name=run.get("name"),
            run_status=run.get("status"),
            artifact=None if art is None else Artifact.from_json(art),
            output=None if art is None else art.get("output"),
            before_seq=before.get("seq"),
            before_target=before.get("target"),
            before_run=before.get("run"),
            causes=tuple(
                Change(c["section"], c["key"], c.get("old"), c.get("new"), kind=c.get("kind"))
                for c in data.get("causes") or ()
            ),
            metrics=tuple(MetricEffect.from_json(m) for m in data.get("metrics") or ()),
            cost=cost.get("value"),
            currency=cost.get("currency"),
            before_cost=cost.get("before"),
            checks=None if not data.get("checks") else CheckReport.from_json(data["checks"]),
            problems=tuple(data.get("problems") or ()),
        )
