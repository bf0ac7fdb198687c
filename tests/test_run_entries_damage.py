"""Damaged run entries (garbage, cut short, JSON of the wrong shape) are skipped with a
warning by every reader and listed by verify; the other runs stay readable."""

from __future__ import annotations

import json
import os
import stat
import time
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.ledgers import clock_at

from mlledger import Ledger
from mlledger.cli import cli
from mlledger.errors import DamagedEntryError, IntegrityError, LedgerWarning
from mlledger.ids import day_path, whole_key
from mlledger.store.backends import LocalBackend

#: runs in the store, and how many of them get a damaged entry
N = 30


@pytest.fixture
def ledger(fast_store_ledger: Ledger) -> Ledger:
    """This module's ledger: a memory or local store (conftest's fast_store_ledger)."""
    return fast_store_ledger


def overwrite(ledger: Ledger, key: str, data: bytes) -> None:
    """Replace a store entry's bytes behind mlledger's back (to damage it)."""
    backend = ledger.store.backend
    if isinstance(backend, LocalBackend):
        path = backend.local_path(key)
        os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
        Path(path).write_bytes(data)
        return
    backend.fs.pipe_file(backend.fs_path(key), data)  # type: ignore[attr-defined]


def read(ledger: Ledger, key: str) -> bytes:
    return ledger.store.backend.read(key)


def fill(ledger: Ledger) -> tuple[list[str], list[str]]:
    """N runs: even ones with start and end entries, odd ones short (one whole entry);
    each uses the value the one before saved, so they form a lineage chain."""
    slow = Ledger(ledger.url, **ledger.store.storage_options, start_delay=0)
    folders, wholes = [], []
    prev = None
    for i in range(N):
        lg = slow if i % 2 == 0 else ledger
        with lg.run("step", params={"i": i}) as run:
            if prev is not None:
                run.use(prev, name="prev")
            prev = {"i": i}
            run.save(prev, name="out")
            run.log(loss=1.0 / (i + 1))
        (folders if i % 2 == 0 else wholes).append(run.id)
    slow.catalog.close()
    return folders, wholes


def damage(ledger: Ledger, folders: list[str], wholes: list[str]) -> dict[str, str]:
    """Damage one entry each of six runs, each a different way; returns {run id: key}."""
    out = {}

    def hit(rid: str, key: str, new: bytes) -> None:
        overwrite(ledger, key, new)
        out[rid] = key

    f, w = folders, wholes
    hit(f[1], f"{day_path(f[1])}/end.json", os.urandom(300))  # garbage
    start = f"{day_path(f[2])}/start.json"
    hit(f[2], start, read(ledger, start)[:40])  # cut short
    hit(w[1], whole_key(w[1]), b"[1, 2, 3]")  # JSON, not an object
    doc = json.loads(read(ledger, whole_key(w[2])))
    hit(w[2], whole_key(w[2]), json.dumps({**doc, "params": [1, 2]}).encode())  # wrong shape
    hit(w[3], whole_key(w[3]), b"\xff\xfe garbage")  # a single-entry run: garbage
    end = f"{day_path(f[3])}/end.json"
    doc = json.loads(read(ledger, end))
    hit(f[3], end, json.dumps({**doc, "outputs": {"out": {"size": 1}}}).encode())  # no digest
    return out


def test_damaged_entries_are_skipped_with_a_warning_and_the_rest_stays_readable(
    ledger: Ledger,
) -> None:
    """With 6 of 30 runs damaged, runs(), where, reindex, lineage and get answer for the 24
    others; each damaged entry warns once; get of a damaged run says which entry is bad."""
    folders, wholes = fill(ledger)
    ledger.catalog.close()
    bad = damage(ledger, folders, wholes)
    good = sorted(set(folders + wholes) - set(bad), reverse=True)
    fresh = Ledger(ledger.url, **ledger.store.storage_options)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        assert fresh.runs().ids == good
        assert fresh.runs(where="metrics.loss <= 1").ids == good
        assert fresh.reindex() == len(good)
        assert fresh.runs().ids == good
    said = [str(w.message) for w in got if issubclass(w.category, LedgerWarning)]
    assert sorted(s for s in said if "damaged" in s) == sorted(
        s for s in said if any(k in s for k in bad.values())
    )
    assert {k for k in bad.values() if any(k in s for s in said)} == set(bad.values())
    assert len(said) == len(bad)
    for rid, key in bad.items():
        with pytest.raises(DamagedEntryError) as err:
            fresh.get(rid)
        assert isinstance(err.value, IntegrityError)
        assert isinstance(err.value, ValueError)
        assert key in str(err.value)
        assert "mlledger verify" in str(err.value)
    assert fresh.get(good[0]).id == good[0]
    lin = fresh.lineage(good[0])  # the chain runs through damaged runs: they are left out
    assert good[0] in {r.id for r in lin.runs}
    assert not {r.id for r in lin.runs} & set(bad)
    print(f"readable: {len(good)} of {N} runs with {len(bad)} damaged entries")


