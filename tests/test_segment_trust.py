"""A first sync trusts a sealed day's segments instead of listing its folder when no late
marker names the day: it lists no such folder, yet misses no run (a writer killed right
after its entry, a gc killed midway, a run that died mid-run, a segment from before
segments held their listing), and ``verify`` names a run a segment's listing lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.ledgers import clock_at
from helpers.oldruns import DAY, day_of, newcomer, runs_over_days, summary
from helpers.stores import local_or_s3

from mlledger import Ledger, canonical, late
from mlledger.ids import new_run_id, whole_key
from mlledger.store import segments


@pytest.fixture(params=["local", "s3"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A fresh store URL and its storage options: local disk, or a moto S3 server."""
    return local_or_s3(request, tmp_path, "trust")


def day_listings(ledger: Ledger, mp: pytest.MonkeyPatch) -> list[str]:
    """Record every day folder (``yyyy/mm/dd``) the ledger's store lists from now on."""
    listed: list[str] = []
    backend = ledger.store.backend
    real = backend.list_dir

    def list_dir(prefix: str) -> list[str]:
        parts = prefix.strip("/").split("/")
        if len(parts) == 4 and parts[0] == "runs":
            listed.append("/".join(parts[1:]))
        return real(prefix)

    mp.setattr(backend, "list_dir", list_dir)
    return listed


def markers(ledger: Ledger, day: str) -> list[str]:
    """The keys of the late markers of ``day``."""
    return [
        f"late/{n}" for n in ledger.store.backend.list_dir("late") if late.marked_day(n) == day
    ]


def sealed_store(
    url: str, options: dict[str, Any], mp: pytest.MonkeyPatch, days: range, per_day: int = 2
) -> tuple[Ledger, dict[int, list[str]]]:
    """A store with runs over ``days`` (days back) whose days one catalog sealed, each with
    its segment; the writer (its catalog synced) and the runs' ids by day."""
    writer = Ledger(url, capture_files=False, **options)
    made = runs_over_days(writer, mp, days, per_day)
    with writer.run("today") as run:
        run.log(loss=1.0)
    made[0] = [run.id]
    # runs made on their own day leave no marker; these were filed under past days by a
    # clock set back for their ids only, so the writer marked their days: unmark them
    late.flush_all()
    for day in {day_of(ids[0]) for ago, ids in made.items() if ago}:
        for key in markers(writer, day):
            writer.store.backend.delete(key)
    writer.sync()
    for ago in days:
        assert segments.find(writer.store).get(day_of(made[ago][0])), "the day was not sealed"
    return writer, made


