"""The checks engine: baselines, limits, recorded reports, the one reading of a run's fields."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers.ledgers import open_ledger
from helpers.servers import StoreSpec
from hypothesis import given
from hypothesis import strategies as st

from mlledger import Ledger, LedgerWarning, NotFoundError, UsageError
from mlledger.checks import (
    CheckReport,
    CheckResult,
    checks_of,
    field_value,
    judge,
    recent_mean,
)
from mlledger.store.layout import checks_prefix

PROD = "metrics.accuracy max_drop=0.01 vs @model/prod"


def _train(ledger: Ledger, acc: float, name: str = "train", **params: object) -> str:
    with ledger.run(name, params={"lr": 0.1, **params}) as run:
        run.log(accuracy=acc - 0.1)
        run.log(accuracy=acc)
    return run.id


@pytest.fixture
def prod(ledger: Ledger) -> str:
    """A ledger whose model/prod points at a run with accuracy 0.90."""
    rid = _train(ledger, 0.90)
    ledger.refs.set("model/prod", rid, message="first")
    return rid


def test_a_drop_past_the_limit_fails_and_says_how_far(ledger: Ledger, prod: str) -> None:
    """A run 0.05 worse than the ref's run fails max_drop=0.01, naming value, baseline, limit."""
    rid = _train(ledger, 0.85)
    report = ledger.check(rid, rules=[PROD])
    assert not report.ok
    (res,) = report.results
    assert res.rule == "metrics.accuracy max_drop=0.01"
    assert res.value == pytest.approx(0.85)
    assert res.baseline == pytest.approx(0.90)
    assert res.change == pytest.approx(-0.05)
    assert res.baseline_run == prod
    assert "dropped 0.05" in res.message
    assert "max_drop=0.01" in res.message
    assert "@model/prod" in res.message
    assert "\n" not in res.message


def test_a_run_within_the_limits_passes(ledger: Ledger, prod: str) -> None:
    """A run 0.005 worse passes max_drop=0.01; results come in rule order."""
    rid = _train(ledger, 0.895)
    report = ledger.check(rid, rules=[PROD, {"field": "metrics.accuracy", "min": 0.5}])
    assert report.ok
    assert [r.rule for r in report.results] == [
        "metrics.accuracy max_drop=0.01",
        "metrics.accuracy min=0.5",
    ]
    assert report.results[1].baseline is None
    assert report.results[1].change is None


@pytest.mark.parametrize(
    ("rule", "value", "baseline", "ok"),
    [
        ({"max_rise": 0.1}, 1.2, 1.0, False),
        ({"max_rise": 0.3}, 1.2, 1.0, True),
        ({"max_drop_pct": 10}, 0.85, 1.0, False),
        ({"max_drop_pct": 20}, 0.85, 1.0, True),
        ({"max_rise_pct": 10}, 1.15, 1.0, False),
        ({"max_rise_pct": 10}, 0.5, 1.0, True),
        ({"min": 0.9}, 0.85, None, False),
        ({"max": 0.9}, 0.95, None, False),
        ({"min": 0.1, "max": 0.9}, 0.5, None, True),
        ({"max_drop_pct": 5}, 0.0, 0.0, True),
        ({"max_rise_pct": 5}, 1.0, 0.0, False),
    ],
)
def test_judge_applies_each_limit(
    rule: dict[str, float], value: float, baseline: float | None, ok: bool
) -> None:
    """Each limit: drops and rises in units and in percent of the baseline, min and max."""
    got, message = judge(rule, value, baseline)
    assert got is ok, message
    assert message


def test_percent_limits_are_in_percent_of_the_baseline(ledger: Ledger, prod: str) -> None:
    """max_drop_pct=10 lets 0.90 -> 0.82 (8.9 %) pass and 0.90 -> 0.80 (11 %) fail."""
    rule = "metrics.accuracy max_drop_pct=10 vs @model/prod"
    assert ledger.check(_train(ledger, 0.82), rules=[rule]).ok
    bad = ledger.check(_train(ledger, 0.80), rules=[rule])
    assert not bad.ok
    assert "11.1 %" in bad.results[0].message


