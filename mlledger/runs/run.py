"""The ``Run``: the user's view of one run, and the calls it takes while active
(``log``, ``log_params``, ``use``, ``save``; metric buffering and chunks).

A run writes three kinds of entries under ``runs/<yyyy>/<mm>/<dd>/<id>/``,
each created once: ``start.json`` when it begins, ``metrics-NNNNNN.json``
chunks while it logs, and ``end.json`` when it ends (with heartbeats in
between for long runs).  A run whose process died has a start and no end:
it reads back as ``incomplete``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import canonical
from .._fmt import display_path
from .._settings import host_name
from ..capture import files as _files
from ..capture.values import why_not_stored
from ..errors import LedgerError, LedgerWarning, NotFoundError, UsageError
from ..ids import day_path
from ..records import Artifact, MetricStats, RunError, from_iso, record_digests, utcnow
from ..store.chain import entry_digest, seal_bytes
from .active import CURRENT
from .dry import dry_put_path, dry_put_value
from .encodable import make_run_storable
from .heartbeat import HEARTBEAT_SECONDS, HEARTBEAT_TIMEOUT
from .metrics import Column, SampleStep, chunk_doc, fold_rows, fold_stats
from .pins import pin, run_digests
from .process import pid_alive
from .state import RunState, start_doc
from .writer import RunWriter

if TYPE_CHECKING:
    import datetime as _dt


__all__ = ["METRIC_CHUNK", "METRIC_FLUSH_SECONDS", "MONITOR_FLUSH_SECONDS", "Run", "current_run"]

F = TypeVar("F", bound=Callable[..., Any])

#: metric rows buffered before a chunk is written
METRIC_CHUNK = 1000
#: seconds between metric flushes in a run that keeps logging
METRIC_FLUSH_SECONDS = 10.0
#: a monitor run's metrics reach the store at least this often, logged or idle
MONITOR_FLUSH_SECONDS = 2.0


def current_run() -> Run | None:
    """The run active in this thread or task, or None."""
    got: Run | None = CURRENT.get()
    return got


class Run:
    """One run: what it read, what it ran with, what it produced.

    While active (inside ``with ledger.run()`` or a tracked call) it takes
    :meth:`log`, :meth:`log_params`, :meth:`use` and :meth:`save`; once
    ended, or loaded with :meth:`Ledger.get`, it is read-only.
    """

    def __init__(self, writer: RunWriter, record: dict[str, Any], *, active: bool = False) -> None:
        #: what writes this run's entries and reads them back (the ledger's RunWriter)
        self.writer = writer
        #: the run's record, artifacts, warnings and entry bookkeeping (the internal side)
        self.state = RunState(record)
        #: the run takes calls (log, use, save) until it ends
        self.active = active
        #: the run this one runs in (the active run when it started), or None
        self.parent: Run | None = None
        self._rows: list[tuple[Any, float, dict[str, Any]]] = []
        #: logged metrics reach the store at least this often while the run logs
        self.flush_seconds = METRIC_FLUSH_SECONDS
        self._flush_at = time.time() + METRIC_FLUSH_SECONDS
        self._chunk_rows = METRIC_CHUNK
        self._cols: dict[str, Column] = {}
        self._folded: dict[str, int] = {}
        self._step = -1
        self._env: dict[str, Any] | None = None
        #: held while buffered rows are folded and chunks taken and written: the scheduler
        #: (monitor runs) and the sampler (sampler.py) flush from their threads while the
        #: run logs; ``log`` itself never waits on it
        self._lock = threading.RLock()

    # -- read-only views -------------------------------------------------------
    @property
    def id(self) -> str:
        return str(self.state.record["id"])

    @property
    def name(self) -> str:
        return str(self.state.record["name"])

    @property
    def status(self) -> str:
        return str(self.state.record.get("status", "running"))

    @property
    def cached_from(self) -> str | None:
        """For a memoized call answered from the ledger (``status == "cached"``), the id
        of the run that did the work; None for every other run."""
        got = self.state.record.get("cached_from")
        return str(got) if got else None

    @property
    def status_reason(self) -> str | None:
        """Why a run reads as ``incomplete`` (its process is gone, or silent too long)."""
        reason = self.state.record.get("status_reason")
        return str(reason) if reason else None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.state.record.get("params", {}))

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.state.record.get("tags", {}))

    @property
    def message(self) -> str | None:
        return self.state.record.get("message")

    @property
    def metrics(self) -> dict[str, float]:
        """Each metric's last value."""
        self._fold()
        return {k: v[0] for k, v in sorted(self.state.stats.items())}

    @property
    def metric_stats(self) -> dict[str, MetricStats]:
        """Each metric's last, min, max, last step and count."""
        self._fold()
        return {k: MetricStats(*v) for k, v in sorted(self.state.stats.items())}

    @property
    def inputs(self) -> dict[str, Artifact]:
        return dict(self.state.inputs)

    @property
    def outputs(self) -> dict[str, Artifact]:
        return dict(self.state.outputs)

    @property
    def code(self) -> dict[str, Any]:
        return dict(self.state.record.get("code", {}))

    @property
    def git(self) -> dict[str, Any] | None:
        g = self.state.record.get("git")
        return dict(g) if g else None

    @property
    def env(self) -> dict[str, Any]:
        """The environment record (Python, platform, host, packages, env vars) and process facts."""
        if self._env is None:
            digest = self.state.record.get("env")
            env: dict[str, Any] = {}
            if digest:
                try:
                    env = dict(canonical.loads(self.writer.store.get(digest)))
                except LedgerError as e:
                    env = {"error": str(e)}
            env["process"] = self.state.record.get("process", {})
            self._env = env
        return self._env

    @property
    def started_at(self) -> _dt.datetime:
        return from_iso(self.state.record["started_at"])

    @property
    def ended_at(self) -> _dt.datetime | None:
        e = self.state.record.get("ended_at")
        return from_iso(e) if e else None

    @property
    def error(self) -> RunError | None:
        e = self.state.record.get("error")
        return RunError(e["type"], e["message"], e["traceback"]) if e else None

    @property
    def parent_id(self) -> str | None:
        return self.state.record.get("parent_id")

    @property
    def warnings(self) -> list[str]:
        return list(self.state.warnings)

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.state.record.get("resources", {}))

    @property
    def user(self) -> str:
        return str(self.state.record.get("user", ""))

    @property
    def host(self) -> str:
        return str(self.state.record.get("host", ""))

    @property
    def record(self) -> dict[str, Any]:
        """The whole record as JSON-ready data (what ``mlledger show --json`` prints)."""
        out = dict(self.state.record)
        out["inputs"] = {k: a.to_json() for k, a in self.state.inputs.items()}
        out["outputs"] = {k: a.to_json() for k, a in self.state.outputs.items()}
        self._fold()
        out["metrics"] = {
            k: {"last": v[0], "min": v[1], "max": v[2], "step": v[3], "count": v[4]}
            for k, v in sorted(self.state.stats.items())
        }
        out["warnings"] = list(self.state.warnings)
        return out

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.name!r} {self.status}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- metrics -----------------------------------------------------------------
    def log(self, step: int | None = None, **values: float) -> None:
        """Record metric values (numbers) at ``step``; buffered, written in chunks.

        Without ``step`` the step is the previous one plus one.
        """
        if not self.active:
            raise UsageError(f"run {self.id} has ended; log metrics inside the run")
        t = time.time()
        rows = self._rows
        rows.append((step, t, values))
        if t >= self._flush_at or len(rows) >= self._chunk_rows:
            self._flush_metrics()

    def add_sample(self, step: int, values: dict[str, float]) -> None:
        """Metric values the sampling thread measured (sampler.py), at its own ``step``:
        the step ``log()`` counts from does not move.  Ignored once the run ended."""
        with self._lock:
            if not self.active:
                return
            t = time.time()
            self._rows.append((SampleStep(step), t, values))
            if t >= self._flush_at:
                self._flush_metrics()

    def _fold(self) -> None:
        """Move buffered rows into per-metric columns and update the summaries."""
        with self._lock:
            rows = self._rows
            n = len(rows)
            if not n:
                return
            # the list stays in place: a row another thread's log() appends meanwhile
            # lands after these n and waits for the next fold (never lost)
            taken = rows[:n]
            del rows[:n]
            self._step, bad = fold_rows(taken, self._cols, self._step, self.state.stats)
            for w in bad:
                self.state.warn(w)
            fold_stats(self._cols, self._folded, self.state.stats)

    def take_chunk(self) -> dict[str, Any] | None:
        """The folded, unwritten metric values as one chunk document, or None."""
        with self._lock:
            self._fold()
            self._flush_at = time.time() + self.flush_seconds
            cols = self._cols
            if not cols:
                return None
            self._cols, self._folded = {}, {}
            return chunk_doc(cols)

    def flush_metrics(self) -> None:
        """Write the metrics logged since the last chunk now (the scheduler's periodic
        flush of a monitor run); a failure is a warning of the run, never an exception."""
        if self.active:
            self._flush_metrics()

    def ensure_started(self) -> None:
        """Write the start entry now if it is still pending (deferred starts, see _Scheduler).

        If encoding it fails (the user changed a param mapping from another
        thread at that instant), the start stays pending and the end entry
        will hold the whole record.
        """
        if self.state.start_written or self.state.start_doc is None or self.state.detached:
            return
        with self.state.start_lock:
            if self.state.start_written:
                return
            uses = run_digests(self.state)

            def build() -> dict[str, Any]:
                doc = self.state.start_doc
                assert doc is not None
                # what the run referred to before its start was written, beyond its start's
                # own fields (a value saved, a param logged): named here, so gc keeps it
                extra = uses - set(record_digests(doc))
                return {**doc, "uses": sorted(extra)} if extra else doc

            algorithm = self.writer.store.algorithm
            data = seal_bytes(self.encode_entry(build), algorithm)
            self.writer.write_entry(f"{day_path(self.id)}/start.json", data, self)
            self.state.entry_digests["start.json"] = entry_digest(data, algorithm)
            self.state.pinned = uses
            self.state.start_written = True

    def encode_entry(self, build: Callable[[], dict[str, Any]]) -> bytes:
        """Canonical JSON of the entry ``build`` makes; if a field cannot be encoded (a lone
        surrogate, a 5,000-digit int), the run's fields are made storable (encodable.py,
        with a warning each) and the entry is made again: one bad field never loses a run."""
        try:
            return canonical.dumps(build())
        except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
            self._make_storable()
            return canonical.dumps(build())

    def _make_storable(self) -> None:
        """Replace every field of this run that canonical JSON cannot encode (failure path)."""
        make_run_storable(self.state)
        if self.state.start_doc is not None:
            self.state.start_doc = start_doc(self.state)

    def pin_uses(self, digests: Iterable[str] | None = None) -> None:
        """Pin what this run uses against gc elsewhere (see pins.pin)."""
        pin(self, digests)

    def _flush_metrics(self) -> None:
        if self.state.detached:  # keep the summaries, drop the rows: nothing is written
            self.take_chunk()
            return
        with self._lock:  # chunks are numbered and written in the order they were taken
            chunk = self.take_chunk()
            if chunk is None:
                return
            self.state.chunks += 1
            name = f"metrics-{self.state.chunks:06d}.json"
            self._write_metrics(name, chunk)

    def _write_metrics(self, name: str, chunk: dict[str, Any]) -> None:
        try:
            self.ensure_started()  # a chunk never comes before its run's start
            self.write_chunk(name, json.dumps(chunk).encode())
        except Exception as e:  # run.log() must never break the training loop
            n = self.state.chunks
            msg = f"metric chunk {n} not written (neither store nor spool took it): {e}"
            self.state.warn(msg)
            warnings.warn(f"mlledger: run {self.id}: {msg}", LedgerWarning, stacklevel=4)

    def write_chunk(self, name: str, data: bytes) -> None:
        """Write a metrics chunk entry and remember its digest for the end entry."""
        self.writer.write_entry(f"{day_path(self.id)}/{name}", data, self)
        self.state.entry_digests[name] = entry_digest(data, self.writer.store.algorithm)

    def metric_history(self, key: str) -> list[tuple[int, float, float]]:
        """Every ``(step, value, time)`` logged for metric ``key``, in order."""
        return self.metric_histories([key])[key]

    def metric_histories(
        self, keys: Iterable[str] | None = None
    ) -> dict[str, list[tuple[int, float, float]]]:
        """``metric_history`` of each of ``keys`` (None: every metric the run logged),
        reading the run's metric chunks once for all of them."""
        if keys is None:
            self._fold()
        wanted = sorted(self.state.stats) if keys is None else list(keys)
        out: dict[str, list[tuple[Any, Any, float]]] = {k: [] for k in wanted}
        docs: list[dict[str, Any]] = []
        for i in range(1, self.state.chunks + 1):
            raw = self.writer.read_entry(f"{day_path(self.id)}/metrics-{i:06d}.json")
            if raw is not None:
                docs.append(json.loads(raw))
        tail = self.state.record.get("metrics_tail")
        if tail:
            docs.append(tail)
        for doc in docs:
            t0 = doc["t0"]
            for key in wanted:
                col = doc["metrics"].get(key)
                if col:
                    times = (t0 + ms / 1000 for ms in col["ms"])
                    out[key].extend(zip(col["step"], col["value"], times, strict=False))
        if self.active:
            self._fold()
            for key in wanted:
                c = self._cols.get(key)
                if c:
                    out[key].extend(zip(c[0], c[1], c[2], strict=False))
        return {k: [(int(s), float(v), float(t)) for s, v, t in rows] for k, rows in out.items()}

    # -- params and artifacts ------------------------------------------------------
    def log_params(self, **params: Any) -> None:
        """Add or change params of the active run."""
        if not self.active:
            raise UsageError(f"run {self.id} has ended; log params inside the run")
        p = self.state.record.setdefault("params", {})
        for k, v in params.items():
            p[k] = v if self.state.detached else self.writer.param_value(k, v, self, inputs=False)
        self.pin_uses()

    def use(self, obj: Any, name: str | None = None) -> Artifact:
        """Record ``obj`` (a path or a value) as an input, stored at once."""
        return self._artifact(obj, name, self.state.inputs, "use")

    def save(self, obj: Any, name: str | None = None) -> Artifact:
        """Record ``obj`` (a path or a value) as an output, stored at once."""
        return self._artifact(obj, name, self.state.outputs, "save")

    def _artifact(
        self, obj: Any, name: str | None, into: dict[str, Artifact], verb: str
    ) -> Artifact:
        if not self.active:
            raise UsageError(f"run {self.id} has ended; call run.{verb}() inside the run")
        writer = self.writer
        is_path = isinstance(obj, Path) or (
            # a string naming nothing is a value when it has a name (as the error below says)
            isinstance(obj, str) and (name is None or os.path.lexists(obj))
        )
        if is_path:
            p = os.fspath(obj)
            if not os.path.lexists(p):
                raise NotFoundError(
                    f"run.{verb}({p!r}): no such file or folder; to record a string as a "
                    f"value, pass name=: run.{verb}(value, name='...')"
                )
            with _files.quiet():  # the store reading a folder's files is no run's input
                art = dry_put_path(p, writer) if self.state.detached else writer.put_path(p)
            key = name or display_path(p)
        else:
            if name is None:
                raise UsageError(f"run.{verb}(value) needs name=... to record a value")
            got = dry_put_value(obj, writer) if self.state.detached else writer.put_value(obj)
            if got is None:
                raise UsageError(
                    f"run.{verb}(..., name={name!r}): a {type(obj).__qualname__} cannot be "
                    f"stored ({why_not_stored(obj)}); save it to a file and pass the path"
                )
            art = got
            key = name
        into[key] = art
        self.pin_uses((art.digest,))  # before the caller goes on: gc elsewhere must see it
        return art

    @property
    def _record(self) -> dict[str, Any]:
        """The record itself, not a copy (tests read stored digests from it)."""
        return self.state.record

    # -- status -------------------------------------------------------------------
    def resolve_status(self) -> None:
        """Turn a stale ``running`` into ``incomplete`` (the process died)."""
        rec = self.state.record
        if rec.get("status", "running") != "running" or self.active:
            return
        proc = rec.get("process", {})
        if rec.get("host") == host_name() and proc.get("pid"):
            if not pid_alive(int(proc["pid"]), proc.get("proc_start")):
                rec["status"] = "incomplete"
                rec["status_reason"] = (
                    f"its process (pid {proc['pid']} on {rec.get('host')}) is gone and the run "
                    "has no end: it was killed or crashed"
                )
            return
        last = rec.get("heartbeat") or rec.get("started_at")
        if last and (utcnow() - from_iso(last)).total_seconds() > HEARTBEAT_TIMEOUT:
            rec["status"] = "incomplete"
            rec["status_reason"] = (
                f"no sign of life from {rec.get('host')} since {last} (it beats every "
                f"{HEARTBEAT_SECONDS:g} s) and no end: its process was killed or crashed"
            )
