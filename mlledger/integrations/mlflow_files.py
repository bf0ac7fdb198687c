"""An MLflow file store (``mlruns``) read straight from its folders, without MLflow.

The layout MLflow's ``FileStore`` writes (1.x to 3.x)::

    <root>/<experiment id>/meta.yaml            name, lifecycle_stage, ...
    <root>/<experiment id>/<run id>/meta.yaml   run_id, status (a number), times, user
    <root>/<experiment id>/<run id>/params/<key>     the value, as text
    <root>/<experiment id>/<run id>/tags/<key>       the value, as text
    <root>/<experiment id>/<run id>/metrics/<key>    "timestamp value [step [dataset digest]]"
    <root>/<experiment id>/<run id>/artifacts/       (or wherever artifact_uri says)

A key with ``/`` in it is a sub-folder.  ``.trash`` (deleted experiments) and
``models`` are not experiments.  The shape is checked and what this reader does
not know is refused with a :class:`FormatError` naming the file: a meta.yaml
that is empty, cut short (MLflow ends it with a newline), not a mapping, missing
a key MLflow always writes, holding a key no MLflow version writes, or naming
another id than its folder's; a metric line that does not parse or a metric
file cut mid-line.  A run folder with no meta.yaml at all (MLflow died between
making the folder and writing it; MLflow's own client passes over it too) is
skipped with a warning naming the file.  YAML is read with PyYAML, which the
``mlflow`` extra brings.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import FormatError, MissingExtraError
from .mlflow_runs import STATUS_NAMES, RunHead, SourceRun
from .mlflow_store import HINT

__all__ = ["FileSource", "read_meta"]

_RUN_FOLDER = re.compile(r"[0-9a-f]{32}")
#: folders of the root that are not experiments, and of an experiment that are not runs
_NOT_EXPERIMENTS = {".trash", "models"}
_NOT_RUNS = {"tags", "datasets", "traces", "models"}
#: the keys MLflow versions write in an experiment's and a run's meta.yaml
_EXPERIMENT_KEYS = {
    "artifact_location", "creation_time", "effective_trace_archival_retention",
    "experiment_id", "last_update_time", "lifecycle_stage", "name", "tags",
    "trace_location", "workspace",
}  # fmt: skip
_RUN_KEYS = {
    "artifact_uri", "deleted_time", "end_time", "entry_point_name", "experiment_id",
    "lifecycle_stage", "name", "run_id", "run_name", "run_uuid", "source_name",
    "source_type", "source_version", "start_time", "status", "tags", "user_id",
}  # fmt: skip
_EXPERIMENT_NEEDS = ("experiment_id", "name")
_RUN_NEEDS = ("experiment_id", "start_time", "status", "user_id")
_STAGES = ("active", "deleted")


def _yaml_loader() -> Any:
    try:
        import yaml
    except ImportError as e:
        raise MissingExtraError(f"reading an MLflow folder needs PyYAML: {HINT}") from e
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_meta(path: str, kind: str, loader: Any = None) -> dict[str, Any]:
    """An experiment's or a run's (``kind``) meta.yaml, checked to be one MLflow wrote
    whole; a FormatError naming the file otherwise."""
    import yaml

    loader = loader or _yaml_loader()
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise FormatError(f"{path} is empty: a half-written MLflow {kind}; remove its folder")
    if not raw.endswith(b"\n"):
        raise FormatError(f"{path} is cut short (no final newline): a half-written MLflow {kind}")
    try:
        meta = yaml.load(raw, Loader=loader)
    except yaml.YAMLError as e:
        first = " ".join(str(e).split())[:160]
        raise FormatError(f"{path} is not valid YAML ({first}): a damaged MLflow {kind}") from e
    if not isinstance(meta, dict):
        raise FormatError(f"{path} is not an MLflow {kind}'s meta.yaml (not a mapping)")
    run = kind == "run"
    known, needs = (_RUN_KEYS, _RUN_NEEDS) if run else (_EXPERIMENT_KEYS, _EXPERIMENT_NEEDS)
    unknown = sorted(str(k) for k in set(meta) - known)
    if unknown:
        raise FormatError(
            f"{path} has {', '.join(unknown)}, which no MLflow version this reader knows "
            "writes; import it with --via-client (MLflow's own client reads it)"
        )
    missing = [k for k in needs if k not in meta]
    if run and "run_id" not in meta and "run_uuid" not in meta:
        missing.append("run_id")
    if missing:
        raise FormatError(f"{path} has no {', '.join(missing)}: a half-written MLflow {kind}")
    if meta.get("lifecycle_stage", "active") not in _STAGES:
        raise FormatError(f"{path}: unknown lifecycle_stage {meta['lifecycle_stage']!r}")
    return meta


class FileSource:
    """The runs of the ``mlruns`` folder ``root``, read from its files."""

    local_artifacts = True
    parallel = True

    def __init__(self, root: str, warnings: list[str]) -> None:
        self.root = root
        self.warnings = warnings
        self.loader = _yaml_loader()

    def experiments(self) -> dict[str, str]:
        out: dict[str, str] = {}
        with os.scandir(self.root) as it:
            folders = sorted(e.name for e in it if e.is_dir() and e.name not in _NOT_EXPERIMENTS)
        for name in folders:
            path = os.path.join(self.root, name, "meta.yaml")
            if not os.path.isfile(path):
                self.warnings.append(f"skipped {os.path.dirname(path)}: no meta.yaml in it")
                continue
            meta = read_meta(path, "experiment", self.loader)
            if str(meta["experiment_id"]) != name:
                raise FormatError(
                    f"{path} names experiment {meta['experiment_id']!r}, not its folder's {name!r}"
                )
            if meta.get("lifecycle_stage", "active") == "active":
                out[name] = str(meta["name"])
        return out

    def heads(self, experiment_ids: list[str]) -> list[RunHead]:
        out = []
        for exp in experiment_ids:
            folder = os.path.join(self.root, exp)
            with os.scandir(folder) as it:
                runs = sorted(e.name for e in it if e.is_dir() and e.name not in _NOT_RUNS)
            for name in runs:
                path = os.path.join(folder, name, "meta.yaml")
                if not os.path.exists(path):
                    if _RUN_FOLDER.fullmatch(name):
                        self.warnings.append(f"skipped a half-written run: {path} is missing")
                    continue
                meta = read_meta(path, "run", self.loader)
                head = _head(path, meta, exp, name)
                if meta.get("lifecycle_stage", "active") == "active":
                    out.append(head)
        return out

    def load(self, head: RunHead) -> SourceRun:
        folder, meta = head.ref
        status = meta["status"]
        tags = _texts(os.path.join(folder, "tags"))
        end = meta.get("end_time")
        return SourceRun(
            run_id=head.run_id,
            experiment_id=head.experiment_id,
            name=meta.get("run_name") or None,
            status=STATUS_NAMES[status],
            start_time=head.start_time,
            end_time=int(end) if end is not None else None,
            user_id=meta.get("user_id"),
            artifact_uri=meta.get("artifact_uri"),
            params=_texts(os.path.join(folder, "params")),
            tags=tags,
            metrics={k: _points(p) for k, p in _files(os.path.join(folder, "metrics"))},
        )

    def close(self) -> None:
        """Nothing to close: every file is read and closed as it is opened."""


def _head(path: str, meta: dict[str, Any], exp: str, name: str) -> RunHead:
    """The run's head from its checked meta.yaml (ids, status and times of the known kinds)."""
    rid = str(meta.get("run_id") or meta.get("run_uuid"))
    if rid != name or str(meta["experiment_id"]) != exp:
        raise FormatError(
            f"{path} names run {rid!r} of experiment {meta['experiment_id']!r}, not its "
            f"folder's {name!r} of {exp!r}: a moved or damaged MLflow run"
        )
    if meta["status"] not in STATUS_NAMES:
        raise FormatError(f"{path}: unknown run status {meta['status']!r}")
    for key in ("start_time", "end_time"):
        if meta.get(key) is not None and not isinstance(meta[key], int):
            raise FormatError(f"{path}: {key} is {meta[key]!r}, not a time in milliseconds")
    return RunHead(rid, exp, int(meta["start_time"] or 0), (os.path.dirname(path), meta))


