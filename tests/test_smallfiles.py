"""Many small files into a local store by threads: the same tree and objects as one thread,
create-only, nothing partial after a SIGKILL, concurrent writers of one tree, errors."""

from __future__ import annotations

import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fsspec.callbacks import Callback
from helpers.stores import deny_reading, make_sample_tree, memory_store, snapshot

from mlledger.errors import AccessError
from mlledger.store import Store
from mlledger.store.backends import LocalBackend
from mlledger.store.smallfiles import BATCH, SmallFiles, default_workers

#: more files than a few batches, so every worker thread gets some
MANY = 6 * BATCH + 17


def make_many(root: Path, n: int = MANY, seed: int = 0, size: int = 700) -> Path:
    """``n`` small files of random bytes over a few folders, some equal, some executable."""
    rng = random.Random(seed)
    for i in range(n):
        d = root / f"d{i % 7}" / f"e{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        data = b"same bytes\n" if i % 50 == 0 else rng.randbytes(rng.randrange(size))
        f = d / f"f{i:05d}.bin"
        f.write_bytes(data)
        if i % 13 == 0:
            f.chmod(0o755)
    return root


def store_files(store: Store) -> list[Path]:
    """Every file under the store's folder (objects, config, anything left behind)."""
    return [p for p in Path(store.backend.root).rglob("*") if p.is_file()]


def no_temp_names(store: Store) -> bool:
    """No named temp file is left anywhere in the store."""
    return not list(Path(store.backend.root).rglob(".tmp-*"))


# -- the same tree, the same objects ----------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 2, 4, 9])
def test_threads_store_the_tree_one_thread_and_a_remote_store_store(
    tmp_path: Path, concurrency: int
) -> None:
    """Whatever the thread count, a folder of many small files (with a large file, links,
    empty folders, exec bits) gets the digest a memory store gives it and restores exactly."""
    src = make_many(make_sample_tree(tmp_path / "src"))
    with memory_store() as mem:
        expected = mem.put_tree(src)
    store = Store(tmp_path / "store")
    stored = store.put_tree(src, concurrency=concurrency)
    assert stored == expected
    assert store.digest_path(src) == stored.digest
    report = store.verify()
    assert report.ok, report
    for p in store_files(store):
        if "objects" in p.parts:
            assert stat.S_IMODE(p.stat().st_mode) == 0o444, "objects are created read-only"
    assert no_temp_names(store)
    assert snapshot(store.restore(stored.digest, tmp_path / "out")) == snapshot(src)


def test_storing_the_tree_again_writes_nothing(tmp_path: Path) -> None:
    """A second put_tree of the same folder finds every object there and changes no file."""
    src = make_many(tmp_path / "src")
    store = Store(tmp_path / "store")
    first = store.put_tree(src, concurrency=4)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store_files(store)}
    assert store.put_tree(src, concurrency=4) == first
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store_files(store)} == before


def test_without_unnamed_temp_files_named_temp_files_store_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the system has no O_TMPFILE (macOS, some filesystems), each object goes
    through a named temp file and a link: the same tree, and no temp name left."""
    src = make_many(tmp_path / "src")
    expected = Store(tmp_path / "with").put_tree(src, concurrency=4)
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    monkeypatch.setattr("mlledger.store.backends.local._proc_fds", {})
    store = Store(tmp_path / "without")
    assert store.put_tree(src, concurrency=4) == expected
    assert store.verify().ok
    assert no_temp_names(store)
    assert snapshot(store.restore(expected.digest, tmp_path / "out")) == snapshot(src)


class Counting(Callback):
    """Adds up every progress update, from any thread."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.threads: set[str] = set()

    def relative_update(self, inc: int = 1) -> None:
        self.total += inc
        self.threads.add(threading.current_thread().name)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_progress_counts_every_file_once(tmp_path: Path, concurrency: int) -> None:
    """The callback of put_tree counts each file of the tree exactly once."""
    src = make_many(make_sample_tree(tmp_path / "src"))
    cb = Counting()
    stored = Store(tmp_path / "store").put_tree(src, callback=cb, concurrency=concurrency)
    assert cb.total == stored.files


def test_no_thread_outlives_put_tree(tmp_path: Path) -> None:
    """The worker threads are gone once put_tree returns."""
    src = make_many(tmp_path / "src")
    before = set(threading.enumerate())
    Store(tmp_path / "store").put_tree(src, concurrency=4)
    assert set(threading.enumerate()) <= before


# -- bad input -------------------------------------------------------------------------