def test_median_baseline_leaves_the_judged_run_out(ledger: Ledger) -> None:
    """median:3 is the median of the three newest finished runs the rule selects, not this."""
    for acc in (0.5, 0.8, 0.9, 0.7):
        _train(ledger, acc)
    _train(ledger, 0.1, name="other")
    judged = _train(ledger, 0.6)
    rule = {
        "field": "metrics.accuracy",
        "runs": "name = 'train'",
        "baseline": "median:3",
        "max_drop": 0.05,
    }
    (res,) = ledger.check(judged, rules=[rule]).results
    assert res.baseline == pytest.approx(0.8)  # median of 0.7, 0.9, 0.8
    assert not res.ok
    assert "median of 3 runs" in res.message


def test_a_run_id_prefix_is_a_baseline(ledger: Ledger) -> None:
    """A baseline given as a run id prefix compares with that run."""
    base = _train(ledger, 0.9)
    ledger.sync()
    res = ledger.check(_train(ledger, 0.7), rules=[f"metrics.accuracy max_drop=0.1 vs {base[:20]}"])
    assert res.results[0].baseline_run == base
    assert not res.ok


def test_a_ref_to_an_artifact_compares_with_the_run_that_made_it(ledger: Ledger) -> None:
    """A ref set to an output's digest judges against the run that produced it."""
    with ledger.run("train") as run:
        run.log(accuracy=0.9)
        art = run.save({"w": 1}, name="model")
    ledger.refs.set("model/prod", art.digest)
    (res,) = ledger.check(_train(ledger, 0.5), rules=[PROD]).results
    assert res.baseline_run == run.id
    assert res.baseline == pytest.approx(0.9)


def test_a_missing_value_is_a_failed_result_that_says_so(ledger: Ledger, prod: str) -> None:
    """A field the run never logged fails the rule with a message, not an exception."""
    report = ledger.check(_train(ledger, 0.9), rules=["metrics.f1 min=0.5"])
    (res,) = report.results
    assert not res.ok
    assert res.value is None
    assert "has no metrics.f1" in res.message


def test_a_baseline_without_the_field_is_a_failed_result(ledger: Ledger) -> None:
    """A baseline run that lacks the field fails the rule, saying the baseline has none."""
    with ledger.run("other") as run:
        run.log(loss=1.0)
    ledger.refs.set("model/prod", run.id)
    (res,) = ledger.check(_train(ledger, 0.9), rules=[PROD]).results
    assert not res.ok
    assert "baseline @model/prod" in res.message
    assert res.value == 0.9


def test_an_unknown_baseline_ref_is_not_found_naming_close_refs(ledger: Ledger, prod: str) -> None:
    """@model/prd: NotFoundError suggesting model/prod, and nothing recorded."""
    rid = _train(ledger, 0.9)
    with pytest.raises(NotFoundError, match="did you mean 'model/prod'"):
        ledger.check(rid, rules=["metrics.accuracy max_drop=0.01 vs @model/prd"])
    with pytest.raises(NotFoundError, match="baseline '0000000000ZZZZ'"):
        ledger.check(rid, rules=["metrics.accuracy max_drop=0.01 vs 0000000000ZZZZ"])
    assert checks_of(ledger.store, rid) == []


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        ("metrics.accuracy max_drp=0.01 vs @model/prod", "did you mean 'max_drop'"),
        ("metrics.accuracy max_drop=lots vs @model/prod", "max_drop is a number, not 'lots'"),
        ("accuracy max_drop=0.01 vs @model/prod", "needs a numeric 'field'"),
        ("metrics.accuracy max_drop=0.01", "measured against a baseline"),
        ("metrics.accuracy max_drop=0.01 vs median:x", "median:N"),
        ("metrics.accuracy max_drop=0.01 vs @bad//ref", "not '@REF'"),
        ("metrics.accuracy", "sets no limit"),
    ],
)
def test_a_bad_rule_is_a_usage_error_and_nothing_is_written(
    ledger: Ledger, prod: str, rule: str, match: str
) -> None:
    """Unknown key, a limit that is no number, a bad field or baseline: one-line UsageError."""
    rid = _train(ledger, 0.9)
    with pytest.raises(UsageError, match=match) as e:
        ledger.check(rid, rules=[rule])
    assert "\n" not in str(e.value)
    assert checks_of(ledger.store, rid) == []


