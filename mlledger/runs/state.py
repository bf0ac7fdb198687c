"""What a run holds that its writer, its context and its pins fill and read.

The ``Run`` is the user's view (properties, ``log``, ``use``, ``save``); its
``state`` is the internal side: the record as it grows, the artifact maps, the
warnings, and the bookkeeping of the entries written for it.  Public fields,
because the writer (``runs/writer.py``) and the run's context are its users.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Protocol

from ..capture.redact import scrub
from ..records import Artifact

__all__ = ["END_KEYS", "START_KEYS", "RunState", "WrittenRun", "start_doc"]

#: the record fields a start entry holds, and an end entry
START_KEYS = (
    "format",
    "id",
    "name",
    "kind",
    "baseline",
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
END_KEYS = (
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


class RunState:
    """The mutable side of one run (see the module docstring)."""

    __slots__ = (
        "chunks",
        "detached",
        "entry_digests",
        "flush_due",
        "inputs",
        "outputs",
        "path_args",
        "pin_seq",
        "pinned",
        "record",
        "secret_values",
        "spooled",
        "start_doc",
        "start_due",
        "start_lock",
        "start_written",
        "stats",
        "warnings",
    )

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        #: each metric's [last, min, max, last step, count]
        self.stats: dict[str, list[Any]] = {
            k: [v["last"], v["min"], v["max"], v.get("step"), v["count"]]
            for k, v in record.get("metrics", {}).items()
        }
        #: metric chunk entries written so far
        self.chunks = int(record.get("metric_chunks", 0))
        #: the start entry's fields, while it is not written (encoded only if it ever is)
        self.start_doc: dict[str, Any] | None = None
        self.start_due = math.inf  # when the deferred start entry falls due (monotonic)
        #: when the scheduler next flushes this run's metrics (monotonic; monitor runs only)
        self.flush_due = math.inf
        self.start_written = False
        self.start_lock = threading.Lock()
        #: name -> digest of each entry this run wrote before its end (start, metric chunks):
        #: the end entry names them all, so none can change or go unnoticed (the audit chain)
        self.entry_digests: dict[str, str] = {}
        self.spooled = False  # a write of this run went to the local spool (warned once)
        #: objects already named in a store entry of this run (its start or a pin entry),
        #: so gc elsewhere keeps them while the run is live (see pins.py)
        self.pinned: set[str] = set()
        #: values of this run's secret-named params: masked in every text it records
        self.secret_values: set[str] = set()
        self.pin_seq = 0
        #: (param, path, stat signature or None) of path-like params, checked at the end
        self.path_args: list[tuple[str, str, tuple[int, int, int, bool] | None]] = []
        self.inputs: dict[str, Artifact] = {
            k: Artifact.from_json(v) for k, v in record.get("inputs", {}).items()
        }
        self.outputs: dict[str, Artifact] = {
            k: Artifact.from_json(v) for k, v in record.get("outputs", {}).items()
        }
        self.warnings: list[str] = list(record.get("warnings", []))
        #: a run that records nothing (tracking disabled, or the store refused its start)
        self.detached = False

    def warn(self, message: str) -> None:
        """Add a warning to the run."""
        # a warning quotes values (a repr, an exception): scrubbed like any text that leaves
        self.warnings.append(scrub(message, self.secret_values))


def start_doc(state: RunState) -> dict[str, Any]:
    """The start entry of a run: its start fields, with its inputs as they are now."""
    record = state.record
    doc = {k: record[k] for k in START_KEYS if k in record}
    doc["inputs"] = {k: a.to_json() for k, a in state.inputs.items()}
    return doc


class WrittenRun(Protocol):
    """What the writer reads of a run: its id, its state, its whole record."""

    state: RunState

    @property
    def id(self) -> str: ...

    @property
    def record(self) -> dict[str, Any]: ...
