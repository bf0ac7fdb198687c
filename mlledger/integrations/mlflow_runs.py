"""What ``mlledger import mlflow`` reads of an MLflow run, whichever reader read it.

Three readers fill the same :class:`SourceRun`: the file store's folders read
directly (``mlflow_files.py``), an SQLite database's tables read directly
(``mlflow_sql.py``), and MLflow's own client (:class:`ClientSource`, here: a
tracking server, another database, or any store when asked for).  Each gives
the active experiments, the heads of their active runs (id, experiment, start:
enough to know whether a run was imported before), then a head's whole run.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from typing import Any, Protocol

import attrs

from . import mlflow_store as store

__all__ = [
    "STATUS_NAMES",
    "ClientSource",
    "Point",
    "RunHead",
    "Source",
    "SourceRun",
    "client_installed",
]

#: a metric's logged value: (step, value, timestamp in ms)
Point = tuple[int, float, int]
#: MLflow's RunStatus numbers (what its file store writes) and names
STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


@attrs.frozen
class RunHead:
    """A run found in the store, before it is read: its MLflow id, experiment and start
    (ms), and what its reader needs to read the rest (a folder, a client's run)."""

    run_id: str
    experiment_id: str
    start_time: int
    ref: Any = attrs.field(eq=False, repr=False)


@attrs.frozen
class SourceRun:
    """One MLflow run as its store holds it: a metric's points in the store's order."""

    run_id: str
    experiment_id: str
    name: str | None
    status: str  # MLflow's name: FINISHED, FAILED, KILLED, RUNNING, SCHEDULED
    start_time: int
    end_time: int | None
    user_id: str | None
    artifact_uri: str | None
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, list[Point]]


class Source(Protocol):
    """A reader of one tracking store."""

    #: whether artifacts on the local disk are read in place (else MLflow's repository)
    local_artifacts: bool
    #: whether load() may run in several threads at once
    parallel: bool

    def experiments(self) -> dict[str, str]:
        """The active experiments: id -> name."""
        ...

    def heads(self, experiment_ids: list[str]) -> list[RunHead]:
        """The active runs of these experiments."""
        ...

    def load(self, head: RunHead) -> SourceRun:
        """The whole run (safe to call from several threads at once)."""
        ...

    def close(self) -> None: ...


def client_installed() -> bool:
    """Whether MLflow's client can be imported, found without importing it (importing
    MLflow takes seconds, and the direct readers do not need it)."""
    for name in ("mlflow.tracking", "mlflow"):
        if name in sys.modules:
            return sys.modules[name] is not None
    try:
        spec = importlib.util.find_spec("mlflow")
    except (ImportError, ValueError):
        return False
    places = (spec.submodule_search_locations or []) if spec is not None else []
    return any(os.path.isfile(os.path.join(p, "tracking", "__init__.py")) for p in places)


class ClientSource:
    """The store read through MLflow's client: ``search_runs`` for the runs (params and
    tags with them), ``get_metric_history`` for each metric of each."""

    local_artifacts = False
    parallel = False  # one client, used from one thread

    def __init__(self, uri: str) -> None:
        self.client = store.client(uri)

    def experiments(self) -> dict[str, str]:
        return {str(e.experiment_id): str(e.name) for e in store.experiments(self.client)}

    def heads(self, experiment_ids: list[str]) -> list[RunHead]:
        return [
            RunHead(r.info.run_id, str(r.info.experiment_id), r.info.start_time or 0, r)
            for r in store.runs(self.client, experiment_ids)
        ]

    def load(self, head: RunHead) -> SourceRun:
        info, data = head.ref.info, head.ref.data
        return SourceRun(
            run_id=str(info.run_id),
            experiment_id=str(info.experiment_id),
            name=info.run_name,
            status=str(info.status),
            start_time=info.start_time or 0,
            end_time=info.end_time,
            user_id=info.user_id,
            artifact_uri=info.artifact_uri,
            params={str(k): str(v) for k, v in data.params.items()},
            tags={str(k): "" if v is None else str(v) for k, v in data.tags.items()},
            metrics={str(k): list(_history(self.client, info.run_id, k)) for k in data.metrics},
        )

    def close(self) -> None:
        """Nothing to close: MLflow's client holds no connection of its own here."""


def _history(client: Any, run_id: str, key: str) -> Iterator[Point]:
    for m in client.get_metric_history(run_id, key):
        yield int(m.step), float(m.value), int(m.timestamp)