def test_no_rules_at_all_is_a_usage_error(ledger: Ledger) -> None:
    """Without rules and without policy checks, check says where rules come from."""
    rid = _train(ledger, 0.9)
    with pytest.raises(UsageError, match="policy set checks"):
        ledger.check(rid)
    with pytest.raises(UsageError, match="holds no rule"):
        ledger.check(rid, rules=[])


def test_policy_rules_judge_the_runs_their_clause_selects(ledger: Ledger, prod: str) -> None:
    """rules=None takes the policy's checks whose runs clause selects the run, in order."""
    ledger.policy.set(
        checks=[
            {
                "name": "acc-holds",
                "runs": "name = 'train'",
                "field": "metrics.accuracy",
                "baseline": "@model/prod",
                "max_drop": 0.01,
            },
            {
                "name": "eval-only",
                "runs": "name = 'eval'",
                "field": "metrics.accuracy",
                "min": 0.99,
            },
            {"name": "floor", "field": "metrics.accuracy", "min": 0.1},
        ],
        message="team rules",
    )
    report = ledger.check(_train(ledger, 0.7))
    assert [r.rule for r in report.results] == ["acc-holds", "floor"]
    assert [r.ok for r in report.results] == [False, True]
    other = ledger.check(_train(ledger, 0.95, name="eval"))
    assert [r.rule for r in other.results] == ["eval-only", "floor"]


def test_each_check_is_recorded_and_read_back(ledger: Ledger, prod: str) -> None:
    """Two checks of a run give two sealed entries under checks/<day>/<run>/, oldest first."""
    rid = _train(ledger, 0.85)
    first = ledger.check(rid, rules=[PROD])
    second = ledger.check(rid, rules=["metrics.accuracy min=0.5"])
    assert ledger.check(rid, rules=[PROD], record=False).ok is False
    got = checks_of(ledger.store, rid)
    assert got == [first, second]
    keys = list(ledger.store.backend.list(checks_prefix(rid)))
    assert len(keys) == 2
    assert all(k.startswith("checks/") for k in keys)
    assert checks_of(ledger.store, prod) == []


def test_a_damaged_check_entry_is_left_out_with_a_warning(ledger: Ledger, prod: str) -> None:
    """An entry edited after it was written no longer matches its seal: warned, skipped."""
    rid = _train(ledger, 0.85)
    ledger.check(rid, rules=[PROD])
    ledger.check(rid, rules=["metrics.accuracy min=0.5"])
    key = sorted(ledger.store.backend.list(checks_prefix(rid)))[0]
    path = Path(ledger.store.backend.local_path(key) or "")
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'"ok":false', b'"ok":true'))
    with pytest.warns(LedgerWarning, match="damaged"):
        got = checks_of(ledger.store, rid)
    assert len(got) == 1
    assert got[0].results[0].rule == "metrics.accuracy min=0.5"


def test_reports_round_trip_through_json() -> None:
    """to_json / from_json keep every field; NaN goes as text and comes back NaN."""
    res = CheckResult("r", "metrics.x", float("nan"), 1.0, None, False, "m", "01ABC", "@a")
    report = CheckReport("01J0000000000000000000000A", (res,), user="u")
    back = CheckReport.from_json(report.to_json())
    assert back.run_id == report.run_id
    assert back.at == report.at
    assert back.user == "u"
    assert math.isnan(back.results[0].value or 0.0)
    assert back.results[0].baseline_run == "01ABC"
    assert not back.ok


