"""gc keeps refs, their lineage, kept runs and young objects; verify checks runs' records too."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from helpers.ledgers import (
    Pipeline,
    clock_at,
    open_ledger,
    run_pipeline,
    second_machine,
)
from helpers.servers import StoreSpec

from mlledger import Ledger
from mlledger.errors import NotFoundError
from mlledger.ids import day_path, whole_key
from mlledger.store.backends import LocalBackend


@pytest.fixture
def ledger(fast_store_ledger: Ledger) -> Ledger:
    """This module's ledger: a memory or local store (conftest's fast_store_ledger)."""
    return fast_store_ledger


DAY = 86400.0


def objects(ledger: Ledger) -> set[str]:
    return set(ledger.store.iter_objects())


def run_entries(ledger: Ledger) -> set[str]:
    return set(ledger.store.backend.list("runs"))


def rewrite(ledger: Ledger, digest: str, data: bytes) -> None:
    """Replace an object's bytes behind the store's back (to damage it)."""
    backend = ledger.store.backend
    key = ledger.store.key(digest)
    if isinstance(backend, LocalBackend):
        path = backend.local_path(key)
        os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
        Path(path).write_bytes(data)
        return
    backend.fs.pipe_file(backend.fs_path(key), data)  # type: ignore[attr-defined]


def pipeline_digests(p: Pipeline) -> dict[str, str]:
    return {
        "data": p.run("prep").outputs["return"].digest,
        "model": p.run("train").outputs["return"].digest,
        "score": p.run("evaluate").outputs["return"].digest,
    }


def two_pipelines(ledger: Ledger) -> tuple[Pipeline, Pipeline]:
    """A pipeline whose model is 'model/prod', and another nothing refers to."""
    kept = run_pipeline(ledger, n=5, lr=0.1)
    ledger.refs.set("model/prod", kept.run("train").outputs["return"].digest)
    loose = run_pipeline(ledger, n=7, lr=0.3)
    return kept, loose


# -- gc ---------------------------------------------------------------------------------------


def test_dry_run_deletes_nothing_and_reports_what_it_would(ledger: Ledger) -> None:
    """gc() is a dry run by default: it names runs and objects but the store stays the same."""
    kept, loose = two_pipelines(ledger)
    objs, entries = objects(ledger), run_entries(ledger)
    report = ledger.gc(keep_days=0, grace_seconds=0)
    assert report.dry_run
    assert set(report.runs) == {
        loose.ids["prep"],
        loose.ids["train"],
        loose.ids["evaluate"],
        kept.ids["evaluate"],
    }
    d = pipeline_digests(loose)
    assert set(d.values()) <= set(report.objects)
    assert report.bytes > 0
    assert objects(ledger) == objs
    assert run_entries(ledger) == entries
    assert len(ledger.runs()) == 6
    assert report.to_json()["dry_run"] is True
    assert ledger.gc() == ledger.gc(dry_run=True)


def test_kept_counts_add_up_and_say_why(ledger: Ledger) -> None:
    """gc's kept counts plus its deleted ones are every run and object, each kept run
    with one reason (keep_days=0: the ref's lineage, then the grace period)."""
    two_pipelines(ledger)
    total_objects = len(objects(ledger))
    for grace, because in ((3600.0, {"grace": 4, "ref": 2}), (0.0, {"ref": 2})):
        report = ledger.gc(keep_days=0, grace_seconds=grace)
        assert len(report.runs) + report.kept_runs == 6
        assert len(report.objects) + report.kept_objects == total_objects
        assert report.kept_because == because
        assert report.to_json()["kept_because"] == because
    report = ledger.gc(keep_days=None)
    assert (report.runs, report.kept_runs, report.kept_because) == ((), 6, {"ref": 2, "recent": 4})


def test_gc_keeps_ref_targets_and_their_upstream_lineage(ledger: Ledger) -> None:
    """With keep_days=0 and no grace, unreferenced runs go; the ref'd model's lineage stays."""
    kept, loose = two_pipelines(ledger)
    keep = pipeline_digests(kept)
    gone = pipeline_digests(loose)
    lineage_before = ledger.lineage("@model/prod").to_json()
    report = ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    assert not report.dry_run
    # runs: upstream of the model (train, prep) stay; evaluate and the loose pipeline go
    assert ledger.runs().ids == [kept.ids["train"], kept.ids["prep"]]
    for rid in (*loose.ids.values(), kept.ids["evaluate"]):
        with pytest.raises(NotFoundError):
            ledger.get(rid)
        assert not [k for k in run_entries(ledger) if rid in k]
    left = objects(ledger)
    assert {keep["data"], keep["model"]} <= left
    assert not set(gone.values()) & left
    assert keep["score"] not in left  # only the deleted evaluate run referenced it
    assert ledger.lineage("@model/prod").to_json() == lineage_before
    assert ledger.load("@model/prod") == kept.model
    assert ledger.verify().ok
    # another machine reindexing from the store sees the same
    fresh = Ledger(ledger.url, **ledger.store.storage_options)
    assert fresh.reindex() == 2
    assert fresh.runs().ids == ledger.runs().ids


def test_gc_on_every_store(
    store_spec: StoreSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On memory, local, S3 and GCS: grace keeps young objects; gc keeps the ref'd lineage."""
    monkeypatch.chdir(tmp_path)
    ledger = open_ledger(store_spec)
    kept, loose = two_pipelines(ledger)
    gone = set(pipeline_digests(loose).values())
    before = objects(ledger)
    assert ledger.gc(dry_run=False, keep_days=0, grace_seconds=3600).objects == ()
    assert objects(ledger) == before
    report = ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    assert gone <= set(report.objects)
    assert not gone & objects(ledger)
    assert ledger.runs().ids == [kept.ids["train"], kept.ids["prep"]]
    assert ledger.load("@model/prod") == kept.model
    assert ledger.verify().ok


def test_deleted_artifacts_are_gone_from_the_catalog_too(ledger: Ledger) -> None:
    """After gc, an artifact it deleted is NotFound, not served from a stale catalog row."""
    _, loose = two_pipelines(ledger)
    gone = pipeline_digests(loose)["model"]
    ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    with pytest.raises(NotFoundError):
        ledger.artifact(gone)
    with pytest.raises(NotFoundError):
        ledger.artifact(gone.split(":")[1][:10])


def test_other_machines_drop_the_runs_gc_deleted(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog that indexed runs gc later deleted elsewhere drops them at its next sync."""
    with clock_at(monkeypatch, time.time() - 20 * DAY):
        kept, loose = two_pipelines(ledger)  # old runs: their day is sealed
    gone = pipeline_digests(loose)
    other = second_machine(ledger, monkeypatch, tmp_path / "machine-2")
    assert len(other.runs()) == 6
    assert other.catalog.db.execute("SELECT COUNT(*) FROM days WHERE sealed = 1").fetchone()[0]
    ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    assert other.sync() == 0
    assert other.runs().ids == ledger.runs().ids == [kept.ids["train"], kept.ids["prep"]]
    with pytest.raises(NotFoundError):
        other.artifact(gone["model"])
    assert other.verify().ok
    assert other.sync() == 0  # the gc entry is read once
    assert other.lineage("@model/prod").to_json() == ledger.lineage("@model/prod").to_json()


def test_every_target_in_a_refs_history_is_kept(ledger: Ledger) -> None:
    """Earlier targets of a ref survive gc, so rolling back still finds its bytes."""
    first = run_pipeline(ledger, n=3)
    second = run_pipeline(ledger, n=4)
    ledger.refs.set("model/prod", first.ids["train"])
    ledger.refs.set("model/prod", second.ids["train"])
    ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    assert set(ledger.runs().ids) == {
        first.ids["train"],
        first.ids["prep"],
        second.ids["train"],
        second.ids["prep"],
    }
    ledger.refs.rollback("model/prod")
    assert ledger.load("@model/prod") == first.model


def test_default_policy_keeps_every_run_and_collects_only_orphans(ledger: Ledger) -> None:
    """keep_days=None keeps all runs and what they reference; only unreferenced objects go."""
    pipe = run_pipeline(ledger)
    orphan = ledger.store.put_bytes(b"written by a run that died before recording it")
    before = objects(ledger)
    report = ledger.gc(dry_run=False, grace_seconds=0)
    assert report.runs == ()
    assert report.objects == (orphan,)
    assert objects(ledger) == before - {orphan}
    assert len(ledger.runs()) == 3
    for step in ("prep", "train", "evaluate"):
        for art in pipe.run(step).outputs.values():
            assert ledger.store.has(art.digest)
    assert ledger.verify().ok


def test_objects_younger_than_the_grace_period_are_never_deleted(ledger: Ledger) -> None:
    """An object written moments ago survives gc even with keep_days=0 (a run may need it)."""
    two_pipelines(ledger)
    orphan = ledger.store.put_bytes(b"fresh orphan")
    before = objects(ledger)
    report = ledger.gc(dry_run=False, keep_days=0, grace_seconds=3600)
    assert report.objects == ()
    assert objects(ledger) == before
    assert orphan in before
    assert report.runs == ()  # the runs are younger than the grace period too


def test_a_run_in_progress_keeps_what_it_already_saved(ledger: Ledger, tmp_path: Path) -> None:
    """gc during a run deletes neither the running run nor the object it just stored."""
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(2048))
    with ledger.run("long") as run:
        art = run.save(str(weights))
        report = ledger.gc(dry_run=False, keep_days=0)  # default grace
        assert art.digest not in report.objects
        assert run.id not in report.runs
        assert ledger.store.has(art.digest)
    assert ledger.get(run.id).status == "finished"
    ledger.restore(run.id, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == weights.read_bytes()
    assert ledger.verify().ok


def test_objects_only_a_logged_param_refers_to_are_kept(ledger: Ledger) -> None:
    """A param too big to inline is stored as an object; gc keeps it as the run refers to it."""
    small = Ledger(ledger.url, inline_limit=64, **ledger.store.storage_options)
    config = {"layers": list(range(100)), "name": "big"}
    with small.run("fit") as run:
        run.log_params(config=config)
    digest = small.get(run.id).params["config"]["digest"]
    assert small.load(digest) == config
    small.gc(dry_run=False, grace_seconds=0)
    assert small.store.has(digest)
    assert small.load(digest) == config


def test_after_gc_new_runs_still_record_their_environment(ledger: Ledger) -> None:
    """gc that removed every run's objects does not leave this process pointing at them."""
    with ledger.run("old"):
        pass
    ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    assert ledger.runs().ids == []
    with ledger.run("new", params={"cfg": [1, 2]}) as run:
        pass
    got = ledger.get(run.id)
    assert got.env.get("packages"), "the environment record must be readable"
    assert ledger.verify().ok


# -- verify ---------------------------------------------------------------------------------


def test_verify_of_a_sound_store_is_ok(ledger: Ledger) -> None:
    """A store written only by runs verifies ok, every object checked."""
    run_pipeline(ledger)
    report = ledger.verify()
    assert report.ok
    assert report.checked == len(objects(ledger)) > 0
    assert (report.missing, report.corrupt, report.dangling, report.problems) == ((), (), (), ())


def test_verify_reports_an_object_a_run_references_that_is_missing(ledger: Ledger) -> None:
    """Delete a run's output object: verify names it missing, dangling from that run."""
    pipe = run_pipeline(ledger)
    model = pipeline_digests(pipe)["model"]
    ledger.store.delete(model)
    report = ledger.verify()
    assert not report.ok
    assert model in report.missing
    assert (pipe.ids["train"], model) in report.dangling
    assert (pipe.ids["evaluate"], model) in report.dangling  # its consumer refers to it too


def test_verify_reports_a_corrupt_object_a_run_references(ledger: Ledger) -> None:
    """Corrupt a run's input object: verify reports it corrupt and names the run."""
    pipe = run_pipeline(ledger)
    data = pipeline_digests(pipe)["data"]
    rewrite(ledger, data, b"[0, 2, 4, 6, 9]")
    report = ledger.verify()
    assert not report.ok
    assert report.corrupt == (data,)
    assert any(pipe.ids["train"] in p and data in p for p in report.problems)


def test_verify_reports_a_ref_whose_target_is_gone(ledger: Ledger) -> None:
    """A ref to a run whose entries were removed from the store is a problem verify names."""
    with ledger.run("r") as run:
        run.save({"v": 1}, name="value")
    ledger.refs.set("run/prod", run.id)
    for key in list(ledger.store.backend.list(day_path(run.id))):
        ledger.store.backend.delete(key)
    ledger.store.backend.delete(whole_key(run.id))  # a short run's one entry
    ledger.catalog.reindex()
    report = ledger.verify()
    assert not report.ok
    assert any("run/prod" in p for p in report.problems)


def test_verify_reports_a_missing_ref_target_object(ledger: Ledger) -> None:
    """A ref to an artifact whose object is gone leaves verify not ok, the digest missing."""
    with ledger.run("r") as run:
        art = run.save({"v": 1}, name="value")
    ledger.refs.set("value/prod", art.digest)
    ledger.store.delete(art.digest)
    report = ledger.verify()
    assert not report.ok
    assert art.digest in report.missing


def test_verify_checks_objects_a_logged_param_refers_to(ledger: Ledger) -> None:
    """A param stored as an object (too big to inline) is checked by verify like any input."""
    small = Ledger(ledger.url, inline_limit=64, **ledger.store.storage_options)
    with small.run("fit") as run:
        run.log_params(config={"layers": list(range(100))})
    digest = small.get(run.id).params["config"]["digest"]
    small.store.delete(digest)
    report = small.verify()
    assert digest in report.missing
    assert not report.ok


def test_verify_checks_runs_written_by_another_process(ledger: Ledger) -> None:
    """verify syncs first: an object missing for a run only the store knows is reported."""
    assert ledger.runs().ids == []
    other = Ledger(ledger.url, **ledger.store.storage_options)
    with other.run("elsewhere") as run:
        art = run.save([1, 2, 3], name="v")
    assert ledger.runs().ids == []  # this ledger's catalog has not synced since
    ledger.store.delete(art.digest)
    assert (run.id, art.digest) in ledger.verify().dangling


# -- live runs: gc in another process keeps what they use ----------------------------------

_LIVE_RUN = """
import os, sys, time, mlledger
led = mlledger.Ledger(sys.argv[1])
with led.run("long") as run:
    run.use("old_a.csv")          # before the start entry is written
    time.sleep(0.5)               # the start is written (start_delay 0.1)
    run.use("old_b.csv")          # after it: a pin entry
    run.save([1, 2, 3], name="early")
    print(run.id, flush=True)
    deadline = time.time() + 60
    while not os.path.exists("gc-done") and time.time() < deadline:
        time.sleep(0.05)
"""


def _age(ledger: Ledger, digest: str, days: float) -> None:
    """Make an object look ``days`` old, as if a run long gone had stored it."""
    path = ledger.store.backend.local_path(ledger.store.key(digest))  # type: ignore[attr-defined]
    t = time.time() - days * DAY
    os.utime(path, (t, t))


@pytest.mark.slow
def test_gc_in_another_process_keeps_old_objects_a_live_run_uses(tmp_path: Path) -> None:
    """A run re-using objects stored weeks ago keeps them through a gc run by another process
    (default grace), before and after its start entry; the finished run verifies."""
    import subprocess
    import sys

    from helpers.runs import python_env, reopen

    work = tmp_path / "work"
    work.mkdir()
    ledger = Ledger(str(tmp_path / "store"))
    old = {}
    for name in ("old_a.csv", "old_b.csv", "orphan.csv"):
        (work / name).write_text(f"{name}\n1,2\n")
        old[name] = ledger.store.put(work / name).digest
        _age(ledger, old[name], 30)
    proc = subprocess.Popen(
        [sys.executable, "-c", _LIVE_RUN, ledger.url],
        stdout=subprocess.PIPE, text=True, env=python_env(), cwd=work,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert run_id, "the run process did not start"
        gc = subprocess.run(
            [sys.executable, "-c", "from mlledger.cli import main; main()",
             "--store", ledger.url, "gc", "--delete", "--json"],
            capture_output=True, text=True, env=python_env(), cwd=work, timeout=120,
            check=False,
        )
        assert gc.returncode == 0, gc.stderr
        (work / "gc-done").touch()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    deleted = set(json.loads(gc.stdout)["objects"])
    assert old["orphan.csv"] in deleted  # gc did delete old objects nothing uses
    assert not {old["old_a.csv"], old["old_b.csv"]} & deleted
    fresh = reopen(ledger)
    run = fresh.get(run_id)
    assert run.status == "finished"
    assert {a.digest for a in run.inputs.values()} == {old["old_a.csv"], old["old_b.csv"]}
    assert fresh.verify().ok, fresh.verify()
    pins = [n for n in ledger.store.backend.list_dir(day_path(run_id)) if n.startswith("use-")]
    assert pins  # old_b.csv and the saved value were named as they were used


_LIVE_RUN_ANY_STORE = """
import json, os, sys, time, mlledger
led = mlledger.Ledger(sys.argv[1], **json.loads(sys.argv[2]))
with led.run("long", params={"rows": [[1, 2], [3, 4]]}) as run:
    run.save({"early": 1}, name="early")     # before the start entry
    time.sleep(0.5)
    run.use("data.csv")                       # after it: a pin entry
    run.log_params(table=list(range(100)))    # a value param logged later
    print(run.id, flush=True)
    deadline = time.time() + 60
    while not os.path.exists("gc-done") and time.time() < deadline:
        time.sleep(0.05)
"""

_GC_NO_GRACE = """
import json, sys, mlledger
led = mlledger.Ledger(sys.argv[1], **json.loads(sys.argv[2]))
print(json.dumps(led.gc(dry_run=False, grace_seconds=0).to_json()))
"""


@pytest.mark.slow
@pytest.mark.parametrize("store_spec", ["local", "s3", "gcs"], indirect=True)
def test_gc_with_no_grace_in_another_process_keeps_all_a_live_run_refers_to(
    store_spec: StoreSpec, tmp_path: Path
) -> None:
    """Even with no grace period at all, a gc in another process deletes nothing a live run
    refers to (values saved, files used, params logged, its environment): the run, once
    finished, verifies on local disk, S3 and GCS."""
    import subprocess
    import sys

    from helpers.runs import python_env

    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("x\n1\n")
    ledger = open_ledger(store_spec)
    orphan = ledger.store.put_bytes(b"nothing refers to me")
    opts = json.dumps(store_spec.storage_options)
    proc = subprocess.Popen(
        [sys.executable, "-c", _LIVE_RUN_ANY_STORE, ledger.url, opts],
        stdout=subprocess.PIPE, text=True, env=python_env(), cwd=work,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert run_id, "the run process did not start"
        gc = subprocess.run(
            [sys.executable, "-c", _GC_NO_GRACE, ledger.url, opts], capture_output=True,
            text=True, env=python_env(), cwd=work, timeout=120, check=False,
        )
        assert gc.returncode == 0, gc.stderr
        (work / "gc-done").touch()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert orphan in json.loads(gc.stdout)["objects"]
    fresh = open_ledger(store_spec)
    assert fresh.get(run_id).status == "finished"
    report = fresh.verify()
    assert report.ok, report
