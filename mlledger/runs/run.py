"""Runs: the ``Run`` object, ``ledger.run()``, ``@tracked`` and the active-run context.

A run writes three kinds of entries under ``runs/<yyyy>/<mm>/<dd>/<id>/``,
each created once: ``start.json`` when it begins, ``metrics-NNNNNN.json``
chunks while it logs, and ``end.json`` when it ends (with heartbeats in
between for long runs).  A run whose process died has a start and no end:
it reads back as ``incomplete``.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import copy
import functools
import inspect
import json
import math
import os
import resource
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar, overload

from .. import canonical
from .._settings import disabled
from ..capture import code as _code
from ..capture import files as _files
from ..capture.redact import (
    REDACTED,
    environ_secrets,
    is_secret_name,
    redact_text,
    scrub,
    secret_attributes,
)
from ..capture.values import encode_redacted, why_not_stored
from ..errors import LedgerError, LedgerWarning, NotFoundError, UsageError
from ..hashing import digest_bytes
from ..ids import day_path, new_run_id, whole_key
from ..records import Artifact, MetricStats, RunError, from_iso, now_iso, record_digests, utcnow
from ..store.backends import Backend
from ..store.chain import entry_digest, seal_bytes
from .active import CURRENT
from .binder import Binder
from .encodable import make_run_storable, safe_text
from .pins import pin, run_digests
from .process import pid_alive
from .state import RunState
from .writer import RunWriter

if TYPE_CHECKING:
    import datetime as _dt

    from ..store import Store

__all__ = ["METRIC_CHUNK", "Run", "RunContext", "current_run", "make_tracked"]

F = TypeVar("F", bound=Callable[..., Any])

#: metric rows buffered before a chunk is written
METRIC_CHUNK = 1000
#: seconds between metric flushes in a run that keeps logging
METRIC_FLUSH_SECONDS = 10.0
#: a run with no end whose last sign of life is older than this is incomplete
HEARTBEAT_SECONDS = 60.0
HEARTBEAT_TIMEOUT = 5 * HEARTBEAT_SECONDS

#: a metric's buffered steps, values and times
_Column = tuple[list[int], list[float], list[float]]




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
        self._chunks = int(record.get("metric_chunks", 0))
        self._flush_at = time.time() + METRIC_FLUSH_SECONDS
        self._chunk_rows = METRIC_CHUNK
        self._cols: dict[str, tuple[list[int], list[float], list[float]]] = {}
        self._start_doc: dict[str, Any] | None = None
        self._start_due = math.inf  # when the deferred start entry falls due (monotonic)
        self._folded: dict[str, int] = {}
        self._step = -1
        self._env: dict[str, Any] | None = None
        self._lock = threading.Lock()

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

    def _fold(self) -> None:
        """Move buffered rows into per-metric columns and update the summaries."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return
        self._fold_rows(rows)
        stats = self.state.stats
        folded = self._folded
        for k, (steps, vals, _times) in self._cols.items():
            done = folded.get(k, 0)
            if done == len(vals):
                continue
            folded[k] = len(vals)
            new = vals[done:] if done else vals
            if math.isnan(new[0]):  # a NaN first would win every comparison min/max makes
                real = [v for v in new if not math.isnan(v)]
                lo, hi = (min(real), max(real)) if real else (new[0], new[0])
            else:
                lo, hi = min(new), max(new)
            st = stats.get(k)
            if st is None:
                stats[k] = [new[-1], lo, hi, steps[-1], len(new)]
            else:
                st[0] = new[-1]
                if lo < st[1] or st[1] != st[1]:
                    st[1] = lo
                if hi > st[2] or st[2] != st[2]:
                    st[2] = hi
                st[3] = steps[-1]
                st[4] += len(new)

    def _fold_rows(self, rows: list[tuple[Any, float, dict[str, Any]]]) -> None:
        """Row by row: any mix of metrics and steps; bad steps and values become warnings."""
        cols = self._cols
        step = self._step
        bad: list[str] = []
        for s, t, values in rows:
            if s is None:
                step += 1
            elif type(s) is int:
                step = s
            else:
                try:
                    step = int(s)
                except (TypeError, ValueError, OverflowError):
                    bad.append(f"metric step {s!r} is not an integer; used {step + 1}")
                    step += 1
            for k, raw in values.items():
                v = raw
                if type(v) is not float:
                    try:
                        v = float(raw)
                    except (TypeError, ValueError, OverflowError):
                        bad.append(f"metric {k}={raw!r} is not a number; not recorded")
                        continue
                col = cols.get(k)
                if col is None and not k.isascii() and safe_text(k) is not k:
                    col = self._escaped_column(k, bad)
                if col is None:
                    col = cols[k] = ([], [], [])
                col[0].append(step)
                col[1].append(v)
                col[2].append(t)
        self._step = step
        for w in bad:
            self.state.warn(w)

    def _escaped_column(self, key: str, bad: list[str]) -> _Column:
        """The column of a metric whose name has no UTF-8 form, under its escaped name."""
        name = safe_text(key)
        col = self._cols.get(name)
        if col is None:
            if name not in self.state.stats:
                bad.append(f"metric name '{name}' is not valid Unicode; escaped")
            col = self._cols[name] = ([], [], [])
        return col

    def _take_chunk(self) -> dict[str, Any] | None:
        """The folded, unwritten metric values as one chunk document, or None."""
        self._fold()
        self._flush_at = time.time() + METRIC_FLUSH_SECONDS
        cols = self._cols
        if not cols:
            return None
        self._cols, self._folded = {}, {}
        # times as integer milliseconds after t0: a third of the bytes and of the encoding time
        t0 = min([c[2][0] for c in cols.values()])
        doc = {
            k: {"step": c[0], "value": c[1], "ms": [int((t - t0) * 1000) for t in c[2]]}
            for k, c in cols.items()
        }
        return {"t0": t0, "metrics": doc}

    def _ensure_started(self) -> None:
        """Write the start entry now if it is still pending (deferred starts, see _Scheduler).

        If encoding it fails (the user changed a param mapping from another
        thread at that instant), the start stays pending and the end entry
        will hold the whole record.
        """
        if self.state.start_written or self._start_doc is None or self.state.detached:
            return
        with self.state.start_lock:
            if self.state.start_written:
                return
            uses = run_digests(self.state)

            def build() -> dict[str, Any]:
                doc = self._start_doc
                assert doc is not None
                # what the run referred to before its start was written, beyond its start's
                # own fields (a value saved, a param logged): named here, so gc keeps it
                extra = uses - set(record_digests(doc))
                return {**doc, "uses": sorted(extra)} if extra else doc

            algorithm = self.writer.store.algorithm
            data = seal_bytes(self._encode(build), algorithm)
            self.writer.write_entry(f"{day_path(self.id)}/start.json", data, self)
            self.state.entry_digests["start.json"] = entry_digest(data, algorithm)
            self.state.pinned = uses
            self.state.start_written = True

    def _encode(self, build: Callable[[], dict[str, Any]]) -> bytes:
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
        if self._start_doc is not None:
            self._start_doc = _start_doc(self.state.record, self)

    def _pin(self, digests: Iterable[str] | None = None) -> None:
        """Pin what this run uses against gc elsewhere (see pins.pin)."""
        pin(self, digests)

    def _flush_metrics(self) -> None:
        if self.state.detached:  # keep the summaries, drop the rows: nothing is written
            self._take_chunk()
            return
        chunk = self._take_chunk()
        if chunk is None:
            return
        self._chunks += 1
        name = f"metrics-{self._chunks:06d}.json"
        try:
            self._ensure_started()  # a chunk never comes before its run's start
            self._write_chunk(name, json.dumps(chunk).encode())
        except Exception as e:  # run.log() must never break the training loop
            msg = f"metric chunk {self._chunks} not written (neither store nor spool took it): {e}"
            self.state.warn(msg)
            warnings.warn(f"mlledger: run {self.id}: {msg}", LedgerWarning, stacklevel=3)

    def _write_chunk(self, name: str, data: bytes) -> None:
        """Write a metrics chunk entry and remember its digest for the end entry."""
        self.writer.write_entry(f"{day_path(self.id)}/{name}", data, self)
        self.state.entry_digests[name] = entry_digest(data, self.writer.store.algorithm)

    def metric_history(self, key: str) -> list[tuple[int, float, float]]:
        """Every ``(step, value, time)`` logged for metric ``key``, in order."""
        out: list[tuple[int, float, float]] = []
        docs: list[dict[str, Any]] = []
        for i in range(1, self._chunks + 1):
            raw = self.writer.read_entry(f"{day_path(self.id)}/metrics-{i:06d}.json")
            if raw is not None:
                docs.append(json.loads(raw))
        tail = self.state.record.get("metrics_tail")
        if tail:
            docs.append(tail)
        for doc in docs:
            col = doc["metrics"].get(key)
            if col:
                t0 = doc["t0"]
                times = (t0 + ms / 1000 for ms in col["ms"])
                out.extend(zip(col["step"], col["value"], times, strict=False))
        if self.active:
            self._fold()
            c = self._cols.get(key)
            if c:
                out.extend(zip(c[0], c[1], c[2], strict=False))
        return [(int(s), float(v), float(t)) for s, v, t in out]

    # -- params and artifacts ------------------------------------------------------
    def log_params(self, **params: Any) -> None:
        """Add or change params of the active run."""
        if not self.active:
            raise UsageError(f"run {self.id} has ended; log params inside the run")
        p = self.state.record.setdefault("params", {})
        for k, v in params.items():
            p[k] = v if self.state.detached else self.writer.param_value(k, v, self, inputs=False)
        self._pin()

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
            art = _dry_put_path(p, writer) if self.state.detached else writer.put_path(p)
            key = name or _display(p)
        else:
            if name is None:
                raise UsageError(f"run.{verb}(value) needs name=... to record a value")
            got = _dry_put_value(obj, writer) if self.state.detached else writer.put_value(obj)
            if got is None:
                raise UsageError(
                    f"run.{verb}(..., name={name!r}): a {type(obj).__qualname__} cannot be "
                    f"stored ({why_not_stored(obj)}); save it to a file and pass the path"
                )
            art = got
            key = name
        into[key] = art
        self._pin((art.digest,))  # before the caller goes on: gc elsewhere must see it
        return art

    # -- shims for notebook.py (another room), until it uses run.state and run.writer
    def _warn(self, message: str) -> None:
        self.state.warn(message)

    @property
    def _record(self) -> dict[str, Any]:
        return self.state.record

    @property
    def _inputs(self) -> dict[str, Artifact]:
        return self.state.inputs

    @property
    def _outputs(self) -> dict[str, Artifact]:
        return self.state.outputs

    @property
    def _detached(self) -> bool:
        return self.state.detached

    # -- status -------------------------------------------------------------------
    def resolve_status(self) -> None:
        """Turn a stale ``running`` into ``incomplete`` (the process died)."""
        rec = self.state.record
        if rec.get("status", "running") != "running" or self.active:
            return
        import socket

        proc = rec.get("process", {})
        if rec.get("host") == socket.gethostname() and proc.get("pid"):
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


