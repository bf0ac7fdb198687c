"""Monitor runs: a long-lived run whose metrics reach the store every few seconds, judged
over a window against the run's own baseline while another process feeds it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.cli import invoke

from mlledger import Ledger, UsageError
from mlledger.runs.run import MONITOR_FLUSH_SECONDS

FEEDER = textwrap.dedent(
    """
    import sys, time
    import mlledger

    ledger = mlledger.Ledger(sys.argv[1])
    with ledger.run("serve", kind="monitor", baseline="@model/prod") as run:
        print(run.id, flush=True)
        for i in range(10):                 # healthy: accuracy as good as prod
            run.log(accuracy=0.90, latency=20.0)
            time.sleep(0.05)
        print("healthy", flush=True)
        sys.stdin.readline()                # the test saw them; now it degrades
        for i in range(5):
            run.log(accuracy=0.50, latency=80.0)
        print("degraded", flush=True)
        time.sleep(60)                      # idle: only the scheduler's flush writes them
    """
)


def _wait_for(predicate, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


@pytest.mark.slow
def test_a_monitor_run_fed_by_another_process_is_judged_from_the_store(
    tmp_path: Path, workdir: Path
) -> None:
    """Points logged by a live process reach the store within a few seconds, idle or not;
    a window rule without a baseline judges the mean of recent points against the monitor
    run's baseline, and the flushed points survive a SIGKILL."""
    ledger = Ledger(str(tmp_path / "store"))
    with ledger.run("train") as prod:
        prod.log(accuracy=0.90, latency=20.0)
    ledger.refs.set("model/prod", prod.id)
    script = tmp_path / "feed.py"
    script.write_text(FEEDER)
    child = subprocess.Popen(
        [sys.executable, str(script), ledger.url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        rid = child.stdout.readline().strip()
        assert child.stdout.readline().strip() == "healthy"
        rule = "metrics.accuracy max_drop=0.05 last=5"
        t0 = time.monotonic()
        healthy = _wait_for(lambda: ledger.check(rid, rules=[rule], record=False).results[0].value)
        assert healthy == pytest.approx(0.90)
        assert time.monotonic() - t0 < 3 * MONITOR_FLUSH_SECONDS
        run = ledger.get(rid)
        assert run.status == "running"
        assert run.record["kind"] == "monitor"
        assert run.record["baseline"] == "@model/prod"
        report = ledger.check(rid, rules=[rule])
        assert report.ok, report
        assert report.results[0].baseline_run == prod.id

        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "degraded"
        t0 = time.monotonic()
        low = _wait_for(
            lambda: (ledger.check(rid, rules=[rule], record=False).results[0].value or 1) < 0.6
        )
        assert low, "the idle monitor run's points never reached the store"
        assert time.monotonic() - t0 < 3 * MONITOR_FLUSH_SECONDS
        failed = ledger.check(rid, rules=[rule, "metrics.latency max_rise_pct=50 window=1h"])
        assert not failed.ok
        assert "dropped 0.4" in failed.results[0].message
        assert failed.results[1].value == pytest.approx((10 * 20 + 5 * 80) / 15)
        cli = invoke(
            "check", "--rule", f"{rule} runs=\"name = 'serve'\"", "--json", url=ledger.url
        )
        assert cli.exit_code == 1  # without RUN, a window rule judges the live monitor run
        assert [r["run_id"] for r in json.loads(cli.stdout)["reports"]] == [rid]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    after = ledger.check(rid, rules=["metrics.accuracy min=0.8 last=5"], record=False)
    assert after.results[0].value == pytest.approx(0.50)


def test_a_monitor_run_records_kind_and_baseline(tmp_path: Path, workdir: Path) -> None:
    """kind='monitor' and baseline are in the ended run's record; the ordinary run's period
    stays the default."""
    ledger = Ledger(str(tmp_path / "store"))
    with ledger.run("serve", kind="monitor", baseline="median:5") as run:
        assert run.flush_seconds == MONITOR_FLUSH_SECONDS
        run.log(x=1.0)
    got = ledger.get(run.id)
    assert got.record["kind"] == "monitor"
    assert got.record["baseline"] == "median:5"
    with ledger.run("train") as plain:
        assert plain.flush_seconds > MONITOR_FLUSH_SECONDS
    assert "baseline" not in ledger.get(plain.id).record


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "daemon"}, "'block' .* or 'monitor'"),
        ({"kind": "monitor", "baseline": "median:zero"}, "median:N"),
        ({"kind": "monitor", "baseline": "@no//ref"}, "not '@REF'"),
    ],
)
def test_a_bad_kind_or_baseline_is_refused(
    tmp_path: Path, workdir: Path, kwargs: dict[str, str], match: str
) -> None:
    """An unknown kind or a baseline outside the grammar: UsageError before any run starts."""
    ledger = Ledger(str(tmp_path / "store"))
    with pytest.raises(UsageError, match=match):
        ledger.run("serve", **kwargs)  # type: ignore[arg-type]
    assert ledger.runs() == []