def test_field_value_reads_metrics_params_resources_and_cost(ledger: Ledger) -> None:
    """metrics.X (.min/.max/.last), params.X and nested params, resources.X, cost."""
    with ledger.run("t", params={"lr": 0.5, "cfg": {"depth": 3}, "opt": "adam"}) as run:
        for v in (3.0, 1.0, 2.0):
            run.log(loss=v)
    got = ledger.get(run.id)
    assert field_value(got, "metrics.loss") == 2.0
    assert field_value(got, "metrics.loss.min") == 1.0
    assert field_value(got, "metrics.loss.max") == 3.0
    assert field_value(got, "metrics.loss.last") == 2.0
    assert field_value(got, "params.lr") == 0.5
    assert field_value(got, "params.cfg.depth") == 3.0
    assert field_value(got, "params.opt") is None
    assert field_value(got, "metrics.nope") is None
    wall = field_value(got, "resources.wall_s")
    assert wall is not None
    assert wall >= 0
    assert field_value(got, "cost") is None  # no rates: no cost


def test_window_and_last_judge_the_mean_of_recent_points(ledger: Ledger) -> None:
    """last=2 is the mean of the two newest points; a window the points within it."""
    with ledger.run("serve") as run:
        for v in (10.0, 20.0, 30.0, 40.0):
            run.log(latency=v)
    got = ledger.get(run.id)
    assert recent_mean(got, "metrics.latency", last=2) == (35.0, 2)
    assert recent_mean(got, "metrics.latency", window="1h") == (25.0, 4)
    report = ledger.check(run.id, rules=["metrics.latency max=30 last=2"])
    assert not report.ok
    assert "mean of 2 points" in report.results[0].message


@pytest.mark.parametrize(
    "clause",
    [
        "name = 'train'",
        "name = 'train' and params.lr > 0.15",
        "params.lr < 0.15 or tags.team = 'cv'",
        "not (metrics.accuracy.max >= 0.85)",
        "metrics.accuracy > 0.8 and not params.opt in ('sgd')",
        "tags.team like 'c%'",
    ],
)
def test_a_rule_selects_exactly_the_runs_its_where_clause_finds(
    ledger: Ledger, clause: str
) -> None:
    """Judging one run's membership (run_matches) agrees with the query for every run."""
    for i, (name, opt) in enumerate((("train", "sgd"), ("eval", "adam"), ("train", "adam"))):
        tags = {"team": "cv"} if i != 1 else {}
        with ledger.run(name, params={"lr": 0.1 * (i + 1), "opt": opt}, tags=tags) as run:
            run.log(accuracy=0.75 + 0.05 * i)
    found = {r.id for r in ledger.runs(where=clause)}
    for run in ledger.runs():
        assert ledger.catalog.run_matches(run.id, clause) is (run.id in found), run.params


_numbers = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=True))


@given(
    results=st.lists(
        st.builds(
            CheckResult,
            rule=st.text(min_size=1),
            field=st.sampled_from(["metrics.acc", "params.lr", "cost", "resources.wall_s"]),
            value=_numbers,
            baseline=_numbers,
            change=_numbers,
            ok=st.booleans(),
            message=st.text(),
            baseline_run=st.one_of(st.none(), st.text(min_size=1)),
            spec=st.one_of(st.none(), st.sampled_from(["@model/prod", "median:10"])),
        ),
        max_size=5,
    )
)
def test_any_report_round_trips_through_canonical_json(results: list[CheckResult]) -> None:
    """Every report survives the store's JSON form (canonical bytes) unchanged."""
    from mlledger import canonical

    report = CheckReport("01J0000000000000000000000A", tuple(results), user="u")
    back = CheckReport.from_json(canonical.loads(canonical.dumps(report.to_json())))
    assert back == report
    assert back.ok is all(r.ok for r in results)


def test_checks_are_recorded_and_read_on_every_store(
    store_spec: StoreSpec, workdir: Path
) -> None:
    """On memory, local disk, S3 and GCS: each of ledger.check's reports is written
    once and read back by a second ledger, oldest first."""
    ledger = open_ledger(store_spec)
    base = _train(ledger, 0.9)
    ledger.refs.set("model/prod", base)
    judged = _train(ledger, 0.85)
    first = ledger.check(judged, rules=[PROD])
    second = ledger.check(judged, rules=["metrics.accuracy min=0.5"])
    other = open_ledger(store_spec)
    assert checks_of(other.store, judged) == [first, second]
    assert [r.ok for r in checks_of(other.store, judged)] == [False, True]
