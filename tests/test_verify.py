"""Store.verify and integrity: corrupt, truncated and missing objects, unsafe manifests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.servers import StoreSpec
from helpers.stores import (
    LARGE,
    count_objects,
    flip_byte,
    make_sample_tree,
    open_store,
    raw_read,
    raw_write,
)

from mlledger import canonical
from mlledger.errors import (
    IntegrityError,
    NotFoundError,
)
from mlledger.hashing import digest_bytes, digest_file
from mlledger.store.tree import MAGIC


def test_verify_passes_a_healthy_store(store_spec: StoreSpec, tmp_path: Path) -> None:
    """verify() on an intact store checks every object and reports ok."""
    store = open_store(store_spec)
    store.put_bytes(b"blob")
    store.put_tree(make_sample_tree(tmp_path / "src"))
    report = store.verify()
    assert report.ok
    assert report.checked == count_objects(store) == 9
    assert (report.corrupt, report.missing, report.dangling, report.problems) == ((),) * 4


def test_verify_finds_a_flipped_byte(store_spec: StoreSpec, tmp_path: Path) -> None:
    """A stored object with one bit flipped is reported corrupt; reads raise IntegrityError."""
    store = open_store(store_spec)
    data = b"precious bytes " * 100
    d = store.put_bytes(data)
    other = store.put_bytes(b"untouched")
    flip_byte(store_spec, store, d, at=700)
    report = store.verify()
    assert not report.ok
    assert report.corrupt == (d,)
    assert other not in report.corrupt
    with pytest.raises(IntegrityError) as info:
        store.get(d)
    assert isinstance(info.value, ValueError)
    assert "corrupt" in str(info.value)
    assert "mlledger verify" in str(info.value)
    with store.open(d) as reader:
        chunks = iter(lambda: reader.read(256), b"")
        with pytest.raises(IntegrityError, match="corrupt"):
            list(chunks)
    with store.open(d) as reader, pytest.raises(IntegrityError):
        reader.read()
    with store.open(d) as reader, pytest.raises(IntegrityError):
        reader.read(len(data))  # exactly the object's size: checked without reading on to EOF
    dest_dir = tmp_path / "restore-here"
    dest_dir.mkdir()
    with pytest.raises(IntegrityError, match="nothing was written"):
        store.restore(d, dest_dir / "out.bin")
    assert list(dest_dir.iterdir()) == []
    (dest_dir / "keep.bin").write_bytes(b"keep me")
    with pytest.raises(IntegrityError):
        store.restore(d, dest_dir / "keep.bin", overwrite=True)
    assert (dest_dir / "keep.bin").read_bytes() == b"keep me", "a failed overwrite changes nothing"
    assert os.listdir(dest_dir) == ["keep.bin"]


def test_verify_finds_a_truncated_object(store_spec: StoreSpec) -> None:
    """An object cut short is reported corrupt."""
    store = open_store(store_spec)
    d = store.put_bytes(os.urandom(5000))
    raw_write(store_spec, store.key(d), raw_read(store_spec, store.key(d))[:2500])
    report = store.verify()
    assert report.corrupt == (d,)
    assert not report.ok
    with pytest.raises(IntegrityError):
        store.get(d)


def test_corrupt_file_inside_a_tree_stops_its_restore(store_spec: StoreSpec,
                                                      tmp_path: Path) -> None:
    """Restoring a tree with a corrupt file raises IntegrityError and leaves nothing behind."""
    store = open_store(store_spec)
    src = make_sample_tree(tmp_path / "src")
    t = store.put_tree(src).digest
    large = digest_file(src / "data" / "nested" / "deep" / "large.bin")[0]
    flip_byte(store_spec, store, large, at=LARGE - 1)
    assert store.verify().corrupt == (large,)
    dest_dir = tmp_path / "restore-here"
    dest_dir.mkdir()
    with pytest.raises(IntegrityError, match=large):
        store.restore(t, dest_dir / "out")
    with pytest.raises(IntegrityError):
        store.restore(t, dest_dir / "out", overwrite=True)
    assert list(dest_dir.iterdir()) == []


def test_verify_finds_a_tree_whose_file_was_deleted(store_spec: StoreSpec,
                                                    tmp_path: Path) -> None:
    """A tree listing an object that is gone is reported dangling; restoring it names the object."""
    store = open_store(store_spec)
    src = make_sample_tree(tmp_path / "src")
    t = store.put_tree(src).digest
    gone = digest_bytes(b"hello\n")  # a.txt
    store.delete(gone)
    assert not store.has(gone)
    report = store.verify()
    assert not report.ok
    assert report.dangling == ((t, gone),)
    assert report.missing == (gone,)
    assert report.corrupt == ()
    dest_dir = tmp_path / "restore-here"
    dest_dir.mkdir()
    with pytest.raises(NotFoundError) as info:
        store.restore(t, dest_dir / "out")
    assert gone in str(info.value)
    assert "not in the store" in str(info.value)
    assert list(dest_dir.iterdir()) == []


def test_verify_reports_an_unsafe_manifest(store_spec: StoreSpec) -> None:
    """A tree manifest that would escape its destination is reported as a problem."""
    store = open_store(store_spec)
    blob = store.put_bytes(b"x")
    bad = store.put_bytes(MAGIC + canonical.dumps(
        {"entries": [{"path": "../evil", "digest": blob, "size": 1}]}))
    report = store.verify()
    assert not report.ok
    assert len(report.problems) == 1
    assert bad in report.problems[0]
    assert "escape the destination" in report.problems[0]