@pytest.mark.parametrize("ndays", [1, 12])
def test_a_first_sync_lists_no_sealed_day_its_segments_stand_for(
    spec: tuple[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ndays: int
) -> None:
    """A newcomer's first sync takes every sealed day no marker names from its segments'
    listing (one day: in turn; twelve: read ahead), lists none of those folders, and
    answers exactly what the writer's catalog answers."""
    url, options = spec
    writer, made = sealed_store(url, options, monkeypatch, range(3, 3 + ndays))
    reader = newcomer(url, options, tmp_path / "cache", monkeypatch)
    listed = day_listings(reader, monkeypatch)
    assert summary(reader) == summary(writer)
    old_days = {day_of(ids[0]) for ago, ids in made.items() if ago}
    assert not old_days & set(listed), f"sealed days listed: {sorted(old_days & set(listed))}"
    assert day_of(made[0][0]) in listed  # today's folder is listed as always
    assert sum(len(v) for v in made.values()) == len(reader.runs())


#: a writer in its own process, its run filed under a past day, killed by SIGKILL right
#: after the store created its first run entry (before any marker it would write after)
KILLED_WRITER = r"""
import json, os, signal, sys, time, types
cfg = json.loads(sys.argv[1])
offset = time.time() - cfg["at"]
import mlledger
from mlledger import ids
from mlledger.store import Store
real_ns = time.time_ns
ids.time = types.SimpleNamespace(time_ns=lambda: real_ns() - int(offset * 1e9))
create = Store.create_entry
def create_then_die(self, key, data):
    done = create(self, key, data)
    if key.startswith("runs/") and key.count("/") >= 4 and ".late-" not in key:
        print(key, flush=True)
        os.kill(os.getpid(), 9)
    return done
Store.create_entry = create_then_die
ledger = mlledger.Ledger(cfg["url"], capture_files=False, **cfg["options"])
with ledger.run("killed late") as run:
    run.log(loss=0.5)
"""


def test_a_writer_killed_right_after_its_late_entry_leaves_a_run_every_sync_finds(
    spec: tuple[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process writing into a sealed day marks the day before its entry: killed by
    SIGKILL right after the entry, it leaves that marker, so the catalog that sealed the
    day finds the run at its next sync and a newcomer's first sync lists the day."""
    url, options = spec
    writer, made = sealed_store(url, options, monkeypatch, range(5, 7))
    day = day_of(made[5][0])
    before = markers(writer, day)
    cfg = {"url": url, "options": options, "at": time.time() - 5 * DAY + 60}
    got = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert got.returncode == -9, got.stderr
    key = got.stdout.split()[-1]
    assert key.startswith(f"runs/{day}/")
    assert len(markers(writer, day)) == len(before) + 1  # the one written before the entry
    rid = key.split("/")[4].removesuffix(".json")
    writer.sync()
    assert rid in writer.runs().ids
    reader = newcomer(url, options, tmp_path / "cache", monkeypatch)
    listed = day_listings(reader, monkeypatch)
    assert rid in reader.runs().ids
    assert day in listed
    assert summary(reader) == summary(writer)
    assert not [p for p in reader.verify().problems if "segment" in p]


#: gc in its own process, killed by SIGKILL at its first deletion of a run entry (after it
#: wrote the segments of the runs' days afresh)
KILLED_GC = r"""
import os, sys
import mlledger
from mlledger.store.backends.local import LocalBackend
delete = LocalBackend.delete
def delete_or_die(self, key):
    if key.startswith("runs/"):
        os.kill(os.getpid(), 9)
    return delete(self, key)
LocalBackend.delete = delete_or_die
mlledger.Ledger(sys.argv[1], capture_files=False).gc(dry_run=False, keep_days=1, grace_seconds=0)
"""


def test_a_gc_killed_before_it_deleted_hides_nothing_and_any_next_gc_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc writes the segments of the days it deletes runs from before it deletes, with no
    record of the doomed runs but their names still listed: killed right after, a
    newcomer's first sync reads those runs from their entries and shows them (they are
    still there), so a gc from the newcomer's machine deletes them; then a first sync shows
    only the runs that stay and verify is clean."""
    url = str(tmp_path / "store")
    writer, made = sealed_store(url, {}, monkeypatch, range(4, 6), per_day=3)
    keep = made[4][0]
    writer.refs.set("keep/me", keep)
    got = subprocess.run(
        [sys.executable, "-c", KILLED_GC, url], capture_output=True, text=True, check=False
    )
    assert got.returncode == -9, got.stderr
    doomed = {rid for ago in (4, 5) for rid in made[ago]} - {keep}
    assert all(Path(url, whole_key(rid)).exists() for rid in doomed)  # none deleted yet
    for day in {day_of(rid) for rid in doomed}:
        for seg in segments.read_day(writer.store, segments.find(writer.store)[day]):
            assert not doomed & set(seg.records)
    reader = newcomer(url, {}, tmp_path / "cache", monkeypatch)
    assert set(reader.runs().ids) == {keep, *made[0], *doomed}
    report = reader.gc(dry_run=False, keep_days=1, grace_seconds=0)
    assert set(report.runs) == doomed
    assert set(newcomer(url, {}, tmp_path / "cache2", monkeypatch).runs().ids) == {keep, *made[0]}
    assert not [p for p in writer.verify().problems if "segment" in p]


def test_runs_a_gc_log_names_are_left_out_of_a_trusted_listing(
    spec: tuple[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run named by a gc log (another machine's gc) is not taken from a segment that
    still holds it, even when its entry is still there."""
    url, options = spec
    writer, made = sealed_store(url, options, monkeypatch, range(4, 5), per_day=3)
    gone = made[4][1]
    doc = {"runs": [gone], "at": "2026-01-01T00:00:00Z", "host": "h", "user": "u"}
    assert writer.store.create_entry(f"gc/{new_run_id()}.json", canonical.dumps(doc))
    reader = newcomer(url, options, tmp_path / "cache", monkeypatch)
    assert gone not in reader.runs().ids
    assert set(reader.runs().ids) == {*made[4], *made[0]} - {gone}


def unmarked_late_run(writer: Ledger, mp: pytest.MonkeyPatch, days_ago: float) -> str:
    """A run written into a sealed day whose markers are then deleted (as if written by a
    writer that marked nothing): its id."""
    with clock_at(mp, time.time() - days_ago * DAY):
        with writer.run("unmarked") as run:
            run.log(loss=0.25)
    late.flush_all()
    day = day_of(run.id)
    for key in markers(writer, day):
        writer.store.backend.delete(key)
    return run.id


def test_a_segment_without_a_listing_is_not_trusted(
    spec: tuple[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment written before segments held their day's listing stands for no listing:
    a first sync lists that day and finds a run no marker names."""
    url, options = spec
    writer, made = sealed_store(url, options, monkeypatch, range(4, 5))
    day = day_of(made[4][0])
    (key,) = segments.find(writer.store)[day]
    (seg,) = segments.read_day(writer.store, [key])
    seg.listing = None
    old_key, data = segments.encode(seg, writer.store.algorithm)
    assert writer.store.create_entry(old_key, data)
    writer.store.backend.delete(key)
    late = unmarked_late_run(writer, monkeypatch, 4)
    reader = newcomer(url, options, tmp_path / "cache", monkeypatch)
    listed = day_listings(reader, monkeypatch)
    assert late in reader.runs().ids
    assert day in listed


def test_verify_names_a_run_a_trusted_segment_would_hide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run in a sealed day that its segment's listing lacks, with no marker naming the
    day, is named by ``verify`` with what to do; once a marker names the day (or the
    segment is deleted, as verify says), a first sync finds it and verify is clean."""
    url = str(tmp_path / "store")
    writer, _made = sealed_store(url, {}, monkeypatch, range(4, 5))
    late = unmarked_late_run(writer, monkeypatch, 4)
    problems = [p for p in writer.verify().problems if late in p]
    assert len(problems) == 1
    assert "no late marker" in problems[0]
    assert "delete the segment" in problems[0]
    assert late not in newcomer(url, {}, tmp_path / "c1", monkeypatch).runs().ids
    for key in segments.find(writer.store)[day_of(late)]:
        writer.store.backend.delete(key)
    reader = newcomer(url, {}, tmp_path / "c2", monkeypatch)
    assert late in reader.runs().ids
    assert not [p for p in reader.verify().problems if "segment" in p]


#: a run filed under a past day whose process is killed mid-run (its start entry written,
#: never its end)
DIES_MIDRUN = r"""
import json, os, sys, time, types
cfg = json.loads(sys.argv[1])
offset = time.time() - cfg["at"]
import mlledger, mlledger.runs.run
from mlledger import ids
real_ns = time.time_ns
ids.time = types.SimpleNamespace(time_ns=lambda: real_ns() - int(offset * 1e9))
mlledger.runs.run.METRIC_CHUNK = 3  # chunks written (and the start before them) mid-run
ledger = mlledger.Ledger(cfg["url"], capture_files=False, **cfg["options"])
with ledger.run("dies") as run:
    for i in range(8):
        run.log(step=i, loss=1.0 / (i + 1))
    print(run.id, flush=True)
    os.kill(os.getpid(), 9)
"""


def test_a_run_that_died_midway_in_a_sealed_day_shows_and_its_segment_stays_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed mid-run (a start, no end) in an old day: the day is sealed with a
    segment naming it in its listing but holding no record of it; a first sync reads it
    from its entries (incomplete, as the writer's catalog says) and writes no second
    segment."""
    url = str(tmp_path / "store")
    cfg = {"url": url, "options": {}, "at": time.time() - 6 * DAY}
    got = subprocess.run(
        [sys.executable, "-c", DIES_MIDRUN, json.dumps(cfg)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert got.returncode == -9, got.stderr
    dead = got.stdout.split()[-1]
    writer, made = sealed_store(url, {}, monkeypatch, range(6, 7))
    assert day_of(dead) == day_of(made[6][0])
    (key,) = segments.find(writer.store)[day_of(dead)]
    (seg,) = segments.read_day(writer.store, [key])
    assert dead not in seg.records
    assert seg.listing is not None
    assert dead in seg.listing
    reader = newcomer(url, {}, tmp_path / "cache", monkeypatch)
    assert summary(reader) == summary(writer)
    assert summary(reader)[dead][2] == "incomplete"
    assert segments.find(reader.store)[day_of(dead)] == [key]
    assert os.path.exists(Path(url, key))


#: a spool push in its own process, killed by SIGKILL right after the store created the
#: first run entry it pushed
KILLED_PUSH = r"""
import os, sys
import mlledger
from mlledger.store import Store
create = Store.create_entry
def create_then_die(self, key, data):
    done = create(self, key, data)
    if key.startswith("runs/") and key.count("/") >= 4 and ".late-" not in key:
        os.kill(os.getpid(), 9)
    return done
Store.create_entry = create_then_die
mlledger.Ledger(sys.argv[1], capture_files=False)  # pushes the spool it finds on opening
"""


@pytest.mark.filterwarnings("ignore:mlledger. the store at:UserWarning")
def test_a_spool_push_killed_after_its_first_entry_leaves_the_day_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries pushed from a spool into a sealed day are marked before the first is
    pushed: a push killed right after it leaves a marker, and a newcomer's first sync
    lists the day and finds the run."""
    url = str(tmp_path / "store")
    writer, made = sealed_store(url, {}, monkeypatch, range(7, 8))
    day = day_of(made[7][0])
    folder = Path(url, "runs", day)
    folder.rename(folder.with_name("moved"))
    folder.write_text("not a folder: writes into this day fail")  # the store refuses them
    try:
        with clock_at(monkeypatch, time.time() - 7 * DAY):
            with writer.run("spooled") as run:
                run.log(loss=0.1)
    finally:
        folder.unlink()
        folder.with_name("moved").rename(folder)
    late.flush_all()
    for key in markers(writer, day):  # as if spooled by a writer that marked nothing
        writer.store.backend.delete(key)
    got = subprocess.run(
        [sys.executable, "-c", KILLED_PUSH, url], capture_output=True, text=True, check=False
    )
    assert got.returncode == -9, got.stderr
    assert markers(writer, day)
    reader = newcomer(url, {}, tmp_path / "cache", monkeypatch)
    assert run.id in reader.runs().ids


def test_a_segment_the_store_dates_before_its_day_was_two_days_old_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog whose clock runs ahead may seal a day writers still write into without
    markers: a segment the store's own clock dates less than 2 days after its day began
    stands for no listing, so a first sync lists the day and finds a run it lacks."""
    url = str(tmp_path / "store")
    writer, made = sealed_store(url, {}, monkeypatch, range(4, 5))
    day = day_of(made[4][0])
    (key,) = segments.find(writer.store)[day]
    y, m, d = (int(x) for x in day.split("/"))
    import datetime as dt

    begun = dt.datetime(y, m, d, tzinfo=dt.timezone.utc).timestamp()
    os.utime(Path(url, key), (begun + DAY, begun + DAY))  # written when the day was 1 day old
    late_id = unmarked_late_run(writer, monkeypatch, 4)
    reader = newcomer(url, {}, tmp_path / "cache", monkeypatch)
    listed = day_listings(reader, monkeypatch)
    assert late_id in reader.runs().ids
    assert day in listed
