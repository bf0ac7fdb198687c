"""Runs: ``ledger.run()``, ``@tracked``, the active-run context, metrics, outcomes, spooling."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from helpers.ledgers import fast_ledger
from helpers.runs import entry_run_id, open_ledger, python_env, reopen, run_keys
from helpers.servers import StoreSpec
from hypothesis import given
from hypothesis import strategies as st

import mlledger
import mlledger.runs.binder
import mlledger.runs.heartbeat
import mlledger.runs.run
from mlledger import (
    Artifact,
    Ledger,
    LedgerWarning,
    MetricStats,
    NotFoundError,
    PolicyError,
    Run,
    StoreError,
    UsageError,
)
from mlledger.ids import day_path, is_run_id, whole_key
from mlledger.store import Store


@pytest.fixture
def any_ledger(store_spec: StoreSpec, workdir: Path) -> Ledger:
    """A Ledger on a fresh store of each kind: memory, local, S3, GCS."""
    return open_ledger(store_spec)


# ---------------------------------------------------------------------------
# ledger.run(): every field, written and read back


def test_run_block_records_every_field_and_reads_back(any_ledger: Ledger, workdir: Path) -> None:
    """A ``with ledger.run()`` block reads back from the store with every field it recorded."""
    (workdir / "train.csv").write_text("x,y\n1,2\n")
    (workdir / "data").mkdir()
    (workdir / "data" / "a.txt").write_text("a")
    (workdir / "data" / "b.txt").write_text("b")
    with any_ledger.run(
        "train", params={"lr": 0.1, "layers": [1, 2]}, message="why", tags={"team": "cv"}
    ) as run:
        assert mlledger.current_run() is run
        assert run.status == "running"
        run.log(step=1, loss=0.5, acc=0.6)
        run.log(step=2, loss=0.2, acc=0.9)
        run.log(step=3, loss=0.3)
        run.log_params(batch=32)
        used = run.use("train.csv")
        tree = run.use("data")
        (workdir / "model.bin").write_bytes(b"weights")
        saved = run.save("model.bin")
        preds = run.save([0.1, 0.9], name="preds")
    assert mlledger.current_run() is None
    assert run.status == "finished"

    got = reopen(any_ledger).get(run.id)
    assert got.id == run.id
    assert got.name == "train"
    assert got.status == "finished"
    assert got.message == "why"
    assert got.tags == {"team": "cv"}
    assert got.params == {"lr": 0.1, "layers": [1, 2], "batch": 32}
    assert got.metrics == {"acc": 0.9, "loss": 0.3}
    assert got.metric_stats["loss"] == MetricStats(last=0.3, min=0.2, max=0.5, step=3, count=3)
    assert got.metric_stats["acc"].min == 0.6
    assert got.metric_stats["acc"].max == 0.9
    assert [(s, v) for s, v, _t in got.metric_history("loss")] == [(1, 0.5), (2, 0.2), (3, 0.3)]
    assert got.parent_id is None

    assert got.inputs["train.csv"] == used
    assert used.kind == "file"
    assert used.size == len("x,y\n1,2\n")
    assert used.path == "train.csv"
    assert got.inputs["data"] == tree
    assert tree.kind == "tree"
    assert tree.files == 2
    assert got.inputs["layers"].kind == "value"  # a non-scalar param is an input by value
    assert "lr" not in got.inputs  # scalars stay params only
    assert got.outputs["model.bin"] == saved
    assert saved.kind == "file"
    assert any_ledger.store.get(saved.digest) == b"weights"
    assert got.outputs["preds"] == preds
    assert preds.kind == "value"
    assert preds.format == "json"
    assert any_ledger.load(preds.digest) == [0.1, 0.9]

    env = got.env
    vi = sys.version_info
    assert env["python"]["version"] == f"{vi.major}.{vi.minor}.{vi.micro}"
    assert "attrs" in env["packages"]
    assert "fsspec" in env["packages"]
    assert isinstance(env["env_vars"], dict)
    assert env["process"]["pid"] == os.getpid()
    assert env["process"]["cwd"] == str(workdir)

    assert got.code["kind"] == "block"
    assert got.code["qualname"] == "test_run_block_records_every_field_and_reads_back"
    assert got.code["module_digest"].startswith(any_ledger.store.algorithm + ":")

    assert got.started_at <= got.ended_at  # type: ignore[operator]
    assert got.started_at.tzinfo is not None
    res = got.resources
    assert res["wall_s"] >= 0
    assert res["cpu_user_s"] >= 0
    assert res["cpu_system_s"] >= 0
    assert res["peak_rss_bytes"] > 1024 * 1024
    assert got.error is None
    assert got.host
    assert got.user


def test_tracked_call_records_and_reads_back(any_ledger: Ledger) -> None:
    """A tracked call is a run named by the function, with its arguments and return value."""

    @any_ledger.tracked
    def train(data: list[int], lr: float = 0.1) -> dict[str, float]:
        run = mlledger.current_run()
        assert run is not None
        run.log(loss=1.0 / len(data))
        return {"score": sum(data) * lr}

    result = train([1, 2, 3])
    assert result == {"score": pytest.approx(0.6)}
    got_id = _last_run_id(any_ledger)
    got = reopen(any_ledger).get(got_id)
    assert got.name == train.__qualname__
    assert got.status == "finished"
    assert got.params == {"data": [1, 2, 3], "lr": 0.1}
    assert got.inputs["data"].kind == "value"
    assert got.outputs["return"].kind == "value"
    assert any_ledger.load(got.outputs["return"].digest) == result
    assert got.metrics == {"loss": pytest.approx(1 / 3)}
    assert got.code["kind"] == "function"
    assert got.code["qualname"] == train.__qualname__
    assert got.code["source_digest"].startswith(any_ledger.store.algorithm + ":")


def _last_run_id(ledger: Ledger) -> str:
    """The id of the newest run in the store (ids sort by time)."""
    keys = list(ledger.store.backend.list("runs"))
    assert keys, "no run in the store"
    return max(entry_run_id(k) for k in keys)


def test_lineage_value_passed_between_tracked_calls_is_one_digest(any_ledger: Ledger) -> None:
    """A value returned by one tracked call and passed to another is one artifact (one digest)."""

    @any_ledger.tracked
    def prepare(n: int) -> list[int]:
        return list(range(n))

    @any_ledger.tracked
    def fit(rows: list[int], lr: float = 0.1) -> float:
        return sum(rows) * lr

    fit(prepare(5))
    ids = sorted({entry_run_id(k) for k in any_ledger.store.backend.list("runs")})
    fresh = reopen(any_ledger)
    a, b = (fresh.get(i) for i in ids)
    assert a.name.endswith("prepare")
    assert b.name.endswith("fit")
    assert a.outputs["return"].digest == b.inputs["rows"].digest


def test_lineage_numpy_and_path_values_link_runs(ledger: Ledger, workdir: Path) -> None:
    """An array or a file path returned by one call and passed to the next is one digest."""
    np = pytest.importorskip("numpy")

    @ledger.tracked
    def make() -> Any:
        return np.arange(10.0)

    @ledger.tracked
    def write(arr: Any) -> str:
        Path("out.npy").write_bytes(arr.tobytes())
        return "out.npy"

    @ledger.tracked
    def read(path: str) -> int:
        return len(Path(path).read_bytes())

    with ledger.run("pipeline") as parent:
        read(write(make()))
    runs = {r.name.rsplit(".", 1)[-1]: r for r in _children(ledger, parent.id)}
    assert runs["make"].outputs["return"].digest == runs["write"].inputs["arr"].digest
    assert runs["make"].outputs["return"].format == "npy"
    assert runs["write"].outputs["return"].kind == "file"
    assert runs["write"].outputs["return"].digest == runs["read"].inputs["path"].digest


def test_lineage_torch_tensors_link_runs(ledger: Ledger) -> None:
    """A tensor returned by one tracked call and passed to the next is one artifact."""
    torch = pytest.importorskip("torch")

    @ledger.tracked
    def make(n: int) -> Any:
        return torch.linspace(0, 1, n)

    @ledger.tracked
    def total(t: Any) -> float:
        return float(t.sum())

    with ledger.run("pipeline") as parent:
        assert total(make(5)) == pytest.approx(2.5)
    runs = {r.name.rsplit(".", 1)[-1]: r for r in _children(ledger, parent.id)}
    made = runs["make"].outputs["return"]
    assert made.format == "torch"
    assert made.digest == runs["total"].inputs["t"].digest
    assert runs["total"].params["t"]["shape"] == [5]
    assert torch.equal(ledger.load(made.digest), torch.linspace(0, 1, 5))


def _children(ledger: Ledger, parent_id: str) -> list[Run]:
    ids = {entry_run_id(k) for k in ledger.store.backend.list("runs")}
    runs = [ledger.get(i) for i in sorted(ids)]
    return [r for r in runs if r.parent_id == parent_id]


# ---------------------------------------------------------------------------
# run.use / run.save / run.log_params / misuse


def test_use_of_a_missing_path_raises_not_found(ledger: Ledger) -> None:
    """run.use() of a path that does not exist raises NotFoundError (a KeyError) naming it."""
    with ledger.run("r") as run:
        with pytest.raises(NotFoundError, match=r"nope\.csv"):
            run.use("nope.csv")
        with pytest.raises(KeyError):
            run.save(Path("missing.bin"))
    assert ledger.get(run.id).status == "finished"


def test_save_of_a_value_without_name_raises_usage_error(ledger: Ledger) -> None:
    """run.save(value) and run.use(value) need name=; the error says so."""
    with ledger.run("r") as run:
        with pytest.raises(UsageError, match="name="):
            run.save([1, 2, 3])
        with pytest.raises(UsageError, match="name="):
            run.use({"a": 1})


def test_use_and_save_values_return_the_stored_artifact(ledger: Ledger) -> None:
    """run.use(value, name=) and run.save(value, name=) store at once and return the Artifact."""
    with ledger.run("r") as run:
        a = run.use({"k": [1, 2]}, name="config")
        assert ledger.store.has(a.digest)
        b = run.save("just a string", name="note")
        assert ledger.store.has(b.digest)
    got = reopen(ledger).get(run.id)
    assert got.inputs == {"config": a}
    assert got.outputs == {"note": b}
    assert ledger.load(b.digest) == "just a string"


def test_save_of_an_unpicklable_value_raises_usage_error(ledger: Ledger) -> None:
    """run.save() of a value that cannot be stored says to save it to a file instead."""
    with ledger.run("r") as run, pytest.raises(UsageError, match="file"):
        run.save(threading.Lock(), name="lock")


def test_ended_run_refuses_log_use_save(ledger: Ledger, workdir: Path) -> None:
    """After the run ends, log/log_params/use/save raise UsageError."""
    (workdir / "f.txt").write_text("x")
    with ledger.run("r") as run:
        pass
    for call in (
        lambda: run.log(loss=1.0),
        lambda: run.log_params(a=1),
        lambda: run.use("f.txt"),
        lambda: run.save("f.txt"),
    ):
        with pytest.raises(UsageError, match="ended"):
            call()


def test_run_context_cannot_be_entered_twice(ledger: Ledger) -> None:
    """A run context is used once; entering it again is a UsageError."""
    ctx = ledger.run("r")
    with ctx:
        pass
    with pytest.raises(UsageError), ctx:
        pass


def test_run_name_must_be_a_string(ledger: Ledger) -> None:
    """ledger.run() with a non-string name raises TypeError."""
    with pytest.raises(TypeError, match="name"):
        ledger.run(42)  # type: ignore[arg-type]


def test_log_params_changes_params(ledger: Ledger) -> None:
    """run.log_params() adds and overwrites params of the active run."""
    with ledger.run("r", params={"a": 1}) as run:
        run.log_params(a=2, b="x")
    assert reopen(ledger).get(run.id).params == {"a": 2, "b": "x"}


def test_run_name_defaults_for_blocks(ledger: Ledger) -> None:
    """``ledger.run()`` without a name is named after the calling function."""
    with ledger.run() as run:
        pass
    assert run.name == "test_run_name_defaults_for_blocks"


# ---------------------------------------------------------------------------
# @tracked: forms


def test_tracked_with_options_sets_name_and_ignores_params(ledger: Ledger) -> None:
    """@tracked(name=, ignore=) names the run and skips the ignored arguments."""

    @ledger.tracked(name="custom", ignore=["verbose"])
    def f(a: int, verbose: bool = False) -> int:
        return a

    assert f(3, verbose=True) == 3
    got = ledger.get(_last_run_id(ledger))
    assert got.name == "custom"
    assert got.params == {"a": 3}


def test_tracked_keeps_metadata_and_wrapped(ledger: Ledger) -> None:
    """@tracked keeps the function's name, doc and signature (functools.wraps, __wrapped__)."""

    def train(data: str, lr: float = 0.1) -> float:
        """Train it."""
        return lr

    wrapped = ledger.tracked(train)
    assert wrapped.__name__ == "train"
    assert wrapped.__doc__ == "Train it."
    assert wrapped.__qualname__ == train.__qualname__
    assert wrapped.__wrapped__ is train
    assert str(inspect_signature(wrapped)) == str(inspect_signature(train))
    with_opts = ledger.tracked(name="x")(train)
    assert with_opts.__wrapped__ is train


