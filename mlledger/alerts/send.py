"""Sending one alert to one sink, with the standard library only.

``resolve(sink)`` reads the sink's ``$ENV_VAR`` values from the environment
(at send time: the policy holds names, never secrets); an unset one is a
:class:`~mlledger.errors.UsageError` naming the variable and the sink, raised
before anything is claimed or sent.  ``send(sink, alert)`` delivers it or
raises :class:`SendError` with a one-line reason; every way out is bounded by
the sink's ``timeout``.
"""

from __future__ import annotations

import email.policy
import hashlib
import http.client
import json
import os
import re
import smtplib
import ssl
import subprocess
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any

from .. import canonical
from .._version import __version__
from ..errors import LedgerError, UsageError
from .alert import Alert

__all__ = ["DEFAULT_TIMEOUT", "SendError", "resolve", "send", "sink_id"]

#: seconds a sink may take, by type, unless it sets ``timeout``
DEFAULT_TIMEOUT = {"webhook": 10.0, "command": 60.0, "email": 30.0}
_ENV_RE = re.compile(r"\s*\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?\s*")
#: the keys whose ``$ENV_VAR`` value is read from the environment (a command's shell
#: expands its own)
_RESOLVED = ("url", "user", "password", "smtp", "from", "to")


class SendError(LedgerError, OSError):
    """A sink did not take an alert (refused, timed out, answered an error)."""


def sink_id(sink: dict[str, Any]) -> str:
    """A sink's stable name in the store: its ``name``, else its type and a digest of
    its settings (as the policy holds them: variable names, not their values)."""
    name = sink.get("name")
    if isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", name):
        return name
    body = canonical.dumps({k: v for k, v in sink.items() if k != "on"})
    return f"{sink['type']}-{hashlib.sha256(body).hexdigest()[:12]}"


def describe(sink: dict[str, Any]) -> str:
    name = sink.get("name")
    return f"alert sink {name!r}" if name else f"the {sink['type']} alert sink {sink_id(sink)}"


def _env(value: Any, key: str, sink: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_env(v, key, sink) for v in value]
    if not isinstance(value, str) or not (m := _ENV_RE.fullmatch(value)):
        return value
    got = os.environ.get(m[1])
    if not got:
        raise UsageError(
            f"${m[1]} is not set ({describe(sink)} reads its {key} from it): export {m[1]}=... "
            "where `mlledger watch` runs, or change the sink with `mlledger policy set alerts=...`"
        )
    return got


def resolve(sink: dict[str, Any]) -> dict[str, Any]:
    """The sink with its ``$ENV_VAR`` values read (UsageError for an unset one)."""
    out = dict(sink)
    for key in _RESOLVED:
        if key in out:
            out[key] = _env(out[key], key, sink)
    out.setdefault("timeout", DEFAULT_TIMEOUT[sink["type"]])
    return out


def send(sink: dict[str, Any], alert: Alert) -> None:
    """Deliver ``alert`` to the resolved ``sink``; SendError saying why not."""
    try:
        {"webhook": _webhook, "command": _command, "email": _email}[sink["type"]](sink, alert)
    except SendError:
        raise
    except (OSError, http.client.HTTPException, smtplib.SMTPException, ValueError) as e:
        raise SendError(f"{sink['type']}: {_reason(e)}") from e


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]


def _webhook(sink: dict[str, Any], alert: Alert) -> None:
    if sink.get("format") == "slack":
        body: dict[str, Any] = {"text": alert.text()}
    else:
        body = alert.to_json()
    req = urllib.request.Request(
        sink["url"],
        data=json.dumps(body).encode("utf-8"),
        headers={
            "Content-Type": "application/json",
            "User-Agent": f"mlledger/{__version__}",
        },
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=float(sink["timeout"])) as resp:
        resp.read(65536)
        if not 200 <= resp.status < 300:
            raise SendError(f"webhook: HTTP {resp.status}")


def _command(sink: dict[str, Any], alert: Alert) -> None:
    env = dict(os.environ)
    env.update(
        MLLEDGER_ALERT_KIND=alert.kind,
        MLLEDGER_ALERT_RUN=alert.run_id,
        MLLEDGER_ALERT_KEY=alert.key,
        MLLEDGER_ALERT_MESSAGE=alert.message,
    )
    try:
        done = subprocess.run(
            sink["command"],
            shell=True,
            check=False,
            input=alert.to_bytes() + b"\n",
            capture_output=True,
            timeout=float(sink["timeout"]),
            env=env,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise SendError(f"command: timed out after {float(sink['timeout']):g} s") from None
    if done.returncode != 0:
        err = " ".join(done.stderr.decode("utf-8", "replace").split())[-200:]
        raise SendError(f"command: exit status {done.returncode}" + (f": {err}" if err else ""))


def _email(sink: dict[str, Any], alert: Alert) -> None:
    host, _, port = str(sink["smtp"]).rpartition(":")
    timeout = float(sink["timeout"])
    msg = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    msg["Subject"] = alert.text()
    msg["From"] = sink.get("from") or f"mlledger@{host}"
    msg["To"] = ", ".join(sink["to"])
    msg.set_content(f"{alert.message}\n\n{json.dumps(alert.to_json(), indent=2, sort_keys=True)}\n")
    tls = sink.get("tls", "starttls")
    smtp: smtplib.SMTP
    if tls == "ssl":
        smtp = smtplib.SMTP_SSL(host, int(port), timeout=timeout)
    else:
        smtp = smtplib.SMTP(host, int(port), timeout=timeout)
    with smtp:
        if tls == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if sink.get("user"):
            smtp.login(sink["user"], sink.get("password") or "")
        smtp.send_message(msg)
