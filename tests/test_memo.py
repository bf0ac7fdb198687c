"""Memoization: ``tracked(cache=True)`` reuses a finished run of the same call, and only then.

A call is "the same" when the function's code identity, the Python version and the
installed packages, the params and the bytes of the files the run read are the same.
Every test counts the calls that really ran: a hit must not run the function, a
miss must.  Edits to a helper module and a package's version are tested across real
processes (a fresh interpreter each), the package through a small installed
distribution (a ``.dist-info`` folder on the path, which is all the environment
capture reads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.servers import StoreSpec

import mlledger
from mlledger import Ledger
from mlledger.errors import LedgerError, LedgerWarning
from mlledger.store.cacheindex import CacheIndex

# -- helpers ---------------------------------------------------------------------------


def memo_entries(ledger: Ledger) -> list[str]:
    """Every memo entry key in the ledger's store."""
    return sorted(k for k in ledger.store.backend.list("cache") if k.endswith(".json"))


def statuses(ledger: Ledger) -> list[str]:
    """The statuses of the ledger's runs, oldest first."""
    return [r.status for r in reversed(ledger.runs())]


@dataclass
class Point:
    """A returned object that only a pickle stores."""

    x: int


#: one item per time a tracked body ran; a global, not a closure value (the values a
#: function closes over are part of its code identity: a counter there would change it)
RAN: list[str] = []


class Counter:
    """Counts the times the bodies of one test ran (through the global RAN)."""

    def __init__(self) -> None:
        RAN.clear()

    @staticmethod
    def tick() -> None:
        RAN.append("ran")

    @property
    def calls(self) -> int:
        return len(RAN)


class Model:
    """A class with a memoized method (on the default ledger)."""

    def __init__(self, w: int) -> None:
        self.w = w

    @mlledger.tracked(cache="pickle")
    def predict(self, x: int) -> int:
        RAN.append("ran")
        return self.w * x


# -- hits and misses in one process -----------------------------------------------------


def test_second_call_is_a_hit_with_a_cached_run(ledger: Ledger) -> None:
    """The same call again does not run: it returns the recorded value, and a run with
    status 'cached' naming the original carries the same params, inputs and outputs."""
    body = Counter()

    @ledger.tracked(cache=True)
    def score(data: list[int], lr: float = 0.1) -> dict[str, float]:
        RAN.append("ran")
        return {"score": sum(data) * lr}

    first = score([1, 2, 3], lr=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LedgerWarning)  # a hit is silent
        second = score([1, 2, 3], 0.5)
    assert first == second == {"score": 3.0}
    assert body.calls == 1
    cached, original = ledger.runs()
    assert (original.status, cached.status) == ("finished", "cached")
    assert cached.cached_from == original.id
    assert original.cached_from is None
    assert cached.params == original.params
    assert cached.inputs == original.inputs
    assert cached.outputs == original.outputs
    assert [r.id for r in ledger.runs(where="status = 'cached'")] == [cached.id]
    assert not ledger.diff(original, cached)


def test_param_change_is_a_miss(ledger: Ledger) -> None:
    """Another value of a param runs the function; each value then hits its own run."""
    body = Counter()

    @ledger.tracked(cache=True)
    def fit(lr: float, layers: list[int]) -> float:
        RAN.append("ran")
        return lr * sum(layers)

    assert fit(0.1, [2, 3]) == fit(0.1, [2, 3])
    assert fit(0.2, [2, 3]) == pytest.approx(1.0)
    assert fit(0.1, [2, 4]) == pytest.approx(0.6)
    assert body.calls == 3
    fit(0.2, [2, 3])
    assert body.calls == 3


def test_same_call_however_it_is_written(ledger: Ledger) -> None:
    """Positional or keyword, a default given or left out, a dict's keys in any order:
    the same call; a param named in ignore=[...] is left out of the key."""
    body = Counter()

    @ledger.tracked(cache=True, ignore=["verbose"])
    def fit(cfg: dict[str, int], lr: float = 0.1, verbose: bool = False) -> float:
        RAN.append("ran")
        return cfg["depth"] * lr

    assert fit({"depth": 3, "width": 8}) == pytest.approx(0.3)
    assert fit(cfg={"width": 8, "depth": 3}, lr=0.1) == pytest.approx(0.3)
    assert fit({"depth": 3, "width": 8}, 0.1, verbose=True) == pytest.approx(0.3)
    assert body.calls == 1


