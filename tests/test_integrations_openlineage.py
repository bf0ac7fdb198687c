"""``lineage --format openlineage`` (mlledger.integrations.openlineage): run events that
openlineage-python's own models accept.

openlineage-python ships the spec as generated attrs models (no JSON schema
files), so each event is rebuilt from those models, whose validators check run
ids, times and URLs, and must serialise back to exactly what mlledger wrote:
a field the spec does not know, or of the wrong shape, fails.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke

from mlledger import Ledger
from mlledger.integrations.openlineage import openlineage_events, run_uuid

ol = pytest.importorskip("openlineage.client.event_v2", reason="the test extra installs it")
from openlineage.client.generated import (  # noqa: E402
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    nominal_time_run,
    parent_run,
    source_code_location_job,
)
from openlineage.client.serde import Serde  # noqa: E402


def _plain(facet: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facet.items() if not k.startswith("_")}


def _run_facet(name: str, f: dict[str, Any], producer: str) -> Any:
    fields = _plain(f)
    if name == "parent":
        return parent_run.ParentRunFacet(
            run=parent_run.Run(**fields["run"]), job=parent_run.Job(**fields["job"]),
            producer=producer,
        )
    cls = {"nominalTime": nominal_time_run.NominalTimeRunFacet,
           "errorMessage": error_message_run.ErrorMessageRunFacet}[name]
    return cls(**fields, producer=producer)


def _job_facet(name: str, f: dict[str, Any], producer: str) -> Any:
    cls = {"jobType": job_type_job.JobTypeJobFacet,
           "sourceCodeLocation": source_code_location_job.SourceCodeLocationJobFacet}[name]
    return cls(**_plain(f), producer=producer)


def _datasets(items: list[dict[str, Any]], cls: Any, producer: str) -> list[Any]:
    out = []
    for d in items:
        assert set(d["facets"]) == {"version"}
        version = dataset_version_dataset.DatasetVersionDatasetFacet(
            **_plain(d["facets"]["version"]), producer=producer
        )
        out.append(cls(namespace=d["namespace"], name=d["name"], facets={"version": version}))
    return out


def validate(event: dict[str, Any]) -> None:
    """Rebuild ``event`` from openlineage-python's models; it must serialise back unchanged."""
    p = event["producer"]
    model = ol.RunEvent(
        eventType=ol.RunState[event["eventType"]],
        eventTime=event["eventTime"],
        run=ol.Run(
            runId=event["run"]["runId"],
            facets={k: _run_facet(k, f, p) for k, f in event["run"]["facets"].items()},
        ),
        job=ol.Job(
            namespace=event["job"]["namespace"],
            name=event["job"]["name"],
            facets={k: _job_facet(k, f, p) for k, f in event["job"]["facets"].items()},
        ),
        inputs=_datasets(event["inputs"], ol.InputDataset, p),
        outputs=_datasets(event["outputs"], ol.OutputDataset, p),
        producer=p,
    )
    assert Serde.to_dict(model) == event


@pytest.fixture
def lineage_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """prep -> clean.csv -> train (with a nested fold) -> model.pt -> evaluate (failed),
    run in a git repository whose remote URL holds a password."""
    work = tmp_path / "repo"
    work.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=work, check=True)
    (work / "data.csv").write_text("a\n1\n2\n")
    subprocess.run([*git, "add", "."], cwd=work, check=True)
    subprocess.run([*git, "commit", "-qm", "data"], cwd=work, check=True)
    subprocess.run([*git, "remote", "add", "origin", "https://bot:hunter2@example.com/ml/repo.git"],
                   cwd=work, check=True)
    monkeypatch.chdir(work)
    ledger = Ledger(str(tmp_path / "store"))
    with ledger.run("prep") as run:
        run.use("data.csv")
        Path("clean.csv").write_text("a\n1\n")
        run.save("clean.csv")
    with ledger.run("train") as run:
        run.use("clean.csv")
        with ledger.run("fold") as fold:
            fold.log(step=0, loss=0.5)
        Path("model.pt").write_bytes(b"weights")
        run.save("model.pt")

    def evaluate() -> None:
        with ledger.run("evaluate") as run:
            run.use("model.pt")
            raise ValueError("accuracy fell")

    with pytest.raises(ValueError, match="accuracy fell"):
        evaluate()
    return ledger


