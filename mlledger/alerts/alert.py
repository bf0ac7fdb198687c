"""An alert: one fact about one run that the team should hear about.

``kind`` is one of :data:`~mlledger.alerts.sinks.KINDS`: ``failed`` (a run
failed), ``stale`` (a run still marked running went silent: its heartbeat is
stale or its process is gone), ``check`` (a finished run broke one of the
policy's rules) and ``monitor`` (a live monitor run's recent values moved past
a rule's limits).  ``key`` names the fact, not the sighting: every watcher that
sees the same fact makes the same key (``failed:<run id>``,
``check:<run id>:<rule>``, ``monitor:<run id>:<rule>:<breach start>``), and
the key is what a delivery claims in the store (:mod:`~mlledger.alerts.delivery`).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import attrs

from .. import canonical
from ..errors import UsageError
from ..records import from_iso, to_iso, utcnow
from .sinks import KINDS

__all__ = ["Alert", "run_alert"]


@attrs.frozen
class Alert:
    """One alert.  ``details`` holds the run's name, user and host, the store's URL and
    what the kind adds (the error, the rule's value and baseline...)."""

    kind: str
    run_id: str
    rule: str | None
    message: str
    key: str
    at: _dt.datetime
    details: dict[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"an alert's kind is one of {', '.join(KINDS)}, not {self.kind!r}")

    @property
    def run_name(self) -> str | None:
        return self.details.get("run_name")

    def to_json(self) -> dict[str, Any]:
        """The alert as the sinks receive it (sorted keys, plain JSON)."""
        d = self.details
        return {
            "kind": self.kind,
            "key": self.key,
            "run_id": self.run_id,
            "rule": self.rule,
            "message": self.message,
            "at": to_iso(self.at),
            "run_name": d.get("run_name"),
            "user": d.get("user"),
            "host": d.get("host"),
            "store": d.get("store"),
            "details": dict(d),
        }

    def to_bytes(self) -> bytes:
        return canonical.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        return cls(
            kind=data["kind"],
            run_id=data["run_id"],
            rule=data.get("rule"),
            message=data["message"],
            key=data["key"],
            at=from_iso(data["at"]),
            details=dict(data.get("details") or {}),
        )

    def text(self) -> str:
        """One line for people (and for a Slack message)."""
        return f"[mlledger {self.kind}] {self.message}"


def _one_line(text: Any, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _when(value: Any) -> _dt.datetime:
    if isinstance(value, str):
        try:
            return from_iso(value)
        except ValueError:
            pass
    return utcnow()


def run_alert(record: dict[str, Any], store_url: str) -> Alert | None:
    """The ``failed`` or ``stale`` alert a run's record calls for (None: neither)."""
    status = record.get("status")
    rid = str(record["id"])
    name = record.get("name") or "run"
    details: dict[str, Any] = {
        "run_name": record.get("name"),
        "user": record.get("user"),
        "host": record.get("host"),
        "store": store_url,
        "status": status,
        "started_at": record.get("started_at"),
    }
    if record.get("message"):
        details["run_message"] = record["message"]
    if status == "failed":
        err = record.get("error") or {}
        what = ": ".join(str(x) for x in (err.get("type"), err.get("message")) if x)
        details["error"] = {k: err.get(k) for k in ("type", "message") if err.get(k)}
        details["ended_at"] = record.get("ended_at")
        message = f"run {name} ({rid[:12]}) failed on {record.get('host')}" + (
            f": {what}" if what else ""
        )
        at = _when(record.get("ended_at"))
        return Alert("failed", rid, None, _one_line(message), f"failed:{rid}", at, details)
    if status == "incomplete":
        last = record.get("heartbeat") or record.get("started_at")
        details["last_seen"] = last
        details["reason"] = record.get("status_reason")
        message = (
            f"run {name} ({rid[:12]}) on {record.get('host')} went silent: "
            f"no sign of life since {last} and no end"
        )
        return Alert("stale", rid, None, _one_line(message), f"stale:{rid}", _when(last), details)
    return None
