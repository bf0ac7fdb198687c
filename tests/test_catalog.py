"""The catalog: incremental sync from the store, reindex, schema rebuilds, WAL, lookups."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.ledgers import (
    clock_at,
    open_ledger,
    run_pipeline,
    second_machine,
    shared_prefix,
    unique_prefix,
)
from helpers.servers import StoreSpec

from mlledger import Ledger, canonical
from mlledger.catalog import SCHEMA_VERSION, RunList, catalog_path
from mlledger.errors import AmbiguousError, MissingExtraError, NotFoundError
from mlledger.hashing import digest_bytes
from mlledger.ids import day_path, whole_key

DAY = 86400.0


@pytest.fixture
def ledger(fast_store_ledger: Ledger) -> Ledger:
    """This module's ledger: a memory or local store (conftest's fast_store_ledger)."""
    return fast_store_ledger


def table_dump(ledger: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every catalog table, sorted (to compare catalogs)."""
    db = ledger.catalog.db
    out = {}
    for table in ("runs", "params", "tags", "metrics", "edges", "artifacts"):
        out[table] = sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    return out


def summary(ledger: Ledger) -> list[tuple[Any, ...]]:
    """What a user sees of every run, newest first."""
    return [
        (
            r.id,
            r.name,
            r.status,
            r.params,
            r.metrics,
            r.tags,
            {k: a.digest for k, a in r.inputs.items()},
            {k: a.digest for k, a in r.outputs.items()},
        )
        for r in ledger.runs()
    ]


def day_of(run_id: str) -> str:
    return day_path(run_id).split("/", 1)[1].rsplit("/", 1)[0]


def eager(ledger: Ledger) -> Ledger:
    """A Ledger on the same store that writes a run's start entry at once (start_delay=0).

    By default a run's start is written only once it has lasted a moment, so a
    run just begun is not yet visible to other machines.
    """
    return Ledger(ledger.url, start_delay=0, **ledger.store.storage_options)


