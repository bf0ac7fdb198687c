"""Alerts and their sinks: what an alert says, and each sink delivering it for real
(an HTTP server, an SMTP server, a shell command), once, with failures retried."""

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
from helpers.alerts import smtp_server, webhook_server
from helpers.cli import invoke, one_error_line
from helpers.runs import python_env
from helpers.servers import LOCALHOST, free_port

from mlledger import Ledger
from mlledger.alerts.alert import Alert
from mlledger.errors import UsageError


def fail(ledger: Ledger, name: str = "train", error: str = "boom") -> str:
    """A failed run of ``name``; its id."""
    with pytest.raises(ValueError), ledger.run(name) as run:
        raise ValueError(error)
    return run.id


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """A ledger on a fresh local store."""
    return Ledger(str(tmp_path / "store"))


def test_failed_alert_json_carries_kind_run_rule_message_and_where(ledger: Ledger) -> None:
    """A failed run gives one ``failed`` alert whose JSON names the run, its user, host and
    the store, with a one-line message and a key stable across watchers."""
    rid = fail(ledger, error="line one\nline two")
    (alert,) = ledger.watch()
    doc = alert.to_json()
    assert doc["kind"] == "failed"
    assert doc["run_id"] == rid
    assert doc["rule"] is None
    assert doc["key"] == f"failed:{rid}"
    assert doc["run_name"] == "train"
    assert doc["store"] == ledger.url
    assert doc["user"]
    assert doc["host"]
    assert "\n" not in doc["message"]
    assert "ValueError: line one line two" in doc["message"]
    assert Alert.from_json(json.loads(json.dumps(doc))) == alert


def test_a_pass_reports_only_what_is_new(ledger: Ledger) -> None:
    """The second pass reports nothing; a run that was running at one pass and failed
    before the next is reported by the next."""
    fail(ledger)
    assert len(ledger.watch()) == 1
    assert ledger.watch() == []
    ledger.start_delay = 0
    seen: list[object] = []

    def long_run() -> None:
        with ledger.run("long") as run:
            seen.append(run)
            time.sleep(0.2)
            seen.append(ledger.watch())  # running: nothing to say yet
            raise RuntimeError("late")

    with pytest.raises(RuntimeError):
        long_run()
    run, during = seen
    assert during == []
    (alert,) = ledger.watch()
    assert alert.run_id == run.id  # type: ignore[attr-defined]
    assert alert.kind == "failed"


def test_first_pass_looks_back_as_far_as_since(ledger: Ledger) -> None:
    """A watcher's first pass reports failures started within ``since`` only."""
    fail(ledger, "old")
    time.sleep(1.2)
    fail(ledger, "new")
    got = ledger.watch(since="1s", name="fresh")
    assert [a.run_name for a in got] == ["new"]


