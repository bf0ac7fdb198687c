"""The watch loop: each pass, what happened since this watcher last looked, as alerts.

A pass syncs the catalog, then reads the runs written into it since the
watcher's cursor (see :mod:`mlledger.catalog.changes`): a run that appeared or
changed status.  A ``failed`` run raises a ``failed`` alert; a run still
marked running whose heartbeat went stale (or whose process on this host is
gone: the catalog reads it as ``incomplete``) a ``stale`` one; a finished run
is judged by the policy's ``checks`` and live ``monitor`` runs by its
``window``/``last`` rules (when the ledger can judge them).  Each alert then
goes to the policy's ``alerts`` sinks through :func:`~.delivery.deliver`,
once per sink across every watcher; an alert not yet settled everywhere (a
sink failed, another watcher holds a claim) stays on the watcher's pending
list and is tried again on the next pass.

The first pass of a watcher (or the first after the catalog was rebuilt)
starts at a horizon: the runs started in the last ``since`` (24 hours by
default), so a watcher started in the morning still reports the night's
failures, and a new machine does not replay the ledger's whole past.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import LedgerError, LedgerWarning, UsageError
from ..ids import first_id_at
from ..rules import parse_duration
from .alert import Alert, run_alert
from .delivery import Delivery, deliver
from .send import resolve, sink_id
from .sinks import check_sink

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..policy import Policy
    from ..store import Store

__all__ = ["DEFAULT_SINCE", "Judge", "Watched", "Watcher"]

#: how far back a watcher's first pass looks
DEFAULT_SINCE = "24h"

#: a judge turns a run record (and the policy) into alerts: checks of a finished run,
#: the window rules of a live monitor run
Judge = Callable[[dict[str, Any], dict[str, Any]], list[Alert]]


class Watched(Protocol):
    """What a watcher reads of a ledger."""

    @property
    def store(self) -> Store: ...

    @property
    def catalog(self) -> Catalog: ...

    @property
    def policy(self) -> Policy: ...


class Watcher:
    """One watcher of one ledger: ``run_pass()`` once, or ``loop(every)``.

    ``name`` keeps this watcher's cursor apart from others on the same machine;
    ``sinks`` replaces the policy's ``alerts`` (checked as the policy checks
    them); ``judge_finished`` and ``judge_monitor`` add the ``check`` and
    ``monitor`` kinds.
    """

    def __init__(
        self,
        ledger: Watched,
        *,
        name: str = "default",
        since: str | float = DEFAULT_SINCE,
        sinks: list[dict[str, Any]] | None = None,
        judge_finished: Judge | None = None,
        judge_monitor: Judge | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or ":" in name:
            raise UsageError(f"a watcher's name is a word such as 'default', not {name!r}")
        self.ledger = ledger
        self.name = name
        self.since = parse_duration(since, "watch's since")
        self.sinks = None if sinks is None else [check_sink(s, i) for i, s in enumerate(sinks)]
        self.judge_finished = judge_finished
        self.judge_monitor = judge_monitor
        #: what became of each alert of the last pass (and of the pending ones it retried)
        self.deliveries: list[Delivery] = []
        #: (slot, key) of the monitor alerts this pass raises, noted once delivered
        self._said: list[tuple[str, str]] = []

    # -- one pass ---------------------------------------------------------------------
    def _sinks(self, policy: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The sinks, each with its ``$ENV_VAR`` values read: an unset one raises
        UsageError here, before anything is claimed or sent."""
        sinks = self.sinks
        if sinks is None:
            sinks = [check_sink(s, i) for i, s in enumerate(policy.get("alerts") or ())]
        seen: dict[str, int] = {}
        for i, s in enumerate(sinks):
            sid = sink_id(s)
            if sid in seen:
                raise UsageError(
                    f"alert sinks #{seen[sid] + 1} and #{i + 1} are both {sid!r}: give each "
                    "sink its own 'name' (each sink keeps its own deliveries under it)"
                )
            seen[sid] = i
        return [(s, resolve(s)) for s in sinks]

    def find(self, policy: dict[str, Any]) -> tuple[list[Alert], int]:
        """The alerts in what changed since the cursor, and the cursor after them."""
        cat = self.ledger.catalog
        cat.sync()
        cursor = cat.watch_cursor(self.name)
        top = cat.last_change()
        if cursor is None:
            horizon = first_id_at(int((time.time() - self.since) * 1000))
            rows = cat.started_since(horizon, top)
        else:
            rows = cat.changes_since(cursor, top)
        url = self.ledger.store.url
        alerts: list[Alert] = []
        for _, rec in rows:
            got = run_alert(rec, url)
            if got is not None:
                alerts.append(got)
            elif rec.get("status") == "finished" and self.judge_finished is not None:
                alerts.extend(self.judge_finished(rec, policy))
        if self.judge_monitor is not None:
            alerts.extend(self._monitors(policy))
        return list({a.key: a for a in alerts}.values()), top

    def _monitors(self, policy: dict[str, Any]) -> list[Alert]:
        """The monitor alerts not raised before: a breach is judged on every pass, but
        said once per key (see :mod:`~.judges`)."""
        assert self.judge_monitor is not None
        cat = self.ledger.catalog
        said = cat.said(self.name)
        live: set[str] = set()
        out = []
        for rec in cat.live_runs("monitor"):
            live.add(str(rec["id"]))
            for alert in self.judge_monitor(rec, policy):
                slot = f"{alert.run_id}:{alert.rule}"
                if said.get(slot) != alert.key:
                    out.append(alert)
                    self._said.append((slot, alert.key))
        gone = [s for s in said if s.partition(":")[0] not in live]
        if gone:
            cat.forget_said(self.name, gone)
        return out

    def run_pass(self) -> list[Alert]:
        """One pass: find what is new, deliver it and what is pending; the new alerts."""
        self._said = []
        policy = self.ledger.policy.get()
        sinks = self._sinks(policy)
        alerts, top = self.find(policy)
        cat = self.ledger.catalog
        pending = cat.pending_alerts(self.name)
        store = self.ledger.store
        deliveries: list[Delivery] = []
        if sinks:
            todo = {a.key: a for a in (Alert.from_json(p) for p in pending.values())}
            todo.update((a.key, a) for a in alerts)
            for key, alert in todo.items():
                d = deliver(store, alert, sinks)
                deliveries.append(d)
                if d.settled:
                    if key in pending:
                        cat.drop_pending(self.name, key)
                elif key not in pending:
                    cat.keep_pending(self.name, key, alert.to_json())
        self.deliveries = deliveries
        # only now that the alerts are delivered or pending: a watcher killed before this
        # line finds them again on its next pass
        for slot, key in self._said:
            cat.note_said(self.name, slot, key)
        cat.advance_watch_cursor(self.name, top)
        return alerts

    # -- the loop -----------------------------------------------------------------------
    def loop(
        self,
        every: float,
        stop: threading.Event,
        on_pass: Callable[[list[Alert]], None] | None = None,
    ) -> list[Alert]:
        """A pass every ``every`` seconds until ``stop`` is set; every alert found."""
        if not every > 0:
            raise UsageError(f"watch's interval is a positive number of seconds, not {every!r}")
        found: list[Alert] = []
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                got = self.run_pass()
            except UsageError:
                raise  # a bad sink or rule: the user must fix it
            except (LedgerError, OSError) as e:  # the store or network, for now: next pass
                warnings.warn(
                    f"mlledger watch: this pass failed ({e}); trying again in {every:g} s",
                    LedgerWarning,
                    stacklevel=2,
                )
                got = []
            found.extend(got)
            if on_pass is not None:
                on_pass(got)
            stop.wait(max(0.0, every - (time.monotonic() - t0)))
        return found
