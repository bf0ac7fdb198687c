"""An MLflow ``sqlite:///`` database read straight from its tables, without MLflow.

Opened read-only (``file:...?mode=ro``: nothing is ever written to it, not even
a journal).  Its schema version (``alembic_version``) must be one of those MLflow
wrote from the first with a metric's ``step`` and ``is_nan`` (MLflow 1.x) to the
newest this reader knows; another is refused naming the file and the version
(import it with ``--via-client``: MLflow's own client reads what it knows).  Each
table and column read is checked to be there.  Values come as MLflow's client
gives them: a NaN metric is NaN, a run's name falls back to its
``mlflow.runName`` tag, a metric's history in MLflow's order (time, step, value).
One connection per thread, so runs are read from several threads at once.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any
from urllib.parse import quote

from ..errors import FormatError
from .mlflow_runs import RunHead, SourceRun

__all__ = ["KNOWN_VERSIONS", "SqliteSource"]

#: MLflow's schema revisions, oldest first: from the one adding ``metrics.is_nan``
#: (with ``metrics.step`` before it) to MLflow 3.18's; none of them changed what is read
KNOWN_VERSIONS = (
    "181f10493468", "df50e92ffc5e", "7ac759974ad8", "89d4b8295536", "2b4d017a5e9b",
    "cfd24bdc0731", "0a8213491aaa", "728d730b5ebd", "27a6a02d2cf1", "84291f40a231",
    "a8c4a736bde6", "39d1c3be5f05", "c48cb773bb87", "bd07f7e963c5", "0c779009ac13",
    "cc1f77228345", "97727af70f4d", "3500859a5d39", "7f2a7d5fae7d", "2d6e25af4d3e",
    "acf3f17fdcc7", "867495a8f9d4", "5b0e9adcef9c", "4465047574b1", "f5a4f2784254",
    "0584bdc529eb", "400f98739977", "6953534de441", "bda7b8c39065", "cbc13b556ace",
    "770bee3ae1dd", "a1b2c3d4e5f6", "de4033877273", "1a0cddfcaa16", "534353b11cbc",
    "71994744cf8e", "3da73c924c2f", "bf29a5ff90ea", "1bd49d398cd23", "b7c8d9e0f1a2",
    "5d2d30f0abce", "c9d4e5f6a7b8", "2c33131f4dae", "d3e4f5a6b7c8", "d0e1f2a3b4c5",
    "c8d9e0f1a2b3", "1b5f0d9ad7c1", "e1f2a3b4c5d6", "76601a5f987d", "c3d6457b6d8a",
    "a5b4c3d2e1f0", "ae8bbe7743c9", "7d34483879f0", "da6fb0208061", "89d3d66ed43f",
    "b7e4c1a90f23", "a8b9c0d1e2f3", "c1d2e3f4a5b6", "c3d9e7f1a2b4", "6f8d9c3b2a1e",
    "1971f2d9a75b", "17e22815139b", "b7e2c1a4d9f3", "75868b020152", "dc11669786a5",
    "e7d1f4b2a9c6", "8b6ad64cb8f5", "f4a9b2c7d1e6",
)  # fmt: skip
#: the columns read, by table
_COLUMNS = {
    "experiments": ("experiment_id", "name", "lifecycle_stage"),
    "runs": (
        "run_uuid", "name", "user_id", "status", "start_time", "end_time",
        "lifecycle_stage", "artifact_uri", "experiment_id",
    ),
    "metrics": ("key", "value", "timestamp", "run_uuid", "step", "is_nan"),
    "params": ("key", "value", "run_uuid"),
    "tags": ("key", "value", "run_uuid"),
}  # fmt: skip
_STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED")


class SqliteSource:
    """The runs of the MLflow database at ``path``, read with the stdlib's sqlite3."""

    local_artifacts = True
    parallel = True

    def __init__(self, path: str) -> None:
        self.path = path
        self.uri = f"file:{quote(path)}?mode=ro"
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._check()

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.uri, uri=True, check_same_thread=False)
            except sqlite3.Error as e:
                raise FormatError(f"{self.path}: cannot open the database read-only ({e})") from e
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._con().execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise FormatError(f"{self.path}: cannot read the database ({e})") from e

    def _check(self) -> None:
        rows = self._rows("SELECT version_num FROM alembic_version")
        versions = sorted(str(r[0]) for r in rows)
        if len(versions) != 1 or versions[0] not in KNOWN_VERSIONS:
            shown = ", ".join(versions) or "none"
            raise FormatError(
                f"{self.path}: MLflow schema version {shown} is not one this reader knows "
                f"(it reads {KNOWN_VERSIONS[0]} to {KNOWN_VERSIONS[-1]}); import it with "
                "--via-client (MLflow's own client), or upgrade it with 'mlflow db upgrade'"
            )
        for table, cols in _COLUMNS.items():
            have = {str(r[1]) for r in self._rows(f"PRAGMA table_info({table})")}
            missing = [c for c in cols if c not in have]
            if missing:
                raise FormatError(
                    f"{self.path}: table {table} has no {', '.join(missing)} although its "
                    f"schema version {versions[0]} has: a damaged MLflow database"
                )

    def experiments(self) -> dict[str, str]:
        rows = self._rows(
            "SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'"
        )
        return {str(i): str(n) for i, n in rows}

    def heads(self, experiment_ids: list[str]) -> list[RunHead]:
        wanted = set(experiment_ids)
        rows = self._rows(
            "SELECT run_uuid, experiment_id, start_time FROM runs WHERE lifecycle_stage = 'active'"
        )
        return [
            RunHead(str(r), str(e), int(s or 0), None)
            for r, e, s in rows
            if str(e) in wanted
        ]

    def load(self, head: RunHead) -> SourceRun:
        rid = head.run_id
        rows = self._rows(
            "SELECT name, user_id, status, start_time, end_time, artifact_uri FROM runs "
            "WHERE run_uuid = ?",
            (rid,),
        )
        if not rows:
            raise FormatError(f"{self.path}: run {rid} went away while it was imported")
        name, user, status, start, end, art = rows[0]
        if status not in _STATUSES:
            raise FormatError(f"{self.path}: run {rid} has an unknown status {status!r}")
        tags = self._pairs("tags", rid)
        metrics: dict[str, list[tuple[int, float, int]]] = {}
        for key, value, ts, step, nan in self._rows(
            "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? "
            "ORDER BY key, timestamp, step, value",
            (rid,),
        ):
            v = float("nan") if nan else float(value)
            metrics.setdefault(str(key), []).append((int(step), v, int(ts)))
        return SourceRun(
            run_id=rid,
            experiment_id=head.experiment_id,
            name=str(name) if name else tags.get("mlflow.runName"),
            status=str(status),
            start_time=int(start or 0),
            end_time=int(end) if end is not None else None,
            user_id=str(user) if user is not None else None,
            artifact_uri=str(art) if art is not None else None,
            params=self._pairs("params", rid),
            tags=tags,
            metrics=metrics,
        )

    def _pairs(self, table: str, rid: str) -> dict[str, str]:
        rows = self._rows(f"SELECT key, value FROM {table} WHERE run_uuid = ?", (rid,))
        return {str(k): "" if v is None else str(v) for k, v in rows}

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