def test_verify_lists_every_damaged_entry(ledger: Ledger) -> None:
    """verify reports each damaged run entry (a single-entry run included) and is not ok;
    mlledger verify shows them and exits 1, its --json has a 'damaged' list."""
    folders, wholes = fill(ledger)
    assert ledger.verify().ok
    bad = damage(ledger, folders, wholes)
    report = ledger.verify()
    assert not report.ok
    assert {k for k, _ in report.damaged} == set(bad.values())
    assert all(why for _, why in report.damaged)
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", ledger.url, "verify", "--json"], catch_exceptions=False)
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["ok"] is False
    assert {d["key"] for d in doc["damaged"]} == set(bad.values())
    res = runner.invoke(cli, ["--store", ledger.url, "verify"], catch_exceptions=False)
    assert res.exit_code == 1
    for key in bad.values():
        assert f"damaged   {key}" in res.stdout


def test_mlledger_log_skips_damaged_runs(ledger: Ledger) -> None:
    """mlledger log lists every readable run and exits 0 when some entries are damaged."""
    folders, wholes = fill(ledger)
    ledger.catalog.close()
    bad = damage(ledger, folders, wholes)
    other = Ledger(ledger.url, **ledger.store.storage_options)
    other.catalog.close()
    with pytest.warns(LedgerWarning, match="damaged"):
        res = CliRunner().invoke(
            cli, ["--store", ledger.url, "log", "-n", "0", "--json"], catch_exceptions=False
        )
    assert res.exit_code == 0
    ids = [r["id"] for r in json.loads(res.stdout)]
    assert ids == sorted(set(folders + wholes) - set(bad), reverse=True)


def test_a_day_with_a_damaged_run_still_seals(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged, finished run does not keep its (old) day open: the day seals, and the
    damaged entry is not read again by each sync."""
    with clock_at(monkeypatch, time.time() - 9 * 86400):
        with ledger.run("old") as kept:
            pass
        with ledger.run("old") as hurt:
            pass
    overwrite(ledger, whole_key(hurt.id), b"{not json")
    fresh = Ledger(ledger.url, **ledger.store.storage_options)
    with pytest.warns(LedgerWarning, match="damaged"):
        assert fresh.runs().ids == [kept.id]
    day = day_path(kept.id).split("/", 1)[1].rsplit("/", 1)[0]
    sealed = fresh.catalog.db.execute("SELECT sealed FROM days WHERE day = ?", (day,)).fetchone()
    assert sealed == (1,)


def test_a_metric_record_without_its_fields_is_damage(ledger: Ledger) -> None:
    """An end entry whose metric lacks a field a Run reads is damaged: skipped, not a crash
    of every query that builds that Run."""
    with ledger.run("ok") as good:
        good.log(loss=0.1)
    with ledger.run("hurt") as hurt:
        hurt.log(loss=0.2)
    doc = json.loads(read(ledger, whole_key(hurt.id)))
    doc["metrics"]["loss"] = {"last": 0.2}
    overwrite(ledger, whole_key(hurt.id), json.dumps(doc).encode())
    fresh = Ledger(ledger.url, **ledger.store.storage_options)
    with pytest.warns(LedgerWarning, match="metric 'loss'"):
        assert [r.metrics["loss"] for r in fresh.runs()] == [0.1]