def _display(path: str) -> str:
    """A path as the user gave it, or relative to the working directory when inside it."""
    if os.path.isabs(path):
        try:
            rel = os.path.relpath(path)
        except ValueError:
            return path
        return path if rel.startswith("..") else rel
    return os.path.normpath(path)


class _NullBackend(Backend):
    """Takes every write and keeps nothing: a store through it only computes digests."""

    protocol = "null"
    url = "null://"

    def create(self, key: str, data: bytes) -> bool:
        return True

    def put_stream(
        self, key: str, chunks: Iterable[bytes | memoryview], check: Callable[[], None]
    ) -> bool:
        for _ in chunks:
            pass
        check()
        return True

    def put_local_file(self, key: str, path: str, callback: Any = None) -> bool:
        return True

    def delete(self, key: str) -> None:
        return None

    def read(self, key: str) -> bytes:
        raise NotFoundError(f"no key {key!r}: nothing is kept here")

    def open_read(self, key: str) -> IO[bytes]:
        raise NotFoundError(f"no key {key!r}: nothing is kept here")

    def exists(self, key: str) -> bool:
        return False

    def size(self, key: str) -> int:
        raise NotFoundError(f"no key {key!r}: nothing is kept here")

    def list(self, prefix: str) -> Iterator[str]:
        return iter(())

    def list_dir(self, prefix: str) -> builtins.list[str]:
        return []


