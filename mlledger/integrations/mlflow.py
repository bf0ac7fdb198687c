"""``mlledger import mlflow``: an MLflow tracking store brought into the ledger.

A local ``./mlruns`` folder is read straight from its files
(``mlflow_files.py``) and a ``sqlite:///`` database straight from its tables
(``mlflow_sql.py``), each checked to be a layout or schema version MLflow
wrote and this reader knows; any other tracking URI (a server, another
database), or any store with ``via_client=True``, is read through MLflow's own
client (``mlflow_runs.ClientSource``; the ``mlflow`` extra, which the direct
readers need installed too, for PyYAML and for artifacts that are not on the
local disk).  Each active run of each active experiment becomes an ordinary run
entry (``runs/imported.py``):

- params, typed where the text is a number (``"0.1"`` is 0.1), secrets redacted;
- every metric's whole history (step, value, time), ordered by step then time,
  so its last value is the one MLflow shows;
- tags as they are, plus ``mlflow.run_id``, ``mlflow.experiment`` (the name),
  ``mlflow.experiment_id`` and ``mlflow.source_uri``; the note
  (``mlflow.note.content``) is the run's message, ``mlflow.parentRunId`` its
  parent when that run is imported too;
- artifacts: each top-level file or folder an output by its artifact path,
  stored by digest (read in place from a local folder, else downloaded by
  MLflow's artifact repository);
- start and end times, user, status (FINISHED → finished, FAILED → failed,
  KILLED → interrupted, RUNNING or SCHEDULED → incomplete).

Into a remote ledger (S3, GCS) runs are read, converted and written by several
threads at once (a bounded window of runs in flight); the catalog is told in
batches.
Idempotent: a run's id comes from its MLflow run id and start time, and a run
whose entries exist is skipped before anything is read for it, so a second
import adds nothing (a run imported while RUNNING stays as it was then).
Bad input raises one clear error naming the path: not an MLflow store, a
database of a schema version this reader does not know, a half-written
meta.yaml or metric file.  A run folder without its ``meta.yaml`` (a run cut
short while MLflow created it) is skipped with a warning naming the file;
MLflow's client passes over it too.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import attrs

from ..capture.redact import REDACTED, is_secret_name, redact_text
from ..errors import LedgerError, MissingExtraError, NotFoundError
from ..ids import fixed_run_id
from ..late import flush_all
from ..records import Artifact, to_iso
from ..runs.imported import is_imported, write_past_run
from . import mlflow_store as store
from .mlflow_files import FileSource
from .mlflow_runs import ClientSource, RunHead, Source, SourceRun, client_installed
from .mlflow_sql import SqliteSource
from .mlflow_store import HINT

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
#: runs read, converted and written at once into a store on S3, GCS...: each entry written
#: there is a round trip.  Into a local folder the import is CPU-bound Python (the profile:
#: creating the entries' files, parsing, JSON), which more threads only slow down (GIL)
_REMOTE_WORKERS = 8


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
    via_client: bool = False,
) -> ImportReport:
    """Import the MLflow tracking store at ``uri`` (a folder, a database file, a tracking
    URI) into ``ledger``.  ``experiments``: only these (names or ids); ``artifacts=False``
    leaves artifacts out; ``progress(done, total)`` is called after each run;
    ``via_client``: read a folder or an SQLite database through MLflow's client too
    (slower; for a layout the direct readers refuse as unknown).
    """
    source, root = store.resolve(os.fspath(uri))
    if not client_installed():
        raise MissingExtraError(f"importing from MLflow needs its client: {HINT}")
    warns: list[str] = []
    shown = store.redact_uri(source)
    with store.file_store_allowed(), store.mlflow_warnings(warns):
        src = _open(source, root, via_client, warns)
        try:
            exps, heads = _find(src, source, experiments)
            if root is not None and isinstance(src, ClientSource):
                warns.extend(store.half_written(root, exps))
            ids = {h.run_id: mlflow_run_id(h.run_id, h.start_time) for h in heads}
            job = _Job(src, ledger, ids, exps, shown, artifacts, source)
            # oldest first: a parent is written before its children
            heads.sort(key=lambda h: (h.start_time, ids[h.run_id]))
            done = _run_all(job, heads, progress)
        finally:
            src.close()
    imported = tuple(d.rid for d in done if d.record is not None)
    skipped = tuple(d.mlflow_id for d in done if d.record is None)
    n_art = sum(d.artifacts for d in done)
    warns.extend(w for d in done for w in d.warnings)
    return ImportReport(shown, len(exps), imported, skipped, n_art, tuple(warns))


def _open(source: str, root: str | None, via_client: bool, warns: list[str]) -> Source:
    """The reader for the store: its folder or database read directly, else the client."""
    db = store.database_path(source)
    if via_client or (root is None and db is None):
        return ClientSource(source)
    if root is not None:
        return FileSource(root, warns)
    assert db is not None
    return SqliteSource(db)


def _find(
    src: Source, source: str, experiments: Sequence[str] | None
) -> tuple[dict[str, str], list[RunHead]]:
    """The experiments asked for (all active ones by default) and their active runs."""
    try:
        exps = src.experiments()
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
    try:
        return exps, src.heads(list(exps))
    except LedgerError:
        raise
    except Exception as e:
        raise store.refused(source, e) from e


@attrs.frozen
class _Done:
    """What importing one run did: its record as written (None: it was there already)."""

    mlflow_id: str
    rid: str
    record: dict[str, Any] | None = None
    artifacts: int = 0
    warnings: tuple[str, ...] = ()


def _run_all(
    job: _Job, heads: list[RunHead], progress: Callable[[int, int], None] | None
) -> list[_Done]:
    """Each run read, converted and written by a bounded pool of threads (several into a
    remote store, whose writes wait on the network; one into a local folder), a few
    runs ahead at most; the records written are added to the catalog in batches.  A
    failure stops the submitting: the runs in flight finish (each whole or not at all)
    and are indexed, then it is raised."""
    writer = job.ledger.writer
    job.ledger.catalog  # noqa: B018 - opened, so each run written is in it at once
    workers = _REMOTE_WORKERS if job.source.parallel and not job.ledger.store.is_local else 1
    done: list[_Done] = []
    batch: list[dict[str, Any]] = []  # written, not in the catalog yet
    window: deque[Future[_Done]] = deque()
    failed: list[BaseException] = []

    def take() -> None:
        try:
            d = window.popleft().result()
        except BaseException as e:
            failed.append(e)
            return
        done.append(d)
        if d.record is not None:
            batch.append(d.record)
            if len(batch) >= _INDEX_BATCH:
                _index(writer, batch)
        if progress is not None:
            progress(len(done), len(heads))

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="mlledger-mlflow") as pool:
            for head in heads:
                if failed:
                    break
                window.append(pool.submit(_one, job, head))
                while len(window) >= 2 * workers:
                    take()
            while window:
                take()
    finally:
        _index(writer, batch)
        flush_all()  # the back-dated days are marked for every catalog now
    if failed:
        e = failed[0]
        if isinstance(e, LedgerError) or not isinstance(e, Exception):
            raise e
        raise store.refused(job.uri, e) from e  # the reader failed on a run: those before stay
    return done


def _one(job: _Job, head: RunHead) -> _Done:
    """Read, convert and write one run, unless it is in the store already."""
    rid = job.ids[head.run_id]
    writer = job.ledger.writer
    if is_imported(writer, rid):
        return _Done(head.run_id, rid)
    run = job.source.load(head)
    rec, cols, outs, rwarn = _convert(job, run, rid)
    written = write_past_run(writer, rec, cols)
    warns = tuple(f"run {head.run_id}: {w}" for w in rwarn)
    return _Done(head.run_id, rid, written, len(outs) if written else 0, warns)


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
    """What converting one run needs: its reader, the ledger, the ids and names known."""

    source: Source
    ledger: Ledger
    ids: dict[str, str]  # MLflow run id -> ledger run id
    exps: dict[str, str]  # experiment id -> name
    shown: str  # the store's URI as shown
    artifacts: bool
    uri: str  # the tracking URI itself


def _convert(
    job: _Job, r: SourceRun, rid: str
) -> tuple[dict[str, Any], dict[str, Column], dict[str, Artifact], list[str]]:
    """The run record, metric columns, outputs and warnings of the MLflow run ``r``."""
    ids, exps = job.ids, job.exps
    warns: list[str] = []
    tags = {str(k): _text(k, v) for k, v in r.tags.items()}
    tags["mlflow.run_id"] = r.run_id
    tags["mlflow.experiment_id"] = r.experiment_id
    tags["mlflow.experiment"] = exps.get(r.experiment_id, r.experiment_id)
    tags["mlflow.source_uri"] = job.shown
    status = STATUS.get(r.status, "incomplete")
    if status == "incomplete":
        warns.append(f"imported while MLflow had it as {r.status}")
    name = r.name or r.tags.get("mlflow.runName") or "mlflow-run"
    rec: dict[str, Any] = {
        "format": 1,
        "id": rid,
        "name": str(name),
        "kind": "imported",
        "status": status,
        "started_at": _iso(r.start_time),
        "ended_at": _iso(r.end_time) if r.end_time else None,
        "parent_id": ids.get(r.tags.get("mlflow.parentRunId", "")),
        "message": tags.get("mlflow.note.content"),
        "tags": tags,
        "params": {str(k): _param(k, v) for k, v in r.params.items()},
        "user": r.user_id or r.tags.get("mlflow.user") or "",
        "code": _code(name, r.tags),
    }
    git = _git(r.tags)
    if git:
        rec["git"] = git
    if r.start_time and r.end_time:
        rec["resources"] = {"wall_s": max(0.0, (r.end_time - r.start_time) / 1000)}
    if status in ("failed", "interrupted"):
        rec["error"] = {
            "type": f"mlflow.{r.status}",
            "message": f"MLflow recorded the run as {r.status} (it keeps no error message)",
            "traceback": "",
        }
    cols: dict[str, Column] = {}
    for key in sorted(r.metrics):
        hist = sorted(r.metrics[key], key=lambda m: (m[0], m[2]))
        cols[key] = ([m[0] for m in hist], [m[1] for m in hist], [m[2] / 1000 for m in hist])
    outs: dict[str, Artifact] = {}
    if job.artifacts:
        try:
            outs = _artifacts(r.artifact_uri, job)
        except LedgerError:
            raise
        except Exception as e:
            warns.append(f"artifacts not imported: {' '.join(str(e).split())[:200]}")
    rec["outputs"] = {k: a.to_json() for k, a in outs.items()}
    rec["inputs"] = {}
    rec["warnings"] = warns
    return rec, cols, outs, warns


def _artifacts(uri: str | None, job: _Job) -> dict[str, Artifact]:
    """Each top-level artifact of the run, stored: read in place when the artifact URI
    is a local folder (and the reader is a direct one), else listed and downloaded by
    MLflow's artifact repository for it."""
    base = str(uri or "").rstrip("/")
    if not base:
        return {}
    local = _local_folder(base) if job.source.local_artifacts else None
    if local is not None:
        if not os.path.isdir(local):
            return {}  # MLflow makes the folder with the first artifact
        with os.scandir(local) as it:
            names = sorted(e.name for e in it)
        return {n: _stored(job.ledger, os.path.join(local, n), base, n) for n in names}
    repo = _artifact_repository(base, job.uri)
    top = repo.list_artifacts()
    out: dict[str, Artifact] = {}
    if not top:
        return out
    with tempfile.TemporaryDirectory(prefix="mlledger-mlflow-") as tmp:
        for f in sorted(top, key=lambda f: f.path):
            local_copy = repo.download_artifacts(f.path, dst_path=tmp)
            out[f.path] = _stored(job.ledger, local_copy, base, f.path)
    return out


def _stored(ledger: Ledger, path: str, base: str, name: str) -> Artifact:
    got = ledger.store.put(path)
    return Artifact(
        got.digest,
        got.size,
        got.kind,
        path=f"{redact_text(base)}/{name}",
        files=got.files if got.kind == "tree" else None,
    )


def _local_folder(uri: str) -> str | None:
    """The local folder an artifact URI names (``file://`` or a plain path), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return url2pathname(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return os.path.abspath(uri)
    return None


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
