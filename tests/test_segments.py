"""Catalog segments: a sealed day's run records in one object that a first sync reads
instead of one entry per run, checked against the day's listing; late runs, gc, verify,
damage, two sealers at once, S3."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.ledgers import clock_at
from helpers.stores import local_or_s3

from mlledger import Ledger
from mlledger import late as late_marks
from mlledger.ids import day_path, whole_key
from mlledger.store import segments

DAY = 86400.0


@pytest.fixture(params=["local", "s3"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A fresh store URL and its storage options: local disk, or a moto S3 server."""
    return local_or_s3(request, tmp_path, "seg")


def newcomer(url: str, options: dict[str, Any], tmp_path: Path, mp: pytest.MonkeyPatch) -> Ledger:
    """A Ledger with an empty catalog of its own (another machine, a new team member)."""
    cache = tmp_path / f"cache-{time.time_ns()}"
    cache.mkdir()
    mp.setenv("XDG_CACHE_HOME", str(cache))
    return Ledger(url, capture_files=False, **options)


def old_runs(ledger: Ledger, mp: pytest.MonkeyPatch, n: int, days_ago: float = 9) -> list[str]:
    """``n`` finished runs filed under a day ``days_ago`` days back; their ids."""
    made = []
    with clock_at(mp, time.time() - days_ago * DAY):
        for i in range(n):
            with ledger.run("old", params={"i": i}) as run:
                run.log(loss=i / 10)
            made.append(run.id)
    return made


def day_of(run_id: str) -> str:
    return day_path(run_id).split("/", 1)[1].rsplit("/", 1)[0]


def summary(ledger: Ledger) -> dict[str, Any]:
    """What a catalog answers: every run's id, params and metrics."""
    return {r.id: (r.params, r.metrics, r.status) for r in ledger.runs()}


