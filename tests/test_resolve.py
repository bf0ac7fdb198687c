"""Targets through the Ledger: restore, load and refs (set, get, history, rollback, @REF)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.ledgers import (
    clock_at,
    open_ledger,
    run_pipeline,
    shared_prefix,
    unique_prefix,
)
from helpers.servers import StoreSpec

import mlledger
from mlledger import Artifact, Ledger
from mlledger.errors import (
    AmbiguousError,
    ExistsError,
    NotAFileError,
    NotFoundError,
    PolicyError,
    UsageError,
)


@pytest.fixture
def ledger(fast_store_ledger: Ledger) -> Ledger:
    """This module's ledger: a memory or local store (conftest's fast_store_ledger)."""
    return fast_store_ledger


def snapshot(root: Path) -> dict[str, Any]:
    """Every file (bytes, executable bit), link and folder under ``root``."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", full.read_bytes(), bool(full.stat().st_mode & 0o111))
    return out


@dataclass
class Export:
    """A run that saved a file and a folder, and a tracked call that returned a file."""

    ledger: Ledger
    run_id: str  # two outputs: model.bin, ckpt
    single_id: str  # one output: return
    model: Path
    ckpt: Path
    report: Path
    model_digest: str
    ckpt_digest: str
    report_digest: str


def export(ledger: Ledger, root: Path) -> Export:
    """Write a model file, a checkpoint folder and a report, recorded as outputs."""
    work = root / "work"
    (work / "ckpt" / "nested").mkdir(parents=True)
    model = work / "model.bin"
    model.write_bytes(os.urandom(4096) + b"\x00\xff" * 100)
    (work / "ckpt" / "weights.npy").write_bytes(os.urandom(1000))
    (work / "ckpt" / "nested" / "meta.json").write_text('{"epoch": 3}\n')
    run_sh = work / "ckpt" / "run.sh"
    run_sh.write_text("#!/bin/sh\necho hi\n")
    run_sh.chmod(0o755)
    (work / "ckpt" / "empty").mkdir()
    os.symlink("weights.npy", work / "ckpt" / "latest")
    with ledger.run("export") as run:
        m = run.save(str(model), name="model.bin")
        c = run.save(str(work / "ckpt"), name="ckpt")
    report = work / "report.txt"

    @ledger.tracked
    def write_report(text: str) -> Path:
        report.write_text(text)
        return report

    write_report("all good\n")
    single = ledger.runs(limit=1)[0]
    # the file is recorded as the return value and under its path: one artifact
    assert {a.digest for a in single.outputs.values()} == {single.outputs["return"].digest}
    return Export(ledger, run.id, single.id, model, work / "ckpt", report, m.digest, c.digest,
                  single.outputs["return"].digest)


@pytest.fixture
def exported(ledger: Ledger, tmp_path: Path) -> Export:
    """A ledger holding a run with a file and a folder output, and a one-output tracked call."""
    return export(ledger, tmp_path)


def test_restore_every_target_form_byte_identical(exported: Export, tmp_path: Path) -> None:
    """Digest, prefixes, run id (one output), RUN/NAME and @REF all restore the same bytes."""
    ledger, e = exported.ledger, exported
    ledger.refs.set("model/prod", e.model_digest)
    ledger.refs.set("report/latest", e.single_id)
    hexd = e.model_digest.split(":")[1]
    forms = {
        "digest": (e.model_digest, e.model),
        "algo-prefix": (e.model_digest[:15], e.model),
        "hex-prefix": (hexd[:8], e.model),
        "upper-prefix": (hexd[:10].upper(), e.model),
        "run/name": (f"{e.run_id}/model.bin", e.model),
        "run-prefix/name": (f"{unique_prefix(ledger, e.run_id).lower()}/model.bin", e.model),
        "@ref": ("@model/prod", e.model),
        "run": (e.single_id, e.report),
        "run-prefix": (unique_prefix(ledger, e.single_id), e.report),
        "@ref-to-run": ("@report/latest", e.report),
        "run/return": (f"{e.single_id}/return", e.report),
    }
    for label, (target, source) in forms.items():
        dest = tmp_path / "out" / label.replace("/", "-")
        got = ledger.restore(target, dest)
        assert got == dest
        assert dest.read_bytes() == source.read_bytes(), label