def _dry_store(store: Store) -> Store:
    """A copy of ``store`` that digests files and folders exactly as it does and keeps nothing."""
    dry = copy.copy(store)
    dry.backend = _NullBackend()
    return dry


def _dry_put_path(path: str, writer: RunWriter) -> Artifact:
    """The Artifact ``writer.put_path(path)`` would give, without storing anything."""
    try:
        got = _dry_store(writer.store).put(path)
    except OSError as e:
        if isinstance(e, LedgerError):
            raise
        raise UsageError(f"{path!r} cannot be read: {e}") from e
    return Artifact(
        got.digest,
        got.size,
        got.kind,
        path=_display(path),
        files=got.files if got.kind == "tree" else None,
    )


def _dry_put_value(value: Any, writer: RunWriter) -> Artifact | None:
    """The Artifact ``writer.put_value(value)`` would give, without storing anything."""
    enc = encode_redacted(value)
    if enc is None:
        return None
    return Artifact(
        digest_bytes(enc.data, writer.store.algorithm), len(enc.data), "value", format=enc.format
    )


# ---------------------------------------------------------------------------


class _Scheduler:
    """One daemon thread per process: deferred start entries and heartbeats of active runs.

    A run's ``start.json`` is written ``Ledger.start_delay`` seconds after it
    starts, if it is still going; a shorter run writes one entry only, its
    ``end.json`` holding the whole record.  That halves the writes of the short
    runs a tight loop makes.  The price: a process killed within that delay
    leaves no trace of the run it was in.  Long runs also get a heartbeat
    entry every ``HEARTBEAT_SECONDS``, so other machines can tell a live run
    from a dead one.
    """

    def __init__(self) -> None:
        #: active runs; each carries ``_start_due``, when its deferred start falls due
        self.runs: set[Run] = set()
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        #: when the thread next wakes by itself (monotonic); 0 while it is busy or not started
        self.wake_at = 0.0
        #: the start delay of the last run added since the thread last looked, or None
        self.recent_delay: float | None = None

    def _ensure_thread(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._loop, name="mlledger-runs", daemon=True)
            self.thread.start()

    def add(self, run: Run, start_delay: float | None) -> None:
        due = math.inf if start_delay is None else time.monotonic() + start_delay
        run._start_due = due
        with self.cond:
            self.runs.add(run)
            if start_delay is not None:
                self.recent_delay = start_delay
            if self.thread is None or not self.thread.is_alive():
                self._ensure_thread()
            elif due < self.wake_at:
                # wake the thread only when this start falls due before its next wake-up:
                # in a loop of short runs it sleeps on, and each run costs no thread switch
                self.cond.notify()
                self.wake_at = 0.0  # it will look again: the next runs need not notify

    def remove(self, run: Run) -> None:
        with self.cond:
            # an ended run needs no deferred start and no heartbeat
            self.runs.discard(run)

    def _loop(self) -> None:
        next_beat = time.monotonic() + HEARTBEAT_SECONDS
        n = 0
        while True:
            with self.cond:
                now = time.monotonic()
                starts = self._take_due(now)
                due = min([next_beat, *(r._start_due for r in self.runs)])
                if self.recent_delay is not None:
                    # runs are being made: wake again within one delay even when they all
                    # ended already, so the next run's add needs no notify (a loop of
                    # short runs would otherwise wake this thread once per run)
                    due = min(due, now + self.recent_delay)
                    self.recent_delay = None
                beat = now >= next_beat
                if not starts and not beat:
                    self.wake_at = due
                    self.cond.wait(due - now)
                    self.wake_at = 0.0
                    continue
                beating = list(self.runs) if beat else []
            if beat:
                n += 1
                next_beat = now + HEARTBEAT_SECONDS
            self._serve(starts, beating, n)
            # hold no run while waiting: an ended run must be free to go
            del starts, beating

    def _take_due(self, now: float) -> list[Run]:
        """The runs whose deferred start fell due by ``now``, marked as taken (lock held)."""
        starts = [r for r in self.runs if r._start_due <= now]
        for run in starts:
            run._start_due = math.inf
        return starts

    @staticmethod
    def _serve(starts: list[Run], beating: list[Run], n: int) -> None:
        """Write the deferred starts that fell due and heartbeat ``n`` of the live runs."""
        for run in starts:
            with contextlib.suppress(Exception):
                run._ensure_started()
        for run in beating:
            if not run.active:
                continue
            with contextlib.suppress(Exception):
                run._ensure_started()
                run._pin()
                key = f"{day_path(run.id)}/hb-{n:08d}.json"
                run.writer.write_entry(
                    key, canonical.dumps({"at": now_iso()}), run, ordered=False
                )


