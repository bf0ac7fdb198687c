"""The policy: an append-only, sealed history in the store; what runs it refuses."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.cli import console, invoke
from helpers.runs import python_env

from mlledger import Ledger
from mlledger.errors import PolicyError, UsageError
from mlledger.policy import KEYS


def test_unset_policy_is_empty_and_has_no_history(ledger: Ledger) -> None:
    """A fresh store has no policy: get() is {}, history() is [], and runs need nothing."""
    assert ledger.policy.get() == {}
    assert ledger.policy.history() == []
    with ledger.run("free") as run:
        pass
    assert run.status == "finished"


def test_set_merges_and_each_change_is_an_entry(ledger: Ledger) -> None:
    """set() merges into the policy in force; each change is a numbered entry naming who,
    why and which keys; a key set to None is removed."""
    first = ledger.policy.set(require_message=True, message="audit asks")
    second = ledger.policy.set(require_tags=["team"], protect="model/*", message="ownership")
    assert (first.seq, second.seq) == (1, 2)
    assert ledger.policy.get() == {
        "require_message": True,
        "require_tags": ["team"],
        "protect": ["model/*"],
    }
    third = ledger.policy.set(require_message=None)
    assert "require_message" not in ledger.policy.get()
    history = ledger.policy.history()
    assert [e.seq for e in history] == [1, 2, 3]
    assert [e.changed for e in history] == [
        ("require_message",),
        ("require_tags", "protect"),
        ("require_message",),
    ]
    assert history[0].message == "audit asks"
    assert history[0].user
    assert history[0].host
    assert third.policy == {"require_tags": ["team"], "protect": ["model/*"]}
    keys = sorted(p.name for p in (Path(ledger.store.url) / "policy").iterdir())
    assert keys == ["0000000001.json", "0000000002.json", "0000000003.json"]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"colour": True}, "unknown policy key 'colour'"),
        ({"require_message": "perhaps"}, "true or false"),
        ({"require_tags": [1, 2]}, "list of names"),
        ({"rates": {"instance_hour": -1}}, "a price"),
        ({"rates": {"gpu_hour": {"H100": "lots"}}}, "a price"),
        ({"checks": [{"field": "metrics.acc", "max_drop": "a lot", "baseline": "@m"}]}, "number"),
        ({"checks": [{"field": "metrics.acc", "max_drop": 0.1}]}, "baseline"),
        ({"checks": [{"field": "metrics.acc", "min": 0.1, "colour": 1}]}, "unknown key"),
        ({"checks": [{"field": "metrics.acc", "min": 0.1, "runs": "name ="}]}, "does not parse"),
        ({"alerts": [{"type": "webhook", "url": "https://hooks.example.com/x"}]}, "$ENV_VAR"),
        ({"alerts": [{"type": "pager"}]}, "type 'pager'"),
        (
            {"alerts": [{"type": "email", "to": "a@b.c", "smtp": "h:25", "password": "pw"}]},
            "secret",
        ),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(
    ledger: Ledger, changes: dict[str, object], needle: str
) -> None:
    """A bad key or value is a UsageError naming it, and the history does not grow."""
    ledger.policy.set(require_message=True)
    with pytest.raises(UsageError) as err:
        ledger.policy.set(**changes)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)
    assert len(ledger.policy.history()) == 1


def test_rules_and_sinks_are_stored_normalized(ledger: Ledger) -> None:
    """A rule in its one-line form and a sink are stored as checked dicts."""
    ledger.policy.set(
        checks=["metrics.acc max_drop=0.01 vs @model/prod"],
        alerts={"type": "webhook", "url": "$HOOK", "on": "failed"},
        rates={"currency": "EUR", "instance_hour": "1.5"},
    )
    got = ledger.policy.get()
    assert got["checks"] == [{"field": "metrics.acc", "max_drop": 0.01, "baseline": "@model/prod"}]
    assert got["alerts"] == [
        {"type": "webhook", "url": "$HOOK", "on": ["failed"], "format": "json"}
    ]
    assert got["rates"] == {"currency": "EUR", "instance_hour": 1.5}


def test_policy_entries_are_on_the_audit_trail(ledger: Ledger) -> None:
    """Policy entries are sealed and chained: verify passes, and an edited entry is named."""
    ledger.policy.set(require_message=True, message="one")
    ledger.policy.set(require_tags=["team"], message="two")
    assert ledger.verify().trail == ()
    path = Path(ledger.store.url) / "policy" / "0000000001.json"
    doc = json.loads(path.read_text())
    doc["policy"]["require_message"] = False
    path.write_text(json.dumps(doc))
    trail = ledger.verify().trail
    assert any("policy#1" in p and "edited" in p for p in trail), trail


def test_damaged_newest_entry_warns_and_the_one_before_holds(ledger: Ledger) -> None:
    """A damaged newest entry is warned about; the newest readable entry is in force."""
    ledger.policy.set(require_message=True)
    ledger.policy.set(require_tags=["team"])
    (Path(ledger.store.url) / "policy" / "0000000002.json").write_bytes(b"{not json")
    with pytest.warns(UserWarning, match="policy entry #2"):
        assert ledger.policy.get() == {"require_message": True}


def test_concurrent_changes_from_processes_are_all_kept(tmp_path: Path) -> None:
    """Four processes each set another key at once: four entries, no gap, every key kept."""
    url = str(tmp_path / "store")
    Ledger(url)
    code = textwrap.dedent(
        """
        import json, sys
        from mlledger import Ledger
        key, raw = sys.argv[1], sys.argv[2]
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        Ledger(sys.argv[3]).policy.set(**{key: value}, message=key)
        """
    )
    changes = [
        ("require_message", "true"),
        ("require_tags", "team"),
        ("protect", "model/*"),
        ("rates", '{"instance_hour": 1}'),
    ]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, k, v, url], env=python_env())
        for k, v in changes
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    ledger = Ledger(url)
    assert [e.seq for e in ledger.policy.history()] == [1, 2, 3, 4]
    assert set(ledger.policy.get()) == {k for k, _ in changes}
    assert ledger.verify().trail == ()


# -- what runs the policy refuses ---------------------------------------------------------


def test_require_message_refuses_runs_without_one(ledger: Ledger) -> None:
    """With require_message set, a block or tracked run without a message is refused (and not
    recorded); with one it runs."""
    ledger.policy.set(require_message=True)
    with pytest.raises(PolicyError, match="requires a message"), ledger.run("r"):
        pytest.fail("the block must not run")

    @ledger.tracked
    def step() -> int:
        return 1

    with pytest.raises(PolicyError):
        step()
    with ledger.run("r", message="why") as run:
        pass
    assert run.status == "finished"
    assert [r.id for r in ledger.runs()] == [run.id]


def test_nested_and_tracked_runs_inherit_message_and_tags(ledger: Ledger) -> None:
    """A run inside a run carries on its parent's message and tags (its own tags win), so a
    required message is given once, at the top."""
    ledger.policy.set(require_message=True, require_tags=["team"])

    @ledger.tracked
    def step(x: int) -> int:
        return x + 1

    with ledger.run("pipeline", message="nightly", tags={"team": "cv", "stage": "all"}) as top:
        with ledger.run("inner", tags={"stage": "prep"}) as inner:
            pass
        assert step(1) == 2
    child = next(r for r in ledger.runs() if r.name.endswith("step"))
    assert inner.message == "nightly"
    assert child.message == "nightly"
    assert inner.tags == {"team": "cv", "stage": "prep"}
    assert child.tags == {"team": "cv", "stage": "all"}
    assert child.parent_id == top.id


def test_require_tags_names_the_missing_tag(ledger: Ledger) -> None:
    """A run without a required tag is refused with a message naming the tag and the fix."""
    ledger.policy.set(require_tags=["team", "owner"])
    with pytest.raises(PolicyError, match="missing: owner") as err:
        with ledger.run("r", tags={"team": "cv"}):
            pass
    assert "--tag owner=VALUE" in str(err.value)


def test_another_process_change_reaches_a_running_process(tmp_path: Path) -> None:
    """A policy set by another Ledger is seen by a fresh read (current() with max_age=0)."""
    url = str(tmp_path / "store")
    mine, theirs = Ledger(url), Ledger(url)
    assert mine.policy.current() == {}
    theirs.policy.set(require_message=True)
    assert mine.policy.current(max_age=0) == {"require_message": True}


# -- the command line ----------------------------------------------------------------------


def test_cli_policy_set_show_log(tmp_path: Path) -> None:
    """policy set takes KEY=VALUE (JSON or text), show prints the policy, log the history."""
    url = str(tmp_path / "store")
    assert invoke("init", "--require-message", url=url).exit_code == 0
    got = invoke(
        "policy",
        "set",
        "require_tags=team,owner",
        'rates={"instance_hour": 2}',
        "-m",
        "costs",
        url=url,
    )
    assert got.exit_code == 0, got.stderr
    assert "policy #2" in got.stdout
    shown = json.loads(invoke("policy", "show", "--json", url=url).stdout)
    assert shown == {
        "require_message": True,
        "require_tags": ["team", "owner"],
        "rates": {"instance_hour": 2.0},
    }
    log = json.loads(invoke("policy", "log", "--json", url=url).stdout)
    assert [e["seq"] for e in log] == [2, 1]
    assert log[0]["message"] == "costs"
    assert log[1]["changed"] == ["require_message"]
    text = invoke("policy", "log", url=url).stdout
    assert "costs" in text
    assert "require_message" in text


def test_cli_policy_bad_input_exits_two(tmp_path: Path) -> None:
    """An unknown key, a bad value or a word without '=' is one line on stderr, exit 2."""
    url = str(tmp_path / "store")
    invoke("init", url=url)
    for args in (["colour=red"], ["require_message=perhaps"], ["require_message"]):
        got = invoke("policy", "set", *args, url=url)
        assert got.exit_code == 2, (args, got.stdout)
        assert got.stderr.count("\n") == 1, got.stderr
    assert invoke("policy", "log", "--json", url=url).stdout.strip() == "[]"


def test_cli_run_message_reaches_the_scripts_own_runs(tmp_path: Path) -> None:
    """`mlledger run -m WHY script.py` satisfies require_message for the script's own tracked
    runs too; without -m the run is refused with exit 2 and nothing is recorded."""
    url = str(tmp_path / "store")
    assert console("init", "--require-message", url=url).returncode == 0
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import mlledger

            @mlledger.tracked
            def fit(lr):
                return lr * 2

            print("fit", fit(0.5))
            """
        )
    )
    refused = console("run", str(script), url=url, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "message" in refused.stderr
    assert json.loads(console("log", "--json", url=url).stdout) == []
    done = console("run", "-m", "try a smaller lr", str(script), url=url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "fit 1.0" in done.stdout
    runs = json.loads(console("log", "--json", url=url).stdout)
    assert len(runs) == 2
    assert {r["message"] for r in runs} == {"try a smaller lr"}


def test_every_key_is_documented_in_the_cli_help() -> None:
    """`mlledger policy --help` names every policy key."""
    text = invoke("policy", "--help").stdout
    for key in KEYS:
        assert key in text


def test_cli_run_exec_programs_runs_nest_under_it_with_its_message(tmp_path: Path) -> None:
    """A program run by `mlledger run -m WHY --tag K=V --exec -- python prog.py` (another
    process) records its own tracked runs under the command's run, with its message and
    tags, so require_message holds for them; a program run outside `mlledger run` is not
    affected by a stale variable naming another store."""
    url = str(tmp_path / "store")
    assert console("init", "--require-message", url=url).returncode == 0
    prog = tmp_path / "prog.py"
    prog.write_text(
        textwrap.dedent(
            """
            import mlledger

            @mlledger.tracked
            def fit(lr):
                return lr * 2

            print("fit", fit(0.5))
            """
        )
    )
    done = console(
        "run", "-m", "try a smaller lr", "--tag", "team=vision", "--exec", "--",
        sys.executable, str(prog), url=url, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "fit 1.0" in done.stdout
    runs = json.loads(console("log", "--json", url=url).stdout)
    assert len(runs) == 2
    outer = next(r for r in runs if r["name"] != "fit")
    inner = next(r for r in runs if r["name"] == "fit")
    assert inner["parent_id"] == outer["id"]
    assert inner["message"] == outer["message"] == "try a smaller lr"
    assert inner["tags"] == {"team": "vision"}
    # a variable left from another store's command is ignored: here the policy refuses
    other = json.dumps({"id": outer["id"], "url": "/elsewhere", "message": "m", "tags": {}})
    alone = subprocess.run(
        [sys.executable, str(prog)], check=False, cwd=tmp_path, capture_output=True, text=True,
        env={**python_env(), "MLLEDGER_URL": url, "MLLEDGER_PARENT": other}, timeout=60,
    )
    assert alone.returncode != 0
    assert "message" in alone.stderr
