"""``mlledger lineage TARGET --format openlineage``: the runs of a lineage as OpenLineage
run events (the 2-0-2 spec), one JSON object a line, ready for Marquez or any consumer.

Each run gives a START event at its start and an end event at its end:
COMPLETE (finished, cached), FAIL (failed, or incomplete: its process died),
ABORT (interrupted); a run still running gives its START only.  In each:

- ``run.runId``: the run id's 128 bits as a UUID (a ULID is time-ordered, so
  is the UUID; :func:`run_uuid`), facets ``nominalTime`` (start, end),
  ``parent`` (a nested run's parent), ``errorMessage`` (a failed run's);
- ``job``: namespace = the store's URL, name = the run's name; facets
  ``jobType`` and, where the run knows its git remote, ``sourceCodeLocation``
  (remote, commit as version, the file);
- ``inputs`` (both events) and ``outputs`` (the end event): namespace = the
  store's URL, name = the artifact's path (or its digest for a value), with a
  ``version`` facet holding the digest, so two versions of ``model.pt`` are one
  dataset with two versions.

Plain dictionaries: openlineage-python is not needed to make them (the tests
check them against its models).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..capture.redact import redact_text
from ..ids import is_run_id

if TYPE_CHECKING:
    from ..lineage import Lineage
    from ..records import Artifact
    from ..runs import Run

__all__ = ["PRODUCER", "SCHEMA_URL", "openlineage_events", "run_uuid", "to_jsonl"]

#: who made the events (a URI, as the spec asks)
PRODUCER = f"https://pypi.org/project/mlledger/{__version__}/"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACETS = "https://openlineage.io/spec/facets"
_SCHEMAS = {
    "nominalTime": f"{_FACETS}/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet",
    "parent": f"{_FACETS}/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "errorMessage": f"{_FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "jobType": f"{_FACETS}/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "sourceCodeLocation": (
        f"{_FACETS}/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet"
    ),
    "version": f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
}
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: a run's status -> the event type that ends it (none: still running)
END_EVENT = {
    "finished": "COMPLETE",
    "cached": "COMPLETE",
    "failed": "FAIL",
    "incomplete": "FAIL",
    "interrupted": "ABORT",
}


def run_uuid(run_id: str) -> str:
    """The UUID holding the 128 bits of a run id (reversible, time-ordered like the id)."""
    if not is_run_id(run_id):
        raise ValueError(f"{run_id!r} is not a run id")
    n = 0
    for c in run_id:
        n = n * 32 + _ALPHABET.index(c)
    return str(uuid.UUID(int=n))


def _facet(name: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": _SCHEMAS[name], **fields}


def _dataset(namespace: str, art: Artifact, io: str) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "name": art.path or art.digest,
        "facets": {"version": _facet("version", datasetVersion=art.digest)},
        f"{io}Facets": {},
    }


def _job(namespace: str, run: Run) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "jobType": _facet("jobType", processingType="BATCH", integration="MLLEDGER",
                          jobType=str(run.record.get("kind") or "run").upper()),
    }  # fmt: skip
    git = run.git or {}
    remote = git.get("remote")
    if remote:
        loc: dict[str, Any] = {"type": "git", "url": redact_text(str(remote))}
        if git.get("commit"):
            loc["version"] = str(git["commit"])
        if git.get("branch"):
            loc["branch"] = str(git["branch"])
        file = run.code.get("file")
        if file:
            loc["path"] = str(file)
        facets["sourceCodeLocation"] = _facet("sourceCodeLocation", **loc)
    return {"namespace": namespace, "name": run.name, "facets": facets}


def _run_facets(
    run: Run, namespace: str, parent_name: Callable[[str], str | None], end: bool
) -> dict[str, Any]:
    rec = run.record
    nominal = {"nominalStartTime": rec["started_at"]}
    if rec.get("ended_at"):
        nominal["nominalEndTime"] = rec["ended_at"]
    facets: dict[str, Any] = {"nominalTime": _facet("nominalTime", **nominal)}
    if run.parent_id:
        name = parent_name(run.parent_id)
        if name is not None:
            facets["parent"] = _facet(
                "parent",
                run={"runId": run_uuid(run.parent_id), "facets": {}},
                job={"namespace": namespace, "name": name, "facets": {}},
            )
    if end and run.status in ("failed", "incomplete", "interrupted"):
        err = run.error
        if err is not None:
            message = f"{err.type}: {err.message}" if err.message else err.type
            trace = err.traceback or None
        else:
            message = rec.get("status_reason") or f"the run is {run.status}"
            trace = None
        fields: dict[str, Any] = {"message": message, "programmingLanguage": "python"}
        if trace:
            fields["stackTrace"] = trace
        facets["errorMessage"] = _facet("errorMessage", **fields)
    return facets


def openlineage_events(
    runs: Iterable[Run], namespace: str, *, parent_name: Callable[[str], str | None]
) -> list[dict[str, Any]]:
    """START and end events of ``runs`` (see the module docstring), oldest first.

    ``namespace``: the store's URL (credentials stripped; a folder as ``file://``);
    ``parent_name(run_id)``
    gives a parent run's name (None: unknown, then no parent facet).
    """
    ns = redact_text(namespace)
    if "://" not in ns:  # a local store: its folder as a file URL
        ns = "file://" + ns
    out: list[tuple[str, int, dict[str, Any]]] = []
    for run in runs:
        rec = run.record
        inputs = [_dataset(ns, a, "input") for _, a in sorted(run.inputs.items())]
        outputs = [_dataset(ns, a, "output") for _, a in sorted(run.outputs.items())]
        job = _job(ns, run)
        rid = run_uuid(run.id)
        start = {
            "eventType": "START",
            "eventTime": rec["started_at"],
            "run": {"runId": rid, "facets": _run_facets(run, ns, parent_name, end=False)},
            "job": job,
            "inputs": inputs,
            "outputs": [],
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
        }
        out.append((rec["started_at"], 0, start))
        kind = END_EVENT.get(run.status)
        if kind is None:
            continue
        at = rec.get("ended_at") or rec.get("heartbeat") or rec["started_at"]
        end = {
            **start,
            "eventType": kind,
            "eventTime": at,
            "run": {"runId": rid, "facets": _run_facets(run, ns, parent_name, end=True)},
            "outputs": outputs,
        }
        out.append((at, 1, end))
    out.sort(key=lambda t: (t[0], t[1], t[2]["run"]["runId"]))
    return [e for _, _, e in out]


def to_jsonl(lineage: Lineage, namespace: str, parent_name: Callable[[str], str | None]) -> str:
    """The events of every run of ``lineage`` as JSON lines (each ends with a newline)."""
    events = openlineage_events(lineage.runs, namespace, parent_name=parent_name)
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)