_heartbeat = _Scheduler()


def _after_fork_in_child() -> None:
    """A forked child starts with no scheduler: the parent's thread is not in it, its
    condition may hold the parent's waiter (a later notify would go to nobody) or be locked
    for good, and the parent's runs are not the child's to write starts or heartbeats for.
    (process.py reads the child's start time again.)
    """
    global _heartbeat
    _heartbeat = _Scheduler()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


#: the package folder (mlledger/): frames of its own code at the head of a traceback are skipped
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _user_tb(tb: Any) -> Any:
    """The traceback from the user's first frame: ``@tracked``'s own wrapper frames at its
    head are not the user's (the exception itself is left as it is)."""
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(
        _OWN_DIR
    ):
        tb = tb.tb_next
    return tb


class RunMaker(Protocol):
    """What makes runs (the Ledger): its writer and its run settings, read at each start."""

    url: str
    writer: RunWriter
    start_delay: float
    capture_files: bool
    capture_include: tuple[str, ...]
    capture_exclude: tuple[str, ...]


def tracked_context(
    maker: RunMaker,
    fn: Callable[..., Any],
    params: dict[str, Any],
    *,
    name: str | None,
    opts: dict[str, Any],
) -> RunContext:
    """The run context of one call of the tracked function ``fn``."""
    code, warns = _code.function_code(fn, maker.writer.store.algorithm)
    return RunContext(
        maker,
        name or code.get("qualname"),
        params=params,
        message=opts.get("message"),
        tags=opts.get("tags"),
        capture_files=opts.get("capture_files"),
        code=dict(code),
        code_warnings=list(warns),
        kind="call",
        checked=True,
    )


