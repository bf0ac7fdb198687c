"""``ledger.cost()`` / ``mlledger cost`` and ``ledger.du()`` / ``mlledger du``
(mlledger.usage, mlledger.catalog.usage, mlledger.cli.usage)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from pathlib import Path

import pytest
from helpers.cli import invoke, one_error_line
from helpers.ledgers import open_ledger

from mlledger import Ledger
from mlledger.errors import UsageError
from mlledger.usage import GIB

RATES = {"currency": "USD", "instance_hour": 36.0, "storage_gb_month": 0.5}


@pytest.fixture
def team_ledger(tmp_path: Path, workdir: Path) -> tuple[Ledger, dict[str, object]]:
    """An unpriced run, then rates; priced train runs of two teams (one with a nested run),
    an eval run, and a ref to the last train's model."""
    ledger = Ledger(str(tmp_path / "store"))
    with ledger.run("old", tags={"team": "cv"}) as old:
        pass
    time.sleep(0.01)
    between = _dt.datetime.now(_dt.timezone.utc)
    time.sleep(0.01)
    ledger.policy.set(rates=RATES)
    trains = []
    for team, size in (("cv", 3000), ("nlp", 5000), ("cv", 3000)):
        with ledger.run("train", tags={"team": team}) as run:
            with ledger.run("step"):
                time.sleep(0.01)
            Path("model.bin").write_bytes(os.urandom(size) if team == "nlp" else b"m" * size)
            run.save("model.bin")
        trains.append(run)
    with ledger.run("eval", tags={"team": "cv"}) as ev:
        ev.use("model.bin")
    ledger.refs.set("model/prod", f"{trains[-1].id}/model.bin")
    return ledger, {"old": old, "trains": trains, "eval": ev, "between": between}


def _cost(run: object) -> float:
    return float(run.resources["cost"])  # type: ignore[attr-defined]


def test_cost_by_name_sums_recorded_cost(team_ledger: tuple[Ledger, dict[str, object]]) -> None:
    """Each group sums the cost its runs recorded; a run from before the rates is counted
    as not priced; a nested run is inside its parent's cost, not counted again."""
    ledger, runs = team_ledger
    trains = [ledger.get(r.id) for r in runs["trains"]]  # type: ignore[attr-defined]
    report = ledger.cost(by="name")
    groups = {g.group: g for g in report.groups}
    assert set(groups) == {"train", "eval", "old"}  # "step" runs are nested in train
    assert report.nested == 3
    assert groups["train"].runs == 3
    assert groups["train"].cost == pytest.approx(sum(_cost(r) for r in trains), abs=1e-5)
    assert groups["train"].currency == "USD"
    assert groups["train"].hours == pytest.approx(
        sum(r.resources["wall_s"] for r in trains) / 3600
    )
    assert groups["old"].not_priced == 1
    assert groups["old"].priced == 0
    assert report.total.runs == 5
    assert report.total.not_priced == 1
    assert report.groups[0].group == "train"  # most expensive first


def test_cost_by_tag_since_and_where(team_ledger: tuple[Ledger, dict[str, object]]) -> None:
    """--by tags.team groups by a tag (runs without it apart); since and where narrow."""
    ledger, runs = team_ledger
    trains = [ledger.get(r.id) for r in runs["trains"]]  # type: ignore[attr-defined]
    by_team = {g.group: g for g in ledger.cost(by="tags.team").groups}
    assert by_team["nlp"].runs == 1
    assert by_team["nlp"].cost == pytest.approx(_cost(trains[1]), abs=1e-6)
    assert by_team["cv"].runs == 4
    recent = ledger.cost(by="name", since=runs["between"])
    assert {g.group for g in recent.groups} == {"train", "eval"}
    assert ledger.cost(since="1d").total.runs == 5
    only = ledger.cost(by="user", where="tags.team = 'nlp'")
    assert only.total.runs == 1
    assert only.total.cost == pytest.approx(_cost(trains[1]), abs=1e-6)
    assert ledger.cost(by="day").groups[0].group == trains[0].record["started_at"][:10]


def test_cost_mixed_currencies_are_not_added(tmp_path: Path, workdir: Path) -> None:
    """Runs priced in two currencies keep a sum per currency; the group says 'mixed'."""
    ledger = Ledger(str(tmp_path / "store"))
    for cur in ("USD", "EUR"):
        ledger.policy.set(rates={"currency": cur, "instance_hour": 3600.0})
        with ledger.run("train"):
            pass
    group = ledger.cost().groups[0]
    assert set(group.costs) == {"USD", "EUR"}
    assert group.currency == "mixed"


@pytest.mark.parametrize("by", ["nme", "tags.", "params.lr", ""])
def test_cost_bad_by(team_ledger: tuple[Ledger, dict[str, object]], by: str) -> None:
    """An unknown --by is a UsageError naming the groups there are; exit 2 on the CLI."""
    ledger, _ = team_ledger
    with pytest.raises(UsageError, match="cannot group by"):
        ledger.cost(by=by)
    result = invoke("cost", "--by", by, url=ledger.url)
    assert result.exit_code == 2
    assert "name, user" in one_error_line(result.stderr)