def test_restore_a_folder_byte_identical(exported: Export, tmp_path: Path) -> None:
    """A folder output comes back with its files, modes, links and empty folders."""
    ledger, e = exported.ledger, exported
    want = snapshot(e.ckpt)
    for target in (e.ckpt_digest, f"{e.run_id}/ckpt"):
        dest = tmp_path / "restored" / target.replace("/", "_").replace(":", "_")
        ledger.restore(target, dest)
        assert snapshot(dest) == want


def test_restore_refuses_to_clobber_unless_asked(exported: Export, tmp_path: Path) -> None:
    """An existing destination raises ExistsError (a FileExistsError) and stays untouched."""
    ledger, e = exported.ledger, exported
    dest = tmp_path / "taken.bin"
    dest.write_bytes(b"mine")
    with pytest.raises(ExistsError) as err:
        ledger.restore(e.model_digest, dest)
    assert isinstance(err.value, FileExistsError)
    assert "overwrite=True" in str(err.value)
    assert dest.read_bytes() == b"mine"
    ledger.restore(e.model_digest, dest, overwrite=True)
    assert dest.read_bytes() == e.model.read_bytes()
    folder = tmp_path / "taken-dir"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    with pytest.raises(ExistsError):
        ledger.restore(e.ckpt_digest, folder)
    ledger.restore(e.ckpt_digest, folder, overwrite=True)
    assert snapshot(folder) == snapshot(e.ckpt)


def test_restore_a_run_needs_one_output_or_a_name(exported: Export, tmp_path: Path) -> None:
    """A run with several outputs, or an unknown RUN/NAME, raises NotFoundError naming them."""
    ledger, e = exported.ledger, exported
    with pytest.raises(NotFoundError) as err:
        ledger.restore(e.run_id, tmp_path / "x")
    assert "ckpt" in str(err.value)
    assert "model.bin" in str(err.value)
    assert f"{e.run_id}/NAME" in str(err.value)
    with pytest.raises(NotFoundError) as err:
        ledger.restore(f"{e.run_id}/nope", tmp_path / "x")
    assert "ckpt" in str(err.value)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "target", ["@no/such/ref", "xxh128:" + "0" * 32, "abcdef0123", "7ZZZZZZZZZ", "zz"])
def test_restore_of_nothing_is_not_found(exported: Export, tmp_path: Path, target: str) -> None:
    """Targets that name nothing raise NotFoundError (a KeyError) and write nothing."""
    with pytest.raises(NotFoundError) as err:
        exported.ledger.restore(target, tmp_path / "x")
    assert isinstance(err.value, KeyError)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("target", ["", "   ", None, 42])
def test_a_target_that_is_no_string_is_a_usage_error(exported: Export, target: Any) -> None:
    """An empty or non-string target raises UsageError saying what a target is."""
    with pytest.raises(UsageError) as err:
        exported.ledger.resolve(target)
    assert "RUN/NAME" in str(err.value)


