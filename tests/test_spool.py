"""The local spool: a store that refuses writes never ends up referring to what it lacks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.runs import run_keys

from mlledger import Ledger
from mlledger.errors import LedgerError, LedgerWarning
from mlledger.runs.spool import entry_order

MB = 1024 * 1024


def _mount(cmd: list[str]) -> str | None:
    """Run a mount command; the reason it failed, or None."""
    try:
        got = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except OSError as e:
        return str(e)
    return None if got.returncode == 0 else (got.stderr.strip() or f"exit {got.returncode}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 20 MB tmpfs: writes past its size fail with ENOSPC (skipped where mounting is
    not allowed: not root, or no mount permission in this container)."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the small-disk tests do not run here")
    why = _mount(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(where)])
    if why is not None:
        pytest.skip(f"cannot mount a tmpfs here ({why}); the small-disk tests do not run here")
    try:
        yield where
    finally:
        _mount(["umount", "-l", str(where)])


def _grow(disk: Path) -> None:
    """Give the small disk room for the big file (the store accepts writes again)."""
    assert _mount(["mount", "-o", "remount,size=120m", str(disk)]) is None


@contextlib.contextmanager
def elsewhere(ledger: Ledger, home: Path) -> Iterator[Ledger]:
    """The same store seen from another machine: its own cache (catalog) and data (spool)."""
    with pytest.MonkeyPatch.context() as m:
        _ = ledger.catalog  # the first ledger's catalog stays where it is
        for var in ("XDG_CACHE_HOME", "XDG_DATA_HOME"):
            (home / var).mkdir(parents=True, exist_ok=True)
            m.setenv(var, str(home / var))
        yield Ledger(ledger.url)


def _big_file(tmp_path: Path) -> Path:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(50):
            f.write(os.urandom(MB))
    return big


@pytest.mark.slow
@pytest.mark.parametrize("start_delay", [0.1, 0.0], ids=["short-run", "start-at-once"])
def test_a_full_store_keeps_the_whole_run_in_the_spool_until_push(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_delay: float
) -> None:
    """With the store's disk full, the 50 MB input goes to the spool and so does every entry
    after it: the store never refers to an object it lacks (verify is ok for everyone), the
    warning says the store is full, and push_spool publishes objects before entries."""
    monkeypatch.chdir(tmp_path)
    big = _big_file(tmp_path)
    ledger = Ledger(str(small_disk / "store"), start_delay=start_delay)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ledger.run("big") as run:
            run.log(step=0, loss=1.0)
            art = run.use(str(big))
            run.log(step=1, loss=0.5)
    texts = [str(w.message) for w in caught if issubclass(w.category, LedgerWarning)]
    assert texts, "no LedgerWarning about the spool"
    assert any("No space left on device" in t and "full" in t for t in texts), texts
    assert not any("cannot read" in t for t in texts), texts
    assert any("No space left on device" in w for w in run.warnings), run.warnings
    with elsewhere(ledger, tmp_path / "m2") as other:  # another machine meanwhile
        assert not other.store.has(art.digest)
        report = other.verify()
        assert report.ok, report
        assert "end.json" not in run_keys(other, run.id)
        assert f"{run.id}.json" not in run_keys(other, run.id)
    with pytest.raises(LedgerError, match="No space left on device"):
        ledger.push_spool()  # still full: nothing published out of order
    with elsewhere(ledger, tmp_path / "m3") as other:
        assert other.verify().ok
    _grow(small_disk)
    assert ledger.push_spool() > 0
    with elsewhere(ledger, tmp_path / "m4") as other:
        got = other.get(run.id)
        assert got.status == "finished"
        assert got.inputs["big.bin"].digest == art.digest
        assert [v for _s, v, _t in got.metric_history("loss")] == [1.0, 0.5]
        assert other.verify().ok


def test_spooled_entries_are_pushed_in_the_order_they_were_written() -> None:
    """Objects first; then each run's start, its metric chunks, pins and heartbeats, its end
    (a short run's one entry); runs oldest first; refs last."""
    rid_a, rid_b = "01M94KNG1E5C7PWWHVD7TYTMVZ", "01M94KNG1J0C4DZYS42S0ZWDYG"
    day = "runs/2026/12/06"
    keys = [
        "refs/model/prod/0000000001.json",
        f"{day}/{rid_b}.json",
        f"{day}/{rid_a}/end.json",
        f"{day}/{rid_a}/hb-00000001.json",
        f"{day}/{rid_a}/metrics-000002.json",
        f"{day}/{rid_a}/metrics-000001.json",
        f"{day}/{rid_a}/use-000001.json",
        f"{day}/{rid_a}/start.json",
    ]
    assert sorted(keys, key=entry_order) == [
        f"{day}/{rid_a}/start.json",
        f"{day}/{rid_a}/hb-00000001.json",
        f"{day}/{rid_a}/metrics-000001.json",
        f"{day}/{rid_a}/metrics-000002.json",
        f"{day}/{rid_a}/use-000001.json",
        f"{day}/{rid_a}/end.json",
        f"{day}/{rid_b}.json",
        "refs/model/prod/0000000001.json",
    ]


@pytest.mark.slow
def test_a_large_file_spooled_as_chunks_is_pushed_whole(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two versions of a large input go to the spool while the store is full, the second
    as a chunk list naming the first's bytes; push_spool stores both in the store under
    the same digests, restorable and sound."""
    from mlledger.store.chunked import CHUNKED_MIN, chunker

    if chunker() is None:
        pytest.skip("the chunks extra (pyfastcdc) is not installed")
    monkeypatch.chdir(tmp_path)
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(CHUNKED_MIN // MB + 8):
            f.write(os.urandom(MB))
    ledger = Ledger(str(small_disk / "store"))
    arts, copies = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LedgerWarning)
        for i in range(2):
            with ledger.run(f"big-{i}") as run:
                arts.append(run.use(str(big)))
            copies.append(big.read_bytes())
            with open(big, "r+b") as f:  # 1 MB changed in the middle
                f.seek(CHUNKED_MIN // 2)
                f.write(os.urandom(MB))
    assert not any(ledger.store.has(a.digest) for a in arts)
    assert _mount(["mount", "-o", "remount,size=200m", str(small_disk)]) is None
    assert ledger.push_spool() > 0
    with elsewhere(ledger, tmp_path / "m2") as other:
        for art, data in zip(arts, copies):
            out = other.store.restore(art.digest, tmp_path / "restored.bin")
            assert out.read_bytes() == data
            out.unlink()
        assert other.verify().ok
