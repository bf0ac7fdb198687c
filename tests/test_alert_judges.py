"""The ``check`` and ``monitor`` alert kinds: finished runs judged by the policy's checks,
live monitor runs (in another process) by window and last-points rules."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.alerts import webhook_server
from helpers.runs import python_env

from mlledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """A ledger with a prod model at accuracy 0.95 and two rules in its policy."""
    led = Ledger(str(tmp_path / "store"))
    with led.run("train") as run:
        run.log(step=1, acc=0.95)
    led.refs.set("model/prod", run.id)
    led.policy.set(
        checks=[
            {"name": "acc-floor", "runs": "name = 'train'", "field": "metrics.acc", "min": 0.9},
            {"name": "acc-holds", "runs": "name = 'train'", "field": "metrics.acc",
             "baseline": "@model/prod", "max_drop": 0.02},
            {"name": "live-acc", "runs": "name = 'serve'", "field": "metrics.acc",
             "last": 3, "max_drop": 0.1},
        ]
    )  # fmt: skip
    led.watch()  # the first pass: the prod run passes every rule
    return led


def test_a_finished_run_breaking_rules_gives_one_check_alert_per_rule(ledger: Ledger) -> None:
    """A finished run below the floor and past the drop gives two ``check`` alerts naming
    their rule, with value, baseline and change; a passing run gives none."""
    with ledger.run("train") as bad:
        bad.log(step=1, acc=0.5)
    with ledger.run("train") as good:
        good.log(step=1, acc=0.94)
    alerts = {a.rule: a for a in ledger.watch()}
    assert set(alerts) == {"acc-floor", "acc-holds"}
    holds = alerts["acc-holds"]
    assert holds.kind == "check"
    assert holds.run_id == bad.id
    assert holds.key == f"check:{bad.id}:acc-holds"
    check = holds.details["check"]
    assert (check["value"], check["baseline"]) == (0.5, 0.95)
    assert check["change"] == pytest.approx(-0.45)
    assert "max_drop=0.02" in holds.message
    assert holds.to_json()["rule"] == "acc-holds"
    assert ledger.watch() == []


def test_rules_whose_baseline_is_gone_are_skipped_with_a_warning(ledger: Ledger) -> None:
    """A rule naming a ref that does not exist is warned about; the other rules still
    raise their alerts."""
    rules = ledger.policy.get()["checks"]
    rules[1]["baseline"] = "@model/nowhere"
    ledger.policy.set(checks=rules)
    with ledger.run("train") as bad:
        bad.log(step=1, acc=0.5)
    with pytest.warns(UserWarning, match="model/nowhere"):
        alerts = ledger.watch()
    assert [a.rule for a in alerts] == ["acc-floor"]


MONITOR = textwrap.dedent(
    """
    import sys, time
    from mlledger import Ledger
    led = Ledger(sys.argv[1], start_delay=0)
    with led.run("serve", kind="monitor", baseline="@model/prod") as run:
        print(run.id, flush=True)
        for step, line in enumerate(sys.stdin):
            run.log(step=step, acc=float(line))
            print("logged", step, flush=True)
    """
)


@pytest.mark.slow
def test_a_live_monitor_run_raises_one_monitor_alert_per_breach(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A monitor run in another process whose last 3 points average past the rule's drop
    from its baseline gives one ``monitor`` alert (posted once), repeated passes add none,
    and values within the limit give none."""
    proc = subprocess.Popen(
        [sys.executable, "-c", MONITOR, ledger.url],
        env=python_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None

    def log(*values: float) -> None:
        for v in values:
            proc.stdin.write(f"{v}\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            assert proc.stdout.readline().startswith("logged")  # type: ignore[union-attr]
        time.sleep(2.6)  # a monitor run's metrics reach the store every 2 s

    try:
        rid = proc.stdout.readline().strip()
        with webhook_server() as inbox:
            monkeypatch.setenv("HOOK", inbox.url + "/hook")
            ledger.policy.set(alerts=[{"type": "webhook", "url": "$HOOK", "on": ["monitor"]}])
            log(0.95, 0.94, 0.95)
            assert ledger.watch() == []
            log(0.6, 0.6, 0.6)
            (alert,) = ledger.watch()
            assert (alert.kind, alert.run_id, alert.rule) == ("monitor", rid, "live-acc")
            assert alert.key == f"monitor:{rid}:live-acc:point-3"
            assert alert.details["check"]["baseline"] == 0.95
            assert ledger.watch() == []
            (body,) = inbox.bodies("/hook")
            assert body["key"] == alert.key
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
