"""Named refs: append-only histories moved create-only, rolled back by appending."""

from __future__ import annotations

import datetime as dt
import getpass
import multiprocessing
import socket
import threading
from pathlib import Path

import pytest
from helpers.servers import StoreSpec
from helpers.stores import memory_store, move_ref_in_process, open_store, raw_write

from mlledger.errors import (
    ConflictError,
    IntegrityError,
    LedgerError,
    NotFoundError,
    UsageError,
)
from mlledger.records import RefEntry
from mlledger.store import Refs, Store, check_ref_name


def targets(history: list[RefEntry]) -> list[str]:
    return [e.target for e in history]


def test_set_then_get_returns_the_entry(store_spec: StoreSpec) -> None:
    """set() appends entry #1 with who/when/message; get() returns it."""
    store = open_store(store_spec)
    before = dt.datetime.now(dt.timezone.utc)
    entry = Refs(store).set("model/prod", "xxh128:" + "a" * 32, message="first deploy",
                           run="01JRUN")
    assert (entry.name, entry.seq, entry.target) == ("model/prod", 1, "xxh128:" + "a" * 32)
    assert (entry.message, entry.action, entry.restores, entry.run) == (
        "first deploy", "set", None, "01JRUN")
    assert entry.user == getpass.getuser()
    assert entry.host == socket.gethostname()
    assert before - dt.timedelta(seconds=5) <= entry.at <= dt.datetime.now(dt.timezone.utc)
    assert Refs(store).get("model/prod") == entry
    assert Refs(open_store(store_spec)).get("model/prod") == entry
    assert Refs(store).names() == ["model/prod"]


def test_unset_ref_is_not_found(store_spec: StoreSpec) -> None:
    """get/history/rollback of a ref never set raise NotFoundError saying how to set it."""
    store = open_store(store_spec)
    for call in (Refs(store).get, Refs(store).history, Refs(store).rollback):
        with pytest.raises(NotFoundError) as info:
            call("model/prod")
        assert isinstance(info.value, KeyError)
        assert "'model/prod' is not set" in str(info.value)
        assert "refs.set(" in str(info.value)


def test_history_only_grows_and_rollback_walks_back(store_spec: StoreSpec) -> None:
    """Each move appends; rollback appends an entry pointing back; twice walks further back."""
    refs = Refs(open_store(store_spec))
    seen: list[RefEntry] = []

    def check_grew(entry: RefEntry) -> None:
        history = refs.history("m")
        assert history[:-1] == seen, "earlier entries never change"
        assert history[-1] == entry == refs.get("m")
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        seen.append(entry)

    for t in ("A", "B", "C"):
        check_grew(refs.set("m", t))
    back1 = refs.rollback("m", message="bad model")
    check_grew(back1)
    assert (back1.seq, back1.target, back1.action, back1.restores) == (4, "B", "rollback", 2)
    assert back1.message == "bad model"
    back2 = refs.rollback("m")
    check_grew(back2)
    assert (back2.seq, back2.target, back2.restores) == (5, "A", 1)
    with pytest.raises(NotFoundError) as info:
        refs.rollback("m")
    assert "no earlier target to roll back to" in str(info.value)
    assert "first position" in str(info.value)
    assert "pass to=TARGET" in str(info.value)
    assert refs.history("m") == seen, "a refused rollback writes nothing"
    to_seq = refs.rollback("m", to=3)
    check_grew(to_seq)
    assert (to_seq.target, to_seq.restores) == ("C", 3)
    to_target = refs.rollback("m", to="D")
    check_grew(to_target)
    assert (to_target.target, to_target.action, to_target.restores) == ("D", "rollback", None)
    with pytest.raises(NotFoundError, match="has no entry #99"):
        refs.rollback("m", to=99)
    assert targets(refs.history("m")) == ["A", "B", "C", "B", "A", "C", "D"]