def test_a_file_or_folder_on_disk_is_the_artifact_of_its_bytes(
    exported: Export, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path that no other reading finds names the artifact holding exactly its bytes now
    (a file, a folder as a tree); changed bytes or a missing path are NotFoundError."""
    ledger = exported.ledger
    monkeypatch.chdir(exported.model.parent)
    for target in ("model.bin", f"./{exported.model.name}", exported.model, str(exported.ckpt)):
        art = ledger.resolve(target)  # type: ignore[arg-type]
        assert isinstance(art, Artifact)
        want = exported.ckpt_digest if str(target).endswith("ckpt") else exported.model_digest
        assert art.digest == want
        assert art.producers == (exported.run_id,)
    assert ledger.lineage("ckpt").runs[0].id == exported.run_id
    copy = tmp_path / "copy.bin"
    copy.write_bytes(exported.model.read_bytes())  # any copy of the bytes is the same artifact
    assert ledger.resolve(str(copy)).digest == exported.model_digest  # type: ignore[union-attr]
    copy.write_bytes(b"retrained")
    with pytest.raises(NotFoundError, match="no run used or produced"):
        ledger.resolve(str(copy))
    with pytest.raises(NotFoundError, match="no run or artifact matches"):
        ledger.resolve("no-such-file.bin")
    os.mkfifo(tmp_path / "fifo")  # reading a pipe would never end: refused at once
    with pytest.raises(NotAFileError, match="not a regular file"):
        ledger.resolve(str(tmp_path / "fifo"))
    from mlledger.cli import cli

    out = CliRunner().invoke(cli, ["--store", ledger.url, "lineage", "model.bin"])
    assert out.exit_code == 0, out.output
    assert "export" in out.stdout


def test_restore_from_remote_stores(
    store_spec: StoreSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On memory, local, S3 and GCS: restore by prefix, RUN/NAME and @REF, byte-identical."""
    monkeypatch.chdir(tmp_path)
    ledger = open_ledger(store_spec)
    e = export(ledger, tmp_path)
    ledger.refs.set("ckpt/best", f"{e.run_id}/ckpt")
    ledger.restore(e.model_digest.split(":")[1][:8], tmp_path / "m.bin")
    assert (tmp_path / "m.bin").read_bytes() == e.model.read_bytes()
    ledger.restore(f"{e.run_id}/ckpt", tmp_path / "c1")
    ledger.restore("@ckpt/best", tmp_path / "c2")
    assert snapshot(tmp_path / "c1") == snapshot(tmp_path / "c2") == snapshot(e.ckpt)
    with pytest.raises(ExistsError):
        ledger.restore("@ckpt/best", tmp_path / "c2")


# -- load ------------------------------------------------------------------------------------


@dataclass
class Opaque:
    """A value only pickle can store."""

    items: set[int]


def test_load_json_values_by_every_target_form(ledger: Ledger) -> None:
    """A JSON value comes back by digest, prefix, RUN/NAME, run id (its return) and @REF."""
    pipe = run_pipeline(ledger)
    model = pipe.run("train").outputs["return"]
    assert model.format == "json"
    ledger.refs.set("model/prod", pipe.ids["train"])
    for target in (model.digest, model.digest.split(":")[1][:9], f"{pipe.ids['train']}/return",
                   pipe.ids["train"], "@model/prod"):
        assert ledger.load(target) == pipe.model
    assert ledger.load(f"{pipe.ids['train']}/data") == pipe.data  # an input, by name
    with ledger.run("cfg") as run:
        run.save({"lr": 0.1, "layers": [64, 32], "name": "it's"}, name="config")
    assert ledger.load(f"{run.id}/config") == {"lr": 0.1, "layers": [64, 32], "name": "it's"}


def test_load_numpy_arrays(ledger: Ledger) -> None:
    """An array a tracked call returned loads back equal, dtype and shape kept, no pickle."""

    @ledger.tracked
    def make(n: int) -> Any:
        return np.arange(n, dtype=np.float32).reshape(2, -1)

    want = make(6)
    rid = ledger.runs(limit=1).ids[0]
    art = ledger.get(rid).outputs["return"]
    assert (art.kind, art.format) == ("value", "npy")
    got = ledger.load(rid)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.float32
    assert got.shape == (2, 3)
    np.testing.assert_array_equal(got, want)


def test_pickled_values_load_only_when_allowed(ledger: Ledger) -> None:
    """A pickled value raises PolicyError (a PermissionError) unless allow_pickle=True."""

    @ledger.tracked
    def make() -> Opaque:
        return Opaque({1, 2, 3})

    make()
    rid = ledger.runs(limit=1).ids[0]
    assert ledger.get(rid).outputs["return"].format == "pickle"
    with pytest.raises(PolicyError) as err:
        ledger.load(rid)
    assert isinstance(err.value, PermissionError)
    assert "allow_pickle=True" in str(err.value)
    assert ledger.load(rid, allow_pickle=True) == Opaque({1, 2, 3})


def test_load_of_a_run_without_a_return_value(ledger: Ledger) -> None:
    """load(run) of a run that returned nothing raises NotFoundError saying to name an output."""
    with ledger.run("nothing") as run:
        run.save([1], name="a")
    with pytest.raises(NotFoundError) as err:
        ledger.load(run.id)
    assert f"{run.id}/NAME" in str(err.value)
    assert ledger.load(f"{run.id}/a") == [1]


# -- refs -----------------------------------------------------------------------------------


def test_ref_to_a_run_and_to_an_artifact(ledger: Ledger) -> None:
    """refs.set resolves its target first: a run id prefix or an artifact prefix becomes full."""
    pipe = run_pipeline(ledger)
    model = pipe.run("train").outputs["return"].digest
    prefix = unique_prefix(ledger, pipe.ids["train"]).lower()
    e1 = ledger.refs.set("run/best", prefix, message="best so far")
    assert (e1.target, e1.run, e1.seq, e1.message) == (
        pipe.ids["train"], pipe.ids["train"], 1, "best so far")
    e2 = ledger.refs.set("model/prod", model.split(":")[1][:8])
    assert e2.target == model
    assert e2.run == pipe.ids["train"]
    assert ledger.refs.get("model/prod") == e2
    assert ledger.refs.get("run/best").target == pipe.ids["train"]
    assert ledger.refs.names() == ["model/prod", "run/best"]
    e3 = ledger.refs.set("model/staging", "@model/prod")
    assert e3.target == model
    e4 = ledger.refs.set("model/data", f"{pipe.ids['train']}/data")
    assert e4.target == pipe.run("prep").outputs["return"].digest


def test_ref_to_nothing_is_refused(ledger: Ledger) -> None:
    """Setting a ref to a target that names nothing raises NotFoundError and writes no entry."""
    with ledger.run("r"):
        pass
    with pytest.raises(NotFoundError):
        ledger.refs.set("model/prod", "xxh128:" + "1" * 32)
    with pytest.raises(NotFoundError) as err:
        ledger.refs.get("model/prod")
    assert isinstance(err.value, KeyError)
    assert ledger.refs.names() == []


def test_history_is_oldest_first_and_rollback_appends(ledger: Ledger) -> None:
    """history lists every move oldest first; rollback appends an entry pointing back."""
    pipes = [run_pipeline(ledger, lr=lr) for lr in (0.1, 0.2, 0.3)]
    models = [p.run("train").outputs["return"].digest for p in pipes]
    for i, m in enumerate(models):
        ledger.refs.set("model/prod", m, message=f"v{i + 1}")
    before = [e.to_json() for e in ledger.refs.history("model/prod")]
    hist = ledger.refs.history("model/prod")
    assert [e.seq for e in hist] == [1, 2, 3]
    assert [e.target for e in hist] == models
    assert [e.message for e in hist] == ["v1", "v2", "v3"]
    assert all(e.user and e.at for e in hist)
    assert [e.at for e in hist] == sorted(e.at for e in hist)

    assert [e.run for e in hist] == [p.ids["train"] for p in pipes]
    back = ledger.refs.rollback("model/prod")
    assert (back.seq, back.target, back.action, back.restores) == (4, models[1], "rollback", 2)
    assert back.run == pipes[1].ids["train"]  # the run that made what it points at again
    assert ledger.refs.get("model/prod").target == models[1]
    again = ledger.refs.rollback("model/prod")  # rolling back twice walks further back
    assert (again.target, again.restores) == (models[0], 1)
    with pytest.raises(NotFoundError):
        ledger.refs.rollback("model/prod")  # nothing before the first target
    to = ledger.refs.rollback("model/prod", to=f"{pipes[2].ids['train']}/return")
    assert (to.target, to.run) == (models[2], pipes[2].ids["train"])
    by_seq = ledger.refs.rollback("model/prod", to=2, message="back to v2")
    assert (by_seq.target, by_seq.restores, by_seq.message) == (models[1], 2, "back to v2")
    assert by_seq.run == pipes[1].ids["train"]
    hist = ledger.refs.history("model/prod")
    assert [e.to_json() for e in hist[:3]] == before  # never rewritten
    assert [e.seq for e in hist] == [1, 2, 3, 4, 5, 6, 7]
    assert ledger.restore("@model/prod", Path("restored.json")).read_bytes() == \
        ledger.store.get(models[1])


def test_at_ref_works_wherever_a_target_is(ledger: Ledger, tmp_path: Path) -> None:
    """@REF goes through restore, load, lineage, resolve, refs.set and rollback(to=...)."""
    pipe = run_pipeline(ledger)
    data = pipe.run("prep").outputs["return"].digest
    ledger.refs.set("data/train", data)
    ledger.refs.set("run/train", pipe.ids["train"])
    assert ledger.resolve("@data/train").digest == data  # type: ignore[union-attr]
    resolved = ledger.resolve("@run/train")
    assert isinstance(resolved, mlledger.Run)
    assert resolved.id == pipe.ids["train"]
    assert ledger.load("@data/train") == pipe.data
    assert ledger.load("@run/train") == pipe.model
    ledger.restore("@data/train", tmp_path / "data.json")
    assert (tmp_path / "data.json").read_bytes() == ledger.store.get(data)
    assert ledger.lineage("@data/train", direction="downstream").root == data
    assert ledger.lineage("@run/train").root == pipe.ids["train"]
    ledger.refs.set("data/other", pipe.run("train").outputs["return"].digest)
    ledger.refs.rollback("data/other", to="@data/train")
    assert ledger.refs.get("data/other").target == data


def test_ambiguous_run_prefix_in_a_target(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run prefix shared by several runs is ambiguous in a target too (a LookupError)."""
    ids = []
    with clock_at(monkeypatch, time.time() - 1):  # one millisecond for all three
        for _ in range(3):
            with ledger.run("twin") as run:
                run.save(str(_write(tmp_path / "f.txt", run.id)))
            ids.append(run.id)
    prefix = shared_prefix(ids)[:8]
    for target in (prefix, f"{prefix}/f.txt"):
        with pytest.raises(AmbiguousError) as err:
            ledger.restore(target, tmp_path / "out")
        assert isinstance(err.value, LookupError)
        assert set(ids) <= set(err.value.candidates)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_ref_set_to_run_slash_name_records_that_run(ledger: Ledger, tmp_path: Path) -> None:
    """A ref set to RUN_A/NAME records run A, not another run that made the same bytes."""
    ids = []
    for _ in range(3):  # three runs write identical bytes: the newest is not the one named
        with ledger.run("twin") as run:
            run.save(str(_write(tmp_path / "model.pkl", "same bytes")))
        ids.append(run.id)
    first, middle = ids[0], ids[1]
    assert ledger.refs.set("model/prod", f"{first}/model.pkl").run == first
    assert ledger.refs.set("model/prod", f"{middle}/model.pkl").run == middle
    assert ledger.refs.set("model/other", "@model/prod").run == middle  # the run that ref names
    assert ledger.refs.rollback("model/prod", to=f"{first}/model.pkl").run == first
    digest = ledger.get(first).outputs["model.pkl"].digest
    assert ledger.refs.set("model/bytes", digest).run is None  # bytes alone name no run
    assert [e.run for e in ledger.refs.history("model/prod")] == [first, middle, first]


def test_a_run_whose_outputs_hold_the_same_bytes_restores_in_python_and_the_cli(
    tmp_path: Path,
) -> None:
    """A file that is also the return value is one artifact: Ledger.restore and the CLI's
    target resolution (mlledger restore RUN) agree and give it."""
    from mlledger import Ledger
    from mlledger.cli.state import resolve_artifact

    ledger = Ledger(str(tmp_path / "store"), capture_files=False)
    with ledger.run("twice") as run:
        run.save({"w": 1}, name="x")
        run.save({"w": 1}, name="y")
    got = resolve_artifact(ledger, run.id)
    assert got.digest == run.outputs["x"].digest == run.outputs["y"].digest
    assert ledger.restore(run.id, tmp_path / "back").read_bytes() == ledger.store.get(got.digest)
