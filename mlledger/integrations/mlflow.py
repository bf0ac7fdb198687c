"""``mlledger import mlflow``: an MLflow tracking store brought into the ledger.

The store is read through MLflow's own client (the ``mlflow`` extra:
``mlflow-skinny``; ``sqlalchemy`` and ``alembic`` too for a database), never by
parsing its files: a ``./mlruns`` folder, a ``sqlite:///`` database, or any
tracking URI the client reads.  Each active run of each active experiment
becomes an ordinary run entry (``runs/imported.py``):

- params, typed where the text is a number (``"0.1"`` is 0.1), secrets redacted;
- every metric's whole history (step, value, time), ordered by step then time,
  so its last value is the one MLflow shows;
- tags as they are, plus ``mlflow.run_id``, ``mlflow.experiment`` (the name),
  ``mlflow.experiment_id`` and ``mlflow.source_uri``; the note
  (``mlflow.note.content``) is the run's message, ``mlflow.parentRunId`` its
  parent when that run is imported too;
- artifacts: each top-level file or folder an output by its artifact path,
  stored by digest;
- start and end times, user, status (FINISHED → finished, FAILED → failed,
  KILLED → interrupted, RUNNING or SCHEDULED → incomplete).

Idempotent: a run's id comes from its MLflow run id and start time, and a run
whose entries exist is skipped before anything is read for it, so a second
import adds nothing (a run imported while RUNNING stays as it was then).
Bad input raises one clear error naming the path: not an MLflow store, a
database of a schema this MLflow does not read.  A run folder without its
``meta.yaml`` (a run cut short while MLflow created it) is skipped with a
warning naming the file; MLflow's client passes over it too.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..capture.redact import REDACTED, is_secret_name, redact_text
from ..errors import LedgerError, NotFoundError
from ..ids import fixed_run_id
from ..late import flush_all
from ..records import Artifact, to_iso
from ..runs.imported import is_imported, write_past_run
from . import mlflow_store as store

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..runs.metrics import Column

__all__ = ["ImportReport", "import_mlflow", "mlflow_run_id"]

#: MLflow's run statuses and ours
STATUS = {
    "FINISHED": "finished",
    "FAILED": "failed",
    "KILLED": "interrupted",
    "RUNNING": "incomplete",
    "SCHEDULED": "incomplete",
}
_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")  # no "007", "1."
#: runs added to the catalog in one transaction
_INDEX_BATCH = 500


@attrs.frozen
class ImportReport:
    """What an import did: the ledger's ids of the runs it wrote, the MLflow run ids it
    found already imported, how many experiments and artifacts, and its warnings."""

    source: str
    experiments: int
    imported: tuple[str, ...]
    skipped: tuple[str, ...]
    artifacts: int
    warnings: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self).items()}


def mlflow_run_id(mlflow_id: str, start_ms: int) -> str:
    """The ledger's id of the MLflow run ``mlflow_id`` that started at ``start_ms``."""
    return fixed_run_id(max(0, start_ms), f"mlflow:{mlflow_id}".encode())


