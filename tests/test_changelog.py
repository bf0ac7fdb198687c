"""The changelog of a ref: each move newest first, its causes and effects, damage shown."""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke

import mlledger
from mlledger import (
    Changelog,
    ChangelogEntry,
    Ledger,
    LedgerWarning,
    NotFoundError,
    UsageError,
)
from mlledger.capture import environment as envmod
from mlledger.changelog import MetricEffect
from mlledger.diff import Change

TRAIN_V1 = '''
import mlledger

def train(data, lr=0.1):
    """Fit a model on data at learning rate lr."""
    rows = open(data).read().splitlines()
    run = mlledger.current_run()
    run.log(step=1, accuracy=round(0.5 + lr + len(rows) / 100, 6), loss=round(1 - lr, 6))
    with open("model.txt", "w") as f:
        f.write(f"lr={lr} rows={len(rows)}")
    run.save("model.txt")
'''
TRAIN_V2 = TRAIN_V1.replace("len(rows) / 100", "len(rows) / 50").replace(
    "loss=round(1 - lr, 6))", "loss=round(1 - lr, 6), f1=0.5)"
)


@dataclass
class Moved:
    """A store whose ref ``model/prod`` moved through runs a..e (see ``moved``)."""

    url: str
    runs: dict[str, str]  # a..e -> run id
    models: dict[str, str]  # a..e -> digest of its model.txt
    data_v1: str  # digest of data.csv as the first runs read it


def _train(ledger: Ledger, module: Any, lr: float) -> mlledger.Run:
    ledger.tracked(module.train, name="train")("data.csv", lr=lr)
    return ledger.runs(limit=1)[0]


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moved]:
    """model/prod moves: #1 a; #2 b (lr changed); #3 c (data.csv changed); #4 d (code
    edited; it logs f1 too); #5 e (a package upgraded); #6 rollback to #4 (d); #7 e by run
    id; #8 e's model again (the same run)."""
    base = tmp_path_factory.mktemp("changelog")
    work, src, site = base / "work", base / "src", base / "site"
    for d in (work, src, site, base / "cache", base / "data"):
        d.mkdir()
    (site / "fakepkg-1.0.dist-info").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(base / "cache"))
        mp.setenv("XDG_DATA_HOME", str(base / "data"))
        mp.chdir(work)
        mp.syspath_prepend(str(site))
        mp.syspath_prepend(str(src))
        (src / "cl_train.py").write_text(TRAIN_V1)
        mp.setitem(sys.modules, "cl_train", None)
        mp.delitem(sys.modules, "cl_train")
        module = importlib.import_module("cl_train")
        envmod.clear_cache()
        url = str(base / "store")
        ledger = Ledger(url)
        (work / "data.csv").write_text("x\n1\n2\n")
        runs: dict[str, str] = {}
        models: dict[str, str] = {}

        def ship(key: str, run: mlledger.Run, message: str) -> None:
            runs[key] = run.id
            models[key] = run.outputs["model.txt"].digest
            ledger.refs.set("model/prod", f"{run.id}/model.txt", message=message)

        a = _train(ledger, module, 0.1)
        data_v1 = a.inputs["data"].digest
        ship("a", a, "first model")
        ship("b", _train(ledger, module, 0.2), "higher learning rate")
        (work / "data.csv").write_text("x\n1\n2\n3\n4\n")
        ship("c", _train(ledger, module, 0.2), "more data")
        (src / "cl_train.py").write_text(TRAIN_V2)
        module = importlib.reload(module)
        ship("d", _train(ledger, module, 0.2), "new scoring")
        (site / "fakepkg-1.0.dist-info").rename(site / "fakepkg-2.0.dist-info")
        envmod.clear_cache()
        ledger = Ledger(url)  # captures the environment afresh
        ledger.tracked(module.train, name="train")("data.csv", lr=0.2)
        e = ledger.runs(limit=1)[0]
        ship("e", e, "fakepkg 2.0")
        ledger.refs.rollback("model/prod", message="fakepkg 2.0 breaks\nsee the ticket")
        ledger.refs.set("model/prod", runs["e"], message="by run id")
        ledger.refs.set("model/prod", f"{runs['e']}/model.txt", message="the same model")
        ledger.catalog.close()
    envmod.clear_cache()
    try:
        yield Moved(url, runs, models, data_v1)
    finally:
        sys.modules.pop("cl_train", None)