def inspect_signature(f: Any) -> Any:
    import inspect

    return inspect.signature(f)


def test_tracked_method_records_self_by_type(ledger: Ledger) -> None:
    """On a method, ``self`` is recorded by its type only, not stored as a value."""

    class Model:
        def __init__(self) -> None:
            self.lock = threading.Lock()  # not picklable: must not matter

        @ledger.tracked
        def fit(self, epochs: int) -> int:
            return epochs * 2

    assert Model().fit(3) == 6
    got = ledger.get(_last_run_id(ledger))
    assert got.params == {"self": {"type": f"{__name__}.{Model.__qualname__}"}, "epochs": 3}
    assert "self" not in got.inputs
    assert all("git" in w for w in got.warnings)  # nothing about self
    assert got.name.endswith("Model.fit")


@pytest.mark.parametrize("order", ["tracked_outside", "tracked_inside"])
def test_tracked_staticmethod_both_orders(ledger: Ledger, order: str) -> None:
    """@tracked works above or below @staticmethod, on the class and on an instance."""
    if order == "tracked_outside":

        class A:
            @ledger.tracked
            @staticmethod
            def f(x: int) -> int:
                return x + 1

    else:

        class A:  # type: ignore[no-redef]
            @staticmethod
            @ledger.tracked
            def f(x: int) -> int:
                return x + 1

    assert A.f(1) == 2
    assert A().f(2) == 3
    got = ledger.get(_last_run_id(ledger))
    assert got.params == {"x": 2}
    assert got.outputs["return"].kind == "value"