@pytest.mark.parametrize("since", ["yesterday", "-3d", "30x", "2026-13-45"])
def test_cost_bad_since(team_ledger: tuple[Ledger, dict[str, object]], since: str) -> None:
    """A --since that is neither a duration nor a date: one line naming it, exit 2."""
    ledger, _ = team_ledger
    result = invoke("cost", "--since", since, url=ledger.url)
    assert result.exit_code == 2
    assert "--since" in one_error_line(result.stderr)


def test_cli_cost_text_and_json(team_ledger: tuple[Ledger, dict[str, object]]) -> None:
    """mlledger cost prints a table with a total line and the not-priced count; --json
    gives the same figures as ledger.cost()."""
    ledger, _ = team_ledger
    result = invoke("cost", "--by", "tags.team", url=ledger.url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["tags.team", "runs", "hours", "cost", "not", "priced"]
    assert lines[-1].startswith("total")
    assert "USD" in lines[-1]
    assert "1 run(s) have no cost" in result.stderr
    data = json.loads(invoke("cost", "--json", url=ledger.url).stdout)
    assert data["total"]["cost"] == pytest.approx(ledger.cost().total.cost)
    assert data["total"]["not_priced"] == 1
    assert {g["group"] for g in data["groups"]} == {"train", "eval", "old"}
    empty = invoke("cost", "--where", "name = 'none'", url=ledger.url)
    assert empty.exit_code == 0
    assert "no runs match" in empty.stderr


def _object_bytes(store: Path) -> tuple[int, int]:
    files = [p for p in (store / "objects").rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def test_du_totals(team_ledger: tuple[Ledger, dict[str, object]]) -> None:
    """du counts every object's bytes once, the bytes runs reference run by run, what
    deduplication saves, and the storage cost at storage_gb_month per GiB."""
    ledger, _ = team_ledger
    usage = ledger.du()
    n, stored = _object_bytes(Path(ledger.url))
    assert usage.objects == n
    assert usage.stored_bytes == stored
    # train cv and the second train cv hold the same model (3000 b'm'): one object;
    # eval uses it again. Referenced: 3000 + 5000 + 3000 + 3000
    assert usage.logical_bytes == 14000
    assert usage.distinct_bytes == 8000
    assert usage.artifacts == 2
    assert usage.saved_bytes == max(0, 14000 - stored)
    assert usage.monthly_cost == pytest.approx(stored / GIB * 0.5, abs=1e-6)
    assert usage.currency == "USD"


def test_du_by_name_and_ref(team_ledger: tuple[Ledger, dict[str, object]]) -> None:
    """--by name attributes referenced bytes to run names (and what only they hold);
    --by ref to the upstream lineage each ref keeps."""
    ledger, _ = team_ledger
    by_name = {g.group: g for g in ledger.du(by="name").groups}
    assert by_name["train"].runs == 3
    assert by_name["train"].referenced == 11000
    assert by_name["train"].distinct == 8000
    assert by_name["train"].exclusive == 5000  # eval shares the cv model
    assert by_name["eval"].referenced == 3000
    assert by_name["eval"].exclusive == 0
    refs = ledger.du(by="ref").groups
    assert [(g.group, g.distinct) for g in refs] == [("model/prod", 3000)]
    with pytest.raises(UsageError, match="cannot group by"):
        ledger.du(by="tags.team")


def test_cli_du(team_ledger: tuple[Ledger, dict[str, object]]) -> None:
    """mlledger du prints stored, referenced, saved and the monthly cost; --json the same
    figures; --by ref lists each ref; an unknown --by exits 2."""
    ledger, _ = team_ledger
    result = invoke("du", url=ledger.url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("stored")
    assert "per month" in result.stdout
    data = json.loads(invoke("du", "--json", "--by", "name", url=ledger.url).stdout)
    assert data["logical_bytes"] == 14000
    assert data["saved_bytes"] == ledger.du().saved_bytes
    assert {g["group"] for g in data["groups"]} == {"old", "train", "step", "eval"}
    assert "model/prod" in invoke("du", "--by", "ref", url=ledger.url).stdout
    bad = invoke("du", "--by", "user", url=ledger.url)
    assert bad.exit_code == 2


@pytest.mark.slow
def test_du_on_every_store(store_spec: object, workdir: Path) -> None:
    """du lists the objects of a memory, local, S3 (moto) or GCS (fake server) store: the
    stored bytes are the objects' sizes, saved what a second copy would have taken."""
    ledger = open_ledger(store_spec)  # type: ignore[arg-type]
    data = os.urandom(20_000)
    for name in ("a", "b"):
        with ledger.run(name) as run:
            Path("same.bin").write_bytes(data)
            run.save("same.bin")
    usage = ledger.du()
    assert usage.logical_bytes == 40_000
    assert usage.distinct_bytes == 20_000
    sizes = [ledger.store.size(d) for d in ledger.store.iter_objects()]
    assert usage.objects == len(sizes)
    assert usage.stored_bytes == sum(sizes)
    assert usage.saved_bytes == 40_000 - usage.stored_bytes