@pytest.fixture
def ledger(moved: Moved) -> Ledger:
    """A Ledger on the moved store (its catalog in this test's own cache folder)."""
    return Ledger(moved.url)


@pytest.fixture
def changelog(ledger: Ledger) -> Changelog:
    """The whole changelog of model/prod."""
    return ledger.changelog("model/prod")


def by_seq(log: Changelog) -> dict[int, ChangelogEntry]:
    return {e.seq: e for e in log.entries}


def causes(e: ChangelogEntry) -> set[tuple[str, str]]:
    return {(c.section, c.key) for c in e.causes}


def damaged_copy(moved: Moved, tmp_path: Path) -> Path:
    """A private copy of the moved store (for tests that change or damage it)."""
    dest = tmp_path / "damaged"
    shutil.copytree(moved.url, dest)
    return dest


# ------------------------------------------------------------------ the moves


def test_moves_come_newest_first_with_who_when_and_message(changelog: Changelog) -> None:
    """Every move is listed newest first, with its action, user@host, time and message."""
    assert changelog.ref == "model/prod"
    assert changelog.moves == 8
    assert [e.seq for e in changelog.entries] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert [e.action for e in changelog.entries] == ["set"] * 2 + ["rollback"] + ["set"] * 5
    first = by_seq(changelog)[1]
    assert first.message == "first model"
    assert first.who == f"{first.user}@{first.host}"
    assert first.user
    assert first.host
    assert isinstance(first.at, _dt.datetime)
    assert all(e.problems == () for e in changelog.entries)


def test_param_change_is_the_only_cause(changelog: Changelog, moved: Moved) -> None:
    """A run with another learning rate gives exactly one cause: params lr old -> new."""
    e = by_seq(changelog)[2]
    assert e.causes == (Change("params", "lr", 0.1, 0.2),)
    assert list(e.causes_by()) == ["params"]
    assert (e.run_id, e.before_run, e.before_seq) == (moved.runs["b"], moved.runs["a"], 1)


def test_data_change_is_a_data_cause(changelog: Changelog, moved: Moved) -> None:
    """A changed data file shows under data, as its digests before and after."""
    e = by_seq(changelog)[3]
    assert list(e.causes_by()) == ["data"]
    (c,) = e.causes
    assert (c.section, c.key, c.old) == ("inputs", "data", moved.data_v1)
    assert c.new != moved.data_v1


def test_code_change_is_a_code_cause(changelog: Changelog) -> None:
    """An edited training function shows under code: its source and module digests."""
    e = by_seq(changelog)[4]
    assert list(e.causes_by()) == ["code"]
    assert {"source_digest", "module_digest"} <= {c.key for c in e.causes}
    assert "qualname" not in {c.key for c in e.causes}


def test_package_upgrade_is_a_packages_cause(changelog: Changelog, moved: Moved) -> None:
    """An upgraded distribution shows under packages, and nothing else changed."""
    e = by_seq(changelog)[5]
    assert e.causes == (Change("packages", "fakepkg", "1.0", "2.0"),)
    assert e.run_id == moved.runs["e"]


def test_rollback_names_the_entry_it_restores_and_reverses_the_change(
    changelog: Changelog, moved: Moved
) -> None:
    """A rollback says which entry it brings back; against the move before, the change
    runs the other way (the package goes back from 2.0 to 1.0)."""
    e = by_seq(changelog)[6]
    assert (e.action, e.restores) == ("rollback", 4)
    assert e.run_id == moved.runs["d"]
    assert e.before_seq == 5
    assert e.causes == (Change("packages", "fakepkg", "2.0", "1.0"),)
    assert e.message == "fakepkg 2.0 breaks\nsee the ticket"


