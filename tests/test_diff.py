"""Diff: what changed between two runs, section by section, and nothing else."""

from __future__ import annotations

import copy
import importlib
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.ledgers import fast_ledger, run_pipeline
from helpers.runs import import_fresh

import mlledger
from mlledger import Ledger
from mlledger.capture import environment as envmod
from mlledger.diff import SECTIONS, Change, RunDiff


@pytest.fixture
def ledger(fast_store_ledger: Ledger) -> Ledger:
    """This module's ledger: a memory or local store (conftest's fast_store_ledger)."""
    return fast_store_ledger


@pytest.fixture
def fresh_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment cache is emptied before and after (so changes made here do not leak)."""
    envmod.clear_cache()
    yield
    monkeypatch.undo()
    envmod.clear_cache()


def reopen(ledger: Ledger) -> Ledger:
    """A new Ledger on the same store: it captures the environment afresh."""
    return Ledger(ledger.url, **ledger.store.storage_options)


def changes(d: RunDiff) -> set[tuple[str, str, Any, Any]]:
    return {tuple(c) for c in d}  # type: ignore[misc]


def train(data: list[int], lr: float = 0.1, **opts: Any) -> dict[str, float]:
    """A training step whose params and metrics the diffs below vary."""
    run = mlledger.current_run()
    assert run is not None
    run.log(step=0, loss=opts.get("loss", 0.5))
    return {"w": sum(data) * lr}


def test_two_runs_differing_only_in_time_give_an_empty_diff(ledger: Ledger) -> None:
    """The same call twice: times, resources and ids differ, the diff is empty."""
    step = ledger.tracked(train)
    step([1, 2, 3], lr=0.1)
    step([1, 2, 3], lr=0.1)
    b, a = ledger.runs()
    assert a.started_at != b.started_at
    assert a.resources != b.resources
    d = ledger.diff(a.id, b.id)
    assert isinstance(d, RunDiff)
    assert list(d) == []
    assert len(d) == 0
    assert not d
    assert d.to_text() == f"runs {a.id} and {b.id} differ in nothing but time\n"
    assert not ledger.diff(b, a)


def test_pipelines_run_twice_diff_empty_step_by_step(ledger: Ledger) -> None:
    """Each step of a pipeline run twice with the same inputs diffs empty against its twin."""
    first = run_pipeline(ledger)
    second = run_pipeline(ledger)
    for step in ("prep", "train", "evaluate"):
        assert not ledger.diff(first.ids[step], second.ids[step]), step


def test_params_added_removed_and_changed(ledger: Ledger) -> None:
    """A param that changed, one that appeared and one that went are each one Change."""
    step = ledger.tracked(train)
    step([1, 2], lr=0.1, batch=32, old=1)
    step([1, 2], lr=0.2, batch=32, new="x")
    b, a = ledger.runs()
    d = ledger.diff(a, b)
    assert d.section("params") == [
        Change("params", "lr", 0.1, 0.2),
        Change("params", "new", None, "x"),
        Change("params", "old", 1, None),
    ]
    kinds = {c.key: c.kind for c in d.section("params")}
    assert kinds == {"lr": "changed", "new": "added", "old": "removed"}
    assert d.section("params")[0].delta == pytest.approx(0.1)
    # the return value changed with lr, the input did not; a small JSON return value is
    # compared by what it holds
    assert d.section("inputs") == []
    assert [c.key for c in d.section("outputs")] == ["return.w"]


def test_metric_deltas(ledger: Ledger) -> None:
    """A metric's last value change is reported with its delta; new and gone metrics too."""
    with ledger.run("m") as a:
        a.log(loss=0.5, acc=0.7)
        a.log(gone=1.0)
    with ledger.run("m") as b:
        b.log(loss=0.3, acc=0.7)
        b.log(fresh=2.0)
    d = ledger.diff(a.id, b.id)
    ms = {c.key: c for c in d.section("metrics")}
    assert set(ms) == {"loss", "gone", "fresh"}
    assert ms["loss"].old == 0.5
    assert ms["loss"].new == 0.3
    assert ms["loss"].delta == pytest.approx(-0.2)
    assert (ms["gone"].kind, ms["fresh"].kind) == ("removed", "added")
    assert "~ loss: 0.5 -> 0.3 (-0.2)" in d.to_text()