def _events(ledger: Ledger, target: str) -> list[dict[str, Any]]:
    lin = ledger.lineage(target)
    return openlineage_events(
        lin.runs, ledger.url, parent_name=lambda rid: ledger.get(rid).name
    )


def test_every_event_is_valid_openlineage(lineage_ledger: Ledger) -> None:
    """Each run of the lineage gives a START and an end event; all pass the client's models."""
    ledger = lineage_ledger
    evaluate = ledger.runs(name="evaluate")[0]
    events = _events(ledger, evaluate.id)
    names = [(e["job"]["name"], e["eventType"]) for e in events]
    assert names == [("prep", "START"), ("prep", "COMPLETE"), ("train", "START"),
                     ("train", "COMPLETE"), ("evaluate", "START"), ("evaluate", "FAIL")]
    for e in events:
        validate(e)


def test_datasets_runs_and_facets(lineage_ledger: Ledger, tmp_path: Path) -> None:
    """Datasets are named by path in the store's namespace with the digest as version;
    a failed run carries its error; the job knows its git remote without the password."""
    ledger = lineage_ledger
    evaluate = ledger.runs(name="evaluate")[0]
    train = ledger.runs(name="train")[0]
    events = {(e["job"]["name"], e["eventType"]): e for e in _events(ledger, evaluate.id)}
    namespace = f"file://{tmp_path / 'store'}"
    done = events[("train", "COMPLETE")]
    assert done["run"]["runId"] == run_uuid(train.id)
    assert done["eventTime"] == train.record["ended_at"]
    (model,) = done["outputs"]
    assert model["namespace"] == namespace
    assert model["name"] == "model.pt"
    assert model["facets"]["version"]["datasetVersion"] == train.outputs["model.pt"].digest
    assert [d["name"] for d in done["inputs"]] == ["clean.csv"]
    assert events[("train", "START")]["outputs"] == []
    assert [d["name"] for d in events[("evaluate", "START")]["inputs"]] == ["model.pt"]
    fail = events[("evaluate", "FAIL")]["run"]["facets"]["errorMessage"]
    assert fail["message"] == "ValueError: accuracy fell"
    assert "accuracy fell" in fail["stackTrace"]
    loc = done["job"]["facets"]["sourceCodeLocation"]
    assert loc["url"] == "https://example.com/ml/repo.git"
    assert loc["version"] == train.git["commit"]
    assert "hunter2" not in json.dumps(list(events.values()))
    nominal = done["run"]["facets"]["nominalTime"]
    assert nominal["nominalStartTime"] == train.record["started_at"]


def test_a_nested_run_names_its_parent(lineage_ledger: Ledger) -> None:
    """The fold's events carry a parent facet naming train's run and job."""
    ledger = lineage_ledger
    fold = ledger.runs(name="fold")[0]
    train = ledger.runs(name="train")[0]
    events = _events(ledger, fold.id)
    mine = [e for e in events if e["job"]["name"] == "fold"]
    assert [e["eventType"] for e in mine] == ["START", "COMPLETE"]
    parent = mine[0]["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == run_uuid(train.id)
    assert parent["job"]["name"] == "train"
    for e in events:
        validate(e)


def test_run_uuid_keeps_the_ids_order() -> None:
    """The UUID of a run id keeps its bits: a later id gives a greater UUID."""
    a, b = "01JD3A0000000000000000000Z", "01JD3B0000000000000000000A"
    assert run_uuid(a) < run_uuid(b)
    assert run_uuid(a) == run_uuid(a)
    with pytest.raises(ValueError, match="not a run id"):
        run_uuid("nope")


def test_cli_prints_json_lines(lineage_ledger: Ledger) -> None:
    """``mlledger lineage RUN --format openlineage``: one valid event a line."""
    ledger = lineage_ledger
    evaluate = ledger.runs(name="evaluate")[0]
    result = invoke("lineage", evaluate.id, "--format", "openlineage", url=ledger.url)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    events = [json.loads(line) for line in lines]
    assert events == _events(ledger, evaluate.id)
    for e in events:
        validate(e)
