"""``mlledger check``, ``diff --exit-code`` and the checks ``show`` lists: exit 0 / 1 / 2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.cli import console, invoke, one_error_line

from mlledger import Ledger, checks_of
from mlledger.store.layout import checks_prefix

RULE = "metrics.accuracy max_drop=0.01 vs @model/prod"


@pytest.fixture
def store(tmp_path: Path, workdir: Path) -> tuple[Ledger, str, str, str]:
    """A store: prod (accuracy 0.90, model/prod), good (0.895) and bad (0.80) train runs."""
    ledger = Ledger(str(tmp_path / "store"))
    ids = []
    for acc in (0.90, 0.895, 0.80):
        with ledger.run("train", params={"acc": acc}) as run:
            run.log(accuracy=acc)
        ids.append(run.id)
    ledger.refs.set("model/prod", ids[0], message="first model")
    return ledger, ids[0], ids[1], ids[2]


def test_a_failed_rule_exits_1_and_a_passing_one_0(store: tuple[Ledger, str, str, str]) -> None:
    """The installed command exits 1 on a drop past the limit, 0 within it."""
    ledger, _prod, good, bad = store
    failed = console("check", bad, "--rule", RULE, url=ledger.url)
    assert failed.returncode == 1, failed.stderr
    assert "FAIL" in failed.stdout
    assert "dropped 0.1" in failed.stdout
    passed = console("check", good, "--rule", RULE, url=ledger.url)
    assert passed.returncode == 0, passed.stderr
    assert "1 rule passed" in passed.stdout


def test_json_format_carries_every_result(store: tuple[Ledger, str, str, str]) -> None:
    """--format json (and --json): ok, and each report's results with value and baseline."""
    ledger, prod, _good, bad = store
    for flag in (["--format", "json"], ["--json"]):
        res = invoke("check", bad, "--rule", RULE, "--rule", "metrics.accuracy min=0.5", *flag,
                     url=ledger.url)  # fmt: skip
        assert res.exit_code == 1
        doc = json.loads(res.stdout)
        assert doc["ok"] is False
        (rep,) = doc["reports"]
        assert rep["run_id"] == bad
        assert [r["ok"] for r in rep["results"]] == [False, True]
        assert rep["results"][0]["baseline"] == pytest.approx(0.9)
        assert rep["results"][0]["baseline_run"] == prod


def test_markdown_is_a_table_for_a_step_summary(store: tuple[Ledger, str, str, str]) -> None:
    """--format markdown: a verdict heading and one table row per rule with ✅/❌."""
    ledger, _prod, _good, bad = store
    res = invoke("check", bad, "--rule", RULE, "--rule", "metrics.accuracy min=0.5",
                 "--format", "markdown", url=ledger.url)  # fmt: skip
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert lines[0].startswith("### ❌")
    assert "1 of 2 rules failed" in lines[0]
    rows = [ln for ln in lines if ln.startswith(("| ✅", "| ❌"))]
    assert len(rows) == 2
    assert rows[0].startswith("| ❌ | metrics.accuracy max_drop=0.01 |")
    assert "0.8" in rows[0]
    assert "0.9 (@model/prod)" in rows[0]
    assert "-0.1" in rows[0]
    assert rows[1].startswith("| ✅")


def test_junit_is_valid_xml_with_a_failure_per_failed_rule(
    store: tuple[Ledger, str, str, str],
) -> None:
    """--format junit parses: one testsuite, a testcase per rule, <failure> on failed ones."""
    ledger, _prod, _good, bad = store
    res = invoke("check", bad, "--rule", RULE, "--rule", "metrics.accuracy min=0.5",
                 "--format", "junit", url=ledger.url)  # fmt: skip
    assert res.exit_code == 1
    root = ET.fromstring(res.stdout.encode())
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("tests") == "2"
    assert suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["metrics.accuracy max_drop=0.01",
                                              "metrics.accuracy min=0.5"]  # fmt: skip
    failure = cases[0].find("failure")
    assert failure is not None
    assert "past max_drop=0.01" in (failure.get("message") or "")
    assert cases[1].find("failure") is None


def test_without_run_each_rule_judges_the_newest_run_it_selects(
    store: tuple[Ledger, str, str, str],
) -> None:
    """No RUN: the newest finished run the rule's runs clause selects (here: the bad one)."""
    ledger, _prod, good, bad = store
    with ledger.run("eval") as run:
        run.log(accuracy=0.99)
    res = invoke("check", "--rule", f"{RULE} runs=\"name = 'train'\"", "--json", url=ledger.url)
    assert res.exit_code == 1
    assert [r["run_id"] for r in json.loads(res.stdout)["reports"]] == [bad]
    res = invoke("check", "--rule", "metrics.accuracy min=0.9", "--json", url=ledger.url)
    assert res.exit_code == 0
    assert [r["run_id"] for r in json.loads(res.stdout)["reports"]] == [run.id]
    assert checks_of(ledger.store, good) == []