def test_unreadable_file_among_many_is_an_access_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file a worker thread cannot read raises AccessError naming it; no tree is stored
    and no thread is left running."""
    src = make_many(tmp_path / "src")
    bad = sorted(src.rglob("*.bin"))[len(list(src.rglob("*.bin"))) // 2]
    store = Store(tmp_path / "store")
    digest = store.digest_path(src)
    deny_reading(monkeypatch, bad)
    before = set(threading.enumerate())
    with pytest.raises(AccessError, match="permission denied") as info:
        store.put_tree(src, concurrency=4)
    assert str(bad) in str(info.value)
    assert not store.has(digest)
    assert set(threading.enumerate()) <= before
    assert store.verify().ok


def test_walk_failure_stops_the_threads(tmp_path: Path) -> None:
    """A name the walk refuses (not UTF-8) raises, and the threads started before stop."""
    src = make_many(tmp_path / "src")
    bad = os.path.join(os.fsencode(src / "d6"), b"zz-\xff.bin")
    with open(bad, "wb") as f:
        f.write(b"x")
    before = set(threading.enumerate())
    with pytest.raises(Exception, match="not valid UTF-8"):
        Store(tmp_path / "store").put_tree(src, concurrency=4)
    assert set(threading.enumerate()) <= before


@pytest.mark.parametrize("n", [0, -1])
def test_concurrency_below_one_is_refused(tmp_path: Path, n: int) -> None:
    """concurrency=0 or less is a ValueError naming the smallest count allowed."""
    src = make_many(tmp_path / "src", n=3)
    with pytest.raises(ValueError, match="at least 1"):
        Store(tmp_path / "store").put_tree(src, concurrency=n)


def test_small_files_refuse_zero_workers(tmp_path: Path) -> None:
    """SmallFiles itself refuses fewer than one worker."""
    store = Store(tmp_path / "store")
    assert isinstance(store.backend, LocalBackend)
    with pytest.raises(ValueError, match="at least 1"):
        SmallFiles(store.backend, store.algorithm, 0)


# -- concurrent writers, crashes ----------------------------------------------------------

_PUT_TREE = textwrap.dedent("""
    import os, sys, time
    from mlledger.store import Store

    store = Store(sys.argv[1])
    while not os.path.exists(sys.argv[3]):  # start together
        time.sleep(0.001)
    print(store.put_tree(sys.argv[2]).digest)
""")


@pytest.mark.slow
def test_concurrent_processes_storing_one_tree_agree(tmp_path: Path) -> None:
    """Processes storing the same folder into one store at once all succeed with the same
    digest, and the store holds each object once, whole, with no temp name left."""
    src = make_many(tmp_path / "src", n=3000)
    url = tmp_path / "store"
    Store(url)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", _PUT_TREE, str(url), str(src), str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    time.sleep(0.5)  # let them all import and wait
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    digests = {out.strip() for out, _ in outs}
    store = Store(url)
    assert digests == {store.digest_path(src)}
    assert store.verify().ok
    assert no_temp_names(store)
    distinct = {f.read_bytes() for f in src.rglob("*.bin")}
    assert len(list(store.iter_objects())) == len(distinct) + 1  # and the manifest
    assert snapshot(store.restore(digests.pop(), tmp_path / "out")) == snapshot(src)


_KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    from fsspec.callbacks import Callback
    from mlledger.store import Store

    class Slow(Callback):  # every batch reported slowly: the tree takes seconds to store
        done = 0

        def relative_update(self, inc=1):
            Slow.done += inc
            with open(sys.argv[3] + ".new", "w") as f:
                f.write(str(Slow.done))
            os.replace(sys.argv[3] + ".new", sys.argv[3])
            time.sleep(0.05)

    Store(sys.argv[1]).put_tree(sys.argv[2], callback=Slow(), concurrency=int(sys.argv[4]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 4])
def test_writer_killed_mid_put_tree_leaves_nothing_partial(
    tmp_path: Path, concurrency: int
) -> None:
    """A process SIGKILLed while storing a folder of many small files leaves no tree, no
    partial object and no temp name; the store verifies and the folder stores again."""
    src = make_many(tmp_path / "src", n=3000, size=4000)
    url = tmp_path / "store"
    store = Store(url)
    digest = store.digest_path(src)
    progress = tmp_path / "progress"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(url), str(src), str(progress),
         str(concurrency)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if progress.exists() and int(progress.read_text() or 0) >= 2 * BATCH:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = int(progress.read_text())
    assert 0 < done < 3000, "the kill landed mid-tree"
    assert not store.has(digest)
    stored_objects = set(store.iter_objects())
    assert len(stored_objects) >= done - 3000 // 50  # what was reported is there
    report = store.verify()
    assert report.ok, report  # every object there is whole: its bytes hash to its name
    assert no_temp_names(store)
    assert not os.listdir(url / "tmp") if (url / "tmp").exists() else True
    assert store.put_tree(src, concurrency=concurrency).digest == digest
    assert store.verify().ok
    assert snapshot(store.restore(digest, tmp_path / "out")) == snapshot(src)
    shutil.rmtree(url, ignore_errors=True)


@pytest.mark.parametrize(("cpus", "load"), [(2, 0.1), (2, 3.5), (8, 1.0), (1, 0.0)])
def test_by_default_one_thread_stores_small_files(
    monkeypatch: pytest.MonkeyPatch, cpus: int, load: float
) -> None:
    """Without ``concurrency``, put_tree stores small files in one thread whatever the CPUs
    and the load (threads took turns on the GIL and were slower where measured)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert default_workers() == 1
