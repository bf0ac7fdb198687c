"""Each alert once per sink, across any number of watchers on any number of machines.

There is no server: the store's create-only write is the only lock.  For an
alert with key K and a sink S, the store holds, under ``alerts/<hash of K>/``
(see :func:`~mlledger.store.layout.alert_prefix`)::

    alert.json              the alert (written once, by the first watcher to claim it)
    S/attempt-<n>.json      a claim: watcher, host, pid, when, and its lease (seconds)
    S/failed-<n>.json       attempt n failed: why, when
    S/sent.json             the alert reached S (which attempt, when)

A watcher that has an alert for S lists ``S/`` and then:

- ``sent.json`` present: settled, nothing to do;
- no attempt yet, or the newest attempt has its ``failed-<n>``: it creates
  ``attempt-<n+1>.json`` create-only; only the one watcher whose create wins
  sends, then records ``sent.json`` or ``failed-<n+1>.json``.  So a failed
  sink is retried on a later pass (by whichever watcher claims first), up to
  :data:`MAX_ATTEMPTS` attempts, and each sink has its own folder: one sink
  failing never holds back the others;
- the newest attempt has no outcome: its watcher is sending, or died.  Once
  the claim is older than its lease (the sink's timeout plus
  :data:`LEASE_MARGIN`), it is stale and the next attempt may be claimed.

The trade-off: **at least once** across crashes, **exactly once** otherwise.
A watcher killed after its sink took the alert but before ``sent.json`` was
written leaves a claim with no outcome; another watcher resends after the
lease.  The other choice (never resend an unsettled claim) would lose every
alert whose watcher died before sending, and a duplicate alert is the
smaller harm.  Without crashes, the create-only claim makes two watchers
racing for the same alert deliver it exactly once.  Leases compare the
claim's time with the reader's clock: machines should keep their clocks
within the margin.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Any

import attrs

from .. import _settings, canonical
from ..errors import LedgerError
from ..records import from_iso, now_iso, utcnow
from ..store.layout import alert_prefix
from .alert import Alert
from .send import SendError, send, sink_id

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["LEASE_MARGIN", "MAX_ATTEMPTS", "Delivery", "Outcome", "deliver"]

#: attempts per alert and sink before the watchers give up on that sink
MAX_ATTEMPTS = 10
#: seconds a claim outlives its sink's timeout before another watcher may take over
LEASE_MARGIN = 30.0

_ATTEMPT_RE = re.compile(r"attempt-([0-9]+)\.json")
_FAILED_RE = re.compile(r"failed-([0-9]+)\.json")

#: outcomes after which nothing more will happen for that sink
FINAL = frozenset({"sent", "delivered", "gave-up", "skipped"})


@attrs.frozen
class Outcome:
    """What became of one alert at one sink in this pass.

    ``state``: ``sent`` (this watcher sent it), ``delivered`` (another watcher
    had), ``skipped`` (the sink's ``on`` leaves this kind out), ``failed``
    (this watcher's attempt failed: retried on a later pass), ``claimed``
    (another watcher holds a live claim), ``gave-up`` (:data:`MAX_ATTEMPTS`
    failed attempts).
    """

    sink: str
    state: str
    attempt: int = 0
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sink": self.sink, "state": self.state}
        if self.attempt:
            out["attempt"] = self.attempt
        if self.error:
            out["error"] = self.error
        return out


@attrs.frozen
class Delivery:
    """An alert and what became of it at each sink."""

    alert: Alert
    outcomes: tuple[Outcome, ...]

    @property
    def settled(self) -> bool:
        return all(o.final for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {**self.alert.to_json(), "deliveries": [o.to_json() for o in self.outcomes]}


def _watcher() -> dict[str, Any]:
    return {"host": _settings.host_name(), "pid": os.getpid(), "user": _settings.user_name()}


def deliver(
    store: Store, alert: Alert, sinks: list[tuple[dict[str, Any], dict[str, Any]]]
) -> Delivery:
    """Deliver ``alert`` to each sink (``(as in the policy, resolved)`` pairs) that has not
    had it, claiming each attempt first; returns the outcome at every sink."""
    prefix = alert_prefix(alert.key)
    wrote_alert = False
    outcomes: list[Outcome] = []
    for sink, resolved in sinks:
        sid = sink_id(sink)
        if "on" in sink and alert.kind not in sink["on"]:
            outcomes.append(Outcome(sid, "skipped"))
            continue
        folder = f"{prefix}/{sid}"
        names = set(store.backend.list_dir(folder))
        if "sent.json" in names:
            outcomes.append(Outcome(sid, "delivered"))
            continue
        attempts = [int(m[1]) for n in names if (m := _ATTEMPT_RE.fullmatch(n))]
        failed = {int(m[1]) for n in names if (m := _FAILED_RE.fullmatch(n))}
        n = max(attempts, default=0)
        if n and n not in failed and not _stale(store, f"{folder}/attempt-{n}.json"):
            outcomes.append(Outcome(sid, "claimed", n))
            continue
        if n >= MAX_ATTEMPTS:
            outcomes.append(Outcome(sid, "gave-up", n))
            continue
        lease = float(resolved["timeout"]) + LEASE_MARGIN
        claim = {**_watcher(), "at": now_iso(), "lease_s": lease, "key": alert.key}
        if not store.create_entry(f"{folder}/attempt-{n + 1}.json", canonical.dumps(claim)):
            outcomes.append(Outcome(sid, "claimed", n + 1))  # another watcher won it
            continue
        if not wrote_alert:
            store.create_entry(f"{prefix}/alert.json", alert.to_bytes())
            wrote_alert = True
        outcomes.append(_attempt(store, folder, sid, n + 1, resolved=resolved, alert=alert))
    return Delivery(alert, tuple(outcomes))


def _attempt(
    store: Store, folder: str, sid: str, n: int, *, resolved: dict[str, Any], alert: Alert
) -> Outcome:
    t0 = time.monotonic()
    try:
        send(resolved, alert)
    except SendError as e:
        error = str(e)
        store.create_entry(
            f"{folder}/failed-{n}.json",
            canonical.dumps({**_watcher(), "at": now_iso(), "error": error}),
        )
        return Outcome(sid, "gave-up" if n >= MAX_ATTEMPTS else "failed", n, error)
    store.create_entry(
        f"{folder}/sent.json",
        canonical.dumps(
            {**_watcher(), "at": now_iso(), "attempt": n, "seconds": time.monotonic() - t0}
        ),
    )
    return Outcome(sid, "sent", n)


def _stale(store: Store, claim_key: str) -> bool:
    """Whether a claim with no outcome is past its lease (a damaged claim is stale)."""
    try:
        claim = canonical.loads(store.read_entry(claim_key))
        age = (utcnow() - from_iso(claim["at"])).total_seconds()
        return bool(age > float(claim["lease_s"]))
    except (LedgerError, ValueError, KeyError, TypeError):
        return True