def test_rollback_after_a_new_set_goes_to_the_previous_target(tmp_path: Path) -> None:
    """After rollback and a new set, rolling back returns to the target before that set."""
    refs = Refs(Store(tmp_path / "store"))
    for t in ("A", "B"):
        refs.set("m", t)
    refs.rollback("m")  # -> A
    refs.set("m", "C")
    assert refs.rollback("m").target == "A"


def test_rollback_at_the_first_position_is_refused(store_spec: StoreSpec) -> None:
    """A ref set once has nothing to roll back to: NotFoundError with a clear message."""
    refs = Refs(open_store(store_spec))
    refs.set("only/once", "A")
    with pytest.raises(NotFoundError) as info:
        refs.rollback("only/once")
    assert "'only/once' has no earlier target" in str(info.value)
    assert "#1, its first position" in str(info.value)
    assert targets(refs.history("only/once")) == ["A"]


def test_rollback_refuses_when_the_ref_moved_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback computed from a history that another writer has since extended is a conflict."""
    with memory_store() as store:
        refs = Refs(store)
        refs.set("m", "A")
        refs.set("m", "B")
        stale = refs.history("m")
        Refs(Store(store.url)).set("m", "C")  # another writer moves it
        monkeypatch.setattr(refs, "history", lambda name: stale)
        with pytest.raises(ConflictError, match="moved") as info:
            refs.rollback("m")
        assert isinstance(info.value, RuntimeError)
        monkeypatch.undo()
        assert targets(refs.history("m")) == ["A", "B", "C"]


def test_refs_nested_under_each_other_stay_apart(store_spec: StoreSpec) -> None:
    """'model' and 'model/prod' are two refs with their own histories."""
    refs = Refs(open_store(store_spec))
    refs.set("model", "A")
    refs.set("model/prod", "B")
    refs.set("model", "C")
    assert targets(refs.history("model")) == ["A", "C"]
    assert targets(refs.history("model/prod")) == ["B"]
    assert refs.names() == ["model", "model/prod"]


BAD_NAMES = ["", "/abs", "a/../b", "..", ".", "a//b", "a/", ".hidden", "a/.x", "a b", "-x",
             "a/0000000001.json", "x.json", "a\\b", "ü", "a\nb", "model/prod\n"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_ref_names_are_refused(name: str) -> None:
    """A ref name outside segment[/segment] of letters, digits, '._-' raises UsageError."""
    with memory_store() as store:
        calls = [lambda: Refs(store).set(name, "A"), lambda: Refs(store).get(name),
                 lambda: Refs(store).history(name), lambda: Refs(store).rollback(name)]
        for call in calls:
            with pytest.raises(UsageError) as info:
                call()
            assert isinstance(info.value, ValueError)
            assert isinstance(info.value, LedgerError)
            assert "invalid ref name" in str(info.value)
            assert "such as 'model/prod'" in str(info.value)
        assert Refs(store).names() == []


@pytest.mark.parametrize("name", ["model/prod", "a", "v1.2", "team_x/model-1/prod", "_x", "9"])
def test_valid_ref_names_are_accepted(name: str) -> None:
    """Ordinary ref names pass the check unchanged."""
    assert check_ref_name(name) == name


def test_empty_target_is_refused() -> None:
    """A ref must point at something: an empty target raises UsageError."""
    with memory_store() as store, pytest.raises(UsageError, match="ref target"):
        Refs(store).set("m", "")


def test_concurrent_processes_lose_no_move(tmp_path: Path) -> None:
    """4 processes x 10 moves of one local ref: history holds all 40, seq 1..40 without gaps."""
    url = str(tmp_path / "store")
    Store(url)
    workers, moves = 4, 10
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    queue = ctx.Queue()
    procs = [ctx.Process(target=move_ref_in_process,
                         args=(url, "model/prod", w, moves, barrier, queue))
             for w in range(workers)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in range(workers))
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    history = Refs(Store(url)).history("model/prod")
    assert [e.seq for e in history] == list(range(1, workers * moves + 1))
    assert sorted(targets(history)) == sorted(
        f"worker-{w}-move-{j}" for w in range(workers) for j in range(moves))
    for w in range(workers):  # each writer's own moves land in the order it made them
        mine = [e.target for e in history if e.target.startswith(f"worker-{w}-")]
        assert mine == [f"worker-{w}-move-{j}" for j in range(moves)]
        assert results[w] == sorted(results[w])
    all_seqs = sorted(s for seqs in results.values() for s in seqs)
    assert all_seqs == list(range(1, workers * moves + 1)), "each move got its own seq"


def test_concurrent_threads_lose_no_move(store_spec: StoreSpec) -> None:
    """Threads moving one ref at once on any backend: every move is kept, seqs without gaps."""
    workers, moves = 4, 5
    clients = [open_store(store_spec) for _ in range(2)]
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def mover(w: int) -> None:
        try:
            barrier.wait()
            for j in range(moves):
                Refs(clients[w % 2]).set("model/prod", f"worker-{w}-move-{j}")
        except BaseException as e:  # re-raised below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=mover, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    history = Refs(open_store(store_spec)).history("model/prod")
    assert [e.seq for e in history] == list(range(1, workers * moves + 1))
    assert sorted(targets(history)) == sorted(
        f"worker-{w}-move-{j}" for w in range(workers) for j in range(moves))


def test_damaged_ref_entry_is_an_integrity_error(store_spec: StoreSpec) -> None:
    """A ref entry that does not parse raises IntegrityError from get and history, naming it."""
    refs = Refs(open_store(store_spec))
    refs.set("m", "A")
    raw_write(store_spec, "refs/m/0000000002.json", b"{not json")
    for call in (refs.get, refs.history):
        with pytest.raises(IntegrityError) as info:
            call("m")
        assert isinstance(info.value, ValueError)
        assert "m#2" in str(info.value)
        assert "set the ref again" in str(info.value)
    assert refs.set("m", "C").seq == 3
    assert refs.get("m").target == "C"


def test_overlong_ref_name_is_a_usage_error(tmp_path: Path) -> None:
    """A ref name too long for any store's keys is refused before it reaches the store."""
    store = Store(str(tmp_path / "store"))
    for name in ("a" * 5000, "/".join(["b" * 200] * 30)):
        for call in (lambda n: Refs(store).set(n, "x"), Refs(store).get, Refs(store).history):
            with pytest.raises(UsageError) as info:
                call(name)
            assert "too long" in str(info.value)
    Refs(store).set("a" * 100 + "/" + "b" * 100, "x")  # a long name that fits is kept


_READ_ONLY_SET = """
import sys
from mlledger.errors import StoreError
from mlledger.store import Refs, Store
store = Store(sys.argv[1], create=False)
try:
    Refs(store).set("model/prod", "x")
except StoreError as e:
    print("StoreError", e)
"""


def test_ref_set_on_a_read_only_store_is_a_store_error(tmp_path: Path) -> None:
    """Setting a ref in a store that cannot be written is a StoreError saying so, not OSError."""
    import os
    import shutil
    import subprocess
    import sys

    root = tmp_path / "store"
    Refs(Store(str(root))).set("other/ref", "x")
    cmd = [sys.executable, "-c", _READ_ONLY_SET, str(root)]
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount, in its own
        unshare = shutil.which("unshare")  # mount namespace (gone when the process ends)
        if unshare is None:
            pytest.skip("running as root without unshare(1): no way to make a read-only store")
        cmd = [unshare, "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"',
               str(root), *cmd]
    else:
        for p in [*root.rglob("*"), root]:
            p.chmod(p.stat().st_mode & ~0o222)
    try:
        got = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    finally:
        for p in [root, *root.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith("StoreError"), got.stdout
    assert "not writable" in got.stdout or "read-only" in got.stdout, got.stdout