@pytest.mark.parametrize("order", ["tracked_outside", "tracked_inside"])
def test_tracked_classmethod_both_orders(ledger: Ledger, order: str) -> None:
    """@tracked works above or below @classmethod; ``cls`` is recorded by type only."""
    if order == "tracked_outside":

        class B:
            @ledger.tracked
            @classmethod
            def make(cls, n: int) -> list[int]:
                return [n] * 2

    else:

        class B:  # type: ignore[no-redef]
            @classmethod
            @ledger.tracked
            def make(cls, n: int) -> list[int]:
                return [n] * 2

    assert B.make(4) == [4, 4]
    assert B().make(5) == [5, 5]
    got = ledger.get(_last_run_id(ledger))
    assert got.params == {"cls": {"type": f"{__name__}.{B.__qualname__}"}, "n": 5}


def test_tracked_async_function(ledger: Ledger) -> None:
    """An async function gets an async wrapper; the run spans the awaited body."""

    @ledger.tracked
    async def fetch(x: int) -> list[int]:
        await asyncio.sleep(0.01)
        run = mlledger.current_run()
        assert run is not None
        run.log(step=0, x=x)
        return [x, run.id]  # type: ignore[list-item]

    import inspect

    assert inspect.iscoroutinefunction(fetch)
    x, run_id = asyncio.run(fetch(7))
    assert x == 7
    got = reopen(ledger).get(run_id)
    assert got.status == "finished"
    assert got.params == {"x": 7}
    assert got.metrics == {"x": 7.0}
    assert got.resources["wall_s"] >= 0.01


def test_nested_tracked_calls_have_parent_id(ledger: Ledger) -> None:
    """A tracked call inside a run (block or tracked call) is a child run with parent_id."""
    seen: dict[str, str] = {}

    @ledger.tracked
    def inner(x: int) -> int:
        run = mlledger.current_run()
        assert run is not None
        seen["inner"] = run.id
        return x

    @ledger.tracked
    def outer(x: int) -> int:
        run = mlledger.current_run()
        assert run is not None
        seen["outer"] = run.id
        return inner(x) + 1

    with ledger.run("top") as top:
        outer(1)
        assert mlledger.current_run() is top
    fresh = reopen(ledger)
    assert fresh.get(seen["outer"]).parent_id == top.id
    assert fresh.get(seen["inner"]).parent_id == seen["outer"]
    assert fresh.get(top.id).parent_id is None


def test_generator_function_is_refused_with_a_clear_type_error(ledger: Ledger) -> None:
    """@tracked on a generator function raises TypeError at decoration, naming the fix."""

    def gen() -> Any:
        yield 1

    async def agen() -> Any:
        yield 1

    with pytest.raises(TypeError, match=r"generator.*ledger\.run"):
        ledger.tracked(gen)
    with pytest.raises(TypeError, match="generator"):
        ledger.tracked(name="g")(agen)


