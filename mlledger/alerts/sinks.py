"""Alert sinks, as the policy's ``alerts`` holds them, checked when set.

A sink is a dict::

    {"type": "webhook", "url": "$SLACK_URL", "format": "json" | "slack"}
    {"type": "command", "command": "notify.sh --team ml"}
    {"type": "email", "to": ["ml@example.com"], "smtp": "host:port",
     "user": "$SMTP_USER", "password": "$SMTP_PASSWORD"}

each optionally with ``"name"`` and ``"on"`` (the alert kinds it takes:
``check``, ``failed``, ``stale``, ``monitor``; all when absent).  Secrets
never go into the policy: a webhook's URL and an email password are written
as ``$ENV_VAR`` and read when an alert is sent.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import UsageError

__all__ = ["KINDS", "SINK_TYPES", "check_sink"]

#: the kinds of alert
KINDS = ("check", "failed", "stale", "monitor")
#: each sink type's required and optional keys
SINK_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "webhook": (("url",), ("format", "timeout")),
    "command": (("command",), ("timeout",)),
    "email": (("to", "smtp"), ("user", "password", "from", "tls", "timeout")),
}
_COMMON = ("type", "name", "on")
_ENV_RE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def check_sink(sink: Any, i: int = 0) -> dict[str, Any]:
    """``sink`` checked and normalized; UsageError naming the sink and the fix otherwise."""
    where = f"alert sink #{i + 1}"
    if not isinstance(sink, dict):
        raise UsageError(
            f"{where} is a dict such as {{'type': 'webhook', 'url': '$SLACK_URL'}}, not {sink!r}"
        )
    kind = sink.get("type")
    if kind not in SINK_TYPES:
        raise UsageError(
            f"{where} has type {kind!r}: use one of {', '.join(SINK_TYPES)} "
            "({'type': 'webhook', 'url': '$SLACK_URL'})"
        )
    if isinstance(sink.get("name"), str):
        where = f"alert sink {sink['name']!r}"
    required, optional = SINK_TYPES[kind]
    unknown = sorted(set(sink) - set(required) - set(optional) - set(_COMMON))
    if unknown:
        raise UsageError(
            f"{where} ({kind}) has the unknown key {unknown[0]!r}: its keys are "
            f"{', '.join((*required, *optional, 'name', 'on'))}"
        )
    for key in required:
        if not sink.get(key):
            raise UsageError(f"{where} ({kind}) needs {key!r}")
    out = dict(sink)
    if "on" in sink:
        on = [sink["on"]] if isinstance(sink["on"], str) else sink["on"]
        if not isinstance(on, list) or not on or any(k not in KINDS for k in on):
            raise UsageError(f"{where}: 'on' lists alert kinds out of {', '.join(KINDS)}")
        out["on"] = list(on)
    if kind == "webhook":
        if not _is_env(sink["url"]):
            raise UsageError(
                f"{where}: a webhook's URL is a secret: write it as '$ENV_VAR' (for example "
                "'$SLACK_URL') and set that variable where `mlledger watch` runs"
            )
        fmt = sink.get("format", "json")
        if fmt not in ("json", "slack"):
            raise UsageError(f"{where}: format is 'json' or 'slack', not {fmt!r}")
        out["format"] = fmt
    elif kind == "command":
        if not isinstance(sink["command"], str):
            raise UsageError(f"{where}: command is a shell string such as 'notify.sh --team ml'")
    else:
        to = [sink["to"]] if isinstance(sink["to"], str) else sink["to"]
        if not isinstance(to, list) or not all(isinstance(t, str) and "@" in t for t in to):
            raise UsageError(f"{where}: 'to' is an address or a list of addresses")
        out["to"] = to
        host, _, port = str(sink["smtp"]).rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(
                f"{where}: smtp is 'host:port' (smtp.example.com:587), not {sink['smtp']!r}"
            )
        if sink.get("password") is not None and not _is_env(sink["password"]):
            raise UsageError(
                f"{where}: a password is a secret: write it as '$ENV_VAR' (for example "
                "'$SMTP_PASSWORD') and set that variable where `mlledger watch` runs"
            )
        if sink.get("tls", "starttls") not in ("starttls", "ssl", "none"):
            raise UsageError(f"{where}: tls is 'starttls', 'ssl' or 'none', not {sink['tls']!r}")
    if "timeout" in sink:
        t = sink["timeout"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            raise UsageError(f"{where}: timeout is a number of seconds, not {t!r}")
    return out


def _is_env(value: Any) -> bool:
    return isinstance(value, str) and _ENV_RE.fullmatch(value.strip()) is not None