def test_webhook_json_and_slack_payloads(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A json webhook receives the alert's JSON; a slack one ``{"text": ...}``."""
    with webhook_server() as inbox:
        monkeypatch.setenv("HOOK_JSON", inbox.url + "/json")
        monkeypatch.setenv("HOOK_SLACK", inbox.url + "/slack")
        ledger.policy.set(
            alerts=[
                {"type": "webhook", "url": "$HOOK_JSON"},
                {"type": "webhook", "url": "${HOOK_SLACK}", "format": "slack"},
            ]
        )
        rid = fail(ledger)
        ledger.watch()
        (body,) = inbox.bodies("/json")
        assert body["kind"] == "failed"
        assert body["run_id"] == rid
        assert body["key"] == f"failed:{rid}"
        assert body["store"] == ledger.url
        (slack,) = inbox.bodies("/slack")
        assert set(slack) == {"text"}
        assert rid[:12] in slack["text"]
        assert slack["text"].startswith("[mlledger failed] ")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_sink_sends_through_smtp_with_login(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An email sink logs in with the user and password read from the environment and
    sends the alert to every address."""
    with smtp_server(auth=("bot", "s3cret")) as box:
        monkeypatch.setenv("SMTP_USER", "bot")
        monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
        ledger.policy.set(
            alerts=[
                {
                    "type": "email",
                    "to": ["ml@example.com", "ops@example.com"],
                    "smtp": f"{LOCALHOST}:{box.port}",
                    "user": "$SMTP_USER",
                    "password": "$SMTP_PASSWORD",
                    "tls": "none",
                    "from": "watch@example.com",
                }
            ]
        )
        rid = fail(ledger)
        ledger.watch()
        (mail_from, rcpt, msg) = box.messages[0]
        assert len(box.messages) == 1
        assert mail_from == "watch@example.com"
        assert rcpt == ["ml@example.com", "ops@example.com"]
        assert msg["Subject"].startswith("[mlledger failed] run train")
        assert rid in msg.get_content()


def test_command_sink_gets_the_alert_json_on_stdin(ledger: Ledger, tmp_path: Path) -> None:
    """A command sink runs its shell string with the alert's JSON on stdin."""
    out = tmp_path / "alerts.jsonl"
    ledger.policy.set(alerts=[{"type": "command", "command": f"cat >> '{out}'"}])
    rid = fail(ledger)
    ledger.watch()
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["run_id"] == rid


def test_sink_on_takes_only_its_kinds(ledger: Ledger, tmp_path: Path) -> None:
    """A sink whose ``on`` leaves out ``failed`` gets no failed alert."""
    out = tmp_path / "stale-only"
    ledger.policy.set(alerts=[{"type": "command", "command": f"cat >> '{out}'", "on": "stale"}])
    fail(ledger)
    w = ledger.watcher()
    assert len(w.run_pass()) == 1
    assert not out.exists()
    assert [o.state for o in w.deliveries[0].outcomes] == ["skipped"]


def test_failing_sinks_are_retried_next_pass_and_never_stop_the_others(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A webhook answering 500, one on a refused port and a command exiting 1 fail
    while the good sink delivers; the next pass retries only the failed ones."""
    flag = tmp_path / "broken"
    flag.touch()
    out = tmp_path / "cmd.jsonl"
    with webhook_server() as inbox:
        inbox.status["/down"] = 500
        monkeypatch.setenv("GOOD", inbox.url + "/good")
        monkeypatch.setenv("DOWN", inbox.url + "/down")
        monkeypatch.setenv("REFUSED", f"http://{LOCALHOST}:{free_port()}/x")
        ledger.policy.set(
            alerts=[
                {"type": "webhook", "url": "$DOWN", "name": "down"},
                {"type": "webhook", "url": "$REFUSED", "name": "refused", "timeout": 2},
                {"type": "command", "name": "cmd",
                 "command": f"test ! -e '{flag}' && cat >> '{out}'"},
                {"type": "webhook", "url": "$GOOD", "name": "good"},
            ]
        )  # fmt: skip
        fail(ledger)
        w = ledger.watcher()
        w.run_pass()
        states = {o.sink: (o.state, o.error) for o in w.deliveries[0].outcomes}
        assert states["good"] == ("sent", None)
        assert states["down"][0] == "failed"
        assert "HTTP 500" in str(states["down"][1])
        assert states["refused"][0] == "failed"
        assert "refused" in str(states["refused"][1]).lower()
        assert states["cmd"][0] == "failed"
        assert "exit status 1" in str(states["cmd"][1])
        assert len(inbox.bodies("/good")) == 1
        assert len(inbox.bodies("/down")) == 1

        inbox.status["/down"] = 200
        flag.unlink()
        assert w.run_pass() == []  # nothing new, but the pending alert is retried
        states2 = {o.sink: (o.state, o.attempt) for o in w.deliveries[0].outcomes}
        assert states2 == {
            "down": ("sent", 2), "refused": ("failed", 2), "cmd": ("sent", 2),
            "good": ("delivered", 0),
        }  # fmt: skip
        assert len(inbox.bodies("/good")) == 1
        assert len(inbox.bodies("/down")) == 2
        assert len(out.read_text().splitlines()) == 1
        assert ledger.verify().ok  # the alerts/ keys are no damage


def test_command_timeout_is_a_failure(ledger: Ledger) -> None:
    """A command that outlives its timeout is stopped and counts as a failed attempt."""
    ledger.policy.set(alerts=[{"type": "command", "command": "sleep 30", "timeout": 0.5}])
    fail(ledger)
    w = ledger.watcher()
    t0 = time.monotonic()
    w.run_pass()
    assert time.monotonic() - t0 < 10
    (o,) = w.deliveries[0].outcomes
    assert o.state == "failed"
    assert "timed out" in str(o.error)


def test_unset_env_var_exits_2_and_claims_nothing(tmp_path: Path) -> None:
    """A sink naming an unset variable makes `watch` exit 2 with one line naming the
    variable and the sink, before anything is claimed or sent."""
    url = str(tmp_path / "store")
    led = Ledger(url)
    led.policy.set(alerts=[{"type": "webhook", "url": "$NO_SUCH_HOOK_VAR", "name": "team"}])
    fail(led)
    result = invoke("watch", "--once", url=url)
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "$NO_SUCH_HOOK_VAR" in line
    assert "'team'" in line
    assert not (tmp_path / "store" / "alerts").exists()
    with pytest.raises(UsageError):
        led.watch()


def test_watch_cli_once_prints_alerts_and_json(tmp_path: Path) -> None:
    """`mlledger watch --once` prints one line per alert; --json the alert with what each
    sink made of it; a second pass prints nothing new."""
    url = str(tmp_path / "store")
    led = Ledger(url)
    out = tmp_path / "out"
    led.policy.set(alerts=[{"type": "command", "command": f"cat > '{out}'", "name": "file"}])
    rid = fail(led)
    result = invoke("watch", "--json", "--name", "cli", url=url)
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(result.stdout)
    assert doc["run_id"] == rid
    assert doc["deliveries"] == [{"sink": "file", "state": "sent", "attempt": 1}]
    again = invoke("watch", "--once", "--name", "cli", url=url)
    assert again.exit_code == 0
    assert again.stdout == ""
    assert invoke("watch", "--once", "--every", "5", url=url).exit_code == 2


SLOW_COMMAND_WATCH = textwrap.dedent(
    """
    import sys
    from mlledger import Ledger
    from mlledger.alerts import delivery
    delivery.LEASE_MARGIN = 0.5  # the claim this process leaves goes stale quickly
    Ledger(sys.argv[1]).watch()
    """
)


@pytest.mark.slow
def test_a_watcher_killed_while_sending_leaves_a_claim_retried_after_its_lease(
    tmp_path: Path,
) -> None:
    """A watcher SIGKILLed in the middle of a send leaves a claim with no outcome: no one
    sends while its lease runs; after it, the next watcher claims attempt 2 and delivers
    (at least once across crashes)."""
    url = str(tmp_path / "store")
    led = Ledger(url)
    started = tmp_path / "started"
    out = tmp_path / "out"
    led.policy.set(
        alerts=[{"type": "command", "name": "slow", "timeout": 1,
                 "command": f"if [ -e '{started}' ]; then cat > '{out}'; "
                            f"else touch '{started}'; sleep 30; fi"}]
    )  # fmt: skip
    fail(led)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_COMMAND_WATCH, url], env=python_env(), start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline
            assert proc.poll() is None
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    w = led.watcher(name="second")
    w.run_pass()
    assert [o.state for o in w.deliveries[0].outcomes] == ["claimed"]  # lease still runs
    time.sleep(1.6)
    assert w.run_pass() == []
    (o,) = w.deliveries[0].outcomes
    assert (o.state, o.attempt) == ("sent", 2)
    assert json.loads(out.read_text())["kind"] == "failed"


def test_alert_kind_is_checked() -> None:
    """An alert of an unknown kind is refused."""
    from mlledger.records import utcnow

    with pytest.raises(UsageError, match="kind"):
        Alert("oops", "X", None, "m", "k", utcnow(), {})


def test_two_sinks_with_one_name_are_refused(ledger: Ledger) -> None:
    """Two sinks sharing a name would share their deliveries: watch refuses them."""
    ledger.policy.set(
        alerts=[
            {"type": "command", "command": "true", "name": "ops"},
            {"type": "command", "command": "cat", "name": "ops"},
        ]
    )
    with pytest.raises(UsageError, match="'ops'"):
        ledger.watch()


def test_watch_cli_json_lists_a_retried_alert(tmp_path: Path) -> None:
    """A pass with nothing new still lists, with --json, the pending alert it tried again
    (``"retry": true``) and what its sink made of it this time."""
    url = str(tmp_path / "store")
    led = Ledger(url)
    flag = tmp_path / "broken"
    flag.touch()
    led.policy.set(alerts=[{"type": "command", "name": "cmd", "command": f"test ! -e '{flag}'"}])
    rid = fail(led)
    first = json.loads(invoke("watch", "--json", url=url).stdout)
    assert first[0]["deliveries"][0]["state"] == "failed"
    flag.unlink()
    (doc,) = json.loads(invoke("watch", "--json", url=url).stdout)
    assert doc["retry"] is True
    assert doc["run_id"] == rid
    assert doc["deliveries"] == [{"sink": "cmd", "state": "sent", "attempt": 2}]
    text = invoke("watch", url=url)
    assert text.stdout == ""