class RunContext:
    """``with ledger.run(...) as run:``: starts a run on enter, ends it on exit.

    Also usable as a decorator: ``@ledger.run("name")``.
    """

    def __init__(
        self,
        ledger: RunMaker,
        name: str | None,
        *,
        params: dict[str, Any] | None = None,
        message: str | None = None,
        tags: dict[str, Any] | None = None,
        capture_files: bool | None = None,
        code: dict[str, Any] | None = None,
        code_warnings: list[str] | None = None,
        inputs: dict[str, Artifact] | None = None,
        kind: str = "block",
        checked: bool = False,
    ) -> None:
        self.ledger = ledger
        self.writer = ledger.writer
        #: the caller already found tracking enabled (a tracked call checks MLLEDGER_DISABLE)
        self.checked = checked
        self.name = name
        self.params = params
        self.message = message
        self.tags = tags
        self.capture_files = capture_files
        self.code = code
        self.code_warnings = code_warnings or []
        self.pre_inputs = inputs
        self.kind = kind
        self.run: Run | None = None
        self._token: contextvars.Token[Run | None] | None = None
        self._watch: _files.FileWatch | None = None
        self._t0 = 0.0
        self._ru0: Any = None

    # -- start -----------------------------------------------------------------------
    def __enter__(self) -> Run:
        if self.run is not None:
            raise UsageError("this run context was already entered; call ledger.run() again")
        for what, value in (("params", self.params), ("tags", self.tags)):
            if value is not None and not isinstance(value, Mapping):
                raise TypeError(
                    f"ledger.run({what}=...) takes a dict, not a {type(value).__qualname__}: "
                    f"{what}={{'name': value}}"
                )
        if not self.checked and disabled():
            return self._enter_detached(None)
        self.writer.check_policy(self.message)
        try:
            with _files.quiet():  # hashing path arguments is no enclosing run's input
                return self._start()
        except Exception as e:  # capture never breaks the user's code: run it untracked
            self._abandon()
            return self._enter_detached(e)

    def __call__(self, fn: F) -> F:
        """``@ledger.run("name")``: every call of ``fn`` runs inside a fresh run like this one."""
        if not callable(fn) or inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                "@ledger.run(...) decorates a plain or async function; for a generator, "
                "wrap the loop that consumes it in `with ledger.run(...)`"
            )
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with self._again():
                    return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._again():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def _again(self) -> RunContext:
        """A fresh context with the same settings (a context is entered once)."""
        return RunContext(
            self.ledger,
            self.name,
            params=self.params,
            message=self.message,
            tags=self.tags,
            capture_files=self.capture_files,
            code=self.code,
            code_warnings=self.code_warnings,
            inputs=self.pre_inputs,
            kind=self.kind,
        )

    def _enter_detached(self, error: Exception | None) -> Run:
        """A run that records nothing: tracking is disabled, or the run could not be started."""
        name = self.name or (self.code or {}).get("qualname") or "run"
        if error is not None:
            warnings.warn(
                f"mlledger: run {name!r} is not recorded: it could not be started in the store "
                f"at {self.ledger.url} ({error!r}); the code runs untracked",
                LedgerWarning,
                stacklevel=3,
            )
        run = self._new_run(name)
        run.state.detached = True
        run.state.record["tags"] = dict(self.tags or {})
        run.state.record["params"] = dict(self.params or {})
        self._token = CURRENT.set(run)
        return run

    def _abandon(self) -> None:
        """Undo a start that failed half-way."""
        if self._watch is not None:
            _files.watch_end(self._watch)
            self._watch = None
        if self.run is not None:
            _heartbeat.remove(self.run)
            self.run = None
        if self._token is not None:
            with contextlib.suppress(ValueError):
                CURRENT.reset(self._token)
            self._token = None

    def _new_run(self, name: str) -> Run:
        """The active run this context stands for: a fresh id, under the current run."""
        parent = CURRENT.get()
        record: dict[str, Any] = {
            "format": 1,
            "id": new_run_id(),
            "name": name,
            "kind": self.kind,
            "status": "running",
            "started_at": now_iso(),
            "parent_id": parent.id if parent is not None else None,
            "message": scrub(self.message) if isinstance(self.message, str) else self.message,
            "tags": {},
            "params": {},
        }
        run = Run(self.writer, record, active=True)
        run.parent = parent
        self.run = run
        return run

    def _start(self) -> Run:
        ledger = self.ledger
        self._t0 = time.perf_counter()
        self._ru0 = resource.getrusage(resource.RUSAGE_SELF)
        run = self._new_run(self.name or (self.code or {}).get("qualname") or "run")
        record = run.state.record
        for w in self.code_warnings:
            run.state.warn(w)
        try:
            record["tags"] = {
                str(k): (REDACTED if is_secret_name(str(k)) else redact_text(str(v)))
                for k, v in (self.tags or {}).items()
            }
        except Exception as e:
            run.state.warn(f"tags not recorded: {e}")
        params = self.params
        if params:
            out = record["params"]
            slow = self.writer.param_value
            for k, v in params.items():
                # numbers, bools and None under a plain name are kept as they are (the
                # common case, without the general path's checks); the rest go through it
                if type(v) in _PLAIN and type(k) is str and not is_secret_name(k):
                    out[k] = v if type(v) is not float or v - v == 0.0 else repr(v)
                else:
                    out[k] = slow(k, v, run)
        if self.pre_inputs:
            run.state.inputs.update(self.pre_inputs)
        cwd = os.getcwd()
        self.writer.fill_start(run, self.code, cwd)
        run._start_doc = _start_doc(record, run)  # encoded only if it is ever written
        delay = ledger.start_delay
        if not delay or delay <= 0:
            run._ensure_started()
        capture = ledger.capture_files if self.capture_files is None else self.capture_files
        if capture:
            try:
                watch = _files.FileWatch(
                    run,
                    cwd=cwd,
                    ignore=self.writer.ignored_paths(),
                    include=ledger.capture_include,
                    exclude=ledger.capture_exclude,
                )
                watch.hash_before_write = self.writer.put_path
                _files.watch_begin(watch)
                self._watch = watch
            except Exception as e:
                run.state.warn(f"file capture not started: {e}")
        _heartbeat.add(run, delay if delay and delay > 0 else None)
        self._token = CURRENT.set(run)
        return run

    # -- end ---------------------------------------------------------------------------
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        run = self.run
        if run is None:
            return
        try:
            if run.state.detached:
                run.active = False
                run.state.record["status"] = _status(exc_type, exc)
                run.state.record["ended_at"] = now_iso()
            else:
                self._finish(run, exc_type, exc, tb)
        except Exception as e:  # never replace the user's result or exception
            run.active = False
            warnings.warn(
                f"mlledger: run {run.id} ({run.name!r}) could not be recorded in the store at "
                f"{self.ledger.url} nor in the local spool: {e!r}",
                LedgerWarning,
                stacklevel=2,
            )
        finally:
            if self._token is not None:
                with contextlib.suppress(ValueError):
                    CURRENT.reset(self._token)
                self._token = None

    def _param_secrets(self) -> list[str]:
        """Values held under secret names anywhere in the params given (a config's nested
        ``db.password``, an object's ``token``): looked for only when a run fails."""
        try:
            found = secret_attributes(dict(self.params or {}))
        except Exception:
            return []
        return [str(v) for v in found.values() if isinstance(v, (str, int)) and v is not True]

    def _finish(
        self, run: Run, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        record = run.state.record
        _heartbeat.remove(run)
        status = _status(exc_type, exc)
        if exc is not None and status != "finished":
            # what an exception says (its message, the source lines of its traceback) may
            # quote a secret: the run's secret params and the environment's are masked
            known = [*run.state.secret_values, *environ_secrets(), *self._param_secrets()]
            tb_text = "".join(traceback.format_exception(exc_type, exc, _user_tb(tb)))
            record["error"] = {
                "type": f"{exc_type.__module__}.{exc_type.__qualname__}"
                if exc_type and exc_type.__module__ != "builtins"
                else (exc_type.__qualname__ if exc_type else "Exception"),
                "message": scrub(_safe_str(exc), known),
                "traceback": scrub(tb_text, known),
            }
        watch = self._watch
        if watch is not None:
            _files.watch_end(watch)
            self._watch = None
            try:
                if watch.reads or watch.writes:
                    with _files.suspend():
                        self.writer.collect_files(run, watch)
            except Exception as e:
                run.state.warn(f"files opened during the run not recorded: {e!r}")
        if run.state.path_args and watch is not None:
            try:
                with _files.suspend():
                    self.writer.collect_path_outputs(run, watch)
            except Exception as e:
                run.state.warn(f"files named by path arguments not recorded: {e!r}")
        resources: dict[str, Any] = {"wall_s": round(time.perf_counter() - self._t0, 6)}
        try:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            resources["cpu_user_s"] = round(ru.ru_utime - self._ru0.ru_utime, 6)
            resources["cpu_system_s"] = round(ru.ru_stime - self._ru0.ru_stime, 6)
            rss_unit = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
            resources["peak_rss_bytes"] = int(ru.ru_maxrss) * rss_unit
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
                resources["gpu_peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
        except Exception as e:
            run.state.warn(f"resources not fully recorded: {e}")
        run.active = False
        try:
            # the last chunk rides in end.json: one write fewer for every short run
            tail = run._take_chunk()
            if tail is not None:
                if sum(len(c["value"]) for c in tail["metrics"].values()) <= 200:
                    record["metrics_tail"] = tail
                else:
                    run._chunks += 1
                    run._write_chunk(f"metrics-{run._chunks:06d}.json", json.dumps(tail).encode())
        except Exception as e:
            run.state.warn(f"metrics not written: {e}")
        record["status"] = status
        record["ended_at"] = now_iso()
        record["resources"] = resources
        record["metric_chunks"] = run._chunks
        with run.state.start_lock:
            whole = not run.state.start_written
            run.state.start_written = True  # the deferred start is no longer needed
        keys = _START_KEYS + _END_KEYS if whole else _END_KEYS

        def build() -> dict[str, Any]:
            end = run.record
            end_doc = {k: end[k] for k in keys if k in end}
            if run.state.entry_digests:
                end_doc["entries"] = dict(run.state.entry_digests)
            return end_doc

        key = whole_key(run.id) if whole else f"{day_path(run.id)}/end.json"
        writer = self.writer
        writer.write_entry(key, seal_bytes(run._encode(build), writer.store.algorithm), run)
        writer.after_run(run)


#: param types recorded as they are (a float that is NaN or infinite is written as its repr)
_PLAIN = frozenset({int, float, bool, type(None)})

_START_KEYS = (
    "format",
    "id",
    "name",
    "kind",
    "started_at",
    "parent_id",
    "message",
    "tags",
    "params",
    "code",
    "git",
    "env",
    "process",
    "host",
    "user",
    "inputs",
)
_END_KEYS = (
    "id",
    "status",
    "ended_at",
    "params",
    "inputs",
    "outputs",
    "metrics",
    "metric_chunks",
    "metrics_tail",
    "resources",
    "error",
    "warnings",
    "code",
    "returned",
)


def _start_doc(record: dict[str, Any], run: Run) -> dict[str, Any]:
    doc = {k: record[k] for k in _START_KEYS if k in record}
    doc["inputs"] = {k: a.to_json() for k, a in run.state.inputs.items()}
    return doc


def _status(exc_type: type[BaseException] | None, exc: BaseException | None) -> str:
    if exc_type is None:
        return "finished"
    if issubclass(exc_type, KeyboardInterrupt):
        return "interrupted"
    if issubclass(exc_type, SystemExit) and getattr(exc, "code", None) in (0, None):
        return "finished"  # sys.exit(0) ends the process successfully
    return "failed"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__qualname__}: str() failed>"


# ---------------------------------------------------------------------------
# @tracked


@overload
def make_tracked(ledger_getter: Callable[[], RunMaker], fn: F, **opts: Any) -> F: ...
@overload
def make_tracked(
    ledger_getter: Callable[[], RunMaker], fn: None = None, **opts: Any
) -> Callable[[F], F]: ...


def make_tracked(ledger_getter: Callable[[], RunMaker], fn: Any = None, **opts: Any) -> Any:
    """The machinery behind ``@ledger.tracked`` and ``@mlledger.tracked``."""
    allowed = {"name", "ignore", "capture_files", "message", "tags"}
    unknown = set(opts) - allowed
    if unknown:
        raise TypeError(
            f"tracked() got unknown option(s) {sorted(unknown)}; it takes "
            f"{', '.join(sorted(allowed))}"
        )
    if fn is None:
        return lambda f: make_tracked(ledger_getter, f, **opts)
    if isinstance(fn, (staticmethod, classmethod)):
        return type(fn)(make_tracked(ledger_getter, fn.__func__, **opts))
    if isinstance(fn, str):
        raise TypeError(
            "tracked got a string: write @tracked(name='...') with the name as a keyword"
        )
    if not callable(fn):
        raise TypeError(f"@tracked decorates a function, not a {type(fn).__qualname__}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"@tracked cannot wrap the generator function {fn.__qualname__}: its work happens "
            "after the call returns, while it is iterated. Track the function that consumes "
            "it, or wrap the loop in `with ledger.run(...)`"
        )
    ignore = frozenset(opts.get("ignore") or ())
    name = opts.get("name")
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    binder = Binder(sig, ignore) if sig is not None else None

    def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> RunContext | None:
        params: dict[str, Any] = {}
        if binder is not None:
            try:
                params = binder.params(args, kwargs)
            except TypeError:
                return None  # a bad call: the plain call raises the function's own TypeError
        ledger = ledger_getter()
        with _files.quiet():  # reading fn's source is not the enclosing run's input
            return tracked_context(ledger, fn, params, name=name, opts=opts)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            if disabled():
                return await fn(*args, **kwargs)
            ctx = _safe_start(start, args, kwargs)
            if ctx is None:
                return await fn(*args, **kwargs)
            with ctx as run:
                result = await fn(*args, **kwargs)
                ctx.writer.record_return(run, result)
                return result

        awrapper.__mlledger_tracked__ = True  # type: ignore[attr-defined]
        return awrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if disabled():
            return fn(*args, **kwargs)
        ctx = _safe_start(start, args, kwargs)
        if ctx is None:
            return fn(*args, **kwargs)
        with ctx as run:
            result = fn(*args, **kwargs)
            ctx.writer.record_return(run, result)
            return result

    wrapper.__mlledger_tracked__ = True  # type: ignore[attr-defined]
    return wrapper


def _safe_start(
    start: Callable[[tuple[Any, ...], dict[str, Any]], RunContext | None],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> RunContext | None:
    """Build the run context; a capture failure warns and runs the call untracked."""
    try:
        return start(args, kwargs)
    except LedgerError as e:
        from ..errors import PolicyError

        if isinstance(e, PolicyError):
            raise
        warnings.warn(f"mlledger: call not tracked: {e}", LedgerWarning, stacklevel=3)
        return None
    except Exception as e:
        warnings.warn(f"mlledger: call not tracked: {e!r}", LedgerWarning, stacklevel=3)
        return None
