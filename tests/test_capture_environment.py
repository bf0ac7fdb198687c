"""The machine and software a run ran on: computed once per process, stored once per value."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.runs import reopen

from mlledger import Ledger
from mlledger.capture import environment as env_mod
from mlledger.capture.environment import (
    DEFAULT_ENV_VARS,
    environment,
    installed_packages,
    process_facts,
)
from mlledger.capture.redact import REDACTED


@pytest.fixture(autouse=True)
def fresh_environment_cache() -> Iterator[None]:
    """Each test starts and ends with no cached environment."""
    env_mod.clear_cache()
    yield
    env_mod.clear_cache()


def test_environment_has_every_section() -> None:
    """The record has python, platform, host, packages and env_vars."""
    env = environment()
    vi = sys.version_info
    assert env["python"]["version"] == f"{vi.major}.{vi.minor}.{vi.micro}"
    assert env["python"]["executable"] == sys.executable
    assert env["platform"]["system"]
    assert env["platform"]["machine"]
    host = env["host"]
    assert host["hostname"]
    assert host["user"]
    assert host["cpu_count"] == os.cpu_count()
    assert host["memory"] is None or host["memory"] > 0
    assert host["gpus"] == []  # torch is not imported
    assert "pytest" in env["packages"]
    assert "attrs" in env["packages"]
    assert isinstance(env["env_vars"], dict)


def test_default_allow_list_names_the_reproducibility_variables() -> None:
    """The allow-list has at least the variables DESIGN.md names."""
    for name in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG"):
        assert name in DEFAULT_ENV_VARS


def test_env_vars_come_from_the_allow_list_with_secrets_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only allow-listed variables are recorded, and secret-looking ones are redacted."""
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setenv("MY_API_TOKEN", "tok-123")
    monkeypatch.setenv("MY_SETTING", "on")
    monkeypatch.setenv("NOT_LISTED", "x")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    env = environment((*DEFAULT_ENV_VARS, "MY_API_TOKEN", "MY_SETTING"))
    assert env["env_vars"]["OMP_NUM_THREADS"] == "4"
    assert env["env_vars"]["MY_API_TOKEN"] == REDACTED
    assert env["env_vars"]["MY_SETTING"] == "on"
    assert "NOT_LISTED" not in env["env_vars"]
    assert "MKL_NUM_THREADS" not in env["env_vars"]