def test_effect_on_every_metric_both_runs_have(changelog: Changelog) -> None:
    """Metrics both runs have show old, new, change and percent; one run's own metric not."""
    e = by_seq(changelog)[2]
    effects = {m.key: m for m in e.metrics}
    assert set(effects) == {"accuracy", "loss"}
    loss = effects["loss"]
    assert (loss.old, loss.new) == (0.9, 0.8)
    assert loss.change == pytest.approx(-0.1)
    assert loss.percent == pytest.approx(-100 / 9)
    four = {m.key: m for m in by_seq(changelog)[4].metrics}
    assert set(four) == {"accuracy", "loss"}  # f1: only the new run has it
    assert four["accuracy"].old == pytest.approx(0.75)
    assert four["accuracy"].new == pytest.approx(0.8)
    assert four["loss"].change == 0.0
    assert four["loss"].percent == 0.0
    assert {m.key for m in by_seq(changelog)[5].metrics} == {"accuracy", "f1", "loss"}


def test_first_move_has_no_before(changelog: Changelog, moved: Moved) -> None:
    """The first move compares with nothing: no before, no causes, metrics without old."""
    e = by_seq(changelog)[1]
    assert (e.before_seq, e.before_run, e.before_target) == (None, None, None)
    assert e.causes == ()
    assert {m.key: (m.old, m.change, m.percent) for m in e.metrics} == {
        "accuracy": (None, None, None),
        "loss": (None, None, None),
    }
    assert "nothing: the first move" in changelog.to_text()


def test_an_artifact_target_shows_the_run_that_produced_it(
    changelog: Changelog, moved: Moved
) -> None:
    """A move to an artifact shows the artifact, the output name and the run that made it."""
    e = by_seq(changelog)[1]
    assert e.target == moved.models["a"]
    assert e.artifact is not None
    assert e.artifact.digest == moved.models["a"]
    assert e.artifact.kind == "file"
    assert e.output == "model.txt"
    assert (e.run_id, e.run_name, e.run_status) == (moved.runs["a"], "train", "finished")


def test_a_run_target_and_the_same_run_again(changelog: Changelog, moved: Moved) -> None:
    """A move to a run id shows the run (no artifact); a move to the same run's model
    compares with it: no causes, every metric unchanged."""
    seven, eight = by_seq(changelog)[7], by_seq(changelog)[8]
    assert seven.target == moved.runs["e"]
    assert seven.artifact is None
    assert seven.run_id == moved.runs["e"]
    assert seven.causes == (Change("packages", "fakepkg", "1.0", "2.0"),)
    assert eight.before_run == eight.run_id == moved.runs["e"]
    assert eight.causes == ()
    assert {m.change for m in eight.metrics} == {0.0}
    assert "the same run: nothing changed" in changelog.to_text()


def test_an_artifact_no_run_produced(moved: Moved, tmp_path: Path) -> None:
    """A ref to bytes no run produced (an input) shows the artifact, no run, no comparison."""
    ledger = Ledger(damaged_copy(moved, tmp_path))
    ledger.refs.set("data/raw", moved.data_v1, message="raw data")
    ledger.refs.set("data/raw", moved.data_v1, message="again")
    log = ledger.changelog("data/raw")
    new, old = log.entries
    assert old.artifact is not None
    assert old.artifact.digest == moved.data_v1
    assert (old.run_id, old.metrics, old.causes) == (None, (), ())
    assert new.before_seq == 1
    assert new.before_run is None
    text = log.to_text()
    assert "no one run is recorded as its maker" in text
    assert "whose target has no known run: no comparison" in text


def test_limit_keeps_the_newest_moves_each_still_compared(ledger: Ledger) -> None:
    """limit=N shows the newest N moves; the oldest shown still compares with the one before."""
    log = ledger.changelog("@model/prod", limit=3)
    assert [e.seq for e in log.entries] == [8, 7, 6]
    assert log.moves == 8
    assert log.entries[-1].before_seq == 5
    assert log.entries[-1].causes == (Change("packages", "fakepkg", "2.0", "1.0"),)
    assert "8 moves, the newest 3 shown" in log.to_text()


