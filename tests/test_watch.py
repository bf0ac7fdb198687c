"""`watch` across processes and machines: each alert delivered once by any number of racing
watchers (local disk and S3), stale runs of killed processes, the loop ending on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import BUCKET, s3_options
from helpers.alerts import Inbox, webhook_server
from helpers.cli import MLLEDGER
from helpers.runs import python_env

from mlledger import Ledger

WATCHERS = 4
FAILED = 5


def fail_runs(ledger: Ledger, n: int) -> list[str]:
    ids = []
    for i in range(n):
        with pytest.raises(ValueError), ledger.run(f"job{i}") as run:
            raise ValueError(f"broke {i}")
        ids.append(run.id)
    return ids


def race(url: str, options: list[str], tmp_path: Path, inbox: Inbox) -> list[int]:
    """``WATCHERS`` `mlledger watch --once` processes started together, each with its own
    cache folder (a machine of its own); their exit codes."""
    procs = []
    for i in range(WATCHERS):
        env = {**python_env(), "XDG_CACHE_HOME": str(tmp_path / f"machine{i}"), "HOOK": inbox.url}
        assert MLLEDGER is not None
        procs.append(
            subprocess.Popen(
                [MLLEDGER, "--store", url, *options, "watch", "--once"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    codes = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        codes.append(p.returncode)
    return codes


def assert_once_each(inbox: Inbox, ids: list[str]) -> None:
    keys = Counter(b["key"] for b in inbox.bodies("/hook"))
    assert keys == Counter(f"failed:{i}" for i in ids)


@pytest.mark.slow
def test_racing_watchers_on_a_local_store_deliver_each_alert_once(tmp_path: Path) -> None:
    """Several watch processes on one local store: every failed run is posted exactly once,
    and a second round of watchers posts nothing more."""
    url = str(tmp_path / "store")
    led = Ledger(url)
    led.policy.set(alerts=[{"type": "webhook", "url": "$HOOK"}])
    ids = fail_runs(led, FAILED)
    with webhook_server() as inbox:
        inbox.url += "/hook"
        race(url, [], tmp_path, inbox)
        assert_once_each(inbox, ids)
        race(url, [], tmp_path / "round2", inbox)
        assert_once_each(inbox, ids)


@pytest.mark.slow
def test_racing_watchers_on_s3_deliver_each_alert_once(tmp_path: Path, s3_endpoint: str) -> None:
    """Several watch processes, each its own machine, on one S3 bucket (moto): every failed
    run is posted exactly once."""
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    opts = s3_options(s3_endpoint)
    led = Ledger(url, **opts)
    led.policy.set(alerts=[{"type": "webhook", "url": "$HOOK"}])
    ids = fail_runs(led, FAILED)
    cli_opts = [
        "--option", "key=testing", "--option", "secret=testing",
        "--option", f"client_kwargs.endpoint_url={s3_endpoint}",
        "--option", "skip_instance_cache=true", "--option", "use_listings_cache=false",
    ]  # fmt: skip
    with webhook_server() as inbox:
        inbox.url += "/hook"
        race(url, cli_opts, tmp_path, inbox)
        assert_once_each(inbox, ids)


LIVE_RUN = textwrap.dedent(
    """
    import sys, time
    from mlledger import Ledger
    led = Ledger(sys.argv[1], start_delay=0)
    with led.run("stuck") as run:
        run.log(step=1, loss=1.0)
        print(run.id, flush=True)
        time.sleep(600)
    """
)


@pytest.mark.slow
def test_a_run_whose_process_was_killed_raises_a_stale_alert(tmp_path: Path) -> None:
    """A run whose process was SIGKILLed (no end, pid gone) is a ``stale`` alert, once;
    while the process lives, nothing is said."""
    url = str(tmp_path / "store")
    proc = subprocess.Popen(
        [sys.executable, "-c", LIVE_RUN, url],
        env=python_env(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        rid = proc.stdout.readline().strip()
        led = Ledger(url)
        time.sleep(0.3)
        assert led.watch() == []
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    (alert,) = led.watch()
    assert (alert.kind, alert.run_id, alert.key) == ("stale", rid, f"stale:{rid}")
    assert "went silent" in alert.message
    assert alert.details["reason"]
    assert led.watch() == []


OTHER_HOST_RUN = textwrap.dedent(
    """
    import sys, time
    from mlledger import Ledger
    led = Ledger(sys.argv[1], start_delay=0)
    led.writer.host = "gpu-7"  # a run on another machine: only its heartbeat tells
    with led.run("far") as run:
        print(run.id, flush=True)
        time.sleep(600)
    """
)


@pytest.mark.slow
def test_a_run_on_another_host_whose_heartbeat_went_stale_raises_a_stale_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running run of another host is fine while its heartbeat is fresh, and a
    ``stale`` alert once its last sign of life is older than the heartbeat timeout."""
    from mlledger.runs import run as run_module

    url = str(tmp_path / "store")
    proc = subprocess.Popen(
        [sys.executable, "-c", OTHER_HOST_RUN, url],
        env=python_env(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        rid = proc.stdout.readline().strip()
        led = Ledger(url)
        assert led.watch() == []
        monkeypatch.setattr(run_module, "HEARTBEAT_TIMEOUT", 0.5)
        time.sleep(1.0)
        (alert,) = led.watch()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert (alert.kind, alert.run_id) == ("stale", rid)
    assert alert.details["host"] == "gpu-7"
    assert "no sign of life" in alert.details["reason"]


@pytest.mark.slow
def test_watch_every_ends_cleanly_on_sigterm(tmp_path: Path) -> None:
    """`mlledger watch --every` prints each alert as a JSON line as it comes and exits 0
    on SIGTERM."""
    url = str(tmp_path / "store")
    led = Ledger(url)
    assert MLLEDGER is not None
    proc = subprocess.Popen(
        [MLLEDGER, "--store", url, "watch", "--every", "0.2", "--json"],
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        (rid,) = fail_runs(led, 1)
        assert proc.stdout is not None
        doc: dict[str, Any] = json.loads(proc.stdout.readline())
        assert doc["run_id"] == rid
        assert doc["kind"] == "failed"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_a_rebuilt_catalog_restarts_at_the_horizon_without_sending_twice(
    tmp_path: Path,
) -> None:
    """After `reindex`, the watcher starts over at its horizon: it finds the same failure
    again, but the store's claim keeps it from being sent twice."""
    url = str(tmp_path / "store")
    led = Ledger(url)
    out = tmp_path / "out"
    led.policy.set(alerts=[{"type": "command", "command": f"cat >> '{out}'", "name": "f"}])
    fail_runs(led, 1)
    assert len(led.watch()) == 1
    led.reindex()
    w = led.watcher()
    assert len(w.run_pass()) == 1
    assert [o.state for o in w.deliveries[0].outcomes] == ["delivered"]
    assert len(out.read_text().splitlines()) == 1
