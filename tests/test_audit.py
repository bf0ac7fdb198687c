"""The audit trail is tamper-evident: run entries and ref (and policy) entries are sealed
and chained by digest, and ``verify`` checks every seal, link and gap."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from helpers.stores import move_ref_in_process

from mlledger import Ledger
from mlledger.ids import day_path, whole_key
from mlledger.store import Refs, Store
from mlledger.store.history import History


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """A local ledger whose runs write their start entry at once (a folder per run)."""
    monkeypatch.chdir(tmp_path)
    return Ledger(str(tmp_path / "store"), capture_files=False, start_delay=0.0)


def _root(ledger: Ledger) -> Path:
    return Path(ledger.url)


def _edit(path: Path, old: bytes, new: bytes) -> None:
    """Change bytes of a store file behind mlledger's back (entries are read-only files)."""
    data = path.read_bytes()
    assert old in data, data
    path.chmod(0o644)
    path.write_bytes(data.replace(old, new, 1))


def _reseal(path: Path, ledger: Ledger) -> None:
    """Recompute an edited entry's own seal, as a forger who knows the format would."""
    from mlledger.store.chain import seal

    doc = json.loads(path.read_bytes())
    doc.pop("seal", None)
    path.write_bytes(seal(doc, ledger.store.algorithm))


def _two_runs(ledger: Ledger) -> tuple[str, str]:
    with ledger.run("long") as run:
        for i in range(300):  # more than the tail end.json carries: a metrics chunk file
            run.log(step=i, loss=1.0 / (i + 1))
        run.save({"acc": 0.9}, name="scores")
    ledger.start_delay = 60.0
    with ledger.run("short") as short:  # one entry, no folder
        short.save({"acc": 0.8}, name="scores")
    ledger.start_delay = 0.0
    return run.id, short.id


def test_a_sound_trail_verifies_with_nothing_unchained(ledger: Ledger) -> None:
    """Runs, a metrics chunk, ref moves and a rollback verify ok; every entry is chained."""
    long_id, short_id = _two_runs(ledger)
    ledger.refs.set("model/prod", f"{long_id}/scores")
    ledger.refs.set("model/prod", short_id)
    ledger.refs.rollback("model/prod")
    assert (_root(ledger) / day_path(long_id) / "metrics-000001.json").exists()
    report = ledger.verify()
    assert report.ok, report
    assert report.trail == ()
    assert report.unchained == 0


def test_an_edited_run_record_is_damage(ledger: Ledger) -> None:
    """A run's end entry edited by hand ("finished" -> "failed") fails verify, naming it."""
    long_id, short_id = _two_runs(ledger)
    end = _root(ledger) / day_path(long_id) / "end.json"
    _edit(end, b'"status":"finished"', b'"status":"failed"')
    whole = _root(ledger) / whole_key(short_id)
    _edit(whole, b'"status":"finished"', b'"status":"failed"')
    report = ledger.verify()
    assert not report.ok
    text = "\n".join(report.trail)
    assert f"{day_path(long_id)}/end.json" in text
    assert whole_key(short_id) in text


def test_a_deleted_start_entry_is_damage(ledger: Ledger) -> None:
    """A run whose start.json is deleted fails verify: its end entry names the start's digest."""
    long_id, _ = _two_runs(ledger)
    (_root(ledger) / day_path(long_id) / "start.json").unlink()
    report = ledger.verify()
    assert not report.ok
    assert any("start.json" in p and long_id in p for p in report.trail), report.trail


def test_an_edited_start_or_metrics_entry_is_damage(ledger: Ledger) -> None:
    """An edited start entry or metrics chunk fails verify, even with its own seal redone."""
    long_id, _ = _two_runs(ledger)
    base = _root(ledger) / day_path(long_id)
    _edit(base / "start.json", b'"name":"long"', b'"name":"lung"')
    _reseal(base / "start.json", ledger)
    _edit(base / "metrics-000001.json", b'"step"', b'"step" ')
    report = ledger.verify()
    assert not report.ok
    text = "\n".join(report.trail)
    assert "start.json" in text
    assert "metrics-000001.json" in text


def test_a_deleted_ref_entry_is_a_gap(ledger: Ledger) -> None:
    """Deleting a ref entry from the middle of its history fails verify (a gap: #3, #1)."""
    for i in range(3):
        ledger.refs.set("model/prod", ledger.store.put_bytes(f"model {i}".encode()))
    (_root(ledger) / "refs" / "model" / "prod" / "0000000002.json").unlink()
    report = ledger.verify()
    assert not report.ok
    assert any("model/prod" in p and "#2" in p for p in report.trail), report.trail