def test_checks_recorded_for_the_target_run_are_shown(moved: Moved, tmp_path: Path) -> None:
    """The newest check report of the target's run shows with the move, pass or fail."""
    ledger = Ledger(damaged_copy(moved, tmp_path))
    rules = [
        {"name": "acc-floor", "field": "metrics.accuracy", "min": 0.99},
        {"name": "loss-ceiling", "field": "metrics.loss", "max": 1.0},
    ]
    ledger.check(moved.runs["e"], rules=rules)
    log = ledger.changelog("model/prod", limit=1)
    report = log.entries[0].checks
    assert report is not None
    assert report.run_id == moved.runs["e"]
    assert [(r.rule, r.ok) for r in report.results] == [
        ("acc-floor", False),
        ("loss-ceiling", True),
    ]
    text = log.to_text()
    assert "1 failed" in text
    assert "FAIL  acc-floor" in text
    assert "**FAIL** `acc-floor`" in log.to_markdown()
    assert Changelog.from_json(log.to_json()) == log


def test_a_forced_move_of_a_protected_ref_says_so(moved: Moved, tmp_path: Path) -> None:
    """A move that overrode a protected ref's failing check is marked forced in every format."""
    ledger = Ledger(damaged_copy(moved, tmp_path))
    rule = {"name": "acc-floor", "field": "metrics.accuracy", "min": 0.99}
    ledger.policy.set(protect=["model/*"], checks=[rule], message="prod needs 0.99")
    ledger.refs.set("model/prod", moved.runs["a"], message="hotfix", force=True)
    newest, before = ledger.changelog("model/prod", limit=2).entries
    assert newest.forced
    assert not before.forced
    log = ledger.changelog("model/prod", limit=1)
    assert "#9  set (forced past the policy)" in log.to_text()
    assert "### #9 set (forced past the policy)" in log.to_markdown()
    assert json.loads(log.to_json())["entries"][0]["forced"] is True


# ------------------------------------------------------------------ the formats


def test_json_round_trips_with_stable_keys(changelog: Changelog) -> None:
    """to_json() parses back to an equal Changelog; every entry carries the same keys."""
    text = changelog.to_json()
    assert Changelog.from_json(text) == changelog
    assert Changelog.from_json(json.loads(text)) == changelog
    doc = json.loads(text)
    assert set(doc) == {"ref", "moves", "entries"}
    keys = {
        "seq", "action", "restores", "forced", "at", "user", "host", "who", "message", "target",
        "run", "artifact", "before", "causes", "metrics", "cost", "checks", "problems",
    }  # fmt: skip
    assert all(set(e) == keys for e in doc["entries"])
    cause = doc["entries"][3]["causes"][0]  # #5: the package
    assert cause == {
        "cause": "packages", "section": "packages", "key": "fakepkg",
        "old": "1.0", "new": "2.0", "kind": "changed",
    }  # fmt: skip


def _table_rows(md: str) -> list[list[str]]:
    """Each markdown table: its consecutive lines that start with '|'."""
    tables: list[list[str]] = []
    current: list[str] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def _cells(row: str) -> list[str]:
    assert row.startswith("|"), row
    assert row.endswith("|"), row
    return [c.strip() for c in re.split(r"(?<!\\)\|", row[1:-1])]


def test_markdown_has_a_heading_per_move_and_well_formed_tables(changelog: Changelog) -> None:
    """One heading per move; each metrics table has a header, a separator and rows of the
    same width; causes are a list."""
    md = changelog.to_markdown()
    assert md.startswith("## Changelog of `model/prod`")
    assert re.findall(r"^### #(\d+) ", md, re.M) == [str(s) for s in range(8, 0, -1)]
    tables = _table_rows(md)
    assert len(tables) == 8
    for table in tables:
        header, sep, *rows = (_cells(r) for r in table)
        assert header == ["metric", "old", "new", "change", "%"]
        assert len(sep) == 5
        assert all(re.fullmatch(r":?-+:?", c) for c in sep)
        assert rows
        assert all(len(r) == 5 for r in rows)
    assert "- params: `lr`: `0.1` → `0.2`" in md
    assert "> fakepkg 2.0 breaks\n> see the ticket" in md


def test_markdown_cells_escape_what_would_break_a_row() -> None:
    """A metric name with '|' or '<' cannot break the table or inject HTML."""
    entry = ChangelogEntry(
        seq=1, action="set", target="x", run_id="R", metrics=(MetricEffect("top|1<b>", 1.0, 2.0),)
    )
    md = Changelog("m", (entry,), 1).to_markdown()
    (table,) = _table_rows(md)
    assert [len(_cells(r)) for r in table] == [5, 5, 5]
    assert "top\\|1&lt;b&gt;" in md