def _files(folder: str) -> list[tuple[str, str]]:
    """(key, path) of each file under ``folder``; a key's sub-folders joined with ``/``."""
    out = []
    for top, _dirs, names in os.walk(folder):
        rel = os.path.relpath(top, folder)
        for n in names:
            key = n if rel == "." else f"{rel.replace(os.sep, '/')}/{n}"
            out.append((key, os.path.join(top, n)))
    return out


def _texts(folder: str) -> dict[str, str]:
    out = {}
    for key, path in _files(folder):
        with open(path, encoding="utf-8", newline="") as f:
            out[key] = f.read()
    return out


def _points(path: str) -> list[tuple[int, float, int]]:
    """A metric file's points (step, value, timestamp), in the file's order."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if not text:
        raise FormatError(f"{path} is empty: a half-written MLflow metric")
    if not text.endswith("\n"):
        raise FormatError(f"{path} is cut mid-line: a half-written MLflow metric")
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        parts = line.strip().split(" ")
        try:
            if len(parts) not in (2, 3, 5):
                raise ValueError(f"{len(parts)} fields")
            step = int(parts[2]) if len(parts) >= 3 else 0
            out.append((step, float(parts[1]), int(parts[0])))
        except ValueError as e:
            raise FormatError(
                f"{path} line {no}: {line[:80]!r} is not 'timestamp value step' ({e}): "
                "a damaged MLflow metric"
            ) from e
    return out