def test_sealing_a_day_writes_one_segment_a_first_sync_reads(
    spec: tuple[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync that seals a day writes its segment; another machine's first sync answers
    the same from it, and takes the records from it rather than from the entries."""
    url, options = spec
    writer = Ledger(url, capture_files=False, **options)
    ids = old_runs(writer, monkeypatch, 5)
    writer.sync()
    found = segments.find(writer.store)
    assert list(found) == [day_of(ids[0])]
    (key,) = found[day_of(ids[0])]
    (seg,) = segments.read_day(writer.store, [key])
    assert sorted(seg.records) == sorted(ids)
    assert all(k in seg.entries for k in (whole_key(i) for i in ids))
    expected = summary(writer)
    # the records come from the segment: an entry damaged after the segment was written is
    # not read (``verify`` reports both the entry and the segment built from it)
    writer.store.backend.delete(whole_key(ids[0]))
    writer.store.create_entry(whole_key(ids[0]), b'{"damaged": ')
    reader = newcomer(url, options, tmp_path, monkeypatch)
    assert summary(reader) == expected
    report = reader.verify()
    assert any(whole_key(ids[0]) in k for k, _ in report.damaged)
    assert any("segment" in p and ids[0] in p for p in report.problems)


def test_verify_passes_on_sound_segments_and_flags_a_forged_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``verify`` rebuilds each segment from the entries it covers: sound ones pass; one
    whose record says other than the run's entries (its name matching its bytes) is named."""
    url = str(tmp_path / "store")
    ledger = Ledger(url, capture_files=False)
    ids = old_runs(ledger, monkeypatch, 3)
    ledger.sync()
    assert not [p for p in ledger.verify().problems if "segment" in p]
    (key,) = segments.find(ledger.store)[day_of(ids[0])]
    (seg,) = segments.read_day(ledger.store, [key])
    seg.records[ids[1]]["params"] = {"i": 999}
    forged_key, data = segments.encode(seg, ledger.store.algorithm)
    assert ledger.store.create_entry(forged_key, data)
    problems = [p for p in ledger.verify().problems if "segment" in p]
    assert len(problems) == 1
    assert ids[1] in problems[0]
    assert forged_key in problems[0]


def test_a_segment_whose_bytes_do_not_match_its_name_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment edited or damaged in place is never trusted: the first sync reads the
    day's entries instead and answers what they say."""
    url = str(tmp_path / "store")
    writer = Ledger(url, capture_files=False)
    ids = old_runs(writer, monkeypatch, 4)
    writer.sync()
    expected = summary(writer)
    (key,) = segments.find(writer.store)[day_of(ids[0])]
    path = Path(url, key)
    doc = json.loads(gzip.decompress(path.read_bytes()))
    doc["records"][ids[2]]["params"] = {"i": 12345}  # same name, other content
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    reader = newcomer(url, {}, tmp_path, monkeypatch)
    assert summary(reader) == expected
    path.write_bytes(b"not gzip at all")
    assert summary(newcomer(url, {}, tmp_path, monkeypatch)) == expected


def test_a_late_run_after_the_segment_is_found_by_a_first_sync(
    spec: tuple[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that lands in a day after its segment was written is in the day's listing but
    not in the segment: a first sync reads it from its entry, and a later seal of the day
    writes a segment that covers it too."""
    url, options = spec
    writer = Ledger(url, capture_files=False, **options)
    ids = old_runs(writer, monkeypatch, 3)
    writer.sync()
    (late,) = old_runs(writer, monkeypatch, 1)  # same day, after the seal (a back-dated run)
    assert day_of(late) == day_of(ids[0])
    reader = newcomer(url, options, tmp_path, monkeypatch)
    assert sorted(reader.runs().ids) == sorted([*ids, late])
    keys = segments.find(reader.store)[day_of(late)]
    assert len(keys) == 2  # the first sync of the reader sealed the day and covered the run
    newest = [s for s in segments.read_day(reader.store, keys) if late in s.records]
    assert newest
    assert sorted(newest[0].records) == sorted([*ids, late])
    # one more late run: the reader lists the day again and indexes only that run
    (later,) = old_runs(writer, monkeypatch, 1)
    late_marks.flush_all()  # its day's marker (a writer marks a day at most once a second)
    assert reader.sync() == 1
    assert later in reader.runs().ids


def test_gc_that_deletes_runs_of_a_day_rewrites_its_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After gc deleted runs of a sealed day, the day's segment holds only the runs left
    (no record of a deleted run stays in the store) and a first sync does not show them."""
    url = str(tmp_path / "store")
    ledger = Ledger(url, capture_files=False)
    ids = old_runs(ledger, monkeypatch, 4)
    ledger.sync()
    ledger.refs.set("keep/me", ids[0])
    report = ledger.gc(dry_run=False, keep_days=1, grace_seconds=0)
    assert set(report.runs) == set(ids[1:])
    keys = segments.find(ledger.store)[day_of(ids[0])]
    assert len(keys) == 1
    (seg,) = segments.read_day(ledger.store, keys)
    assert list(seg.records) == [ids[0]]
    assert newcomer(url, {}, tmp_path, monkeypatch).runs().ids == [ids[0]]


def _seal_in_child(url: str, cache: str, go: Any) -> None:
    import os

    os.environ["XDG_CACHE_HOME"] = cache
    go.wait()
    Ledger(url).sync()


def test_two_processes_sealing_the_same_day_at_once_leave_one_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes that seal the same day at the same moment write the same segment name
    create-only: one object, sound, covering every run."""
    url = str(tmp_path / "store")
    ids = old_runs(Ledger(url, capture_files=False), monkeypatch, 30)
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [
        ctx.Process(target=_seal_in_child, args=(url, str(tmp_path / f"c{i}"), go))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)
    go.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    found = segments.find(Ledger(url).store)
    (keys,) = found.values()
    assert len(keys) == 1
    (seg,) = segments.read_day(Ledger(url).store, keys)
    assert sorted(seg.records) == sorted(ids)
    assert not list(Path(url).rglob(".tmp-*"))


KILLED_WRITER = r"""
import os, signal, sys
from mlledger import Ledger
from mlledger import late as late_marks
from mlledger.store import segments
real = segments.write
def write_then_die(store, seg):
    key, data = segments.encode(seg, store.algorithm)
    tmp = store.backend.local_path(key) + ".part"
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    with open(tmp, "wb") as f:  # what a half-done write leaves: never under the final name
        f.write(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)
segments.write = write_then_die
Ledger(sys.argv[1]).sync()
"""


def test_a_sealer_killed_while_writing_leaves_no_segment_and_the_next_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process killed (SIGKILL) while writing a segment leaves none under a segment's
    name; the next sync that seals the day writes it and a first sync reads it."""
    url = str(tmp_path / "store")
    writer = Ledger(url, capture_files=False)
    ids = old_runs(writer, monkeypatch, 5)
    # the killed process's catalog is the one the writer opens next (its catalog is lazy)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "killed-cache"))
    got = subprocess.run([sys.executable, "-c", KILLED_WRITER, url], check=False, timeout=120)
    assert got.returncode == -9
    assert segments.find(writer.store) == {}
    writer.sync()
    (keys,) = segments.find(writer.store).values()
    assert sorted(segments.read_day(writer.store, keys)[0].records) == sorted(ids)
    assert sorted(newcomer(url, {}, tmp_path, monkeypatch).runs().ids) == sorted(ids)


def test_reindex_reads_every_entry_not_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``reindex`` rebuilds from the run entries themselves: a forged segment (sound name)
    changes nothing it answers."""
    url = str(tmp_path / "store")
    ledger = Ledger(url, capture_files=False)
    ids = old_runs(ledger, monkeypatch, 3)
    ledger.sync()
    expected = summary(ledger)
    (key,) = segments.find(ledger.store)[day_of(ids[0])]
    (seg,) = segments.read_day(ledger.store, [key])
    seg.records[ids[0]]["params"] = {"i": -1}
    Path(url, key).unlink()
    ledger.store.create_entry(*segments.encode(seg, ledger.store.algorithm))
    ledger.reindex()
    assert summary(ledger) == expected


def test_today_runs_written_right_after_a_sync_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync's fast path for today's folder (a listing diffed against what it settled,
    the folder's stamp) never misses a run written just after the last sync."""
    url = str(tmp_path / "store")
    reader = Ledger(url, capture_files=False)
    writer = newcomer(url, {}, tmp_path, monkeypatch)  # its own catalog, as elsewhere
    seen = []
    for i in range(5):
        with writer.run("now", params={"i": i}) as run:
            pass
        seen.append(run.id)
        reader.sync()
        assert sorted(reader.catalog.all_run_ids()) == sorted(seen)
    time.sleep(2.5)  # the folder's stamp is now old enough to be trusted
    reader.sync()
    with writer.run("now", params={"i": 99}) as run:
        pass
    reader.sync()
    assert run.id in reader.catalog.all_run_ids()