def test_the_policy_rules_are_used_without_rule_options(
    store: tuple[Ledger, str, str, str],
) -> None:
    """No --rule: the policy's checks; recorded, so show lists them afterwards."""
    ledger, _prod, good, bad = store
    ledger.policy.set(
        checks=[{"name": "acc-holds", "runs": "name = 'train'", "field": "metrics.accuracy",
                 "baseline": "@model/prod", "max_drop": 0.01}],
        message="gate",
    )  # fmt: skip
    assert invoke("check", good, url=ledger.url).exit_code == 0
    res = invoke("check", url=ledger.url)
    assert res.exit_code == 1
    assert "acc-holds" in res.stdout
    assert len(checks_of(ledger.store, bad)) == 1


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--rule", "metrics.accuracy max_drp=0.01 vs @model/prod"], "unknown key 'max_drp'"),
        (["--rule", "accuracy max_drop=0.01 vs @model/prod"], "needs a numeric 'field'"),
        (["--rule", "metrics.accuracy max_drop=much vs @model/prod"], "is a number, not 'much'"),
        (["--rule", "metrics.accuracy max_drop=0.01 vs @model/prd"], "did you mean 'model/prod'"),
        (["--rule", "metrics.accuracy max_drop=0.01 vs 7ZZZZZZZZZZZ"], "baseline '7ZZZZZZZZZZZ'"),
        ([], "no check rules"),
    ],
)
def test_bad_usage_exits_2_with_one_line_and_writes_nothing(
    store: tuple[Ledger, str, str, str], args: list[str], expect: str
) -> None:
    """A bad rule, an unknown field or baseline, no rules at all: one error line, exit 2."""
    ledger, _prod, _good, bad = store
    res = console("check", bad, *args, url=ledger.url)
    assert res.returncode == 2, res.stdout + res.stderr
    assert expect in one_error_line(res.stderr)
    assert res.stdout == ""
    assert list(ledger.store.backend.list(checks_prefix(bad))) == []


def test_show_lists_the_newest_check(store: tuple[Ledger, str, str, str]) -> None:
    """show RUN prints the newest report's results; --json has them under 'checks'."""
    ledger, _prod, _good, bad = store
    assert "checks" not in invoke("show", bad, url=ledger.url).stdout.split("warnings")[-1]
    assert json.loads(invoke("show", bad, "--json", url=ledger.url).stdout)["checks"] is None
    ledger.check(bad, rules=["metrics.accuracy min=0.1"])
    ledger.check(bad, rules=[RULE])
    text = invoke("show", bad, url=ledger.url).stdout
    assert "checks failed" in text
    assert "(2 checks recorded)" in text
    assert "FAIL  metrics.accuracy max_drop=0.01" in text
    doc = json.loads(invoke("show", bad, "--json", url=ledger.url).stdout)["checks"]
    assert doc["ok"] is False
    assert doc["results"][0]["rule"] == "metrics.accuracy max_drop=0.01"


def test_diff_exit_code(store: tuple[Ledger, str, str, str]) -> None:
    """diff --exit-code: 1 when the runs differ, 0 when they differ in nothing."""
    ledger, prod, good, _bad = store
    assert console("diff", prod, good, "--exit-code", url=ledger.url).returncode == 1
    assert invoke("diff", prod, good, url=ledger.url).exit_code == 0
    same = []
    for _ in range(2):
        with ledger.run("same", params={"x": 1}) as run:
            run.log(m=1.0)
        same.append(run.id)
    res = console("diff", *same, "--exit-code", url=ledger.url)
    assert res.returncode == 0, res.stdout
    assert invoke("diff", prod, good, "--exit-code", "--json", url=ledger.url).exit_code == 1


def test_verify_accepts_checks_and_gc_deletes_them_with_the_run(
    store: tuple[Ledger, str, str, str],
) -> None:
    """Recorded checks are no damage to verify; gc removing a run removes its checks."""
    ledger, prod, _good, bad = store
    ledger.check(bad, rules=[RULE])
    ledger.check(prod, rules=["metrics.accuracy min=0.5"])
    report = ledger.verify()
    assert report.ok, report
    ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    assert list(ledger.store.backend.list(checks_prefix(bad))) == []
    assert len(checks_of(ledger.store, prod)) == 1  # the ref keeps its run, and its checks