def import_mlflow(
    ledger: Ledger,
    uri: str | os.PathLike[str],
    *,
    experiments: Sequence[str] | None = None,
    artifacts: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import the MLflow tracking store at ``uri`` (a folder, a database file, a tracking
    URI) into ``ledger``.  ``experiments``: only these (names or ids); ``artifacts=False``
    leaves artifacts out; ``progress(done, total)`` is called after each run.
    """
    source, root = store.resolve(os.fspath(uri))
    warns: list[str] = []
    with store.file_store_allowed(), store.mlflow_warnings(warns):
        client = store.client(source)
        try:
            exps = {e.experiment_id: e.name for e in store.experiments(client)}
        except LedgerError:
            raise
        except Exception as e:
            raise store.refused(source, e) from e
        if experiments is not None:
            wanted = set(experiments)
            exps = {i: n for i, n in exps.items() if i in wanted or n in wanted}
            missing = wanted - set(exps) - set(exps.values())
            if missing:
                raise NotFoundError(
                    f"no active experiment {', '.join(sorted(missing))!s} in {source}; "
                    f"the store has: {', '.join(sorted(exps.values())) or 'none'}"
                )
        if root is not None:
            warns.extend(store.half_written(root, exps))
        try:
            runs = list(store.runs(client, list(exps)))
        except Exception as e:
            raise store.refused(source, e) from e
        ids = {r.info.run_id: mlflow_run_id(r.info.run_id, r.info.start_time or 0) for r in runs}
        writer = ledger.writer
        ledger.catalog  # noqa: B018 - opened, so each run written is in it at once
        imported: list[str] = []
        skipped: list[str] = []
        batch: list[dict[str, Any]] = []  # written, not in the catalog yet
        n_art = 0
        shown = store.redact_uri(source)
        job = _Job(client, ledger, ids, exps, shown, artifacts, source)
        # oldest first: a parent is written before its children
        runs.sort(key=lambda r: (r.info.start_time or 0, ids[r.info.run_id]))
        try:
            for i, r in enumerate(runs):
                rid = ids[r.info.run_id]
                if is_imported(writer, rid):
                    skipped.append(r.info.run_id)
                else:
                    rec, cols, outs, rwarn = _convert(job, r, rid)
                    n_art += len(outs)
                    warns.extend(f"run {r.info.run_id}: {w}" for w in rwarn)
                    written = write_past_run(writer, rec, cols)
                    if written is None:
                        skipped.append(r.info.run_id)
                    else:
                        imported.append(rid)
                        batch.append(written)
                    if len(batch) >= _INDEX_BATCH:
                        _index(writer, batch)
                if progress is not None:
                    progress(i + 1, len(runs))
        except LedgerError:
            raise
        except Exception as e:  # MLflow's client failed on a run: the runs before it stay
            raise store.refused(source, e) from e
        finally:
            _index(writer, batch)
            flush_all()  # the back-dated days are marked for every catalog now
    return ImportReport(shown, len(exps), tuple(imported), tuple(skipped), n_art, tuple(warns))


def _index(writer: Any, batch: list[dict[str, Any]]) -> None:
    """Add the records written to the ledger's catalog in one transaction (a cache: a
    failure here leaves them for the next sync to find), and empty ``batch``."""
    if batch and writer.index is not None:
        with contextlib.suppress(Exception):
            writer.index.add_records(batch, in_transaction=False)
    batch.clear()


# -- one run ----------------------------------------------------------------------------
@attrs.frozen
class _Job:
    """What converting one run needs: the client, the ledger, the ids and names known."""

    client: Any
    ledger: Ledger
    ids: dict[str, str]  # MLflow run id -> ledger run id
    exps: dict[str, str]  # experiment id -> name
    source: str  # the store's URI as shown
    artifacts: bool
    uri: str  # the tracking URI itself


def _convert(
    job: _Job, r: Any, rid: str
) -> tuple[dict[str, Any], dict[str, Column], dict[str, Artifact], list[str]]:
    """The run record, metric columns, outputs and warnings of the MLflow run ``r``."""
    client, ids, exps, source = job.client, job.ids, job.exps, job.source
    info, data = r.info, r.data
    warns: list[str] = []
    tags = {str(k): _text(k, v) for k, v in data.tags.items()}
    tags["mlflow.run_id"] = info.run_id
    tags["mlflow.experiment_id"] = str(info.experiment_id)
    tags["mlflow.experiment"] = exps.get(info.experiment_id, str(info.experiment_id))
    tags["mlflow.source_uri"] = source
    status = STATUS.get(str(info.status), "incomplete")
    if status == "incomplete":
        warns.append(f"imported while MLflow had it as {info.status}")
    name = info.run_name or data.tags.get("mlflow.runName") or "mlflow-run"
    rec: dict[str, Any] = {
        "format": 1,
        "id": rid,
        "name": str(name),
        "kind": "imported",
        "status": status,
        "started_at": _iso(info.start_time),
        "ended_at": _iso(info.end_time) if info.end_time else None,
        "parent_id": ids.get(data.tags.get("mlflow.parentRunId", "")),
        "message": tags.get("mlflow.note.content"),
        "tags": tags,
        "params": {str(k): _param(k, v) for k, v in data.params.items()},
        "user": info.user_id or data.tags.get("mlflow.user") or "",
        "code": _code(name, data.tags),
    }
    git = _git(data.tags)
    if git:
        rec["git"] = git
    if info.start_time and info.end_time:
        rec["resources"] = {"wall_s": max(0.0, (info.end_time - info.start_time) / 1000)}
    if status in ("failed", "interrupted"):
        rec["error"] = {
            "type": f"mlflow.{info.status}",
            "message": f"MLflow recorded the run as {info.status} (it keeps no error message)",
            "traceback": "",
        }
    cols: dict[str, Column] = {}
    for key in sorted(data.metrics):
        hist = sorted(
            client.get_metric_history(info.run_id, key), key=lambda m: (m.step, m.timestamp)
        )
        cols[str(key)] = (
            [int(m.step) for m in hist],
            [float(m.value) for m in hist],
            [m.timestamp / 1000 for m in hist],
        )
    outs: dict[str, Artifact] = {}
    if job.artifacts:
        try:
            outs = _artifacts(info, job.ledger, job.uri)
        except LedgerError:
            raise
        except Exception as e:
            warns.append(f"artifacts not imported: {' '.join(str(e).split())[:200]}")
    rec["outputs"] = {k: a.to_json() for k, a in outs.items()}
    rec["inputs"] = {}
    rec["warnings"] = warns
    return rec, cols, outs, warns


def _artifacts(info: Any, ledger: Ledger, tracking_uri: str) -> dict[str, Artifact]:
    """Each top-level artifact of the run, listed and downloaded by MLflow's artifact
    repository for the run's artifact URI (no second read of the run), and stored."""
    base = str(info.artifact_uri or "").rstrip("/")
    if not base:
        return {}
    repo = _artifact_repository(base, tracking_uri)
    top = repo.list_artifacts()
    out: dict[str, Artifact] = {}
    if not top:
        return out
    with tempfile.TemporaryDirectory(prefix="mlledger-mlflow-") as tmp:
        for f in sorted(top, key=lambda f: f.path):
            local = repo.download_artifacts(f.path, dst_path=tmp)
            got = ledger.store.put(local)
            out[f.path] = Artifact(
                got.digest,
                got.size,
                got.kind,
                path=f"{redact_text(base)}/{f.path}",
                files=got.files if got.kind == "tree" else None,
            )
    return out