def test_array_argument_hit_and_change_in_place(ledger: Ledger) -> None:
    """A numpy argument is keyed by its bytes: the same array hits (its input digest is
    the one stored), the array changed in place is a miss."""
    body = Counter()

    @ledger.tracked(cache=True)
    def norm(a: np.ndarray) -> np.ndarray:
        RAN.append("ran")
        return a / a.sum()

    a = np.arange(1.0, 1001.0).reshape(10, 100)
    first = norm(a)
    np.testing.assert_array_equal(norm(a), first)
    np.testing.assert_array_equal(norm(np.asfortranarray(a)), first)  # other bytes: a miss
    assert body.calls == 2
    a[0, 0] = 7.0
    norm(a)
    assert body.calls == 3
    runs = ledger.runs()
    cached = next(r for r in runs if r.status == "cached")
    original = ledger.get(cached.cached_from)
    assert cached.inputs["a"].digest == original.inputs["a"].digest
    assert ledger.store.has(original.inputs["a"].digest)


def test_data_file_bytes_change_is_a_miss(ledger: Ledger, workdir: Path) -> None:
    """A path argument is keyed by the file's bytes: new bytes run the call; the old
    bytes back again reuse the first run (its memo entry still answers)."""
    body = Counter()

    @ledger.tracked(cache=True)
    def rows(path: str) -> int:
        RAN.append("ran")
        return len(Path(path).read_text().splitlines())

    data = workdir / "data.csv"
    data.write_text("a\nb\n")
    assert rows("data.csv") == rows("data.csv") == 2
    assert body.calls == 1
    data.write_text("a\nb\nc\n")
    assert rows("data.csv") == 3
    assert body.calls == 2
    data.write_text("a\nb\n")
    assert rows("data.csv") == 2
    assert body.calls == 2
    assert len(memo_entries(ledger)) == 2


def test_file_opened_inside_the_function_is_checked(ledger: Ledger, workdir: Path) -> None:
    """A file the run opened itself (not an argument) is an input too: when its bytes
    change, the recorded run no longer answers."""
    body = Counter()
    (workdir / "config.txt").write_text("depth=3")

    @ledger.tracked(cache=True)
    def depth() -> str:
        RAN.append("ran")
        return (workdir / "config.txt").read_text()

    assert depth() == depth() == "depth=3"
    assert body.calls == 1
    (workdir / "config.txt").write_text("depth=4")
    assert depth() == "depth=4"
    assert body.calls == 2


def test_output_files_are_restored_when_missing(ledger: Ledger, workdir: Path) -> None:
    """A hit puts the original run's output files back where they were, byte-identical,
    when they are missing, and leaves present files alone."""
    body = Counter()

    @ledger.tracked(cache=True)
    def build(n: int, out: str) -> str:
        RAN.append("ran")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(bytes(range(n)))
        (workdir / "log.txt").write_text(f"built {n}")
        return out

    assert build(200, "model/weights.bin") == "model/weights.bin"
    os.remove("model/weights.bin")
    os.remove("log.txt")
    got = build(200, "model/weights.bin")
    assert body.calls == 1
    assert got == "model/weights.bin"
    assert Path("model/weights.bin").read_bytes() == bytes(range(200))
    assert Path("log.txt").read_text() == "built 200"
    Path("log.txt").write_text("mine")
    build(200, "model/weights.bin")
    assert Path("log.txt").read_text() == "mine"
    assert body.calls == 1


def test_returned_path_object_comes_back_as_a_path(ledger: Ledger, workdir: Path) -> None:
    """A function returning a Path to the file it wrote gets the Path back on a hit,
    with the file restored."""

    @ledger.tracked(cache=True)
    def save(text: str) -> Path:
        p = workdir / "saved.txt"
        p.write_text(text)
        return p

    first = save("hello")
    first.unlink()
    again = save("hello")
    assert isinstance(again, Path)
    assert again == first
    assert again.read_text() == "hello"
    assert statuses(ledger) == ["finished", "cached"]