def test_text_is_aligned(changelog: Changelog) -> None:
    """Labels line up under each move and the metrics table's columns end together."""
    text = changelog.to_text()
    assert "\x1b[" not in text  # no colour unless asked
    assert "\x1b[" in changelog.to_text(color=True)
    block = text.split("\n#2  set")[1].split("\n#1  set")[0].splitlines()
    labels = [ln for ln in block if re.match(r"    (target|run|before) ", ln)]
    assert len(labels) == 3
    assert len({ln.index(ln.split()[1]) for ln in labels}) == 1
    table = [ln for ln in block if ln.startswith("      ") and ("%" in ln)]
    header, *rows = table
    assert all(len(r) == len(header) for r in rows)
    assert "~ lr: 0.1 -> 0.2" in text


def test_cost_shows_with_its_currency_and_the_cost_before() -> None:
    """A run's resources.cost shows with the currency, and the cost of the run before."""
    entry = ChangelogEntry(
        seq=2, action="set", target="x", run_id="R2", before_seq=1, before_run="R1",
        cost=1.25, currency="USD", before_cost=0.5,
    )  # fmt: skip
    log = Changelog("m", (entry,), 2)
    assert "cost    1.25 USD (before: 0.5 USD)" in log.to_text()
    assert "- **cost**: 1.25 USD (before: 0.5 USD)" in log.to_markdown()
    assert json.loads(log.to_json())["entries"][0]["cost"] == {
        "value": 1.25, "currency": "USD", "before": 0.5,
    }  # fmt: skip
    assert Changelog.from_json(log.to_json()) == log


def test_non_finite_metrics_are_null_in_json() -> None:
    """NaN and infinity are written as null: the JSON stays standard."""
    entry = ChangelogEntry(seq=1, action="set", metrics=(MetricEffect("loss", float("nan"), 1.0),))
    doc = json.loads(Changelog("m", (entry,), 1).to_json())
    assert doc["entries"][0]["metrics"] == [
        {"key": "loss", "old": None, "new": 1.0, "change": None, "percent": None}
    ]


# ------------------------------------------------------------------ bad input and damage


def test_a_ref_never_set_names_the_close_refs(ledger: Ledger) -> None:
    """A ref that does not exist: NotFoundError (a KeyError) naming the close ref."""
    with pytest.raises(NotFoundError, match="did you mean 'model/prod'") as got:
        ledger.changelog("model/prd")
    assert isinstance(got.value, KeyError)


def test_a_bad_ref_name_or_limit_is_a_usage_error(ledger: Ledger) -> None:
    """An invalid ref name or a limit below 1 says what is expected."""
    with pytest.raises(UsageError, match="invalid ref name"):
        ledger.changelog("no spaces please")
    with pytest.raises(UsageError, match="whole number 1 or more"):
        ledger.changelog("model/prod", limit=0)


def test_a_damaged_entry_is_shown_and_skipped_for_comparison(moved: Moved, tmp_path: Path) -> None:
    """An entry that does not parse shows as damaged; the next move compares with the one
    before it."""
    store = damaged_copy(moved, tmp_path)
    (store / "refs/model/prod/0000000004.json").write_bytes(b"{not json")
    log = Ledger(store).changelog("model/prod")
    four = by_seq(log)[4]
    assert four.action == "damaged"
    assert not four.readable
    assert "does not parse" in four.problems[0]
    five = by_seq(log)[5]
    assert five.before_seq == 3
    assert "#4  damaged" in log.to_text()
    assert "- **problem**: entry #4 of ref model/prod does not parse" in log.to_markdown()
    assert Changelog.from_json(log.to_json()) == log


def test_an_edited_entry_and_a_gap_are_shown(moved: Moved, tmp_path: Path) -> None:
    """An entry edited by hand keeps its place with a seal problem; a deleted one shows as
    missing."""
    store = damaged_copy(moved, tmp_path)
    key = store / "refs/model/prod/0000000002.json"
    doc = json.loads(key.read_text())
    doc["message"] = "rewritten"
    key.write_text(json.dumps(doc))
    (store / "refs/model/prod/0000000003.json").unlink()
    log = Ledger(store).changelog("model/prod")
    two, three = by_seq(log)[2], by_seq(log)[3]
    assert two.message == "rewritten"
    assert any("does not match its seal" in p for p in two.problems)
    assert three.action == "missing"
    assert "gap" in three.problems[0]
    assert by_seq(log)[4].before_seq == 2


