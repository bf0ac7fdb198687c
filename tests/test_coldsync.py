"""A first sync at the speed of the bucket: days listed and segments read ahead, indexes
made once after the rows, records' JSON taken from the segments' bytes, and a first
sync killed midway repaired by the next one."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.oldruns import newcomer, runs_over_days
from helpers.stores import local_or_s3

from mlledger import Ledger, canonical
from mlledger.catalog import ahead, firstload
from mlledger.ids import whole_key
from mlledger.store import segments
from mlledger.store.chain import entry_digest

DAY = 86400.0


@pytest.fixture(params=["local", "s3"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A fresh store URL and its storage options: local disk, or a moto S3 server."""
    return local_or_s3(request, tmp_path, "cold")


def rows(ledger: Ledger) -> dict[str, str]:
    """Every run's id and stored record text in a ledger's catalog."""
    return dict(ledger.catalog.db.execute("SELECT id, record FROM runs").fetchall())


def index_names(db: sqlite3.Connection) -> set[str]:
    got = db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    return {r[0] for r in got}


def test_a_first_sync_of_many_days_reads_ahead_and_answers_as_the_writer(
    spec: tuple[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over more days than ``ahead.MIN_DAYS``, a newcomer's first sync (listings and
    segments read ahead) holds exactly the records, byte for byte, that reading every
    entry gives: a late run after the seal is found, a run whose entry is gone dropped."""
    url, options = spec
    writer = newcomer(url, options, tmp_path / "writer", monkeypatch)
    per_day = 3 if url.startswith("s3") else 6
    made = runs_over_days(writer, monkeypatch, range(3, 3 + ahead.MIN_DAYS + 2), per_day)
    writer.sync()
    assert len(segments.find(writer.store)) == ahead.MIN_DAYS + 2
    (late,) = runs_over_days(writer, monkeypatch, range(5, 6), 1)[5]  # after the seal
    gone = made[7][0]
    writer.store.backend.delete(whole_key(gone))  # its entry deleted: only a segment has it
    reader = newcomer(url, options, tmp_path / "reader", monkeypatch)
    every = {rid for ids in made.values() for rid in ids} | {late}
    assert set(reader.runs().ids) == every - {gone}
    writer.reindex()  # every entry read again: the store's truth
    assert rows(reader) == rows(writer)
    assert reader.sync() == 0


def test_records_read_from_a_segment_are_stored_as_its_bytes_hold_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment's record texts are its records' canonical JSON exactly; a segment written
    with other whitespace (still matching its name) is read plainly, to the same records."""
    url = str(tmp_path / "store")
    writer = newcomer(url, {}, tmp_path / "writer", monkeypatch)
    ids = runs_over_days(writer, monkeypatch, range(4, 5), 5)[4]
    writer.sync()
    ((day, (key,)),) = segments.find(writer.store).items()
    (seg,) = segments.read_day(writer.store, [key])
    assert set(seg.texts) == set(ids)
    for rid in ids:
        assert seg.texts[rid] == canonical.dumps(seg.records[rid]).decode("utf-8")
    doc = json.loads(gzip.decompress(writer.store.backend.read(key)))
    raw = json.dumps(doc, indent=1).encode("utf-8")
    name = entry_digest(raw, writer.store.algorithm).partition(":")[2] + segments.SUFFIX
    loose = segments.decode(f"segments/{day}/{name}", gzip.compress(raw), writer.store.algorithm)
    assert loose.records == seg.records
    assert loose.texts == {}


def count_first_loads(mp: pytest.MonkeyPatch) -> list[int]:
    """A list that gets one item each time a first load starts, from now on."""
    started: list[int] = []
    real_start = firstload.FirstLoad.start

    def counted(self: firstload.FirstLoad) -> None:
        started.append(1)
        real_start(self)

    mp.setattr(firstload.FirstLoad, "start", counted)
    return started


def test_a_first_load_makes_the_indexes_once_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first sync of a day's batch large enough drops the secondary indexes and makes
    them again when it ends: every index of the schema is there, no load is pending, the
    connection's safety level is back, and a query uses them; a later sync of a few runs
    into the filled catalog does not start a load."""
    url = str(tmp_path / "store")
    writer = newcomer(url, {}, tmp_path / "writer", monkeypatch)
    runs_over_days(writer, monkeypatch, range(4, 5), 230)
    writer.sync()
    started = count_first_loads(monkeypatch)
    reader = newcomer(url, {}, tmp_path / "reader", monkeypatch)
    assert len(reader.runs(where="params.i < 10")) == 10
    assert started == [1]
    db = reader.catalog.db
    assert index_names(db) == {name for name, _ in firstload.index_statements()}
    assert db.execute("SELECT count(*) FROM meta WHERE key = 'first_load'").fetchone()[0] == 0
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL, as every connection
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT run_id FROM params WHERE key = 'i' AND value_num < 3"
    ).fetchall()
    assert "params_" in " ".join(str(r) for r in plan)
    runs_over_days(writer, monkeypatch, range(1), 3)
    assert reader.sync() == 3
    assert started == [1]


def test_a_first_sync_of_many_small_days_starts_one_first_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first sync of many days each too small to start a load alone (a ledger of a few
    runs a day over years) starts one first load once it has read enough runs in all, and
    ends with every index made."""
    url = str(tmp_path / "store")
    writer = newcomer(url, {}, tmp_path / "writer", monkeypatch)
    runs_over_days(writer, monkeypatch, range(3, 33), 8)
    writer.sync()
    started = count_first_loads(monkeypatch)
    reader = newcomer(url, {}, tmp_path / "reader", monkeypatch)
    assert len(reader.runs()) == 240
    assert started == [1]
    assert index_names(reader.catalog.db) == {name for name, _ in firstload.index_statements()}


KILLED_FIRST_SYNC = r"""
import os, signal, sys
from mlledger import Ledger
from mlledger.catalog import index

calls = []
real = index.insert_records

def insert_then_die(db, records, texts=None):
    real(db, records, texts)
    calls.append(1)
    if len(calls) == 3:  # two days committed, the third's rows written, not committed
        os.kill(os.getpid(), signal.SIGKILL)

index.insert_records = insert_then_die
Ledger(sys.argv[1], capture_files=False).sync()
"""


@pytest.mark.slow
def test_a_first_sync_killed_midway_leaves_a_catalog_the_next_sync_repairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process killed (SIGKILL) inside a first load, its indexes dropped and a day's
    rows uncommitted, leaves a catalog the next sync completes: every run once, every
    index made again, no load pending, the file sound."""
    url = str(tmp_path / "store")
    writer = newcomer(url, {}, tmp_path / "writer", monkeypatch)
    made = runs_over_days(writer, monkeypatch, range(3, 8), 210)
    writer.sync()
    cache = tmp_path / "killed"
    reader = newcomer(url, {}, cache, monkeypatch)
    got = subprocess.run([sys.executable, "-c", KILLED_FIRST_SYNC, url], check=False, timeout=300)
    assert got.returncode == -9
    path = reader.catalog.path
    with sqlite3.connect(path) as db:  # what the killed process left behind
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 2 * 210
        assert db.execute("SELECT value FROM meta WHERE key = 'first_load'").fetchone()
        assert not index_names(db) & {name for name, _ in firstload.index_statements()}
    every = sorted(rid for ids in made.values() for rid in ids)
    assert reader.sync() == len(every) - 2 * 210
    assert sorted(reader.runs().ids) == every
    db = reader.catalog.db
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert index_names(db) == {name for name, _ in firstload.index_statements()}
    assert db.execute("SELECT count(*) FROM meta WHERE key = 'first_load'").fetchone()[0] == 0
    assert reader.catalog.path == path  # the same file, completed (not a fresh generation)