def test_an_edited_ref_entry_is_damage(ledger: Ledger) -> None:
    """An edited ref entry fails verify; resealed, the next entry's link still catches it."""
    for i in range(3):
        ledger.refs.set("model/prod", ledger.store.put_bytes(f"model {i}".encode()),
                        message=f"move {i}")
    first = _root(ledger) / "refs" / "model" / "prod" / "0000000001.json"
    _edit(first, b"move 0", b"move X")
    assert not ledger.verify().ok
    _reseal(first, ledger)
    report = ledger.verify()
    assert not report.ok
    assert any("model/prod#2" in p for p in report.trail), report.trail


def test_a_ref_pins_the_record_of_its_run(ledger: Ledger) -> None:
    """A ref entry naming a run holds its end entry's digest: a resealed forgery is caught."""
    long_id, _ = _two_runs(ledger)
    ledger.refs.set("model/prod", f"{long_id}/scores")
    end = _root(ledger) / day_path(long_id) / "end.json"
    _edit(end, b'"status":"finished"', b'"status":"failed"')
    _reseal(end, ledger)
    report = ledger.verify()
    assert not report.ok
    assert any("model/prod#1" in p and long_id in p for p in report.trail), report.trail


def test_policy_history_is_chained_like_refs(tmp_path: Path) -> None:
    """The generic history under ``policy/`` chains its entries; a gap there is damage."""
    store = Store(str(tmp_path / "store"))
    policy = History(store, "policy")
    for i in range(3):
        policy.append(lambda seq, i=i: {"seq": seq, "rules": {"require_message": i % 2 == 0}})
    assert policy.seqs() == [1, 2, 3]
    assert policy.check() == ([], 0)
    (tmp_path / "store" / "policy" / "0000000002.json").unlink()
    problems, _ = policy.check()
    assert len(problems) == 1
    assert "#2" in problems[0]


@pytest.mark.slow
def test_concurrent_movers_leave_an_unbroken_chain(tmp_path: Path) -> None:
    """Four processes moving one ref at once leave a history every link of which verifies."""
    url = str(tmp_path / "store")
    Store(url)
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=move_ref_in_process, args=(url, "model/prod", w, 10, barrier,
                                                             queue)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    refs = Refs(Store(url))
    assert [e.seq for e in refs.history("model/prod")] == list(range(1, 41))
    assert refs.check("model/prod") == ([], 0)


def test_gc_keeps_the_runs_refs_name(ledger: Ledger) -> None:
    """A run a ref names (through RUN/NAME of an input) survives gc, so its ref stays sound."""
    with ledger.run("train") as run:
        run.use({"rows": 3}, name="data")
    ledger.refs.set("data/used", f"{run.id}/data")
    ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    assert ledger.get(run.id).id == run.id
    assert ledger.verify().ok


def test_ref_log_says_when_entries_are_missing(ledger: Ledger) -> None:
    """``mlledger ref log`` no longer shows a gap silently: it warns on stderr and names it."""
    from click.testing import CliRunner

    from mlledger.cli import cli

    for i in range(3):
        ledger.refs.set("model/prod", ledger.store.put_bytes(f"model {i}".encode()))
    (_root(ledger) / "refs" / "model" / "prod" / "0000000002.json").unlink()
    got = CliRunner().invoke(cli, ["--store", ledger.url, "ref", "log", "model/prod"])
    assert got.exit_code == 0, got.stderr
    assert [line.split()[0] for line in got.stdout.splitlines()] == ["#3", "#1"]
    assert "#2" in got.stderr
    assert "mlledger verify" in got.stderr


def test_a_short_run_with_a_metrics_chunk_verifies(tmp_path: Path) -> None:
    """A short run (one entry) that wrote a metrics chunk beside it is sound, not damage."""
    ledger = Ledger(str(tmp_path / "store"), capture_files=False, start_delay=60.0)
    with ledger.run("short-long") as run:
        for i in range(500):  # more than end.json's tail, less than a chunk: one chunk file
            run.log(step=i, loss=1.0 / (i + 1))
    assert (_root(ledger) / day_path(run.id)).is_dir()
    report = ledger.verify()
    assert report.trail == ()
    assert report.ok


def test_a_damaged_entry_is_reported_not_raised(ledger: Ledger) -> None:
    """Deeply nested JSON, or an end entry whose 'entries' is not an object, is damage that
    verify lists; verify does not raise."""
    long_id, short_id = _two_runs(ledger)
    nested = _root(ledger) / whole_key(short_id)
    nested.chmod(0o644)
    nested.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    end = _root(ledger) / day_path(long_id) / "end.json"
    doc = json.loads(end.read_bytes())
    doc["entries"] = ["start.json"]
    doc.pop("seal", None)
    end.chmod(0o644)
    from mlledger.store.chain import seal

    end.write_bytes(seal(doc, ledger.store.algorithm))
    report = ledger.verify()
    assert not report.ok
    assert any(short_id in p for p in report.trail)
    assert any(long_id in p and "'entries'" in p for p in report.trail)