def test_a_run_that_cannot_be_read_is_shown(moved: Moved, tmp_path: Path) -> None:
    """A target run whose record is damaged shows as a problem; the changelog still comes."""
    store = damaged_copy(moved, tmp_path)
    rid = moved.runs["c"]
    files = [p for p in (store / "runs").rglob("*") if p.is_file() and rid in str(p)]
    assert files
    for f in files:
        f.write_bytes(b"\x00damaged")
    with pytest.warns(LedgerWarning, match="is damaged"):  # the catalog's sync says so too
        log = Ledger(store).changelog("model/prod")
    three, four = by_seq(log)[3], by_seq(log)[4]
    assert three.run_id == rid
    assert three.run_name is None
    assert any(f"run {rid} cannot be read" in p for p in three.problems)
    assert any(p.startswith("no comparison with #3") for p in four.problems)
    assert four.causes == ()
    assert all(m.old is None for m in four.metrics)
    assert f"! run {rid} cannot be read" in log.to_text()


# ------------------------------------------------------------------ the command line


def test_cli_formats(moved: Moved) -> None:
    """changelog prints text, markdown or JSON (the same as the Python API's)."""
    got = invoke("changelog", "model/prod", "--format", "json", url=moved.url)
    assert got.exit_code == 0, got.stderr
    assert Changelog.from_json(got.stdout) == Ledger(moved.url).changelog("model/prod")
    md = invoke("changelog", "model/prod", "--format", "markdown", "--limit", "2", url=moved.url)
    assert md.exit_code == 0
    assert re.findall(r"^### #(\d+)", md.stdout, re.M) == ["8", "7"]
    text = invoke("changelog", "@model/prod", url=moved.url)
    assert text.exit_code == 0
    assert text.stdout.startswith("changelog of model/prod: 8 moves")
    assert "rollback to #4" in text.stdout


def test_cli_bad_input_exits_2_with_one_line(moved: Moved) -> None:
    """An unknown ref or a bad limit: exit 2 and one line that says what to do."""
    got = invoke("changelog", "model/prd", url=moved.url)
    assert got.exit_code == 2
    assert got.stderr.strip().count("\n") == 0
    assert "did you mean 'model/prod'" in got.stderr
    bad = invoke("changelog", "model/prod", "--limit", "0", url=moved.url)
    assert bad.exit_code == 2
    assert "--limit" in bad.stderr


def test_limit_reads_further_back_past_a_damaged_before(moved: Moved, tmp_path: Path) -> None:
    """With a limit, a damaged entry just before the oldest shown move does not leave it
    without a comparison: the nearest readable one further back is read."""
    store = damaged_copy(moved, tmp_path)
    (store / "refs/model/prod/0000000006.json").write_bytes(b"[]")
    log = Ledger(store).changelog("model/prod", limit=2)
    assert [e.seq for e in log.entries] == [8, 7]
    assert log.entries[-1].before_seq == 5
    assert log.entries[-1].causes == ()  # #5 and #7 are the same run


def test_changelog_on_memory_and_local_stores(fast_store_ledger: Ledger) -> None:
    """The changelog reads any store: moves between two ledger.run() blocks on memory and
    local disk give their param change and metric effect."""
    ledger = fast_store_ledger
    ids = []
    for lr, acc in ((0.1, 0.8), (0.2, 0.9)):
        with ledger.run("fit", params={"lr": lr}) as run:
            run.log(accuracy=acc)
        ids.append(run.id)
        ledger.refs.set("m", run.id, message=f"lr {lr}")
    new, old = ledger.changelog("m").entries
    assert new.causes == (Change("params", "lr", 0.1, 0.2),)
    assert [(m.key, m.old, m.new) for m in new.metrics] == [("accuracy", 0.8, 0.9)]
    assert (old.run_id, old.before_seq) == (ids[0], None)
