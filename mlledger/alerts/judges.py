"""The ``check`` and ``monitor`` kinds: runs judged by the policy's rules.

A finished run is judged by the policy's ``checks`` that select it (its
``runs`` clause) and judge a value (no ``window``/``last``); each rule it
breaks is one ``check`` alert, keyed ``check:<run id>:<rule>``.  A live
``monitor`` run is judged on every pass by the rules with a ``window`` or
``last``: the mean of its recent points against its baseline.  A breach is
one ``monitor`` alert per stretch of data the rule looks at, keyed
``monitor:<run id>:<rule>:<breach start>``, where the breach start is the
start of the window-long slice of time (``window``) or of the ``last``-long
run of points holding the newest point: every watcher computes the same key
from the same data, so a breach that lasts is said again once per window,
never once per pass or per watcher.

The watcher does not record these checks in the store (``mlledger check``
does): several watchers would each record their own copy.  A rule whose
baseline ref or run does not exist is warned about and skipped, so one
deleted ref never stops the other alerts.
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from typing import TYPE_CHECKING, Any

from ..checks import CheckSource, metric_points, rules_for, run_checks
from ..checks.result import CheckResult
from ..errors import LedgerWarning, NotFoundError
from ..records import from_iso, to_iso, utcnow
from ..rules import parse_duration
from .alert import Alert

if TYPE_CHECKING:
    from ..runs import Run

__all__ = ["Judges"]


def _live(rule: dict[str, Any]) -> bool:
    return "window" in rule or "last" in rule


class Judges:
    """``finished`` and ``monitor``: a run record and the policy -> alerts."""

    def __init__(self, source: CheckSource) -> None:
        self.source = source

    def _results(
        self, run: Run, policy: dict[str, Any], *, live: bool
    ) -> list[tuple[dict[str, Any], CheckResult]]:
        out: list[tuple[dict[str, Any], CheckResult]] = []
        for rule in rules_for(self.source, policy, run):
            if _live(rule) != live:
                continue
            try:
                (result,) = run_checks(self.source, run, [rule]).results
            except NotFoundError as e:
                warnings.warn(f"mlledger watch: rule skipped: {e}", LedgerWarning, stacklevel=2)
                continue
            if not result.ok:
                out.append((rule, result))
        return out

    def _alert(
        self, kind: str, rec: dict[str, Any], result: CheckResult, key: str, at: Any
    ) -> Alert:
        rid = str(rec["id"])
        details = {
            "run_name": rec.get("name"),
            "user": rec.get("user"),
            "host": rec.get("host"),
            "store": self.source.store.url,
            "status": rec.get("status"),
            "check": result.to_json(),
        }
        name = rec.get("name") or "run"
        message = f"run {name} ({rid[:12]}) broke {result.rule}: {result.message}"
        return Alert(kind, rid, result.rule, " ".join(message.split()), key, at, details)

    def finished(self, rec: dict[str, Any], policy: dict[str, Any]) -> list[Alert]:
        """The ``check`` alerts of a finished run."""
        if not policy.get("checks"):
            return []
        at = from_iso(rec["ended_at"]) if rec.get("ended_at") else utcnow()
        rid = rec["id"]
        run = self.source.catalog.make_run(rec)
        return [
            self._alert("check", rec, r, f"check:{rid}:{r.rule}", at)
            for _rule, r in self._results(run, policy, live=False)
        ]

    def monitor(self, rec: dict[str, Any], policy: dict[str, Any]) -> list[Alert]:
        """The ``monitor`` alerts of a live monitor run."""
        if not any(_live(r) for r in policy.get("checks") or ()):
            return []
        try:  # read fresh: the index holds the record as it was when the run started
            run = self.source.get(str(rec["id"]))
        except NotFoundError:
            return []
        if run.status != "running":
            return []  # ended or went silent since the sync: the next pass says so
        out = []
        for rule, r in self._results(run, policy, live=True):
            start = self._breach_start(run, rule)
            if start is None:
                continue
            key = f"monitor:{rec['id']}:{r.rule}:{start}"
            out.append(self._alert("monitor", rec, r, key, utcnow()))
        return out

    def _breach_start(self, run: Run, rule: dict[str, Any]) -> str | None:
        """Where the slice of data holding the newest point starts: a time for ``window``
        rules, a point number for ``last`` ones (None: no point)."""
        points = [p for p in metric_points(run, rule["field"]) if not math.isnan(p[1])]
        if not points:
            return None
        if "last" in rule:
            n = int(rule["last"])
            return f"point-{(len(points) - 1) // n * n}"
        span = parse_duration(rule["window"], "window")
        newest = max(t for _s, _v, t in points)
        start = math.floor(newest / span) * span
        return to_iso(_dt.datetime.fromtimestamp(start, _dt.timezone.utc))
