"""Files a run opens: reads are inputs, writes outputs, seen through one audit hook."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.runs import entry_run_id, open_ledger, reopen
from helpers.servers import StoreSpec

import mlledger
from mlledger import AccessError, Ledger
from mlledger.capture import files as _files


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A folder outside the working directory, in the temp folder (removed afterwards)."""
    d = Path(tempfile.mkdtemp(prefix="mlledger-outside-"))
    assert not str(d).startswith(str(tmp_path / "work"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_reads_are_inputs_and_writes_are_outputs(store_spec: StoreSpec, workdir: Path) -> None:
    """On every store kind, a file read in the run is an input and a file written an output."""
    ledger = open_ledger(store_spec)
    (workdir / "data.csv").write_text("a,b\n1,2\n")
    with ledger.run("r") as run:
        rows = Path("data.csv").read_text().splitlines()
        with open("model.txt", "w") as f:
            f.write(str(len(rows)))
    got = reopen(ledger).get(run.id)
    assert set(got.inputs) == {"data.csv"}
    assert set(got.outputs) == {"model.txt"}
    assert got.inputs["data.csv"].kind == "file"
    assert got.inputs["data.csv"].path == "data.csv"
    assert ledger.store.get(got.inputs["data.csv"].digest) == b"a,b\n1,2\n"
    assert ledger.store.get(got.outputs["model.txt"].digest) == b"2"


def test_outputs_are_hashed_at_the_end(ledger: Ledger) -> None:
    """A file overwritten several times during the run is recorded with its final content."""
    with ledger.run("r") as run:
        for i in range(3):
            Path("model.pt").write_text(f"epoch {i}")
    got = reopen(ledger).get(run.id)
    assert ledger.store.get(got.outputs["model.pt"].digest) == b"epoch 2"
    assert "model.pt" not in got.inputs


def test_file_written_then_read_back_is_an_output_only(ledger: Ledger) -> None:
    """A file the run wrote and then read is an output, not an input."""
    with ledger.run("r") as run:
        Path("cache.json").write_text("{}")
        assert Path("cache.json").read_text() == "{}"
    got = reopen(ledger).get(run.id)
    assert "cache.json" in got.outputs
    assert "cache.json" not in got.inputs


def test_file_read_then_overwritten_records_what_was_read(ledger: Ledger, workdir: Path) -> None:
    """A file read and then overwritten: the input is the content read, the output the new one."""
    (workdir / "state.txt").write_text("before")
    with ledger.run("r") as run:
        old = Path("state.txt").read_text()
        Path("state.txt").write_text(old + " and after")
    got = reopen(ledger).get(run.id)
    assert ledger.store.get(got.inputs["state.txt"].digest) == b"before"
    assert ledger.store.get(got.outputs["state.txt"].digest) == b"before and after"


def test_append_mode_counts_as_a_write(ledger: Ledger, workdir: Path) -> None:
    """Opening with "a" or "r+" is a write: the file is an output."""
    (workdir / "log.txt").write_text("1\n")
    (workdir / "rw.bin").write_bytes(b"abc")
    with ledger.run("r") as run:
        with open("log.txt", "a") as f:
            f.write("2\n")
        with open("rw.bin", "r+b") as f:
            f.write(b"X")
    got = reopen(ledger).get(run.id)
    assert ledger.store.get(got.outputs["log.txt"].digest) == b"1\n2\n"
    assert ledger.store.get(got.outputs["rw.bin"].digest) == b"Xbc"


def test_os_open_is_seen(ledger: Ledger, workdir: Path) -> None:
    """Low-level os.open() reads and writes are seen too."""
    (workdir / "raw.bin").write_bytes(b"raw")
    with ledger.run("r") as run:
        fd = os.open("raw.bin", os.O_RDONLY)
        os.close(fd)
        fd = os.open("new.bin", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"new")
        os.close(fd)
    got = reopen(ledger).get(run.id)
    assert "raw.bin" in got.inputs
    assert "new.bin" in got.outputs


def test_files_opened_in_a_thread_started_in_the_run_are_captured(
    ledger: Ledger, workdir: Path
) -> None:
    """A thread started inside the run (no context of its own) still reports to the run."""
    (workdir / "shard.csv").write_text("x")

    def work() -> None:
        Path("shard.csv").read_text()
        Path("thread-out.txt").write_text("done")

    with ledger.run("r") as run:
        t = threading.Thread(target=work)
        t.start()
        t.join()
    got = reopen(ledger).get(run.id)
    assert "shard.csv" in got.inputs
    assert "thread-out.txt" in got.outputs


def test_threads_started_in_concurrent_runs_report_to_their_own_run(
    ledger: Ledger, workdir: Path
) -> None:
    """Two runs active at once (in two threads) each start a worker thread: each worker's
    files go to the run it was started in; a worker started in a child run reports to the
    child, not the parent."""
    for i in range(2):
        (workdir / f"in{i}.txt").write_text(str(i))
    both_in = threading.Barrier(2)
    ids: dict[int, str] = {}

    def job(i: int) -> None:
        with ledger.run(f"job{i}") as run:
            both_in.wait()  # both runs are active from here on

            def work() -> None:
                Path(f"in{i}.txt").read_text()
                Path(f"out{i}.txt").write_text("x")

            t = threading.Thread(target=work)
            t.start()
            t.join()
            both_in.wait()
        ids[i] = run.id

    jobs = [threading.Thread(target=job, args=(i,)) for i in range(2)]
    for t in jobs:
        t.start()
    for t in jobs:
        t.join()
    fresh = reopen(ledger)
    for i in range(2):
        got = fresh.get(ids[i])
        assert (sorted(got.inputs), sorted(got.outputs)) == ([f"in{i}.txt"], [f"out{i}.txt"])

    @ledger.tracked
    def child() -> None:
        t = threading.Thread(target=lambda: Path("in1.txt").read_text())
        t.start()
        t.join()

    with ledger.run("parent") as parent:
        child()
    fresh = reopen(ledger)
    assert fresh.get(parent.id).inputs == {}
    (kid,) = fresh.runs(name=child.__qualname__)
    assert sorted(kid.inputs) == ["in1.txt"]


def test_files_named_by_path_arguments_and_written_by_c_code_are_outputs(
    ledger: Ledger, workdir: Path
) -> None:
    """torch.save and to_parquet write through C and raise no audit event; a file such a
    call creates or changes under a path argument is still an output. A file it overwrote
    without reading it is no input; one it read first (here through Python) stays one."""
    torch = pytest.importorskip("torch")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")

    @ledger.tracked
    def train(out_path: str, table: str, log: str, optimizer: str = "adam") -> None:
        torch.save(torch.ones(3), out_path)
        pd.DataFrame({"a": [1, 2]}).to_parquet(table)
        old = Path(log).read_text()
        pd.DataFrame({"old": [old]}).to_csv(log)  # pandas writes .csv through Python: seen

    (workdir / "table.parquet").write_bytes(b"old table")
    (workdir / "log.csv").write_text("old log")
    train("model.pt", "table.parquet", "log.csv")
    run = reopen(ledger).get(_last_run_id(ledger))
    assert sorted(run.outputs) == ["log.csv", "model.pt", "table.parquet"]
    assert ledger.store.get(run.outputs["model.pt"].digest) == (workdir / "model.pt").read_bytes()
    assert "table" not in run.inputs  # overwritten unread: its old bytes were never used
    assert ledger.store.get(run.inputs["log"].digest) == b"old log"
    assert "adam" not in run.outputs  # a string that names no file stays a param

    train("model.pt", "table.parquet", "log.csv")  # same bytes again: still this run's outputs
    again = reopen(ledger).get(_last_run_id(ledger))
    assert again.outputs["model.pt"].digest == run.outputs["model.pt"].digest

    with ledger.run("block", params={"out": "frame.parquet", "unused": "never.pt"}) as block:
        pd.DataFrame({"b": [3]}).to_parquet("frame.parquet")
    got = reopen(ledger).get(block.id)
    assert sorted(got.outputs) == ["frame.parquet"]


def test_path_arguments_resolve_where_the_run_started(ledger: Ledger, workdir: Path) -> None:
    """A relative path argument names the file in the folder the run started in: a chdir
    during the run does not make another folder's file of that name an output."""
    for d in ("a", "b"):
        (workdir / d).mkdir()
        (workdir / d / "config.yaml").write_text(d)
    os.chdir(workdir / "a")

    @ledger.tracked
    def step(cfg: str) -> None:
        Path(cfg).read_text()
        os.chdir(workdir / "b")
        (workdir / "b" / "config.yaml").write_text("changed")

    try:
        step("config.yaml")
    finally:
        os.chdir(workdir)
    run = reopen(ledger).get(_last_run_id(ledger))
    assert run.outputs == {}
    assert ledger.store.get(run.inputs["cfg"].digest) == b"a"


def test_a_returned_path_is_an_output_only(ledger: Ledger, workdir: Path) -> None:
    """A function that writes a file (through C) and returns its path: the file is an output
    under its name and as return, never the run's own input."""
    torch = pytest.importorskip("torch")

    @ledger.tracked
    def save(path: str) -> str:
        torch.save(torch.ones(2), path)
        return path

    save("model.pt")
    run = reopen(ledger).get(_last_run_id(ledger))
    assert run.inputs == {}
    assert sorted(run.outputs) == ["model.pt", "return"]
    assert run.outputs["model.pt"].digest == run.outputs["return"].digest


def test_path_argument_outputs_follow_the_capture_settings(tmp_path: Path, workdir: Path) -> None:
    """With capture_files off, or a path excluded, a path argument's file is no output."""
    torch = pytest.importorskip("torch")

    def save(path: str) -> None:
        torch.save(torch.ones(2), path)

    for led in (Ledger(tmp_path / "s1", capture_files=False),
                Ledger(tmp_path / "s2", capture_exclude=["*.ckpt"])):
        led.tracked(save)("model.ckpt")
        run = reopen(led).get(_last_run_id(led))
        assert run.outputs == {}


def test_a_shared_pool_worker_is_not_the_run_that_started_it(
    ledger: Ledger, workdir: Path
) -> None:
    """A pool worker started in run A and then used by run B (both active) does not report
    B's files to A: a pool serves whichever run submits."""
    import concurrent.futures

    (workdir / "a.csv").write_text("a")
    (workdir / "b.csv").write_text("b")
    pool = concurrent.futures.ThreadPoolExecutor(1)
    both = threading.Barrier(2)
    ids: dict[str, str] = {}

    def run_a() -> None:
        with ledger.run("a") as run:
            pool.submit(lambda: Path("a.csv").read_text()).result()
            both.wait()
            both.wait()  # b reads through the same worker meanwhile
        ids["a"] = run.id

    def run_b() -> None:
        with ledger.run("b") as run:
            both.wait()
            pool.submit(lambda: Path("b.csv").read_text()).result()
            both.wait()
        ids["b"] = run.id

    threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.shutdown()
    assert "b.csv" not in reopen(ledger).get(ids["a"]).inputs


def test_a_thread_does_not_keep_its_run_alive(ledger: Ledger) -> None:
    """The note of which run started a thread is a weak one: an ended run can be freed while
    the thread object lives on (a long-lived worker)."""
    import gc
    import weakref

    gate = threading.Event()
    try:
        with ledger.run("r") as run:
            t = threading.Thread(target=gate.wait)
            t.start()
        ref = weakref.ref(run)
        del run
        gc.collect()
        assert ref() is None
    finally:
        gate.set()
        t.join()


def test_the_scheduler_does_not_keep_an_ended_run_alive(ledger: Ledger) -> None:
    """A run that outlived its start delay had its start written by the scheduler thread;
    once ended, that thread holds no reference to it while it sleeps."""
    import gc
    import weakref

    ledger.start_delay = 0.01
    with ledger.run("slow") as run:
        time.sleep(0.2)  # the scheduler writes the start meanwhile
    ref = weakref.ref(run)
    del run
    deadline = time.monotonic() + 10
    while True:
        gc.collect()
        if ref() is None:
            break
        assert time.monotonic() < deadline, "the scheduler thread still holds the ended run"
        time.sleep(0.05)


def test_a_raw_thread_leaves_no_dummy_thread(ledger: Ledger, workdir: Path) -> None:
    """A thread made with _thread (no threading.Thread) that opens a file during a run leaves
    no dummy Thread object behind."""
    import _thread

    (workdir / "x.txt").write_text("x")
    with ledger.run("r"):
        before = threading.active_count()
        done = threading.Event()

        def raw() -> None:
            Path("x.txt").read_text()
            done.set()

        for _ in range(5):
            done.clear()
            _thread.start_new_thread(raw, ())
            assert done.wait(10)
        time.sleep(0.05)
        assert threading.active_count() == before


def _last_run_id(ledger: Ledger) -> str:
    return max(entry_run_id(k) for k in ledger.store.backend.list("runs"))


def test_temp_folder_files_are_ignored(ledger: Ledger, outside: Path) -> None:
    """Files in the temp folder (outside the working directory) are not recorded."""
    with ledger.run("r") as run:
        (outside / "scratch.bin").write_bytes(b"tmp")
        (outside / "scratch.bin").read_bytes()
        with tempfile.NamedTemporaryFile("w") as f:
            f.write("x")
    got = reopen(ledger).get(run.id)
    assert got.inputs == {}
    assert got.outputs == {}


def test_interpreter_and_store_files_are_ignored(ledger: Ledger) -> None:
    """Imports from the standard library and the store's own files are never recorded."""
    import importlib

    with ledger.run("r") as run:
        import json

        importlib.reload(json)
        run.save([1], name="v")  # writes the store: ignored
        mlledger.current_run()
    got = reopen(ledger).get(run.id)
    assert got.inputs == {}
    assert set(got.outputs) == {"v"}


def test_importing_a_module_during_the_run_is_not_an_input(
    ledger: Ledger, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code the import system loads in a run (a helper under the cwd, mlledger) is not an input."""
    (workdir / "lazy_helper_mod.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.delitem(sys.modules, "lazy_helper_mod", raising=False)
    with ledger.run("r") as run:
        import lazy_helper_mod  # noqa: F401

        import mlledger.capture.code  # noqa: F401
    got = reopen(ledger).get(run.id)
    assert got.inputs == {}
    assert got.outputs == {}


def test_mlledger_own_files_are_ignored(ledger: Ledger) -> None:
    """Files inside mlledger's own package folder are never recorded, even read as data."""
    with ledger.run("r") as run:
        Path(mlledger.__file__).read_text()
    got = reopen(ledger).get(run.id)
    assert got.inputs == {}


def test_include_and_exclude_patterns(tmp_path: Path, workdir: Path, outside: Path) -> None:
    """``capture_exclude`` drops matching files; ``capture_include`` adds files outside the cwd."""
    ledger = Ledger(str(tmp_path / "store"), capture_include=[str(outside / "*.csv")],
                    capture_exclude=["*.log"])
    (outside / "wanted.csv").write_text("w")
    (outside / "unwanted.txt").write_text("u")
    with ledger.run("r") as run:
        (outside / "wanted.csv").read_text()
        (outside / "unwanted.txt").read_text()
        Path("debug.log").write_text("noise")
        Path("model.bin").write_text("m")
    got = reopen(ledger).get(run.id)
    assert [a.path for a in got.inputs.values()] == [str(outside / "wanted.csv")]
    assert set(got.outputs) == {"model.bin"}


def test_capture_files_false_turns_it_off(tmp_path: Path, workdir: Path) -> None:
    """capture_files=False on the ledger, the run or @tracked records no files."""
    (workdir / "in.txt").write_text("x")
    off = Ledger(str(tmp_path / "store"), capture_files=False)
    on = Ledger(str(tmp_path / "store"))

    with off.run("a") as a:
        Path("in.txt").read_text()
        Path("out-a.txt").write_text("a")
    with on.run("b", capture_files=False) as b:
        Path("in.txt").read_text()
        Path("out-b.txt").write_text("b")

    @on.tracked(capture_files=False)
    def c() -> None:
        Path("in.txt").read_text()
        Path("out-c.txt").write_text("c")

    c()
    with off.run("d", capture_files=True) as d:
        Path("in.txt").read_text()
    fresh = reopen(on)
    for run in (a, b):
        got = fresh.get(run.id)
        assert got.inputs == {}
        assert got.outputs == {}
    assert "in.txt" in fresh.get(d.id).inputs
    run_ids = {entry_run_id(k) for k in on.store.backend.list("runs")} - {a.id, b.id, d.id}
    [c_id] = run_ids
    assert fresh.get(c_id).inputs == {}
    assert fresh.get(c_id).outputs == {}


def test_explicit_save_wins_over_the_hook(ledger: Ledger) -> None:
    """A file also saved explicitly keeps its explicit name and is not recorded twice."""
    with ledger.run("r") as run:
        Path("model.bin").write_text("m")
        run.save("model.bin", name="model")
    got = reopen(ledger).get(run.id)
    assert set(got.outputs) == {"model"}


def test_file_deleted_before_it_is_hashed_is_a_warning(ledger: Ledger) -> None:
    """A file written and deleted during the run is a warning, not a failure."""
    with ledger.run("r") as run:
        Path("gone.tmp").write_text("x")
        os.remove("gone.tmp")
    got = reopen(ledger).get(run.id)
    assert got.status == "finished"
    assert "gone.tmp" not in got.outputs
    assert any("gone.tmp" in w and "deleted" in w for w in got.warnings)


def test_input_deleted_before_it_is_hashed_is_a_warning(ledger: Ledger, workdir: Path) -> None:
    """A file read in the run and deleted before the end is a warning, not silently lost."""
    (workdir / "queue.txt").write_text("job")
    with ledger.run("r") as run:
        Path("queue.txt").read_text()
        os.remove("queue.txt")
    got = reopen(ledger).get(run.id)
    assert got.status == "finished"
    assert any("queue.txt" in w for w in got.warnings)


def test_failed_opens_are_not_inputs(ledger: Ledger) -> None:
    """Probing for files that do not exist records nothing and warns about nothing."""
    with ledger.run("r") as run:
        for name in ("missing.cfg", "also/missing.json"):
            with pytest.raises(FileNotFoundError):
                open(name)
    got = reopen(ledger).get(run.id)
    assert got.inputs == {}
    assert not any("missing" in w for w in got.warnings)


@pytest.mark.parametrize("how", ["read", "write"])
def test_unreadable_file_is_a_warning(
    ledger: Ledger, workdir: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A file the store cannot read (permission denied) is a warning, not a failure."""
    (workdir / "locked.bin").write_bytes(b"x")
    real_put = ledger.store.put

    def put(path: Any, **kw: Any) -> Any:
        if str(path).endswith("locked.bin"):
            raise AccessError(f"permission denied: {path!r}; fix its permissions")
        return real_put(path, **kw)

    monkeypatch.setattr(ledger.store, "put", put)

    @ledger.tracked
    def job() -> str:
        if how == "read":
            Path("locked.bin").read_bytes()
        else:
            Path("locked.bin").write_bytes(b"y")
        return "ok"

    assert job() == "ok"
    run_id = max(entry_run_id(k) for k in ledger.store.backend.list("runs"))
    got = reopen(ledger).get(run_id)
    assert got.status == "finished"
    assert "locked.bin" not in got.inputs
    assert "locked.bin" not in got.outputs
    assert any("locked.bin" in w and "not stored" in w for w in got.warnings)


def test_a_crash_while_collecting_files_is_a_warning(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If hashing the run's files blows up, the run is still recorded, with a warning."""

    def explode(run: Any, watch: Any) -> None:
        raise RuntimeError("collector exploded")

    monkeypatch.setattr(ledger.writer, "collect_files", explode)

    @ledger.tracked
    def job() -> int:
        Path("out.txt").write_text("x")
        return 3

    assert job() == 3
    run_id = max(entry_run_id(k) for k in ledger.store.backend.list("runs"))
    got = reopen(ledger).get(run_id)
    assert got.status == "finished"
    assert any("collector exploded" in w for w in got.warnings)


def test_files_outside_runs_are_not_recorded(ledger: Ledger) -> None:
    """Files opened after a run ended belong to no run; the hook is inert outside runs."""
    with ledger.run("r") as run:
        pass
    Path("after.txt").write_text("x")
    assert _files._active == []
    got = reopen(ledger).get(run.id)
    assert got.outputs == {}


def test_nested_runs_get_their_own_files(ledger: Ledger, workdir: Path) -> None:
    """Files a tracked call opens inside a run belong to the inner run."""
    (workdir / "a.txt").write_text("a")
    (workdir / "b.txt").write_text("b")

    @ledger.tracked
    def inner() -> None:
        Path("b.txt").read_text()

    with ledger.run("outer") as outer:
        Path("a.txt").read_text()
        inner()
    fresh = reopen(ledger)
    assert set(fresh.get(outer.id).inputs) == {"a.txt"}
    inner_id = max(entry_run_id(k) for k in ledger.store.backend.list("runs")
                   if outer.id not in k)
    assert set(fresh.get(inner_id).inputs) == {"b.txt"}


def test_folder_path_name_in_subfolder_is_relative(ledger: Ledger, workdir: Path) -> None:
    """A captured file's name is its path relative to the working directory."""
    (workdir / "data" / "raw").mkdir(parents=True)
    (workdir / "data" / "raw" / "x.csv").write_text("1")
    with ledger.run("r") as run:
        (workdir / "data" / "raw" / "x.csv").read_text()
    got = reopen(ledger).get(run.id)
    assert set(got.inputs) == {os.path.join("data", "raw", "x.csv")}


# ---------------------------------------------------------------------------
# FileWatch on its own


def test_watch_wants_cwd_files_even_under_temp(tmp_path: Path, workdir: Path) -> None:
    """Under the working directory everything is wanted, even when it lies in the temp folder."""
    watch = _files.FileWatch(object(), ignore=[str(tmp_path / "store")])
    assert watch.wants(os.path.realpath(workdir / "x.csv"))
    assert not watch.wants(os.path.realpath(tmp_path / "store" / "objects" / "x"))
    assert not watch.wants("/proc/self/status")
    assert not watch.wants("/dev/null")
    assert not watch.wants(os.path.realpath(os.__file__))  # the standard library
    for system in ("/etc/passwd", "/usr/share/zoneinfo/UTC", "/run/secrets/api_key"):
        assert not watch.wants(system), system  # the OS's own files, a container's secrets
    for data in ("/run/media/alice/USB/train.csv", "/usr/share/nltk_data/corpora/x.zip"):
        assert watch.wants(data), data  # a removable drive, data kept under /usr/share


def test_a_virtualenv_inside_the_project_is_not_an_input(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interpreter folder inside the working directory (a project's own .venv) stays
    ignored; the rest of the working directory is still wanted."""
    venv = os.path.realpath(workdir / ".venv") + os.sep
    monkeypatch.setattr(_files, "_default_ignored", lambda: (venv, "/proc/"))
    watch = _files.FileWatch(object())
    assert not watch.wants(venv + "lib/python3.11/site-packages/pkg/data.txt")
    assert not watch.wants(venv + "pyvenv.cfg")
    assert watch.wants(os.path.realpath(workdir / "data.csv"))
    assert watch.wants(os.path.realpath(workdir / ".venvish" / "x.csv"))


def test_a_run_in_a_project_virtualenv_records_only_project_files(
    tmp_path: Path, workdir: Path
) -> None:
    """End to end: a script run by a .venv inside the project (made with the system's
    packages) records the data it reads, and nothing of the .venv it runs from."""
    import site
    import subprocess
    import sysconfig
    import venv

    venv.create(workdir / ".venv", system_site_packages=True, with_pip=False)
    # venv builds from the base interpreter: when the suite itself runs in a
    # virtualenv, chain this one to it (site.addsitedir also runs its .pth files,
    # so an editable mlledger imports), as a venv made from that venv would
    nested = subprocess.run(
        [str(workdir / ".venv" / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    outer = [*site.getsitepackages(), sysconfig.get_path("purelib")]
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in dict.fromkeys(outer))
    Path(nested, "_outer_env.pth").write_text(lines)
    (workdir / ".venv" / "vendored.txt").write_text("vendored")
    (workdir / "data.csv").write_text("x\n1\n")
    script = (
        "import sys, mlledger\n"
        "ledger = mlledger.Ledger(sys.argv[1])\n"
        "with ledger.run('r') as run:\n"
        "    open('data.csv').read()\n"
        "    open('.venv/vendored.txt').read()\n"
        "    open(sys.prefix + '/pyvenv.cfg').read()\n"
        "print(run.id)\n"
    )
    out = subprocess.run(
        [str(workdir / ".venv" / "bin" / "python"), "-c", script, str(tmp_path / "store")],
        cwd=workdir, capture_output=True, text=True, check=True, timeout=120,
    )
    run_id = out.stdout.split()[-1]
    got = mlledger.Ledger(tmp_path / "store").get(run_id)
    assert sorted(got.inputs) == ["data.csv"]


def test_watch_seen_orders_reads_and_writes(workdir: Path) -> None:
    """seen(): a read after a write is not a read; a write after a read hashes first."""
    hashed: list[str] = []
    watch = _files.FileWatch(object())
    watch.hash_before_write = lambda p: hashed.append(p) or "digest"
    p = str(workdir / "f")
    Path(p).write_text("x")
    watch.seen(p, writing=False)
    watch.seen(p, writing=True)
    watch.seen(p, writing=True)
    assert hashed == [p]
    assert watch.read_digests == {p: "digest"}
    q = str(workdir / "g")
    watch.seen(q, writing=True)
    watch.seen(q, writing=False)
    assert q not in watch.reads


def test_hook_never_raises_into_open(workdir: Path) -> None:
    """Whatever goes wrong inside the hook, the user's open() works."""
    watch = _files.FileWatch(object())

    def explode(path: str) -> Any:
        raise RuntimeError("hash failed")

    watch.hash_before_write = explode
    Path("f.txt").write_text("x")
    _files.watch_begin(watch)
    try:
        with open("f.txt") as f:
            f.read()
        with open("f.txt", "w") as f:
            f.write("y")
        with open(b"f.txt", "rb") as f:
            f.read()
    finally:
        _files.watch_end(watch)
    assert Path("f.txt").read_text() == "y"



def _many_files(root: Path, n: int = 300) -> Path:
    """``n`` small distinct files over three folders under ``root``."""
    for i in range(n):
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 3}" / f"{i}.bin").write_bytes(b"%s %d" % (root.name.encode(), i))
    return root


@pytest.fixture
def store_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """put_tree stores small files with 4 threads (4 idle CPUs by the load average)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))


@pytest.mark.usefixtures("store_threads")
def test_folder_stored_by_threads_adds_no_file_of_its_own(ledger: Ledger, workdir: Path) -> None:
    """Saving and using folders of many small files (stored by put_tree's worker threads)
    records just those artifacts: the store's own reads are no inputs, and no warning
    about files."""
    _many_files(workdir / "data")
    _many_files(workdir / "model")
    with ledger.run("r") as run:
        run.use("data")
        run.save("model")
    got = reopen(ledger).get(run.id)
    assert set(got.inputs) == {"data"}
    assert set(got.outputs) == {"model"}
    assert got.inputs["data"].kind == "tree"
    assert [w for w in got.warnings if "git" not in w] == []  # (the folder is no git repo)


@pytest.mark.usefixtures("store_threads")
def test_folder_argument_of_a_child_run_is_no_file_of_the_parent(
    ledger: Ledger, workdir: Path
) -> None:
    """A folder passed to a tracked call inside a run is the child's input, stored by
    threads the hook ignores: neither run records the folder's files one by one."""
    data = _many_files(workdir / "data")

    @ledger.tracked
    def train(folder: Path) -> int:
        return 1

    with ledger.run("parent") as parent:
        train(data)
    fresh = reopen(ledger)
    [child] = [r for r in fresh.runs() if r.parent_id == parent.id]
    assert set(child.inputs) == {"folder"}
    assert fresh.get(parent.id).inputs == {}