def _artifact_repository(uri: str, tracking_uri: str) -> Any:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:  # MLflow 3 resolves mlflow-artifacts:/ URIs against the tracking URI given
        return get_artifact_repository(uri, tracking_uri=tracking_uri)
    except TypeError:  # MLflow 2: the URI alone
        return get_artifact_repository(uri)


def _param(k: Any, v: Any) -> Any:
    """An MLflow param's text as a number where it is one (secrets redacted)."""
    if is_secret_name(str(k)):
        return REDACTED
    s = str(v)
    if _INT.fullmatch(s):
        n = int(s)
        return n if abs(n) < 1 << 53 else s  # beyond a float's exact range: keep the text
    if _FLOAT.fullmatch(s):
        return float(s)
    return redact_text(s)


def _text(k: Any, v: Any) -> str:
    return REDACTED if is_secret_name(str(k)) else redact_text(str(v))


def _iso(ms: int | None) -> str:
    t = _dt.datetime.fromtimestamp(max(0, ms or 0) / 1000, tz=_dt.timezone.utc)
    return to_iso(t)


def _code(name: Any, tags: dict[str, str]) -> dict[str, Any]:
    code: dict[str, Any] = {"kind": "mlflow", "qualname": str(name)}
    src = tags.get("mlflow.source.name")
    if src:
        code["file"] = redact_text(src)
    return code


def _git(tags: dict[str, str]) -> dict[str, Any]:
    git: dict[str, Any] = {}
    for ours, theirs in (
        ("commit", "mlflow.source.git.commit"),
        ("branch", "mlflow.source.git.branch"),
        ("remote", "mlflow.source.git.repoURL"),
    ):
        if tags.get(theirs):
            git[ours] = redact_text(tags[theirs])
    return git