def test_a_metric_nan_in_both_runs_is_no_change(ledger: Ledger) -> None:
    """NaN is not equal to itself, but a metric that was NaN in both runs did not change."""
    for _ in range(2):
        with ledger.run("diverged") as run:
            run.log(loss=float("nan"), acc=0.5)
    b, a = ledger.runs()
    assert list(ledger.diff(a, b)) == []
    with ledger.run("diverged") as c:
        c.log(loss=0.3, acc=0.5)
    d = ledger.diff(b.id, c.id)
    assert [(ch.section, ch.key, ch.new) for ch in d] == [("metrics", "loss", 0.3)]


def test_inputs_and_outputs_whose_digest_changed(ledger: Ledger, tmp_path: Path) -> None:
    """An input file or value with other bytes, and an output that changed, are listed by name."""
    data = tmp_path / "data.csv"
    kept = tmp_path / "kept.csv"
    kept.write_text("same\n")
    digests = []
    for content in ("a,b\n1,2\n", "a,b\n1,3\n"):
        data.write_text(content)
        with ledger.run("fit") as run:
            run.use(str(data))
            run.use(str(kept))
            digests.append(run.save({"content": content}, name="model").digest)
    b, a = ledger.runs()
    d = ledger.diff(a, b)
    ins = d.section("inputs")
    assert [c.key for c in ins] == ["data.csv"]
    assert ins[0].old == a.inputs["data.csv"].digest
    assert ins[0].new == b.inputs["data.csv"].digest
    assert d.section("outputs") == [
        Change("outputs", "model.content", "a,b\n1,2\n", "a,b\n1,3\n")]
    assert {c.section for c in d} == {"inputs", "outputs"}


def test_value_inputs_flowing_from_other_runs_diff(ledger: Ledger) -> None:
    """A pipeline fed other data differs in its data param and in everything computed from it;
    the value artifact behind the param is not listed a second time under inputs."""
    one = run_pipeline(ledger, n=5)
    two = run_pipeline(ledger, n=6)
    d = ledger.diff(one.ids["train"], two.ids["train"])
    assert {(c.section, c.key.split(".")[0]) for c in d} == {
        ("params", "data"), ("outputs", "return")}
    e = ledger.diff(one.ids["prep"], two.ids["prep"])
    assert ("params", "n", 5, 6) in [tuple(c) for c in e]


@dataclass
class _Optim:
    name: str
    lr: float


@dataclass
class _TrainConfig:
    optim: _Optim
    layers: list[int]
    extra: dict[str, Any] = field(default_factory=dict)


def test_config_params_diff_field_by_field(ledger: Ledger) -> None:
    """A dataclass config diffs by field: the one that changed, with its delta; fields added
    and removed; an emptied dict; no second line for the param's value artifact."""

    @ledger.tracked
    def train(cfg: _TrainConfig) -> None:
        return None

    train(_TrainConfig(_Optim("adam", 0.01), [64, 64], {"warmup": 10}))
    train(_TrainConfig(_Optim("adam", 0.1), [64, 128]))
    b, a = ledger.runs()
    d = ledger.diff(a, b)
    assert sorted(tuple(c) for c in d) == [
        ("params", "cfg.extra", None, {}),
        ("params", "cfg.extra.warmup", 10, None),
        ("params", "cfg.layers", [64, 64], [64, 128]),
        ("params", "cfg.optim.lr", 0.01, 0.1),
    ]
    assert "~ cfg.optim.lr: 0.01 -> 0.1 (+0.09)" in d.to_text()
    assert d.section("inputs") == []
    with ledger.run("plain", params={"cfg": {"optim": {"lr": 0.1}}, "cfg.optim.lr": 5}) as r:
        pass
    literal = [c for c in ledger.diff(b, r).section("params") if c.key == "cfg.optim.lr"]
    assert [(c.old, c.new, c.kind) for c in literal] == [(None, 5, "added")]  # the literal one