def test_ledger_env_vars_reach_the_run(
    tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Ledger(env_vars=[...])`` adds variables to the run's stored env, secrets redacted."""
    monkeypatch.setenv("MY_API_TOKEN", "tok-123")
    monkeypatch.setenv("MY_SETTING", "on")
    ledger = Ledger(str(tmp_path / "store"), env_vars=["MY_API_TOKEN", "MY_SETTING"])
    with ledger.run("r") as run:
        pass
    got = reopen(ledger).get(run.id)
    assert got.env["env_vars"]["MY_API_TOKEN"] == REDACTED
    assert got.env["env_vars"]["MY_SETTING"] == "on"
    raw = ledger.store.get(got._record["env"])
    assert b"tok-123" not in raw


def test_environment_is_computed_once_per_process(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing packages (the expensive part) happens once however many runs and ledgers."""
    calls = []
    real = env_mod.installed_packages

    def counting(paths: list[str] | None = None) -> dict[str, str]:
        calls.append(1)
        return real(paths)

    monkeypatch.setattr(env_mod, "installed_packages", counting)
    env_mod.clear_cache()
    for _ in range(3):
        with ledger.run("r"):
            pass
    with reopen(ledger).run("r2"):
        pass
    other = Ledger(ledger.url, env_vars=["SOME_OTHER_VAR"])  # another allow-list
    with other.run("r3"):
        pass
    assert environment() is environment()
    assert len(calls) == 1


def test_environment_is_stored_once_per_distinct_value(ledger: Ledger) -> None:
    """Runs in one process share one environment object (one digest) in the store."""
    ids = []
    for _ in range(3):
        with ledger.run("r") as run:
            pass
        ids.append(run.id)
    with reopen(ledger).run("r") as run:
        pass
    ids.append(run.id)
    fresh = reopen(ledger)
    digests = {fresh.get(i)._record["env"] for i in ids}
    assert len(digests) == 1
    [digest] = digests
    assert ledger.store.has(digest)
    assert fresh.get(ids[0]).env["packages"] == environment()["packages"]


def test_env_vars_changed_between_runs_are_recorded_per_run(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep that sets CUDA_VISIBLE_DEVICES per run in one process records each run's own
    value; runs with equal values share one environment object; packages are not re-listed."""
    for var in DEFAULT_ENV_VARS:  # whatever this machine exports (PYTHONHASHSEED under tox…)
        monkeypatch.delenv(var, raising=False)
    calls = []
    real = env_mod.installed_packages
    monkeypatch.setattr(env_mod, "installed_packages", lambda p=None: (calls.append(1), real(p))[1])
    env_mod.clear_cache()
    seen = {}
    for device in ("0", "1", "0"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", device)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        if device == "1":
            monkeypatch.setenv("OMP_NUM_THREADS", "4")
        with ledger.run("sweep") as run:
            pass
        seen.setdefault(device, []).append(reopen(ledger).get(run.id))
    first, again = seen["0"]
    (one,) = seen["1"]
    assert first.env["env_vars"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert "OMP_NUM_THREADS" not in first.env["env_vars"]
    assert one.env["env_vars"] == {"CUDA_VISIBLE_DEVICES": "1", "OMP_NUM_THREADS": "4"}
    assert first._record["env"] == again._record["env"] != one._record["env"]
    assert len(calls) == 1


def test_env_var_values_lose_url_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """An allow-listed variable holding a URL (DATABASE_URL) is recorded without its user,
    password or secret query parameters."""
    monkeypatch.setenv("DATABASE_URL", "postgres://app:hunter2@db:5432/ml?password=x&ssl=1")
    env_mod.clear_cache()
    got = environment(("DATABASE_URL",))["env_vars"]["DATABASE_URL"]
    assert got == "postgres://db:5432/ml?password=<redacted>&ssl=1"


def test_process_facts_show_argv_cwd_and_pid(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process facts are argv (secrets redacted), the working directory and the pid."""
    monkeypatch.setattr(sys, "argv", ["train.py", "--password=hunter2", "--token", "abc",
                                      "--lr", "0.1", "https://u:pw@host/x"])
    facts = process_facts()
    assert facts["argv"] == ["train.py", f"--password={REDACTED}", "--token", REDACTED,
                             "--lr", "0.1", "https://host/x"]
    assert facts["cwd"] == str(workdir)
    assert facts["pid"] == os.getpid()


def test_process_facts_follow_argv_changed_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """argv's redacted copy is cached, but a change to sys.argv, even in place, shows."""
    argv = ["train.py", "--lr", "0.1"]
    monkeypatch.setattr(sys, "argv", argv)
    assert process_facts("/x")["argv"] == ["train.py", "--lr", "0.1"]
    argv[1:] = ["--api-key", "s3cret"]
    facts = process_facts("/x")
    assert facts["argv"] == ["train.py", "--api-key", REDACTED]
    facts["argv"].append("mutated")  # a caller's change to one record never leaks into the next
    assert process_facts("/x")["argv"] == ["train.py", "--api-key", REDACTED]
    assert facts["cwd"] == "/x"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_process_facts_in_a_forked_child_name_the_child() -> None:
    """The pid is cached, and refreshed in a forked child."""
    process_facts()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(w, str(process_facts()["pid"] == os.getpid()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read()
    os.waitpid(pid, 0)
    assert got == "True"


def test_run_records_redacted_argv(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's stored argv never holds the secrets given on the command line."""
    monkeypatch.setattr(sys, "argv", ["train.py", "--password=hunter2", "--token", "abc123"])
    with ledger.run("r") as run:
        pass
    got = reopen(ledger).get(run.id)
    assert got.env["process"]["argv"] == ["train.py", f"--password={REDACTED}", "--token",
                                          REDACTED]
    raw = b"".join(ledger.store.read_entry(k) for k in ledger.store.backend.list("runs"))
    assert b"hunter2" not in raw
    assert b"abc123" not in raw


def test_installed_packages_reads_dist_info_names(tmp_path: Path) -> None:
    """Distributions come from dist-info/egg-info folder names; the first on the path wins."""
    first = tmp_path / "first"
    second = tmp_path / "second"
    for d, names in (
        (first, ["Foo_Bar-1.2.3.dist-info", "baz-0.1-py3.9.egg-info", "notes.txt"]),
        (second, ["foo.bar-9.9.dist-info", "qux-2.0.dist-info", "broken.dist-info"]),
    ):
        d.mkdir()
        for n in names:
            (d / n).mkdir()
    got = installed_packages([str(first), str(second), str(tmp_path / "missing")])
    assert got == {"foo-bar": "1.2.3", "baz": "0.1", "qux": "2.0"}
    assert list(got) == sorted(got)


def test_installed_packages_matches_importlib_metadata() -> None:
    """What is listed agrees with importlib.metadata for the packages of this environment."""
    from importlib.metadata import version

    got = installed_packages()
    for name in ("attrs", "cattrs", "fsspec", "pytest", "hypothesis"):
        assert got[name] == version(name)
