"""What a run costs: resources at a run's end, priced at the policy's rates (mlledger.cost,
mlledger.capture.resources)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.cli import invoke, one_error_line
from helpers.nvml import FAKE_NVML

from mlledger import Ledger
from mlledger.cost import check_rates, priced, run_cost
from mlledger.errors import UsageError

RATES = {"currency": "EUR", "instance_hour": 3.6, "cpu_hour": 0.36}


def test_run_records_cost_at_the_policys_rates(ledger: Ledger) -> None:
    """With rates set, a run's resources gain cost (wall h x instance + CPU h x cpu) and
    currency, as stored in the run's record."""
    ledger.policy.set(rates=RATES)
    with ledger.run("work") as run:
        sum(range(200_000))
    res = ledger.get(run.id).resources
    for key in ("wall_s", "cpu_user_s", "cpu_system_s", "peak_rss_bytes"):
        assert isinstance(res[key], (int, float))
        assert res[key] >= 0
    cpu = res["cpu_user_s"] + res["cpu_system_s"]
    expected = res["wall_s"] / 3600 * 3.6 + cpu / 3600 * 0.36
    assert res["cost"] == pytest.approx(expected, abs=2e-6)
    assert res["currency"] == "EUR"
    assert res["cost"] > 0


def test_run_without_rates_has_no_cost(ledger: Ledger) -> None:
    """Without rates a run records its resources and no cost (not a cost of 0)."""
    with ledger.run("work") as run:
        pass
    res = ledger.get(run.id).resources
    assert "wall_s" in res
    assert "cost" not in res
    assert "currency" not in res


def test_rates_change_reaches_the_next_run(ledger: Ledger) -> None:
    """A rate set after a run prices the runs after it, never the one recorded before."""
    with ledger.run("before") as before:
        pass
    ledger.policy.set(rates={"instance_hour": 1.0})
    with ledger.run("after") as after:
        pass
    assert "cost" not in ledger.get(before.id).resources
    assert ledger.get(after.id).resources["cost"] >= 0
    assert "currency" not in ledger.get(after.id).resources  # no currency named: none made up


def test_gpu_rate_by_model() -> None:
    """GPU hours are wall hours x gpu_count at the model's rate, else the default."""
    rates = check_rates({"gpu_hour": {"default": 2.0, "H100": 4.0}, "instance_hour": 1.0})
    res = {"wall_s": 1800.0, "gpu_count": 2, "gpu_model": "NVIDIA H100 80GB HBM3"}
    assert run_cost(res, rates) == pytest.approx(0.5 * 1.0 + 0.5 * 2 * 4.0)
    res["gpu_model"] = "Tesla T4"
    assert run_cost(res, rates) == pytest.approx(0.5 + 0.5 * 2 * 2.0)
    assert run_cost({"wall_s": 3600}, {"gpu_hour": 3.0}) == 0.0  # no GPU: nothing to charge
    assert run_cost({}, rates) is None  # no wall time: not priced
    assert priced({"wall_s": 3600.0}, {"currency": "USD", "instance_hour": 2}) == {
        "cost": 2.0,
        "currency": "USD",
    }
    assert priced({"wall_s": 3600.0}, {"currency": "USD"}) == {}


@pytest.mark.parametrize(
    ("rates", "named"),
    [
        ({"instance_hour": -1}, "instance_hour"),
        ({"cpu_hour": "cheap"}, "cpu_hour"),
        ({"gpu_hour": {"H100": -4}}, "gpu_hour['H100']"),
        ({"instance_hour": float("nan")}, "instance_hour"),
        ({"storage_gb_month": True}, "storage_gb_month"),
        ({"hourly": 1}, "hourly"),
    ],
)
def test_bad_rates_are_refused_and_nothing_written(
    ledger: Ledger, rates: dict[str, object], named: str
) -> None:
    """A negative or non-numeric price (or an unknown key) is a UsageError naming the key,
    and no policy entry is written."""
    with pytest.raises(UsageError, match=named.replace("[", r"\[").replace("]", r"\]")):
        ledger.policy.set(rates=rates)
    assert ledger.policy.history() == []


def test_cli_bad_rate_is_one_line_exit_2(tmp_path: Path) -> None:
    """mlledger policy set rates=... with a negative price exits 2 with one error line."""
    url = str(tmp_path / "store")
    Ledger(url)
    result = invoke("policy", "set", 'rates={"instance_hour": -2}', url=url)
    assert result.exit_code == 2
    assert "instance_hour" in one_error_line(result.stderr)


@pytest.mark.slow
def test_gpus_from_nvml_priced_by_model(tmp_path: Path) -> None:
    """Where NVML answers, a run records gpu_count and gpu_model (of the visible devices)
    and its cost charges the model's GPU rate; torch is never imported by mlledger."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "pynvml.py").write_text(FAKE_NVML)
    script = textwrap.dedent(
        f"""
        import json, sys
        import mlledger
        ledger = mlledger.Ledger({str(tmp_path / "store")!r})
        ledger.policy.set(rates={{"gpu_hour": {{"default": 1.0, "H100": 3600.0}}}})
        with ledger.run("gpu") as run:
            pass
        print(json.dumps({{"res": ledger.get(run.id).resources,
                          "torch": "torch" in sys.modules}}))
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")]),
        "CUDA_VISIBLE_DEVICES": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=120, check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    res = got["res"]
    assert res["gpu_count"] == 1  # CUDA_VISIBLE_DEVICES=1: one of the two
    assert res["gpu_model"] == "NVIDIA H100 80GB HBM3"
    assert res["cost"] == pytest.approx(res["wall_s"] * 1 * 3600.0 / 3600, abs=2e-6)
    assert got["torch"] is False


def test_check_rules_judge_the_recorded_cost(ledger: Ledger) -> None:
    """A check rule on cost (or resources.wall_s) judges the figure the run recorded."""
    ledger.policy.set(rates={"currency": "USD", "instance_hour": 3600.0})
    with ledger.run("work") as run:
        sum(range(100_000))
    cost = ledger.get(run.id).resources["cost"]
    assert ledger.check(run.id, rules=[f"cost max={cost * 2}"], record=False).ok
    failed = ledger.check(run.id, rules=[f"cost max={cost / 2}"], record=False)
    assert not failed.ok
    assert failed.results[0].value == pytest.approx(cost)
    assert ledger.check(run.id, rules=["resources.wall_s max=3600"], record=False).ok