class ListDirCounter:
    """Records every ``backend.list_dir`` prefix a ledger's store lists."""

    def __init__(self, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
        self.prefixes: list[str] = []
        backend = ledger.store.backend
        real = backend.list_dir

        def counting(prefix: str) -> list[str]:
            self.prefixes.append(prefix)
            return real(prefix)

        monkeypatch.setattr(backend, "list_dir", counting)


# -- sync --------------------------------------------------------------------------------


def test_second_machine_sees_every_run_the_first_wrote(
    store_spec: StoreSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ledger with its own catalog on the same URL sees every run, then new ones after sync."""
    monkeypatch.chdir(tmp_path)
    first = open_ledger(store_spec)
    pipe = run_pipeline(first)
    with first.run("block", params={"lr": 0.5}, tags={"k": "v"}) as r:
        r.log(step=0, loss=1.5)
    other = second_machine(first, monkeypatch, tmp_path / "machine-2")
    assert other.catalog.path != first.catalog.path
    assert summary(other) == summary(first)
    assert len(other.runs()) == 4
    assert other.artifact(pipe.run("prep").outputs["return"].digest).consumers == (
        pipe.ids["train"],
        pipe.ids["evaluate"],
    )

    with first.run("later") as later:
        pass
    assert later.id not in other.runs().ids  # not until it syncs
    assert other.sync() == 1
    assert other.runs().ids[0] == later.id
    assert other.sync() == 0


def test_sync_with_nothing_new_changes_nothing(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second sync finds nothing to do and leaves every catalog row as it was."""
    run_pipeline(ledger)
    other = second_machine(ledger, monkeypatch, tmp_path / "machine-2")
    assert other.sync() == 3
    before = table_dump(other)
    assert other.sync() == 0
    assert table_dump(other) == before


def test_writer_indexes_its_own_runs_at_once(ledger: Ledger) -> None:
    """Runs a ledger writes itself show in its own catalog without a sync."""
    assert ledger.runs().ids == []
    with ledger.run("mine") as r:
        pass
    assert ledger.runs().ids == [r.id]


def test_running_run_later_finishing_is_updated(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run synced while running is updated (status, metrics, outputs) once it ends."""
    writer = eager(ledger)
    other = second_machine(ledger, monkeypatch, tmp_path / "machine-2")
    with writer.run("long", params={"epochs": 2}) as run:
        run.log(step=0, loss=0.9)
        assert other.sync() == 1
        assert other.runs(status="running").ids == [run.id]
        assert other.get(run.id).status == "running"
        run.log(step=1, loss=0.4)
        run.save([1, 2, 3], name="preds")
    assert other.sync() == 1
    assert other.runs(status="running").ids == []
    got = other.runs(status="finished")
    assert got.ids == [run.id]
    assert got[0].metrics == {"loss": 0.4}
    assert set(got[0].outputs) == {"preds"}
    assert other.runs(where="metrics.loss.max = 0.9").ids == [run.id]


def test_a_run_whose_process_died_syncs_as_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run started by a process that died without ending it is listed as incomplete."""
    monkeypatch.chdir(tmp_path)
    ledger = Ledger(tmp_path / "store")
    code = (
        "import os, sys, mlledger\n"
        "ctx = mlledger.Ledger(sys.argv[1], start_delay=0).run('doomed', params={'lr': 0.1})\n"
        "run = ctx.__enter__()\n"
        "print(run.id, flush=True)\n"
        "os._exit(3)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, ledger.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 3, out.stderr
    rid = out.stdout.strip()
    assert ledger.sync() == 1
    assert ledger.runs(status="incomplete").ids == [rid]
    assert ledger.runs(where="status = 'incomplete' and params.lr = 0.1").ids == [rid]
    got = ledger.get(rid)
    assert got.status == "incomplete"
    assert got.status_reason is not None
    assert "is gone and the run has no end" in got.status_reason
    assert ledger.sync() == 0  # still incomplete: nothing changed
    from click.testing import CliRunner

    from mlledger.cli import cli

    shown = CliRunner().invoke(cli, ["--store", ledger.url, "show", rid]).stdout
    assert "its process (pid" in shown
    assert "metrics of its last seconds may be missing" in shown


def test_sync_lists_only_unsealed_days(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day that is over and whose runs all ended is sealed and never listed again."""
    with clock_at(monkeypatch, time.time() - 10 * DAY):
        with ledger.run("old-1"):
            pass
        with ledger.run("old-2"):
            pass
    with ledger.run("today") as new:
        pass
    old_day = day_of(ledger.runs(name="old-1")[0].id)
    new_day = day_of(new.id)
    other = second_machine(ledger, monkeypatch, tmp_path / "machine-2")
    assert other.sync() == 3
    sealed = dict(other.catalog.db.execute("SELECT day, sealed FROM days").fetchall())
    assert sealed == {old_day: 1, new_day: 0}  # today's: listed again by the next sync

    counter = ListDirCounter(other, monkeypatch)
    with ledger.run("today-2"):
        pass
    assert other.sync() == 1
    assert f"runs/{new_day}" in counter.prefixes
    assert f"runs/{old_day}" not in counter.prefixes
    assert all(not p.startswith(f"runs/{old_day}") for p in counter.prefixes)
    assert len(other.runs()) == 4


def test_a_sync_lists_only_the_months_around_today_and_the_open_days(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a catalog listed the whole store, its syncs list the months around today, the
    late markers and the days still open, not the months of sealed days: a run still going
    in a day 40 days back keeps its day listed until it ends; a run written there later
    comes with a marker and is found."""
    at = time.time() - 40 * DAY
    with clock_at(monkeypatch, at):
        with ledger.run("sealed"):
            pass
        going = Ledger(ledger.url, start_delay=0).run("going")  # its start written now
        run = going.__enter__()
        run.log(loss=1.0)
    with ledger.run("today"):
        pass
    old_day = day_of(run.id)
    old_month = old_day.rsplit("/", 1)[0]
    other = second_machine(ledger, monkeypatch, tmp_path / "machine-2")
    assert other.sync() == 3
    counter = ListDirCounter(other, monkeypatch)
    assert other.sync() == 0
    assert f"runs/{old_day}" in counter.prefixes  # open: a run there is still going
    assert f"runs/{old_month}" not in counter.prefixes
    assert "runs" not in counter.prefixes
    going.__exit__(None, None, None)  # its end lands in a day 40 days back: marked
    from mlledger import late

    late.flush_all()
    counter.prefixes.clear()
    assert other.sync() == 1
    assert other.runs(name="going")[0].status == "finished"
    counter.prefixes.clear()
    assert other.sync() == 0  # the day is sealed now: not listed again
    assert f"runs/{old_day}" not in counter.prefixes
    with clock_at(monkeypatch, at + 60):
        with ledger.run("later") as later:
            pass
    late.flush_all()
    assert other.sync() == 1
    assert later.id in other.runs().ids
    assert f"runs/{old_month}" not in counter.prefixes


def test_a_sync_after_days_away_lists_every_month_since_its_last(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs written on their own day (no marker) into a month before today's, after this
    catalog's last sync, are found: a sync lists the months from a few days before its
    last sync to today, not only those around today."""
    with ledger.run("today"):
        pass
    other = second_machine(ledger, monkeypatch, tmp_path / "machine-2")
    other.sync()
    last = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=45)).date()
    db = other.catalog.db
    db.execute("UPDATE meta SET value = ? WHERE key = 'listed_day'", (last.isoformat(),))
    db.commit()  # as if this catalog last synced 45 days ago
    with clock_at(monkeypatch, time.time() - 44 * DAY):
        with ledger.run("while away") as away:
            pass
    from mlledger import late

    late.flush_all()
    for key in list(ledger.store.backend.list("late")):  # as if written on its own day
        ledger.store.backend.delete(key)
    counter = ListDirCounter(other, monkeypatch)
    assert other.sync() == 1
    assert away.id in other.runs().ids
    assert f"runs/{day_of(away.id).rsplit('/', 1)[0]}" in counter.prefixes


def test_gc_lists_every_month_before_it_decides(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc's sync lists every month of the store, so a run in a day folder its catalog had
    no reason to list (written without a marker into a month far from today) keeps its
    objects."""
    with ledger.run("today"):
        pass
    other = second_machine(ledger, monkeypatch, tmp_path / "machine-2")
    other.sync()
    with clock_at(monkeypatch, time.time() - 60 * DAY):
        with ledger.run("unmarked") as run:
            model = run.save(list(range(1000)), "model")
    from mlledger import late

    late.flush_all()
    for key in list(ledger.store.backend.list("late")):
        ledger.store.backend.delete(key)
    other.sync()
    assert run.id not in other.runs().ids  # far from today, no marker: not listed
    report = other.gc(dry_run=True, keep_days=None, grace_seconds=0)
    assert run.id in other.runs().ids
    assert model.digest not in report.objects


def test_a_marker_naming_no_real_day_is_ignored(ledger: Ledger) -> None:
    """A file in ``late/`` whose name is not a real day (a typo, another tool) does not stop
    any sync."""
    assert ledger.store.create_entry("late/2026-02-30.late-XYZ.json", b"{}")
    assert ledger.store.create_entry("late/notes.txt", b"hello")
    with ledger.run("today"):
        pass
    assert ledger.sync() == 1
    assert ledger.sync() == 0


def test_a_run_not_yet_readable_keeps_its_old_day_open(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run listed but whose entries cannot be read yet is not lost: its day stays unsealed."""
    with clock_at(monkeypatch, time.time() - 6 * DAY):
        with ledger.run("old-a"):
            pass
        with ledger.run("old-b") as late:
            pass
    other = second_machine(ledger, monkeypatch, tmp_path / "machine-2")
    backend = other.store.backend
    real = backend.read_many
    hidden = {
        f"{day_path(late.id)}/start.json",
        f"{day_path(late.id)}/end.json",
        whole_key(late.id),
    }

    def not_visible_yet(keys: list[str]) -> dict[str, bytes | None]:
        got = real(keys)
        for key in hidden & set(got):
            got[key] = None  # listed, but its entry is still being written
        return got

    with monkeypatch.context() as m:
        m.setattr(backend, "read_many", not_visible_yet)
        assert other.sync() == 1
    assert late.id not in other.runs().ids
    sealed = "SELECT COUNT(*) FROM days WHERE sealed = 1"
    assert other.catalog.db.execute(sealed).fetchone()[0] == 0
    assert other.sync() == 1
    assert late.id in other.runs().ids
    assert other.catalog.db.execute("SELECT sealed FROM days").fetchall() == [(1,)]


def test_a_run_still_going_keeps_its_old_day_open(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old day with a run still running is listed again, and sealed once the run ends."""
    writer = eager(ledger)
    other = second_machine(ledger, monkeypatch, tmp_path / "machine-2")
    with clock_at(monkeypatch, time.time() - 5 * DAY):
        ctx = writer.run("long-old")
        run = ctx.__enter__()
    try:
        other.sync()
        sealed = "SELECT COUNT(*) FROM days WHERE sealed = 1"
        assert other.catalog.db.execute(sealed).fetchone()[0] == 0
        assert other.get(run.id).status == "running"
    finally:
        ctx.__exit__(None, None, None)
    assert other.sync() == 1
    assert other.get(run.id).status == "finished"
    assert other.catalog.db.execute("SELECT day, sealed FROM days").fetchall() == [
        (day_of(run.id), 1)
    ]


def test_reindex_rebuilds_from_the_store_alone(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delete the catalog file, reindex from the store: every query answers the same."""
    pipe = run_pipeline(ledger)
    with clock_at(monkeypatch, time.time() - 9 * DAY):
        with ledger.run("old", params={"lr": 0.3}):
            pass
    queries = [None, "params.lr > 0.05", "name like 't%'", "metrics.accuracy >= 0"]
    before = [ledger.runs(where=q).ids for q in queries]
    dump = table_dump(ledger)
    data = pipe.run("prep").outputs["return"].digest
    art = ledger.artifact(data)

    path = ledger.catalog.path
    ledger.catalog.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    fresh = Ledger(ledger.url, **ledger.store.storage_options)
    assert fresh.reindex() == 4
    assert [fresh.runs(where=q).ids for q in queries] == before
    assert table_dump(fresh) == dump
    again = fresh.artifact(data)
    assert (again.producers, again.consumers) == (art.producers, art.consumers)
    assert fresh.reindex() == 4  # reindexing a full catalog gives the same


def test_catalog_of_an_older_schema_is_rebuilt_unasked(ledger: Ledger, tmp_path: Path) -> None:
    """A catalog file written by schema 1 (other tables) is thrown away and rebuilt on open."""
    run_pipeline(ledger)
    ids = ledger.runs().ids
    path = catalog_path(ledger.url)
    ledger.catalog.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO meta VALUES ('schema', '1');"
        "CREATE TABLE runs (id TEXT PRIMARY KEY, json TEXT);"
        "INSERT INTO runs VALUES ('01AAAAAAAAAAAAAAAAAAAAAAAA', '{}');"
        "CREATE TABLE params (run TEXT, k TEXT, v TEXT);"
    )
    old.commit()
    old.close()
    fresh = Ledger(ledger.url, **ledger.store.storage_options)
    assert fresh.runs().ids == ids
    assert fresh.runs(where="params.lr = 0.1").ids == [ids[1]]
    schema = fresh.catalog.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    assert schema == (str(SCHEMA_VERSION),)
    fresh.catalog.check_format()


def test_catalog_uses_wal(ledger: Ledger) -> None:
    """The catalog runs in WAL mode so readers and a syncing writer do not block each other."""
    ledger.sync()
    assert ledger.catalog.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _catalog_worker(url: str, role: str, barrier: Any, queue: Any) -> None:
    """A process that writes, syncs, reindexes or queries one shared catalog for a while."""
    try:
        ledger = Ledger(url)
        seen: list[int] = []
        barrier.wait(timeout=60)
        deadline = time.monotonic() + 1.5
        i = 0
        while i < 3 or time.monotonic() < deadline:  # a few rounds even on a stalled machine
            i += 1
            if role == "writer":
                with ledger.run("worker", params={"i": i}):
                    pass
            elif role == "reindexer":
                ledger.reindex()
            else:
                ledger.sync()
            seen.append(len(ledger.runs(where="params.i >= 0 or name = 'seed'")))
        queue.put((role, "ok", seen))
    except BaseException as e:  # report it; never leave the parent waiting
        queue.put((role, "error", repr(e)))


def test_processes_sync_and_read_one_catalog_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes writing, syncing, reindexing and reading one catalog never fail or go back."""
    monkeypatch.chdir(tmp_path)
    url = str(tmp_path / "store")
    seed = Ledger(url)
    for i in range(20):
        with seed.run("seed", params={"i": -i - 1}):
            pass
    seed.sync()
    roles = ["writer", "reindexer", "reindexer", "reader", "reader"]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(len(roles))
    procs = [
        ctx.Process(target=_catalog_worker, args=(url, role, barrier, queue)) for role in roles
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [r for r in results if r[1] != "ok"] == []
    written = max(len(seen) for role, _, seen in results if role == "writer")
    for role, _, seen in results:
        assert seen, role
        assert seen[0] >= 20, role
        assert seen == sorted(seen), f"a {role} saw runs vanish: {seen}"
    fresh = Ledger(url)
    fresh.sync()
    assert len(fresh.runs(name="seed")) == 20
    assert len(fresh.runs(name="worker")) == written


# -- get and artifact ------------------------------------------------------------------


def test_get_by_full_id_and_by_prefix(ledger: Ledger) -> None:
    """A run comes back by its id, by a unique prefix, and case does not matter."""
    pipe = run_pipeline(ledger)
    rid = pipe.ids["train"]
    assert ledger.get(rid).id == rid
    assert ledger.get(rid.lower()).id == rid
    got = ledger.get(unique_prefix(ledger, rid).lower())
    assert got.id == rid
    assert got.name == "train"
    assert got.params == {"data": [0, 2, 4, 6, 8], "lr": 0.1, "epochs": 3}


def test_ambiguous_run_prefix_lists_the_candidates(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prefix shared by several runs raises AmbiguousError (a LookupError) naming them."""
    ids = []
    with clock_at(monkeypatch, time.time() - 1):  # one millisecond for all three
        for _ in range(3):
            with ledger.run("same-ms") as r:
                pass
            ids.append(r.id)
    common = shared_prefix(ids)
    assert len(common) >= 10  # same millisecond: ids differ in their random part only
    with pytest.raises(AmbiguousError) as err:
        ledger.get(common[:8])
    assert isinstance(err.value, LookupError)
    assert set(ids) <= set(err.value.candidates)
    for rid in ids:
        assert rid in str(err.value)
    assert "more characters" in str(err.value)


def test_unknown_run_is_not_found(ledger: Ledger) -> None:
    """An id or prefix no run has raises NotFoundError, which is also a KeyError."""
    with ledger.run("one"):
        pass
    for bad in ("7ZZZZZ", "0" * 26, "not a run id"):
        with pytest.raises(NotFoundError) as err:
            ledger.get(bad)
        assert isinstance(err.value, KeyError)


def test_artifact_by_digest_and_prefix_with_producers_and_consumers(ledger: Ledger) -> None:
    """An artifact by digest or hex prefix knows its kind, size, producers and consumers."""
    pipe = run_pipeline(ledger)
    data = pipe.run("prep").outputs["return"]
    model = pipe.run("train").outputs["return"]
    assert pipe.run("train").inputs["data"].digest == data.digest
    for text in (
        data.digest,
        data.digest.upper(),
        data.digest.split(":")[1],
        data.digest[:14],
        data.digest.split(":")[1][:8],
    ):
        art = ledger.artifact(text)
        assert art.digest == data.digest
        assert art.kind == "value"
        assert art.format == "json"
        assert art.size == len(canonical.dumps(pipe.data))
        assert art.producers == (pipe.ids["prep"],)
        assert art.consumers == (pipe.ids["train"], pipe.ids["evaluate"])
    m = ledger.artifact(model.digest)
    assert (m.producers, m.consumers) == ((pipe.ids["train"],), (pipe.ids["evaluate"],))
    score = ledger.artifact(pipe.run("evaluate").outputs["return"].digest)
    assert (score.producers, score.consumers) == ((pipe.ids["evaluate"],), ())


def test_artifact_not_in_any_run_is_found_in_the_store(ledger: Ledger) -> None:
    """An object no run references (the environment record) resolves from the store itself."""
    with ledger.run("r") as r:
        pass
    env = ledger.get(r.id)._record["env"]
    art = ledger.artifact(env.split(":")[1][:10])
    assert art.digest == env
    assert art.producers == ()
    assert art.consumers == ()
    assert art.size == len(ledger.store.get(env))


def test_ambiguous_artifact_prefix_lists_the_candidates(ledger: Ledger) -> None:
    """Two artifacts sharing a hex prefix: the prefix is ambiguous, more characters resolve."""
    a = digest_bytes(canonical.dumps(1627), "xxh128")
    b = digest_bytes(canonical.dumps(4526), "xxh128")
    prefix = shared_prefix([a, b]).split(":")[1]
    assert len(prefix) >= 6, "these two values were picked for their digests' shared prefix"
    with ledger.run("values") as run:
        run.save(1627, name="a")
        run.save(4526, name="b")
    with pytest.raises(AmbiguousError) as err:
        ledger.artifact(prefix[:6])
    assert isinstance(err.value, LookupError)
    assert sorted(err.value.candidates) == sorted([a, b])
    assert a in str(err.value)
    assert b in str(err.value)
    assert ledger.artifact(a.split(":")[1][:12]).digest == a


def test_artifact_prefix_counts_objects_no_run_lists(ledger: Ledger, tmp_path: Path) -> None:
    """A prefix shared with a file inside a saved folder is ambiguous, not silently one of them."""
    inner = digest_bytes(b"4526", "xxh128")
    value = digest_bytes(canonical.dumps(1627), "xxh128")
    prefix = shared_prefix([inner, value]).split(":")[1]
    assert len(prefix) >= 6
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "n.txt").write_bytes(b"4526")
    with ledger.run("save") as run:
        run.save(str(folder))
        run.save(1627, name="v")
    with pytest.raises(AmbiguousError) as err:
        ledger.artifact(prefix[:6])
    assert sorted(err.value.candidates) == sorted([inner, value])
    got = ledger.artifact(inner.split(":")[1][:12])  # a tree entry: found in the store
    assert (got.digest, got.size, got.producers) == (inner, 4, ())


def test_unknown_or_malformed_artifact_is_not_found(ledger: Ledger) -> None:
    """A digest nobody stored, a too-short prefix or non-hex text raises NotFoundError."""
    with ledger.run("r") as run:
        run.save({"x": 1}, name="x")
    for bad in ("xxh128:" + "0" * 32, "0" * 32, "abc", "nothex-at-all", "sha256:abcdef12"):
        with pytest.raises(NotFoundError):
            ledger.artifact(bad)


# -- RunList -----------------------------------------------------------------------------


def test_run_list_is_a_lazy_sequence_of_runs(ledger: Ledger) -> None:
    """runs() gives a sequence: len, indexing (negative too), slices, equality with lists."""
    ids = []
    for i in range(4):
        with ledger.run("r", params={"i": i}) as r:
            pass
        ids.append(r.id)
    got = ledger.runs()
    assert isinstance(got, RunList)
    assert len(got) == 4
    assert got.ids == ids[::-1]
    assert got[0].id == ids[-1]
    assert got[-1].id == ids[0]
    assert [r.id for r in got[1:3]] == ids[2:0:-1]
    assert got == ledger.runs()
    assert got == list(got)
    assert "4 runs" in repr(got)
    with pytest.raises(IndexError):
        got[4]


def test_to_pandas_gives_one_row_per_run(ledger: Ledger) -> None:
    """to_pandas() has a row per run with params.*, metrics.* and tags.* columns."""
    pd = pytest.importorskip("pandas")
    with ledger.run("a", params={"lr": 0.1}, tags={"team": "cv"}) as r:
        r.log(loss=0.5)
    with ledger.run("b", params={"lr": 0.2, "cfg": {"optim": {"lr": 0.3}, "layers": [4]}}):
        pass
    df = ledger.runs().to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df["name"]) == ["b", "a"]
    assert list(df["params.lr"]) == [0.2, 0.1]
    assert df["params.cfg.optim.lr"].iloc[0] == 0.3  # a config's fields are columns
    assert df["params.cfg.layers"].iloc[0] == [4]
    assert "params.cfg" not in df.columns
    assert df["metrics.loss"].iloc[1] == 0.5
    assert df["tags.team"].iloc[1] == "cv"


def test_to_pandas_without_pandas_names_the_install(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pandas, to_pandas() raises MissingExtraError (an ImportError) naming the install."""
    with ledger.run("a"):
        pass
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingExtraError) as err:
        ledger.runs().to_pandas()
    assert isinstance(err.value, ImportError)
    assert "pip install pandas" in str(err.value)


def test_nested_runs_are_listed_like_any_other(ledger: Ledger) -> None:
    """A run inside another is listed by runs() and knows its parent."""
    with ledger.run("outer") as outer, ledger.run("inner") as inner:
        pass
    got = ledger.runs()
    assert set(got.ids) == {outer.id, inner.id}
    assert ledger.get(inner.id).parent_id == outer.id
    assert ledger.runs(where=f"parent_id = '{outer.id}'").ids == [inner.id]