def test_argv_counts_only_through_the_params_it_became(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs started with other command lines but the same params do not differ: argv
    counts only through the params it became (DESIGN.md); a param it set does."""
    runs = []
    for lr, name in (("0.1", "a"), ("0.1", "b"), ("0.2", "b")):
        monkeypatch.setattr(sys, "argv", ["train.py", "--lr", lr, "--out", name])
        with ledger.run("t", params={"lr": float(lr)}) as r:
            pass
        runs.append(r)
    a, b, c = (ledger.get(r.id) for r in runs)
    assert not ledger.diff(a, b)
    assert [tuple(x) for x in ledger.diff(b, c)] == [("params", "lr", 0.1, 0.2)]


def test_a_kernels_command_line_is_not_a_change(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tracked code in two notebook sessions: the kernels' argv (their session files)
    differ, the runs do not."""
    runs = []
    for session in ("aaaa", "bbbb"):
        launcher = "/venv/lib/python3.11/site-packages/ipykernel_launcher.py"
        monkeypatch.setattr(sys, "argv", [launcher, "-f", f"/run/kernel-{session}.json"])
        with ledger.run("t") as r:
            pass
        runs.append(r)
    a, b = (ledger.get(r.id) for r in runs)
    assert not ledger.diff(a, b)


def test_json_types_that_python_calls_equal_still_differ(ledger: Ledger) -> None:
    """True and 1 (a param, a small output) are other values; so are 1 and 1.0 as stored
    bytes: each is a change, never "nothing but time"."""
    for value in (True, 1, 1.0):
        with ledger.run("types", params={"flag": value}) as r:
            r.save({"acc": value}, name="scores")
    c, b, a = ledger.runs()
    assert [(x.section, x.key) for x in ledger.diff(a, b)] == [
        ("params", "flag"), ("outputs", "scores.acc")]
    assert [(x.section, x.key, x.old, x.new) for x in ledger.diff(b, c)] == [
        ("outputs", "scores", {"acc": 1}, {"acc": 1.0})]


def test_long_values_print_their_head_and_tail() -> None:
    """Two long values that differ at the end do not print the same."""
    from mlledger.diff import _fmt

    one, two = "x" * 100 + "-1", "x" * 100 + "-2"
    assert _fmt(one) != _fmt(two)
    assert len(_fmt(one)) <= 80
    assert _fmt(one).endswith("-1")


def test_param_changes_between_kinds_are_one_change_each(ledger: Ledger) -> None:
    """None -> config, config -> scalar and a clash of dotted names inside one config are
    each one change of the whole param, never lost and never reported the wrong way."""
    for params in (
        {"sched": None, "cfg": {"lr": 1}, "odd": {"a.b": 1, "a": {"b": 2}}},
        {"sched": {"kind": "cos"}, "cfg": 5, "odd": {"a.b": 7, "a": {"b": 2}}},
    ):
        with ledger.run("kinds", params=params):
            pass
    b, a = ledger.runs()
    got = [(c.key, c.old, c.new, c.kind) for c in ledger.diff(a, b)]
    assert got == [
        ("cfg", {"lr": 1}, 5, "changed"),
        ("odd", {"a.b": 1, "a": {"b": 2}}, {"a.b": 7, "a": {"b": 2}}, "changed"),
        ("sched", None, {"kind": "cos"}, "changed"),
    ]
    assert '~ sched: null -> {"kind":"cos"}' in ledger.diff(a, b).to_text()


def test_an_input_named_like_a_param_but_holding_other_data_is_listed(ledger: Ledger) -> None:
    """run.use(data, name="dataset") next to a param "dataset": the input is not the param's
    value, so a change in it shows under inputs."""
    for data in ([1, 2, 3], [1, 2, 4]):
        with ledger.run("u", params={"dataset": "mnist"}) as r:
            r.use(data, name="dataset")
    b, a = ledger.runs()
    assert [(c.section, c.key) for c in ledger.diff(a, b)] == [("inputs", "dataset")]


def test_small_json_outputs_diff_by_content_large_ones_by_digest(ledger: Ledger) -> None:
    """A returned dict of scores diffs field by field with deltas; a value over SMALL_VALUE,
    or one that appears, is compared by digest."""
    from mlledger.diff import SMALL_VALUE

    for acc, big in ((0.94, "a"), (0.74, "b")):
        with ledger.run("eval") as r:
            r.save({"acc": acc, "n": 100}, name="scores")
            r.save(big * (SMALL_VALUE + 10), name="blob")
            if acc < 0.9:
                r.save({"x": 1}, name="extra")
    b, a = ledger.runs()
    got = {c.key: c for c in ledger.diff(a, b).section("outputs")}
    assert set(got) == {"scores.acc", "blob", "extra"}
    assert got["scores.acc"].delta == pytest.approx(-0.2)
    assert got["blob"].old == a.outputs["blob"].digest
    assert (got["extra"].kind, got["extra"].new) == ("added", b.outputs["extra"].digest)
    assert "~ scores.acc: 0.94 -> 0.74 (-0.2)" in ledger.diff(a, b).to_text()


def test_a_config_grown_past_the_inline_limit_is_one_change(ledger: Ledger) -> None:
    """A config inline in one run and stored (a stand-in with its digest) in the next is one
    change of the param, not a line per field; the stand-in's fields are not queried."""
    ledger.inline_limit = 200

    @ledger.tracked
    def train(cfg: dict[str, int]) -> None:
        return None

    train({f"f{i}": i for i in range(5)})
    train({f"f{i}": i for i in range(50)})
    b, a = ledger.runs()
    d = ledger.diff(a, b)
    assert [(c.section, c.key, c.kind) for c in d] == [("params", "cfg", "changed")]
    assert d.changes[0].new["digest"] == b.inputs["cfg"].digest
    assert ledger.runs(where="params.cfg.f1 = 1").ids == [a.id]
    assert ledger.runs(where="params.cfg.len = 50").ids == []


def _train_a(x: int) -> int:
    return x + 1


def _train_b(x: int) -> int:
    return x + 2


def test_different_function_source_is_a_code_change(ledger: Ledger) -> None:
    """Two functions under one run name differ in code: qualname and source digest."""
    ledger.tracked(_train_a, name="train")(1)
    ledger.tracked(_train_b, name="train")(1)
    b, a = ledger.runs()
    d = ledger.diff(a, b)
    code = {c.key: c for c in d.section("code")}
    assert set(code) == {"qualname", "source_digest"}
    assert (code["qualname"].old, code["qualname"].new) == ("_train_a", "_train_b")
    assert code["source_digest"].old == a.code["source_digest"]
    assert code["source_digest"].new == b.code["source_digest"]


def test_edited_function_shows_in_code_even_without_git(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editing and reloading the function's module changes its source and module digests."""
    mod, mod_file = import_fresh(
        tmp_path / "src", "edited_step", "def step(x):\n    return x + 1\n", monkeypatch
    )
    ledger.tracked(mod.step)(1)
    mod_file.write_text("def step(x):\n    return x + 1000  # edited\n")
    mod = importlib.reload(mod)
    ledger.tracked(mod.step)(1)
    b, a = ledger.runs()
    keys = {c.key for c in ledger.diff(a, b).section("code")}
    assert {"source_digest", "module_digest"} <= keys
    assert "qualname" not in keys


def test_edited_helper_module_shows_in_code_after_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit to a helper module the function calls shows as a module: change, without git."""
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "src"
    helper_mod, helper = import_fresh(src, "helper_mod", "def f(x):\n    return x + 1\n",
                                      monkeypatch)
    mod, _ = import_fresh(src, "uses_helper",
                          "import helper_mod\n\ndef step(x):\n    return helper_mod.f(x)\n",
                          monkeypatch)
    with fast_ledger("memory", tmp_path) as ledger:
        step = ledger.tracked(mod.step)
        step(1)  # warm-up: whatever a first call imports is imported now
        step(1)
        helper.write_text("def f(x):\n    return x + 2  # edited helper\n")
        importlib.reload(helper_mod)
        step(1)
        c, b, _ = ledger.runs()
        assert b.code["source_digest"] == c.code["source_digest"]
        keys = {ch.key for ch in ledger.diff(b, c).section("code")}
        assert keys == {"module:helper_mod"}


def _make_step(k: Any) -> Any:
    def step(x: int) -> Any:
        return (x, k)

    return step


def test_closure_values_are_part_of_the_code(ledger: Ledger) -> None:
    """The same source closing over other values differs in the closure digest only."""
    ledger.tracked(_make_step(1))(1)
    ledger.tracked(_make_step(2))(1)
    ledger.tracked(_make_step(2))(1)
    c, b, a = ledger.runs()
    assert [ch.key for ch in ledger.diff(a, b).section("code")] == ["closure_digest"]
    assert not ledger.diff(b, c).section("code")


@dataclass
class _Config:
    """A config holding something that cannot be copied or pickled."""

    lr: float
    lock: Any


def test_closure_over_an_uncopyable_dataclass_still_tracks_the_call(ledger: Ledger) -> None:
    """A function closing over a dataclass holding a lock is still tracked (capture never fails)."""
    cfg = _Config(0.1, threading.Lock())

    def step(x: float) -> float:
        return x * cfg.lr

    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        assert ledger.tracked(step)(2.0) == pytest.approx(0.2)
    assert [str(w.message) for w in got if issubclass(w.category, mlledger.LedgerWarning)] == []
    assert len(ledger.runs()) == 1


def _git(path: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=path, check=True, capture_output=True, text=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(path.parent),
             "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
             "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"},
    )
    return out.stdout.strip()


def test_git_commit_and_dirty_diff_changes(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new commit, and uncommitted edits (dirty flag, diff object), show in the git section."""
    from mlledger.capture import code as codemod

    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.txt").write_text("v1\n")
    _git(repo, "add", "train.txt")
    _git(repo, "commit", "-q", "-m", "one")
    first = _git(repo, "rev-parse", "HEAD")
    step = ledger.tracked(_train_a)
    codemod.clear_git_cache()
    step(1)
    (repo / "train.txt").write_text("v2\n")
    _git(repo, "commit", "-q", "-am", "two")
    second = _git(repo, "rev-parse", "HEAD")
    codemod.clear_git_cache()
    step(1)
    (repo / "train.txt").write_text("v3, not committed\n")
    codemod.clear_git_cache()
    step(1)
    codemod.clear_git_cache()
    c, b, a = ledger.runs()
    assert ledger.diff(a, b).section("git") == [Change("git", "commit", first, second)]
    dirty = {ch.key: ch for ch in ledger.diff(b, c).section("git")}
    assert set(dirty) == {"dirty", "diff"}
    assert (dirty["dirty"].old, dirty["dirty"].new) == (False, True)
    assert dirty["diff"].old is None
    assert b"v3, not committed" in ledger.store.get(dirty["diff"].new)


def test_package_upgrade_added_and_removed(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_environment: None
) -> None:
    """Installed distributions (dist-info folders on sys.path) diff as upgraded, added, removed."""
    site = tmp_path / "fake-site"
    site.mkdir()
    (site / "fakepkg-1.0.dist-info").mkdir()
    (site / "goingpkg-0.3.dist-info").mkdir()
    monkeypatch.syspath_prepend(str(site))
    envmod.clear_cache()
    before = reopen(ledger)
    with before.run("fit") as a:
        pass
    (site / "fakepkg-1.0.dist-info").rename(site / "fakepkg-2.0.dist-info")
    (site / "goingpkg-0.3.dist-info").rename(site / "comingpkg-0.1.dist-info")
    envmod.clear_cache()
    after = reopen(ledger)
    with after.run("fit") as b:
        pass
    d = after.diff(a.id, b.id)
    assert d.section("packages") == [
        Change("packages", "comingpkg", None, "0.1"),
        Change("packages", "fakepkg", "1.0", "2.0"),
        Change("packages", "goingpkg", "0.3", None),
    ]
    assert {c.section for c in d} == {"packages"}
    assert "~ fakepkg: 1.0 -> 2.0" in d.to_text()


def test_allow_listed_environment_variables(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, fresh_environment: None
) -> None:
    """A changed allow-listed variable diffs; variables off the list never appear."""
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("SOME_UNLISTED_VAR", "one")
    envmod.clear_cache()
    with reopen(ledger).run("fit") as a:
        pass
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("SOME_UNLISTED_VAR", "two")
    envmod.clear_cache()
    with reopen(ledger).run("fit") as b:
        pass
    d = ledger.diff(a.id, b.id)
    assert d.section("env_vars") == [
        Change("env_vars", "CUDA_VISIBLE_DEVICES", None, "0"),
        Change("env_vars", "OMP_NUM_THREADS", "4", "8"),
    ]
    assert {c.section for c in d} == {"env_vars"}


def test_python_and_platform_changes(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, fresh_environment: None
) -> None:
    """Another Python version and another OS release show under python and platform."""
    with reopen(ledger).run("fit") as a:
        pass
    other = copy.deepcopy(envmod._machine())  # the part computed once per process
    other["python"]["version"] = "3.99.0"
    other["platform"]["release"] = "99.0-test"
    other["host"]["cpu_count"] = 1024
    monkeypatch.setitem(envmod._cache, (), other)
    envmod._env_cache.clear()
    with reopen(ledger).run("fit") as b:
        pass
    d = ledger.diff(a.id, b.id)
    got = {(c.section, c.key) for c in d}
    assert got == {("python", "version"), ("platform", "release"), ("platform", "cpu_count")}
    assert next(c for c in d if c.key == "version").new == "3.99.0"


def test_sections_come_in_order_and_render_as_text(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes iterate as Change tuples in section order; to_text groups them under headings."""
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    envmod.clear_cache()
    try:
        with reopen(ledger).run("fit", params={"lr": 0.1, "gone": "x"}) as a:
            a.log(loss=0.5)
            a.save([1], name="preds")
        monkeypatch.setenv("PYTHONHASHSEED", "1")
        envmod.clear_cache()
        with reopen(ledger).run("fit", params={"lr": 0.2, "added": True}) as b:
            b.log(loss=0.25)
            b.save([2], name="preds")
    finally:
        monkeypatch.delenv("PYTHONHASHSEED")
        envmod.clear_cache()
    d = ledger.diff(a.id, b.id)
    sections = [c.section for c in d]
    assert sections == sorted(sections, key=SECTIONS.index)
    assert set(sections) == {"params", "metrics", "outputs", "env_vars"}
    for c in d:
        section, key, old, new = c
        assert (section, key, old, new) == (c.section, c.key, c.old, c.new)
    text = d.to_text()
    assert text.startswith(f"diff {a.id} -> {b.id}\n")
    lines = text.splitlines()
    for heading in ("params", "metrics", "outputs", "env_vars"):
        assert heading in lines
    assert lines.index("params") < lines.index("metrics") < lines.index("outputs")
    assert "  + added: True" in lines
    assert "  - gone: x" in lines
    assert "  ~ lr: 0.1 -> 0.2 (+0.1)" in lines
    assert "  ~ PYTHONHASHSEED: 0 -> 1" in lines
    assert str(d) == text
    colored = d.to_text(color=True)
    assert "\x1b[32m" in colored
    assert "\x1b[31m" in colored
    assert "\x1b[0m" in colored
    assert d.to_json()[0] == {"section": "params", "key": "added", "old": None, "new": True,
                              "kind": "added"}


def test_long_values_are_shortened_in_text(ledger: Ledger) -> None:
    """A long param value is cut with an ellipsis so a line stays readable."""
    with ledger.run("fit", params={"note": "a" * 200}) as a:
        pass
    with ledger.run("fit", params={"note": "b" * 200}) as b:
        pass
    line = next(x for x in ledger.diff(a.id, b.id).to_text().splitlines() if "note" in x)
    assert "..." in line
    assert len(line) < 200


def test_diff_takes_ids_prefixes_and_runs(ledger: Ledger) -> None:
    """diff() accepts Run objects, full ids and unique prefixes alike."""
    with ledger.run("x", params={"v": 1}) as a:
        pass
    with ledger.run("x", params={"v": 2}) as b:
        pass
    want = [Change("params", "v", 1, 2)]
    assert list(ledger.diff(a, b)) == want
    assert list(ledger.diff(a.id, b.id)) == want
    assert list(ledger.diff(a.id.lower(), b.id)) == want
    text = textwrap.dedent(ledger.diff(a, b).to_text())
    assert "~ v: 1 -> 2 (+1)" in text
