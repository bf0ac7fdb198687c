"""Late runs: a run written into a day folder that catalogs already sealed is found by
the next sync (back-dated writers, machines whose clock is behind), on local disk and S3."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.ledgers import clock_at
from helpers.stores import local_or_s3

from mlledger import Ledger
from mlledger.ids import day_path

DAY = 86400.0

#: a writer in its own process: ``backdated`` makes run ids of another time (an import,
#: a spool of runs made offline); ``behind`` sets the whole process clock back (a machine
#: whose clock is wrong), so it cannot tell from its own clock that it writes late
WRITER = r"""
import json, sys, time, types
cfg = json.loads(sys.argv[1])
offset = time.time() - cfg["at"]
if cfg["mode"] == "behind":
    real, real_ns = time.time, time.time_ns
    time.time = lambda: real() - offset
    time.time_ns = lambda: real_ns() - int(offset * 1e9)
import mlledger
from mlledger import ids
if cfg["mode"] == "backdated":
    real_ns = time.time_ns
    ids.time = types.SimpleNamespace(time_ns=lambda: real_ns() - int(offset * 1e9))
ledger = mlledger.Ledger(cfg["url"], capture_files=False, **cfg["options"])
with ledger.run("late", params={"mode": cfg["mode"]}) as run:
    run.log(loss=0.5)
print(run.id)
"""


@pytest.fixture(params=["local", "s3"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A fresh store URL and its storage options: local disk, or a moto S3 server."""
    return local_or_s3(request, tmp_path, "late")


def write_late(url: str, options: dict[str, Any], mode: str, at: float) -> str:
    """Run the writer in a real process; returns the id of the run it wrote."""
    cfg = {"url": url, "options": options, "mode": mode, "at": at}
    got = subprocess.run(
        [sys.executable, "-c", WRITER, json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert got.returncode == 0, got.stderr
    return got.stdout.split()[-1]


def sealed(ledger: Ledger, run_id: str) -> bool:
    day = day_path(run_id).split("/", 1)[1].rsplit("/", 1)[0]
    row = ledger.catalog.db.execute("SELECT sealed FROM days WHERE day = ?", (day,)).fetchone()
    return row == (1,)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["backdated", "behind"])
def test_a_late_run_in_a_sealed_day_is_found_by_the_next_sync(
    spec: tuple[str, dict[str, Any]], mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run another process writes into a day this catalog sealed shows in runs() after the
    next plain sync (no reindex); the day is sealed again afterwards."""
    url, options = spec
    reader = Ledger(url, capture_files=False, **options)
    at = time.time() - 9 * DAY
    with clock_at(monkeypatch, at):
        with reader.run("old") as old:
            pass
    reader.sync()
    assert sealed(reader, old.id)
    late = write_late(url, options, mode, at + 60)
    assert day_path(late).rsplit("/", 1)[0] == day_path(old.id).rsplit("/", 1)[0]
    reader.sync()
    assert reader.runs(name="late").ids == [late]
    assert reader.runs().ids == sorted([late, old.id], reverse=True)
    assert sealed(reader, old.id)
    # another machine's catalog, sealed before the late run came, finds it too
    assert Ledger(url, **options).runs(name="late").ids == [late]


def test_writing_today_leaves_no_marker(tmp_path: Path) -> None:
    """Runs written on their own day (the common case) write no late marker at all."""
    ledger = Ledger(tmp_path / "store", capture_files=False)
    for _ in range(3):
        with ledger.run("now"):
            pass
    assert list(ledger.store.backend.list("runs"))
    assert not list(ledger.store.backend.list("late"))


@pytest.mark.slow
def test_a_spool_pushed_days_later_is_found_by_the_next_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs kept in the local spool while their day folder could not be written, pushed
    days later into a day the catalog sealed meanwhile, show after the next sync."""
    url = str(tmp_path / "store")
    reader = Ledger(url, capture_files=False)
    at = time.time() - 9 * DAY
    with clock_at(monkeypatch, at):
        with reader.run("old") as old:
            pass
    reader.sync()
    assert sealed(reader, old.id)
    folder = Path(url, day_path(old.id)).parent
    folder.rename(folder.with_name("moved"))
    folder.write_text("not a folder: writes into this day fail")  # the store refuses them
    try:
        late = write_late(url, {}, "backdated", at + 60)  # spooled, with a warning
    finally:
        folder.unlink()
        folder.with_name("moved").rename(folder)
    reader.sync()
    assert reader.runs(name="late").ids == []  # still in the spool
    marks = len(list(Path(url).rglob("*.late-*")))
    # the user's next session (a new Ledger) pushes the spool
    assert Ledger(url, capture_files=False).push_spool() == 0  # pushed when it opened
    reader.sync()
    assert reader.runs(name="late").ids == [late]
    assert len(list(Path(url).rglob("*.late-*"))) > marks  # the push marked the day


def test_a_back_dated_import_leaves_few_markers_and_every_run_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 runs written in a burst into a sealed day leave a handful of markers (a marker
    covers every entry before it: one per day per second, and one before the process's
    first entry there), and the next sync after the last one finds all 300."""
    from mlledger.late import RATE_S

    url = str(tmp_path / "store")
    reader = Ledger(url, capture_files=False)
    at = time.time() - 9 * DAY
    with clock_at(monkeypatch, at):
        with reader.run("old") as old:
            pass
    reader.sync()
    assert sealed(reader, old.id)
    time.sleep(RATE_S + 0.5)  # the old run's own markers (back-dated too), its timer's last
    before = len(list(Path(url).rglob("*.late-*")))
    writer = Ledger(url, capture_files=False)
    t0 = time.monotonic()
    with clock_at(monkeypatch, at + 60):
        ids = []
        for i in range(300):
            with writer.run("imported", params={"i": i}) as run:
                pass
            ids.append(run.id)
    took = time.monotonic() - t0
    time.sleep(RATE_S + 0.5)  # the last marker comes at most RATE_S after the last entry
    marks = len(list(Path(url).rglob("*.late-*"))) - before
    assert 2 <= marks <= took / RATE_S + 3
    reader.sync()
    assert reader.runs(name="imported").ids == sorted(ids, reverse=True)
    assert sealed(reader, old.id)