def test_mlledger_cache_0_runs_every_call(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLLEDGER_CACHE=0 turns every hit into a miss; the runs are still remembered, so a
    call without it hits."""
    body = Counter()

    @ledger.tracked(cache=True)
    def square(x: int) -> int:
        RAN.append("ran")
        return x * x

    monkeypatch.setenv("MLLEDGER_CACHE", "0")
    assert square(4) == square(4) == 16
    assert body.calls == 2
    assert len(memo_entries(ledger)) == 1  # the second run answers the same call: no entry
    monkeypatch.delenv("MLLEDGER_CACHE")
    assert square(4) == 16
    assert body.calls == 2


def test_pickled_value_needs_cache_pickle(ledger: Ledger) -> None:
    """A value stored as pickle is not unpickled with cache=True (a warning, the call
    runs); cache='pickle' loads it."""
    body = Counter()

    def make(x: int) -> Point:
        RAN.append("ran")
        return Point(x)

    safe = ledger.tracked(cache=True)(make)
    trusting = ledger.tracked(cache="pickle")(make)
    assert safe(3) == Point(3)
    with pytest.warns(LedgerWarning, match="cache='pickle'") as seen:
        assert safe(3) == Point(3)
    assert seen[0].filename == __file__  # the warning points at the user's call
    assert body.calls == 2
    assert trusting(3) == Point(3)
    assert body.calls == 2


def test_tuple_result_keeps_its_type(ledger: Ledger) -> None:
    """A returned tuple would come back as a JSON list: the memo keeps its pickle, so it
    comes back as the tuple it was (with cache='pickle')."""
    body = Counter()

    @ledger.tracked(cache="pickle")
    def pair(x: int) -> tuple[int, str]:
        RAN.append("ran")
        return x, str(x)

    assert pair(2) == (2, "2")
    again = pair(2)
    assert again == (2, "2")
    assert type(again) is tuple
    assert body.calls == 1


def test_failed_run_is_not_reused(ledger: Ledger) -> None:
    """A call that raised is not remembered: the next call runs (and raises) again."""
    body = Counter()

    @ledger.tracked(cache=True)
    def boom(x: int) -> int:
        RAN.append("ran")
        raise ValueError("no")

    for _ in range(2):
        with pytest.raises(ValueError, match="no"):
            boom(1)
    assert body.calls == 2
    assert memo_entries(ledger) == []


def test_uncacheable_argument_warns_and_runs(ledger: Ledger) -> None:
    """An argument that cannot be stored cannot be keyed: a warning, and every call runs."""
    body = Counter()

    @ledger.tracked(cache=True)
    def use(lock: Any) -> int:
        RAN.append("ran")
        return 1

    lock = threading.Lock()
    with pytest.warns(LedgerWarning, match="not memoized"):
        use(lock)
    with pytest.warns(LedgerWarning, match="not memoized"):
        use(lock)
    assert body.calls == 2


def test_method_is_keyed_on_its_instance(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A memoized method keys on its instance's state, not only on its class."""
    monkeypatch.setattr(mlledger.ledger, "_explicit_default", ledger)  # the default ledger
    body = Counter()
    assert Model(2).predict(3) == 6
    assert Model(2).predict(3) == 6
    assert body.calls == 1
    assert Model(5).predict(3) == 15
    assert body.calls == 2


def test_async_function_is_memoized(ledger: Ledger) -> None:
    """An async tracked function with cache=True awaits the body once per distinct call."""
    import asyncio

    body = Counter()

    @ledger.tracked(cache=True)
    async def fetch(n: int) -> list[int]:
        RAN.append("ran")
        await asyncio.sleep(0)
        return list(range(n))

    assert asyncio.run(fetch(3)) == asyncio.run(fetch(3)) == [0, 1, 2]
    assert body.calls == 1


def test_cached_call_inside_a_run_is_its_child(ledger: Ledger) -> None:
    """A hit inside a run is a child of that run, with its message and tags carried on."""

    @ledger.tracked(cache=True)
    def step(x: int) -> int:
        return x + 1

    step(1)
    with ledger.run("pipeline", message="nightly", tags={"team": "cv"}) as outer:
        assert step(1) == 2
    cached = ledger.runs(status="cached")[0]
    assert cached.parent_id == outer.id
    assert cached.message == "nightly"
    assert cached.tags == {"team": "cv"}


def test_cached_run_in_lineage_and_log(ledger: Ledger) -> None:
    """The cached run links the same input and output artifacts as the original, and
    the command line lists and shows it."""
    from helpers.cli import invoke

    @ledger.tracked(cache=True)
    def double(xs: list[int]) -> list[int]:
        return [2 * x for x in xs]

    double([1, 2])
    double([1, 2])
    cached, original = ledger.runs()
    out = cached.outputs["return"].digest
    producers = {r.id for r in ledger.lineage(out, direction="upstream", depth=1).runs}
    assert {cached.id, original.id} <= producers
    edges = {(e.source, e.label, e.target) for e in ledger.lineage(cached.id).edges}
    assert (cached.id, "used", cached.inputs["xs"].digest) in edges
    log = invoke("log", "--status", "cached", url=ledger.url)
    assert log.exit_code == 0
    assert cached.id[:12] in log.output
    show = invoke("show", cached.id, url=ledger.url)
    assert show.exit_code == 0
    assert f"from {original.id}" in show.output


def test_bad_cache_option_is_one_line_error(ledger: Ledger) -> None:
    """cache= takes True, False or 'pickle'; anything else names the choices."""
    with pytest.raises(LedgerError) as err:
        ledger.tracked(cache="yes")(lambda x: x)
    assert isinstance(err.value, ValueError)
    assert "True, False or 'pickle'" in str(err.value)
    assert "\n" not in str(err.value)


def test_disabled_tracking_is_a_plain_call(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLLEDGER_DISABLE=1: a memoized function is a plain call, nothing recorded."""
    body = Counter()

    @ledger.tracked(cache=True)
    def one() -> int:
        RAN.append("ran")
        return 1

    monkeypatch.setenv("MLLEDGER_DISABLE", "1")
    one()
    one()
    assert body.calls == 2
    assert memo_entries(ledger) == []


# -- a value that is gone -------------------------------------------------------------------


def test_deleted_value_is_a_miss_with_a_warning_then_a_new_entry_wins(ledger: Ledger) -> None:
    """A memo entry whose stored value gc removed is a miss with a warning; the call runs
    and its new entry (a later one for the same call) answers from then on, silently."""
    body = Counter()

    @ledger.tracked(cache=True)
    def table(n: int) -> dict[str, Any]:
        RAN.append("ran")
        return {"rows": list(range(n)), "made_by_call": len(RAN)}  # not the same bytes twice

    assert table(3) == {"rows": [0, 1, 2], "made_by_call": 1}
    digest = ledger.runs()[0].outputs["return"].digest
    ledger.store.delete(digest)
    ledger.writer.known.clear()  # this process wrote it lately: forget that
    ledger.gc(dry_run=False, grace_seconds=0)
    with pytest.warns(LedgerWarning, match="no longer in the store|cannot be read"):
        assert table(3) == {"rows": [0, 1, 2], "made_by_call": 2}
    assert body.calls == 2
    assert [k.rsplit("/", 1)[1] for k in memo_entries(ledger)] == [
        "0000000001.json",
        "0000000002.json",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", LedgerWarning)
        assert table(3) == {"rows": [0, 1, 2], "made_by_call": 2}
    assert body.calls == 2


def test_gc_of_the_run_drops_its_entry(ledger: Ledger) -> None:
    """gc deleting a run deletes its memo entries: the next call is a plain miss, and the
    store still verifies clean."""
    body = Counter()

    @ledger.tracked(cache=True)
    def total(xs: list[int]) -> int:
        RAN.append("ran")
        return sum(xs)

    total([1, 2])
    assert len(memo_entries(ledger)) == 1
    report = ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    assert len(report.runs) == 1
    assert memo_entries(ledger) == []
    assert total([1, 2]) == 3
    assert body.calls == 2
    assert ledger.verify().ok


def test_run_deleted_elsewhere_is_a_miss_with_a_warning(ledger: Ledger) -> None:
    """A memo entry whose run was deleted some other way (not by this gc) is a miss with
    a warning, never a cached run naming a run that is gone; gc then drops that entry."""
    body = Counter()

    @ledger.tracked(cache=True)
    def halve(x: int) -> float:
        RAN.append("ran")
        return x / 2

    halve(8)
    run_id = ledger.runs()[0].id
    for key in [k for k in ledger.store.backend.list("runs") if run_id in k]:
        ledger.store.backend.delete(key)
    with pytest.warns(LedgerWarning, match=f"run {run_id} it names is no longer in the store"):
        assert halve(8) == 4.0
    assert body.calls == 2
    assert len(memo_entries(ledger)) == 2
    assert all(r.cached_from is None for r in ledger.runs())
    ledger.reindex()  # the catalog forgets the deleted run, as every other machine's would
    ledger.gc(dry_run=False, grace_seconds=0)
    assert [k.rsplit("/", 1)[1] for k in memo_entries(ledger)] == ["0000000002.json"]
    assert halve(8) == 4.0
    assert body.calls == 2


def test_gc_keeps_what_a_memo_entry_needs(ledger: Ledger) -> None:
    """gc keeps the memo's own pickle of a returned tuple while the run is kept."""
    body = Counter()

    @ledger.tracked(cache="pickle")
    def pair(x: int) -> tuple[int, int]:
        RAN.append("ran")
        return x, x

    pair(1)
    ledger.writer.known.clear()
    ledger.gc(dry_run=False, grace_seconds=0)
    assert pair(1) == (1, 1)
    assert body.calls == 1


def test_damaged_entry_is_a_miss_with_a_warning(ledger: Ledger) -> None:
    """A memo entry that no longer matches its seal is never trusted: a warning, the call
    runs, and a new entry answers later calls."""
    body = Counter()

    @ledger.tracked(cache=True)
    def inc(x: int) -> int:
        RAN.append("ran")
        return x + 1

    inc(1)
    (key,) = memo_entries(ledger)
    path = ledger.store.backend.local_path(key)
    if path is None:
        pytest.skip("needs a local store to edit an entry by hand")
    doc = json.loads(Path(path).read_text())
    doc["run"] = doc["run"][:-1] + ("A" if doc["run"][-1] != "A" else "B")
    os.chmod(path, 0o644)
    Path(path).write_text(json.dumps(doc))
    with pytest.warns(LedgerWarning, match="damaged"):
        assert inc(1) == 2
    assert inc(1) == 2
    assert body.calls == 2
    assert ledger.verify().ok


def test_index_entry_is_found_with_one_read(ledger: Ledger) -> None:
    """The first memo entry of a call sits at a known key: reading it needs no listing."""

    @ledger.tracked(cache=True)
    def f(x: int) -> int:
        return x

    f(1)
    (key,) = memo_entries(ledger)
    parts = key.split("/")
    assert parts[0] == "cache"
    assert parts[-1] == "0000000001.json"
    entry = CacheIndex(ledger.store, parts[1], parts[2]).read(1)
    assert entry is not None
    assert entry["run"] == ledger.runs()[0].id


# -- across processes -----------------------------------------------------------------------

JOB = textwrap.dedent(
    """
    import json, os, sys, time
    import mlledger
    import helper

    ledger = mlledger.Ledger(sys.argv[1])
    ran = []

    @ledger.tracked(cache=True)
    def work(x):
        ran.append(x)
        time.sleep(float(os.environ.get("JOB_SLEEP", "0")))
        return helper.scale(x)

    go = os.environ.get("JOB_GO")
    while go and not os.path.exists(go):
        time.sleep(0.005)
    value = work(3)
    print(json.dumps({"value": value, "ran": len(ran)}))
    """
)


@pytest.fixture
def job(workdir: Path, ledger: Ledger) -> Any:
    """Runs the JOB script in a fresh interpreter against the test's ledger; returns
    a function giving its JSON answer (``extra_path``: more folders on its path)."""
    (workdir / "job.py").write_text(JOB)
    (workdir / "helper.py").write_text("def scale(x):\n    return x * 2\n")

    def start(extra_path: list[Path] = (), **env: str) -> subprocess.Popen[str]:  # type: ignore[assignment]
        path = [str(workdir), *map(str, extra_path), os.environ.get("PYTHONPATH", "")]
        full = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p), **env}
        return subprocess.Popen(
            [sys.executable, "job.py", ledger.url],
            cwd=workdir,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(extra_path: list[Path] = (), **env: str) -> dict[str, Any]:  # type: ignore[assignment]
        proc = start(extra_path, **env)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        return dict(json.loads(out.strip().splitlines()[-1]))

    run.start = start  # type: ignore[attr-defined]
    return run


@pytest.mark.slow
def test_helper_module_edit_is_a_miss(job: Any, workdir: Path) -> None:
    """Another process with the same code hits; an edit to a helper module the function
    uses is a miss in the next process."""
    assert job() == {"value": 6, "ran": 1}
    assert job() == {"value": 6, "ran": 0}
    (workdir / "helper.py").write_text("def scale(x):\n    return x * 10\n")
    assert job() == {"value": 30, "ran": 1}
    assert job() == {"value": 30, "ran": 0}


@pytest.mark.slow
def test_package_version_change_is_a_miss(job: Any, tmp_path: Path) -> None:
    """An installed distribution's new version is a miss (a ``.dist-info`` folder on the
    path stands for an installed package: it is what the environment capture reads)."""
    site = tmp_path / "site"
    dist = site / "fakepkg-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
    assert job([site]) == {"value": 6, "ran": 1}
    assert job([site]) == {"value": 6, "ran": 0}
    dist.rename(site / "fakepkg-2.0.dist-info")
    assert job([site]) == {"value": 6, "ran": 1}
    assert job([site]) == {"value": 6, "ran": 0}


@pytest.mark.slow
def test_two_processes_racing_on_one_call(job: Any, ledger: Ledger, tmp_path: Path) -> None:
    """Two processes finishing the same call at once: both return the value, one memo
    entry wins, and a later process hits it."""
    go = tmp_path / "go"
    procs = [job.start(JOB_GO=str(go), JOB_SLEEP="0.3") for _ in range(2)]
    time.sleep(0.5)  # both are waiting at the line
    go.write_text("")
    answers = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        answers.append(json.loads(out.strip().splitlines()[-1]))
    assert [a["value"] for a in answers] == [6, 6]
    assert len(memo_entries(ledger)) == 1
    assert job() == {"value": 6, "ran": 0}
    assert ledger.verify().ok


def test_module_level_tracked_takes_cache(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mlledger.tracked(cache=True)`` memoizes on the default ledger."""
    monkeypatch.setattr(mlledger.ledger, "_explicit_default", ledger)  # the default ledger
    body = Counter()

    @mlledger.tracked(cache=True)
    def cube(x: int) -> int:
        RAN.append("ran")
        return x**3

    assert cube(2) == cube(2) == 8
    assert body.calls == 1


def test_readme_memoization_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Memoization example runs as written: the second call is a hit."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Memoization") :]
    section = section[: section.index("\n## ")]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLLEDGER_URL", str(tmp_path / "store"))
    monkeypatch.setattr(mlledger.ledger, "_explicit_default", None)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    exec(compile(block, "README.md", "exec"), namespace)  # our own docs
    hit = namespace["hit"]
    assert hit.status == "cached"
    assert mlledger.Ledger(str(tmp_path / "store")).get(hit.cached_from).status == "finished"


@pytest.mark.slow
def test_hit_and_racing_writers_on_every_store(store_spec: StoreSpec, workdir: Path) -> None:
    """On memory, local disk, S3 and GCS: a second ledger object (another machine) hits
    the first one's run with one read, and eight writers of one memo entry at once
    leave exactly one entry."""
    from helpers.runs import open_ledger

    first, second = open_ledger(store_spec), open_ledger(store_spec)

    def twice(xs: list[int]) -> list[int]:
        RAN.append("ran")
        return [2 * x for x in xs]

    body = Counter()
    assert first.tracked(cache=True)(twice)([1, 2]) == [2, 4]
    assert second.tracked(cache=True)(twice)([1, 2]) == [2, 4]
    assert body.calls == 1
    assert [r.status for r in open_ledger(store_spec).runs()] == ["cached", "finished"]
    (key,) = memo_entries(first)
    _, function, call, _ = key.split("/")
    entry = CacheIndex(first.store, function, call).read(1)
    assert entry is not None
    doc = {k: v for k, v in entry.items() if k != "seal"}
    fresh = CacheIndex(first.store, function, "0" * 32)
    created: list[int | None] = []
    barrier = threading.Barrier(8)

    def write() -> None:
        barrier.wait()
        created.append(fresh.add(doc, lambda e: e["run"] == doc["run"]))

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created, key=str) == [1] + [None] * 7
    assert fresh.later() == []