def test_a_generator_behind_a_decorator_is_a_loud_warning(ledger: Ledger) -> None:
    """A generator function hidden behind functools.wraps cannot be refused up front: the
    call returns a generator, and the run says, loudly, that its work went unrecorded."""

    def passthrough(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        return wrapper

    @ledger.tracked
    @passthrough
    def batches(n: int) -> Any:
        yield from range(n)

    with pytest.warns(mlledger.LedgerWarning, match="generator.*not recorded"):
        got = batches(3)
    assert list(got) == [0, 1, 2]  # the caller still gets its generator
    run = reopen(ledger).get(_last_run_id(ledger))
    assert any("generator" in w for w in run.warnings)
    assert "return" not in run.outputs


def test_a_returned_generator_never_fails_the_call_under_warnings_as_errors(
    ledger: Ledger,
) -> None:
    """With warnings turned into errors (pytest's filterwarnings=error), a call that returns
    a generator still returns it, and the run is finished, with the warning on record."""

    @ledger.tracked
    def lines(n: int) -> Any:
        return (i for i in range(n))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = lines(2)
    assert list(got) == [0, 1]
    run = reopen(ledger).get(_last_run_id(ledger))
    assert run.status == "finished"
    assert any("generator" in w for w in run.warnings)


def test_tracked_misuse_raises_type_error(ledger: Ledger) -> None:
    """Unknown options, a positional name string and a non-callable raise a helpful TypeError."""
    with pytest.raises(TypeError, match="unknown option"):
        ledger.tracked(nmae="x")
    with pytest.raises(TypeError, match="name="):
        ledger.tracked("train")
    with pytest.raises(TypeError, match="function"):
        ledger.tracked(42)


def test_wrong_call_arguments_raise_the_functions_own_type_error(ledger: Ledger) -> None:
    """Calling a tracked function with bad arguments raises the same TypeError as untracked."""

    def f(a: int) -> int:
        return a

    with pytest.raises(TypeError) as plain:
        f(1, 2)  # type: ignore[call-arg]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about tracking: it is the caller's mistake
        with pytest.raises(TypeError) as tracked:
            ledger.tracked(f)(1, 2)
    assert str(tracked.value) == str(plain.value)
    assert list(ledger.store.backend.list("runs")) == []


# ---------------------------------------------------------------------------
# MLLEDGER_DISABLE and the module-level API


def test_disabled_tracked_call_is_a_plain_call(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With MLLEDGER_DISABLE=1 a tracked call is a plain call and no run is written."""
    monkeypatch.setenv("MLLEDGER_DISABLE", "1")
    seen: list[Any] = []

    @ledger.tracked
    def f(x: int) -> int:
        seen.append(mlledger.current_run())
        return x * 2

    @ledger.tracked
    async def g(x: int) -> int:
        return x * 3

    assert f(2) == 4
    assert asyncio.run(g(2)) == 6
    assert seen == [None]
    assert list(ledger.store.backend.list("runs")) == []


def test_disabled_run_block_writes_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    """With MLLEDGER_DISABLE=1 a ``with ledger.run()`` block runs but writes no run."""
    monkeypatch.setenv("MLLEDGER_DISABLE", "1")
    (workdir / "in.txt").write_text("data")
    with ledger.run("r", params={"a": [1]}) as run:
        run.log(step=1, loss=0.5)
        run.log_params(b=2)
        art = run.use("in.txt")
        run.save([1], name="v")
        Path("out.txt").write_text("x")
    assert art.kind == "file"
    assert list(ledger.store.backend.list("runs")) == []
    assert list(ledger.store.iter_objects()) == []


def test_disabled_run_still_checks_its_arguments(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    """A disabled run gives the same artifacts and errors as a real one, and stores nothing."""
    (workdir / "d").mkdir()
    (workdir / "d" / "x.txt").write_text("x")
    (workdir / "f.txt").write_text("f")
    with ledger.run("real") as run:
        real = [run.use("d"), run.use("f.txt"), run.save({"a": 1}, name="v")]
    monkeypatch.setenv("MLLEDGER_DISABLE", "1")
    before = sorted(ledger.store.iter_objects())
    with ledger.run("off") as run:
        assert mlledger.current_run() is run
        off = [run.use("d"), run.use("f.txt"), run.save({"a": 1}, name="v")]
        with pytest.raises(NotFoundError):
            run.use("missing.txt")
        with pytest.raises(UsageError):
            run.save([1])
        run.log(step=0, loss=2.0)
        run.log(step=1, loss=1.0)
        assert run.metrics == {"loss": 1.0}
    assert mlledger.current_run() is None
    assert off == real
    assert run.status == "finished"
    assert sorted(ledger.store.iter_objects()) == before


def test_disabled_run_keeps_memory_bounded(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disabled run logging many metrics keeps summaries, not every row."""
    monkeypatch.setenv("MLLEDGER_DISABLE", "1")
    monkeypatch.setattr(mlledger.runs.run, "METRIC_CHUNK", 10)
    with ledger.run("off") as run:
        for i in range(100):
            run.log(step=i, loss=float(i))
        assert len(run._rows) < 10
    assert run.metric_stats["loss"] == MetricStats(99.0, 0.0, 99.0, 99, 100)


def test_run_context_works_as_a_decorator(ledger: Ledger) -> None:
    """``@ledger.run("name")`` makes every call of the function a run of that name."""

    @ledger.run("decorated", tags={"k": "v"})
    def work(x: int) -> int:
        run = mlledger.current_run()
        assert run is not None
        return x * 2

    @ledger.run("adecorated")
    async def awork(x: int) -> int:
        assert mlledger.current_run() is not None
        return x

    assert work(1) == 2
    assert work(2) == 4
    assert asyncio.run(awork(3)) == 3
    assert work.__name__ == "work"
    ids = sorted({entry_run_id(k) for k in ledger.store.backend.list("runs")})
    names = [ledger.get(i).name for i in ids]
    assert names == ["decorated", "decorated", "adecorated"]
    assert ledger.get(ids[0]).tags == {"k": "v"}


def test_module_level_api_uses_the_default_ledger(
    tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mlledger.tracked / run / current_run work on the ledger at $MLLEDGER_URL."""
    url = str(tmp_path / "default-store")
    monkeypatch.setenv("MLLEDGER_URL", url)

    @mlledger.tracked
    def f(x: int) -> int:
        run = mlledger.current_run()
        assert run is not None
        return x + 1

    @mlledger.tracked(name="named")
    def g(x: int) -> int:
        return x

    assert mlledger.current_run() is None
    with mlledger.run("block", params={"p": 1}) as run:
        assert mlledger.current_run() is run
        assert f(1) == 2
        g(0)
    assert mlledger.default_ledger().url == url
    fresh = Ledger(url)
    got = fresh.get(run.id)
    assert got.params == {"p": 1}
    ids = {entry_run_id(k) for k in fresh.store.backend.list("runs")}
    names = sorted(fresh.get(i).name for i in ids)
    assert names == sorted(["block", f.__qualname__, "named"])


def test_default_ledger_follows_mlledger_url(
    tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default ledger is made at call time, so a changed $MLLEDGER_URL is followed."""

    @mlledger.tracked
    def f() -> None:
        return None

    for name in ("one", "two"):
        monkeypatch.setenv("MLLEDGER_URL", str(tmp_path / name))
        f()
    for name in ("one", "two"):
        keys = Ledger(str(tmp_path / name)).store.backend.list("runs")
        assert len({entry_run_id(k) for k in keys}) == 1


# ---------------------------------------------------------------------------
# metrics


def test_metrics_keep_last_min_max_and_history(ledger: Ledger) -> None:
    """run.metrics is each key's last value; metric_stats has min/max/step/count."""
    with ledger.run("r") as run:
        for i, v in enumerate([3.0, 1.0, 2.0]):
            run.log(step=i * 10, loss=v)
        run.log(acc=1)  # no step: the next one
        assert run.metrics == {"acc": 1.0, "loss": 2.0}
        assert [s for s, _v, _t in run.metric_history("loss")] == [0, 10, 20]
    got = reopen(ledger).get(run.id)
    assert got.metrics == {"acc": 1.0, "loss": 2.0}
    assert got.metric_stats["loss"] == MetricStats(2.0, 1.0, 3.0, 20, 3)
    assert got.metric_history("acc")[0][:2] == (21, 1.0)
    assert got.metric_history("nothing") == []


def test_metric_histories_read_every_key_at_once(ledger: Ledger) -> None:
    """metric_histories gives each key what metric_history gives, across written chunks,
    the record's tail and (while active) the buffer; None means every logged key."""
    with ledger.run("r") as run:
        for i in range(12_000):  # more than a chunk: chunks in the store, then a tail
            run.log(step=i, loss=1 / (i + 1), acc=i % 7)
        live = run.metric_histories()
        assert set(live) == {"acc", "loss"}
        assert live["loss"] == run.metric_history("loss")
    got = reopen(ledger).get(run.id)
    both = got.metric_histories(["loss", "acc", "nothing"])
    assert both == {k: got.metric_history(k) for k in ("loss", "acc", "nothing")}
    assert [s for s, _v, _t in both["acc"]] == list(range(12_000))


def test_metric_min_and_max_skip_nan_wherever_it_comes(ledger: Ledger) -> None:
    """A NaN (a diverged step) is recorded as the value it was, but never becomes the min or
    max: first in a chunk, later in it, or alone, and across chunks."""
    nan = float("nan")
    with ledger.run("r") as run:
        for v in (nan, 3.0, 1.0):
            run.log(first=v)
        for v in (3.0, nan, 1.0):
            run.log(middle=v)
        run.log(only=nan)
        run._flush_metrics()  # a chunk boundary: the next NaN comes in a new chunk
        run.log(first=nan, middle=0.5)
    stats = reopen(ledger).get(run.id).metric_stats
    assert (stats["first"].min, stats["first"].max, stats["first"].count) == (1.0, 3.0, 4)
    assert math.isnan(stats["first"].last)
    assert (stats["middle"].min, stats["middle"].max, stats["middle"].last) == (0.5, 3.0, 0.5)
    assert math.isnan(stats["only"].min)
    assert math.isnan(stats["only"].max)


def test_a_number_too_large_for_a_float_is_one_warning(ledger: Ledger) -> None:
    """run.log(count=10**400) (or an infinite step) loses that value, with a warning, and
    nothing else of the run's metrics."""
    with ledger.run("r") as run:
        run.log(loss=0.5)
        run.log(count=10**400, loss=0.4)
        run.log(step=float("inf"), loss=0.3)
    got = reopen(ledger).get(run.id)
    assert got.metric_stats["loss"].count == 3
    assert "count" not in got.metrics
    assert any("count=" in w for w in got.warnings)
    assert any("step inf" in w for w in got.warnings)


def test_metrics_are_written_in_chunks_during_the_run(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metric rows are buffered and written as chunks while the run goes on."""
    monkeypatch.setattr(mlledger.runs.run, "METRIC_CHUNK", 4)
    with ledger.run("r") as run:
        for i in range(3):
            run.log(step=i, loss=float(i))
        assert not [k for k in run_keys(ledger, run.id) if k.startswith("metrics-")]
        run.log(step=3, loss=3.0)
        assert [k for k in run_keys(ledger, run.id) if k.startswith("metrics-")] == [
            "metrics-000001.json"
        ]
        for i in range(4, 10):
            run.log(step=i, loss=float(i))
        assert len([k for k in run_keys(ledger, run.id) if k.startswith("metrics-")]) == 2
        assert len(run.metric_history("loss")) == 10  # pending rows count too
    got = reopen(ledger).get(run.id)
    assert [v for _s, v, _t in got.metric_history("loss")] == [float(i) for i in range(10)]
    assert got.metric_stats["loss"] == MetricStats(9.0, 0.0, 9.0, 9, 10)


def test_unfinished_run_history_survives_a_missing_chunk(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run read while unfinished shows every chunk that exists, even after a missing one."""
    monkeypatch.setattr(mlledger.runs.run, "METRIC_CHUNK", 2)
    with ledger.run("r") as run:
        for i in range(6):
            run.log(step=i, loss=float(i))
        os.remove(Path(ledger.url) / day_path(run.id) / "metrics-000002.json")
        live = reopen(ledger).get(run.id)
        assert [s for s, _v, _t in live.metric_history("loss")] == [0, 1, 4, 5]


def test_non_numeric_metric_is_a_warning(ledger: Ledger) -> None:
    """A metric value that is not a number is skipped with a warning; the others are kept."""
    with ledger.run("r") as run:
        run.log(step=1, loss=0.5, label="cat", acc=None)
    got = reopen(ledger).get(run.id)
    assert got.metrics == {"loss": 0.5}
    assert any("label" in w and "not a number" in w for w in got.warnings)
    assert any("acc" in w for w in got.warnings)


def test_a_crash_loses_at_most_the_last_metric_chunk(ledger: Ledger, tmp_path: Path) -> None:
    """A process killed mid-run keeps every metric chunk written before; it reads as incomplete."""
    script = (
        "import sys, time, mlledger, mlledger.runs.run\n"
        "mlledger.runs.run.METRIC_CHUNK = 3\n"
        "led = mlledger.Ledger(sys.argv[1])\n"
        "with led.run('doomed') as run:\n"
        "    for i in range(8):\n"
        "        run.log(step=i, loss=float(i))\n"
        "    print(run.id, flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, ledger.url],
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert is_run_id(run_id)
        live = reopen(ledger).get(run_id)
        assert live.status == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    got = reopen(ledger).get(run_id)
    assert got.status == "incomplete"
    assert got.ended_at is None
    assert [s for s, _v, _t in got.metric_history("loss")] == [0, 1, 2, 3, 4, 5]


def test_stale_run_from_another_host_is_incomplete(ledger: Ledger) -> None:
    """A run with no end whose heartbeat is older than the timeout reads as incomplete."""
    from mlledger.records import to_iso, utcnow

    old = utcnow().replace(year=utcnow().year - 1)
    run = Run(
        ledger,
        {
            "id": "01" + "0" * 24,
            "name": "x",
            "host": "elsewhere",
            "started_at": to_iso(old),
            "process": {"pid": 1},
        },
    )
    run.resolve_status()
    assert run.status == "incomplete"
    assert run.status_reason is not None
    assert "no sign of life from elsewhere" in run.status_reason
    fresh = Run(
        ledger,
        {
            "id": "01" + "0" * 24,
            "name": "x",
            "host": "elsewhere",
            "started_at": to_iso(utcnow()),
            "process": {"pid": 1},
        },
    )
    fresh.resolve_status()
    assert fresh.status == "running"
    assert fresh.status_reason is None


# ---------------------------------------------------------------------------
# outcome


def test_failed_block_records_error_and_reraises_the_same_exception(ledger: Ledger) -> None:
    """An exception in a block marks the run failed (type, message, traceback) and propagates."""
    err = ValueError("bad batch")
    with pytest.raises(ValueError) as info, ledger.run("r") as run:
        raise err
    assert info.value is err
    got = reopen(ledger).get(run.id)
    assert got.status == "failed"
    assert got.error is not None
    assert got.error.type == "ValueError"
    assert got.error.message == "bad batch"
    assert "raise err" in got.error.traceback
    assert "ValueError: bad batch" in got.error.traceback
    assert got.ended_at is not None


def test_failed_tracked_call_reraises_unchanged(ledger: Ledger) -> None:
    """A tracked call's own exception propagates as the same object; the run is failed."""

    class TrainingError(RuntimeError):
        pass

    err = TrainingError("diverged")

    @ledger.tracked
    def train() -> None:
        raise err

    with pytest.raises(TrainingError) as info:
        train()
    assert info.value is err
    got = ledger.get(_last_run_id(ledger))
    assert got.status == "failed"
    assert got.error is not None
    assert got.error.type == f"{__name__}.{TrainingError.__qualname__}"
    assert got.error.message == "diverged"
    assert got.error.summary == f"{got.error.type}: diverged"
    assert "return" not in got.outputs
    # the stored traceback starts at the user's frame, not at mlledger's wrapper
    frames = [ln for ln in got.error.traceback.splitlines() if ln.strip().startswith("File ")]
    assert frames
    assert __file__ in frames[0]
    assert not any(os.path.join("mlledger", "runs.py") in f for f in frames)


def test_keyboard_interrupt_marks_the_run_interrupted(ledger: Ledger) -> None:
    """Ctrl-C inside a run marks it ``interrupted`` and still propagates."""
    with pytest.raises(KeyboardInterrupt), ledger.run("r") as run:
        raise KeyboardInterrupt
    got = reopen(ledger).get(run.id)
    assert got.status == "interrupted"
    assert got.error is not None
    assert got.error.type == "KeyboardInterrupt"
    assert got.error.summary == "KeyboardInterrupt"  # no dangling ": "


@pytest.mark.parametrize(
    ("code", "status"), [(0, "finished"), (None, "finished"), (2, "failed"), ("bye", "failed")]
)
def test_sys_exit_status(ledger: Ledger, code: Any, status: str) -> None:
    """sys.exit(0) inside a run is a finished run; any other exit code is a failed one."""
    with pytest.raises(SystemExit), ledger.run("r") as run:
        sys.exit(code)
    got = reopen(ledger).get(run.id)
    assert got.status == status
    assert (got.error is None) == (status == "finished")


def test_exception_whose_str_raises_is_still_recorded(ledger: Ledger) -> None:
    """An exception that cannot be printed still fails the run and propagates unchanged."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    err = Unprintable()
    with pytest.raises(Unprintable) as info, ledger.run("r") as run:
        raise err
    assert info.value is err
    got = reopen(ledger).get(run.id)
    assert got.status == "failed"
    assert got.error is not None
    assert "Unprintable" in got.error.type


def test_run_params_and_tags_must_be_dicts(ledger: Ledger) -> None:
    """ledger.run(params=[...]) is a TypeError saying params takes a dict."""
    with pytest.raises(TypeError, match="dict"), ledger.run("r", params=[1, 2]):  # type: ignore[arg-type]
        pass
    with pytest.raises(TypeError, match="tags"), ledger.run("r", tags="team=cv"):  # type: ignore[arg-type]
        pass
    assert list(ledger.store.backend.list("runs")) == []


def test_a_policy_is_the_only_refusal(tmp_path: Path, workdir: Path) -> None:
    """A store requiring a message refuses runs without one (block and tracked), and only those."""
    import json

    root = tmp_path / "strict"
    root.mkdir()
    (root / "mlledger.json").write_text(
        json.dumps(
            {
                "format": 1,
                "hash": "xxh128",
                "created": "2024-01-01T00:00:00.000000Z",
                "created_by": "test",
                "policy": {"require_message": True},
            }
        )
    )
    ledger = Ledger(str(root))
    with pytest.raises(PolicyError, match="message"), ledger.run("r"):
        pytest.fail("the block must not run")
    with ledger.run("r", message="why") as run:
        pass
    assert run.status == "finished"

    @ledger.tracked
    def silent() -> int:
        return 1

    @ledger.tracked(message="a reason")
    def explained() -> int:
        return 2

    with pytest.raises(PolicyError):
        silent()
    assert explained() == 2


def test_non_integer_step_is_a_warning(ledger: Ledger) -> None:
    """A metric step that is not an integer is replaced by the next step, with a warning."""
    with ledger.run("r") as run:
        run.log(step=5, loss=1.0)
        run.log(step="later", loss=0.5)  # type: ignore[arg-type]
        run.log(step=7.0, loss=0.25)  # type: ignore[arg-type]
    got = reopen(ledger).get(run.id)
    assert [s for s, _v, _t in got.metric_history("loss")] == [5, 6, 7]
    assert any("step" in w and "later" in w for w in got.warnings)


def test_gpu_memory_is_recorded_when_torch_is_imported(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With torch already imported and CUDA in use, the run records peak GPU memory."""
    import types

    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        is_initialized=lambda: True,
        max_memory_allocated=lambda: 123_456,
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    with ledger.run("r") as run:
        pass
    assert reopen(ledger).get(run.id).resources["gpu_peak_memory_bytes"] == 123_456


def test_resources_are_recorded(ledger: Ledger) -> None:
    """A run records wall time, CPU user/system time and peak RSS."""
    with ledger.run("r") as run:
        t = time.perf_counter()
        c = time.process_time()
        while time.perf_counter() - t < 0.05 or time.process_time() - c < 0.05:
            pass
    res = reopen(ledger).get(run.id).resources
    assert res["wall_s"] >= 0.05
    assert res["cpu_user_s"] + res["cpu_system_s"] >= 0.03
    assert res["peak_rss_bytes"] > 0
    assert "gpu_peak_memory_bytes" not in res


# ---------------------------------------------------------------------------
# context: threads, tasks, processes


def test_threads_each_see_their_own_current_run(ledger: Ledger) -> None:
    """Runs started in different threads at once do not see each other as current."""
    barrier = threading.Barrier(3)
    seen: dict[int, tuple[str, str | None, str | None]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with ledger.run(f"t{i}") as run:
                barrier.wait(timeout=10)
                cur = mlledger.current_run()
                barrier.wait(timeout=10)
                seen[i] = (run.id, cur.id if cur else None, run.parent_id)
        except BaseException as e:
            errors.append(e)

    with ledger.run("main") as main:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert mlledger.current_run() is main
    assert not errors
    assert len({v[0] for v in seen.values()}) == 3
    for run_id, cur_id, parent in seen.values():
        assert cur_id == run_id
        assert parent is None  # a new thread starts with an empty context


def test_asyncio_tasks_each_see_their_own_current_run(ledger: Ledger) -> None:
    """Tracked coroutines run as concurrent tasks each see their own current run."""

    @ledger.tracked
    async def step(i: int) -> list[str]:
        run = mlledger.current_run()
        assert run is not None
        ids = [run.id]
        for _ in range(3):
            await asyncio.sleep(0.005)
            cur = mlledger.current_run()
            assert cur is not None
            ids.append(cur.id)
        return ids

    async def main() -> list[list[str]]:
        with ledger.run("main") as top:
            got = await asyncio.gather(*(step(i) for i in range(4)))
            assert mlledger.current_run() is top
        return list(got)

    results = asyncio.run(main())
    assert all(len(set(r)) == 1 for r in results)
    assert len({r[0] for r in results}) == 4


def _write_runs(url: str, worker: int, n: int) -> list[str]:
    led = Ledger(url)
    ids = []
    for i in range(n):
        with led.run(f"w{worker}", params={"worker": worker, "i": i}) as run:
            run.log(step=i, loss=float(i))
            run.save([worker, i], name="out")
        ids.append(run.id)
    return ids


def test_several_processes_write_one_store_at_once(ledger: Ledger) -> None:
    """Three processes writing five runs each into one local store: all fifteen read back."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        results = pool.starmap(_write_runs, [(ledger.url, w, 5) for w in range(3)])
    ids = [i for r in results for i in r]
    assert len(set(ids)) == 15
    fresh = reopen(ledger)
    for run_id in ids:
        got = fresh.get(run_id)
        assert got.status == "finished"
        assert fresh.load(got.outputs["out"].digest) == [got.params["worker"], got.params["i"]]


# ---------------------------------------------------------------------------
# faults: the store refuses writes


def test_unwritable_store_spools_the_run_and_push_spool_writes_it(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A store failing mid-run: result returned, warning raised, run spooled and pushed later."""
    ledger.start_delay = 30.0  # one entry per run, however slow this machine is
    broken = {"on": False}
    real_create = ledger.store.backend.create

    def create(key: str, data: bytes) -> bool:
        if broken["on"]:
            raise StoreError(f"simulated: the store refuses {key}")
        return real_create(key, data)

    ledger.store.backend.create = create  # type: ignore[method-assign]

    seen: dict[str, str] = {}

    @ledger.tracked
    def train(n: int) -> list[int]:
        broken["on"] = True
        run = mlledger.current_run()
        assert run is not None
        seen["id"] = run.id
        run.log(loss=0.1)
        return list(range(n))

    with pytest.warns(LedgerWarning, match="spool"):
        assert train(4) == [0, 1, 2, 3]
    run_id = seen["id"]
    raw = Store(ledger.url)
    with pytest.raises(NotFoundError):
        raw.read_entry(whole_key(run_id))  # a short run's one entry
    # still readable through the ledger that spooled it
    assert ledger.get(run_id).status == "finished"

    broken["on"] = False
    assert ledger.push_spool() > 0
    assert raw.read_entry(whole_key(run_id))
    got = Ledger(ledger.url).get(run_id)
    assert got.status == "finished"
    assert got.metrics == {"loss": 0.1}
    assert any("spool" in w for w in got.warnings)
    assert Ledger(ledger.url).load(got.outputs["return"].digest) == [0, 1, 2, 3]
    assert ledger.push_spool() == 0


def test_unwritable_store_at_start_keeps_the_block_running(ledger: Ledger) -> None:
    """A store that refuses every write: the block still runs and the run is spooled."""

    def create(key: str, data: bytes) -> bool:
        raise StoreError("simulated: read-only bucket")

    ledger.store.backend.create = create  # type: ignore[method-assign]
    with pytest.warns(LedgerWarning, match="spool"), ledger.run("r") as run:
        run.log(loss=1.0)
    assert ledger.get(run.id).status == "finished"


def test_a_cloud_client_error_mid_run_spools_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials that stop working during a run: the client's own exception (botocore's
    NoCredentialsError, not an OSError) becomes an AccessError at the backend, so the run
    is spooled as for any store failure and the user's result is returned."""
    botocore = pytest.importorskip("botocore.exceptions")
    with fast_ledger("memory", tmp_path, start_delay=30.0) as ledger:  # behind FsspecBackend
        _spool_a_client_error(ledger, botocore, monkeypatch)


def _spool_a_client_error(ledger: Ledger, botocore: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = ledger.store.backend.fs  # type: ignore[attr-defined]
    real = fs.pipe_file
    broken = {"on": False}

    def pipe_file(*args: Any, **kwargs: Any) -> Any:
        if broken["on"]:
            raise botocore.NoCredentialsError()
        return real(*args, **kwargs)

    monkeypatch.setattr(fs, "pipe_file", pipe_file)  # the process-wide memory filesystem

    @ledger.tracked
    def train(n: int) -> list[int]:
        broken["on"] = True
        return list(range(n))

    with pytest.warns(LedgerWarning, match="spool"):
        assert train(3) == [0, 1, 2]
    broken["on"] = False
    assert ledger.push_spool() > 0
    run = Ledger(ledger.url).runs(limit=1)[0]
    assert run.status == "finished"
    assert any("NoCredentialsError" in w for w in run.warnings)


def test_store_and_spool_both_failing_still_returns_the_result(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When neither store nor spool takes the run, the user's result is still returned, loudly."""
    broken = {"on": False}
    real_create = ledger.store.backend.create

    def create(key: str, data: bytes) -> bool:
        if broken["on"]:
            raise StoreError("simulated: the store refuses writes")
        return real_create(key, data)

    ledger.store.backend.create = create  # type: ignore[method-assign]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")

    @ledger.tracked
    def train() -> str:
        broken["on"] = True
        monkeypatch.setenv("XDG_DATA_HOME", str(blocker))  # the spool cannot be made
        return "result"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert train() == "result"
    assert any(
        issubclass(w.category, LedgerWarning) and "not be recorded" in str(w.message)
        for w in caught
    )

    # broken from the start: the call still returns its result, with a warning (the start
    # entry is deferred, so the refusal surfaces at the end; with start_delay=0, at the start)
    with pytest.warns(LedgerWarning, match="not (be )?recorded"):
        assert train() == "result"
    ledger.start_delay = 0  # the start entry written at once: refused at once, run untracked
    with pytest.warns(LedgerWarning, match="is not recorded"):
        assert train() == "result"
    block = ledger.run("block")
    with pytest.warns(LedgerWarning, match="not recorded"):
        run = block.__enter__()
    run.log(loss=1.0)
    run.save([1], name="v")
    block.__exit__(None, None, None)
    assert run.status == "finished"

    err = ValueError("mine")

    @ledger.tracked
    def boom() -> None:
        raise err

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LedgerWarning)
        with pytest.raises(ValueError) as info:
            boom()
    assert info.value is err


def test_run_log_never_raises_when_metrics_cannot_be_written(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run.log() in a training loop keeps going when neither store nor spool takes a chunk."""
    monkeypatch.setattr(mlledger.runs.run, "METRIC_CHUNK", 2)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    real_create = ledger.store.backend.create
    broken = {"on": False}

    def create(key: str, data: bytes) -> bool:
        if broken["on"]:
            raise StoreError("simulated: the store refuses writes")
        return real_create(key, data)

    ledger.store.backend.create = create  # type: ignore[method-assign]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ledger.run("r") as run:
            broken["on"] = True
            monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
            for i in range(6):
                run.log(step=i, loss=float(i))
    assert run.metrics == {"loss": 5.0}
    assert any("metric chunk" in str(w.message) for w in caught)
    assert any("metric chunk" in w for w in run.warnings)


def test_run_repr_and_equality(ledger: Ledger) -> None:
    """A Run shows its id, name and status; runs compare by id."""
    with ledger.run("r") as run:
        assert "running" in repr(run)
    again = reopen(ledger).get(run.id)
    assert again == run
    assert hash(again) == hash(run)
    assert repr(again) == f"<Run {run.id} 'r' finished>"
    assert isinstance(again.inputs, dict)
    assert isinstance(again.outputs, dict)
    assert all(isinstance(a, Artifact) for a in again.inputs.values())


def test_wraps_tracked_twice_is_two_runs(ledger: Ledger) -> None:
    """A tracked function wrapped by functools.partial still records its bound arguments."""

    @ledger.tracked
    def f(a: int, b: int = 2) -> int:
        return a + b

    p = functools.partial(f, b=5)
    assert p(1) == 6
    assert ledger.get(_last_run_id(ledger)).params == {"a": 1, "b": 5}


def test_short_run_writes_one_entry_holding_the_whole_record(ledger: Ledger) -> None:
    """A run shorter than start_delay writes one file, no folder, which reads back whole."""
    ledger.start_delay = 30.0
    with ledger.run("quick", params={"lr": 0.1}, tags={"team": "cv"}) as run:
        run.log(loss=0.5)
    assert ledger.store.backend.list_dir(day_path(run.id)) == []
    assert run_keys(ledger, run.id) == [f"{run.id}.json"]
    got = reopen(ledger).get(run.id)
    assert (got.name, got.status, got.params, got.tags) == (
        "quick",
        "finished",
        {"lr": 0.1},
        {"team": "cv"},
    )
    assert got.metrics == {"loss": 0.5}
    assert reopen(ledger).runs(name="quick")[0].id == run.id


def _wait_for_start_entry(ledger: Ledger, run: Run) -> None:
    deadline = time.monotonic() + 10
    while "start.json" not in ledger.store.backend.list_dir(day_path(run.id)):
        assert time.monotonic() < deadline, "start entry never written"
        time.sleep(0.02)


def test_long_run_writes_its_start_while_it_runs(ledger: Ledger) -> None:
    """A run that outlives start_delay has its start entry in the store while still running."""
    ledger.start_delay = 0.05
    with ledger.run("slow") as run:
        _wait_for_start_entry(ledger, run)
        assert reopen(ledger).get(run.id).status == "running"
    assert reopen(ledger).get(run.id).status == "finished"


def test_a_loop_of_short_runs_does_not_wake_the_scheduler_each_run(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Short runs in a loop never need their deferred start: the scheduler thread sleeps on
    instead of being woken (a thread switch) for every run."""
    from mlledger.runs.heartbeat import _heartbeat

    ledger.start_delay = 30.0
    with ledger.run("first"):
        pass
    woken: list[int] = []
    real = _heartbeat.cond.notify
    monkeypatch.setattr(_heartbeat.cond, "notify", lambda n=1: (woken.append(n), real(n)))
    for _ in range(200):
        with ledger.run("quick"):
            pass
    assert len(woken) <= 2


def test_a_shorter_start_delay_after_a_long_one_still_falls_due(ledger: Ledger) -> None:
    """After runs with a long start delay, a run with a short one still gets its start entry
    on time (the sleeping scheduler is woken for it)."""
    ledger.start_delay = 30.0
    for _ in range(20):
        with ledger.run("quick"):
            pass
    ledger.start_delay = 0.05
    with ledger.run("slow") as run:
        _wait_for_start_entry(ledger, run)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_has_a_scheduler_of_its_own(ledger: Ledger) -> None:
    """After a fork (a multiprocessing pool), the child's deferred starts are written on
    time, it does not heartbeat the parent's runs, and its runs name its own process."""
    ledger.start_delay = 0.05
    with ledger.run("parent") as parent:
        _wait_for_start_entry(ledger, parent)
        time.sleep(0.1)  # the parent's scheduler thread sleeps in its condition
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            report = {}
            try:
                report["inherited"] = len(mlledger.runs.heartbeat._heartbeat.runs)
                with ledger.run("child-quick"):
                    pass
                time.sleep(0.3)  # the child's scheduler goes to sleep
                with ledger.run("child-long") as child:
                    _wait_for_start_entry(ledger, child)
                    report["proc_start"] = child.record["process"]["proc_start"]
                    report["pid"] = child.record["process"]["pid"]
                with contextlib.suppress(OSError):  # Linux: this process's start, read here
                    stat = Path("/proc/self/stat").read_bytes()
                    report["own_start"] = int(stat.rsplit(b")", 1)[1].split()[19])
                report["ok"] = True
            except BaseException as e:
                report["error"] = repr(e)
            finally:
                os.write(w, json.dumps(report).encode())
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            report = json.loads(f.read())
        os.waitpid(pid, 0)
    assert report.get("ok"), report
    assert report["inherited"] == 0
    assert report["pid"] == pid
    assert report["proc_start"] == report.get("own_start")


def test_start_delay_zero_writes_the_start_at_once(ledger: Ledger) -> None:
    """With start_delay=0 the start entry exists as soon as the run has begun."""
    ledger.start_delay = 0
    with ledger.run("eager") as run:
        assert "start.json" in ledger.store.backend.list_dir(day_path(run.id))


# -- binding a tracked call's arguments ---------------------------------------------------


def _plain(a: Any, b: Any, c: Any = 3, d: Any = None) -> None: ...
def _varargs(a: Any, *rest: Any, k: Any = 1, **more: Any) -> None: ...
def _posonly(a: Any, /, b: Any = 2) -> None: ...
def _kwonly(a: Any, *, b: Any, c: Any = 3) -> None: ...
def _nothing() -> None: ...


_SIGNATURES = [_plain, _varargs, _posonly, _kwonly, _nothing]


def _reference_params(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What Signature.bind + apply_defaults gives (the slow path's rules), or the TypeError."""
    import inspect

    sig = inspect.signature(fn)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError:
        return TypeError
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for k, v in bound.arguments.items():
        if sig.parameters[k].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(v)
        else:
            out[k] = v
    return list(out.items())  # order matters: params are recorded in signature order


@given(
    fn=st.sampled_from(_SIGNATURES),
    args=st.lists(st.integers(0, 9), max_size=6).map(tuple),
    kwargs=st.dictionaries(st.sampled_from(["a", "b", "c", "d", "k", "z", "rest"]),
                           st.integers(0, 9), max_size=4),
)
def test_tracked_binding_matches_signature_bind(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """The fast binder of plain signatures gives exactly what Signature.bind gives, in the
    same order, for every call form; a bad call is a TypeError either way."""
    import inspect

    binder = mlledger.runs.binder.Binder(inspect.signature(fn), frozenset())
    try:
        got: Any = list(binder.params(args, kwargs).items())
    except TypeError:
        got = TypeError
    assert got == _reference_params(fn, args, kwargs)


def test_tracked_binding_fast_path_is_taken_for_plain_signatures() -> None:
    """Plain parameters take the hand-made path; *args, keyword-only and self do not."""
    import inspect

    assert mlledger.runs.binder.Binder(inspect.signature(_plain), frozenset()).fast
    for fn in (_varargs, _posonly, _kwonly):
        assert not mlledger.runs.binder.Binder(inspect.signature(fn), frozenset()).fast
    assert not mlledger.runs.binder.Binder(inspect.signature(_plain), frozenset({"c"})).fast
