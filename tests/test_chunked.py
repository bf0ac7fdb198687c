"""Large files stored as content-defined chunks (``mlledger.store.chunked``): a small
change stores little, the file's identity stays its whole-file digest, and verify, gc,
restore and old stores all understand chunk lists, on local disk and on S3 (moto), with
or without the chunker installed."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.servers import StoreSpec
from helpers.stores import flip_byte, open_store, raw_write

from mlledger import Ledger
from mlledger.errors import IntegrityError, NotFoundError
from mlledger.gc import object_sizes
from mlledger.hashing import digest_file
from mlledger.store import Store
from mlledger.store.chunked import CHUNKED_MIN, chunker
from mlledger.store.chunklist import read_chunk_list

MiB = 1 << 20
#: above the chunking threshold, small enough for a quick test
SIZE = CHUNKED_MIN + 16 * MiB

pytestmark = pytest.mark.skipif(chunker() is None, reason="the compiled FastCDC is missing")


def write_random(path: Path, size: int, seed: int) -> None:
    """``size`` incompressible bytes from ``seed``, written 8 MiB at a time."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(rng.randbytes(n))
            left -= n


def change_middle(path: Path, n: int = MiB) -> None:
    """Overwrite ``n`` bytes in the middle of ``path`` with new random bytes."""
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(random.Random(99).randbytes(n))


def stored_bytes(store: Store) -> int:
    """Bytes of every object and chunk list in the store."""
    return sum(size for _, size in object_sizes(store))


@pytest.fixture
def big(tmp_path: Path) -> Iterator[Path]:
    """A random file just above the chunking threshold, removed afterwards."""
    p = tmp_path / "big.bin"
    write_random(p, SIZE, seed=1)
    yield p
    p.unlink(missing_ok=True)


SPECS = pytest.mark.parametrize("store_spec", ["local", "s3"], indirect=True)


def two_versions(store: Store, big: Path, tmp_path: Path) -> tuple[str, str, Path]:
    """Store ``big``, change 1 MiB in its middle, store it again: (first digest, second
    digest, a copy of the first version)."""
    first = store.put_file(big).digest
    old = tmp_path / "old.bin"
    shutil.copyfile(big, old)
    change_middle(big)
    second = store.put_file(big).digest
    assert second == digest_file(big)[0] != first
    return first, second, old


def own_chunks(store: Store, digest: str) -> list[str]:
    """The chunks of a chunked file that are objects of their own (not earlier bytes)."""
    chunks = read_chunk_list(store.backend, digest, store.algorithm)
    assert chunks is not None
    return [p.digest for p in chunks.pieces if not p.source]


@SPECS
def test_small_change_stores_little(store_spec: StoreSpec, big: Path, tmp_path: Path) -> None:
    """Changing 1 MiB in the middle of a large file and storing it again adds at most 8 MiB,
    both versions keep their whole-file digests and restore byte-identical."""
    store = open_store(store_spec)
    first = store.put_file(big)
    assert first.digest == digest_file(big)[0]
    before = stored_bytes(store)
    assert SIZE <= before < SIZE + MiB
    old = tmp_path / "old.bin"
    shutil.copyfile(big, old)
    change_middle(big)
    second = store.put_file(big)
    assert second.digest == digest_file(big)[0] != first.digest
    assert store.chunks_of(second.digest) is not None
    grew = stored_bytes(store) - before
    assert 0 < grew <= 8 * MiB, f"the store grew by {grew / MiB:.1f} MiB"
    for d, original in ((first.digest, old), (second.digest, big)):
        assert store.has(d)
        assert store.size(d) == SIZE
        assert store.kind(d) == "file"
        assert store.get(d) == original.read_bytes()
        out = store.restore(d, tmp_path / f"out-{d[-6:]}")
        assert digest_file(out)[0] == d
        assert out.read_bytes() == original.read_bytes()
        out.unlink()
    assert store.verify().ok
    assert sorted(store.iter_objects()).count(first.digest) == 1


@SPECS
def test_first_version_stored_whole_locally_as_chunks_remotely(
    store_spec: StoreSpec, big: Path
) -> None:
    """A large file never stored before goes whole into a local store (at cp speed) and as
    a chunk list into S3 (the upload shrinks, and no earlier version has to be fetched)."""
    store = open_store(store_spec)
    d = store.put_file(big).digest
    if store_spec.kind == "local":
        assert store.chunks_of(d) is None
        assert store.backend.exists(store.key(d))
    else:
        chunks = store.chunks_of(d)
        assert chunks is not None
        assert len(chunks) > 10
        assert not store.backend.exists(store.key(d))
    assert store.verify().ok


def test_later_version_names_earlier_bytes_in_place(big: Path, tmp_path: Path) -> None:
    """Locally, the second version's chunk list names most of its bytes as ranges of the
    first version's whole object and holds only a few new chunks of its own."""
    store = Store(tmp_path / "store")
    first, second, _ = two_versions(store, big, tmp_path)
    chunks = read_chunk_list(store.backend, second, store.algorithm)
    assert chunks is not None
    shared = sum(p.size for p in chunks.pieces if p.source == first)
    assert shared >= SIZE - 8 * MiB
    assert 1 <= len(own_chunks(store, second)) <= 6
    assert store.chunks_of(second) is not None
    assert first in store.chunks_of(second)  # type: ignore[operator]


@SPECS
def test_damaged_chunk_is_found_and_refused(
    store_spec: StoreSpec, big: Path, tmp_path: Path
) -> None:
    """A chunk with one flipped bit makes verify report it and its file corrupt, and
    restore raise IntegrityError leaving nothing at the destination."""
    store = open_store(store_spec)
    _, d, _ = two_versions(store, big, tmp_path)
    bad = own_chunks(store, d)[0]
    flip_byte(store_spec, store, bad, at=100)
    report = store.verify()
    assert not report.ok
    assert {bad, d} <= set(report.corrupt)
    dest = tmp_path / "out" / "big.bin"
    with pytest.raises(IntegrityError):
        store.restore(d, dest)
    assert not dest.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temp file left behind
    with store.open(d) as r:
        with pytest.raises(IntegrityError):
            r.read()


def test_damaged_earlier_version_fails_the_later_one(big: Path, tmp_path: Path) -> None:
    """A flipped bit in the first version's whole object, whose bytes the second version
    names, makes both corrupt to verify, and restoring the second names the range."""
    store = Store(tmp_path / "store")
    first, second, _ = two_versions(store, big, tmp_path)
    spec = StoreSpec("local", str(tmp_path / "store"), {})
    flip_byte(spec, store, first, at=10)
    report = store.verify()
    assert {first, second} <= set(report.corrupt)
    with pytest.raises(IntegrityError, match=f"of {first}"):
        store.restore(second, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


@SPECS
def test_missing_chunk_is_dangling(store_spec: StoreSpec, big: Path, tmp_path: Path) -> None:
    """A chunk gone from the store is reported dangling by verify; restore refuses."""
    store = open_store(store_spec)
    _, d, _ = two_versions(store, big, tmp_path)
    gone = own_chunks(store, d)[0]
    store.backend.delete(store.key(gone))
    report = store.verify()
    assert (d, gone) in report.dangling
    assert not report.ok
    dest = tmp_path / "restored.bin"
    with pytest.raises(NotFoundError):
        store.restore(d, dest)
    assert not dest.exists()


@SPECS
def test_old_store_with_large_whole_object_loads(
    store_spec: StoreSpec, big: Path, tmp_path: Path
) -> None:
    """A large file stored whole, as before chunking, reads, restores and verifies; storing
    it again keeps that copy as the file (no chunk list beside it)."""
    store = open_store(store_spec)
    d = digest_file(big)[0]
    raw_write(store_spec, store.key(d), big.read_bytes())  # what an older version wrote
    assert store.has(d)
    assert store.size(d) == SIZE
    assert store.chunks_of(d) is None
    assert store.put_file(big).digest == d
    assert store.chunks_of(d) is None
    assert list(store.iter_chunked()) == []
    out = store.restore(d, tmp_path / "out.bin")
    assert out.read_bytes() == big.read_bytes()
    assert store.verify().ok


def test_gc_keeps_chunks_of_kept_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc keeps every chunk of a file a ref keeps, and the earlier version whose bytes it
    names even when no run keeps that one, and removes what only deleted runs had."""
    monkeypatch.chdir(tmp_path)
    ledger = Ledger(str(tmp_path / "store"))
    kept_file, gone_file = tmp_path / "kept.bin", tmp_path / "gone.bin"
    write_random(kept_file, SIZE, seed=1)
    write_random(gone_file, SIZE, seed=2)
    found: dict[str, str] = {}
    for name, path in (("kept", kept_file), ("gone", gone_file)):
        for version in ("v1", "v2"):
            with ledger.run(f"{name}-{version}") as run:
                found[f"{name}-{version}"] = run.save(str(path)).digest
            change_middle(path)
    ledger.refs.set("data/kept", found["kept-v2"])
    store = ledger.store
    kept_needs = store.chunks_of(found["kept-v2"])
    gone_needs = store.chunks_of(found["gone-v2"])
    assert kept_needs
    assert gone_needs
    assert found["kept-v1"] in kept_needs
    report = ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    assert {found["gone-v1"], found["gone-v2"]} <= set(report.objects)
    assert set(gone_needs) <= set(report.objects)
    assert not store.has(found["gone-v2"])
    assert not any(store.has(c) for c in gone_needs)
    assert store.chunks_of(found["kept-v2"]) == kept_needs
    assert all(store.has(c) for c in kept_needs)
    out = store.restore(found["kept-v2"], tmp_path / "restored.bin")
    assert digest_file(out)[0] == found["kept-v2"]
    assert store.verify().ok
    os.unlink(out)


_WITHOUT_EXTRA = """
import json, os, sys
sys.modules["pyfastcdc"] = None  # the chunks extra is not installed here
from mlledger import Ledger
from mlledger.hashing import digest_file
from mlledger.store.chunked import chunker
assert chunker() is None
ledger = Ledger(sys.argv[1])
store = ledger.store
digest, dest, newfile = sys.argv[2], sys.argv[3], sys.argv[4]
report = store.verify()
with store.open(digest) as r:
    n = 0
    while data := r.read(1 << 20):
        n += len(data)
gc = ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
store.restore(digest, dest)
new = store.put_file(newfile).digest
print(json.dumps({"ok": report.ok, "read": n, "needs": store.chunks_of(digest),
                  "gc_removed": sorted(gc.objects), "ok_after_gc": store.verify().ok,
                  "restored": digest_file(dest)[0],
                  "new_chunked": store.chunks_of(new) is not None, "new": new}))
"""


def test_chunk_lists_read_without_the_extra(
    big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process without the chunker reads, verifies, gc's (keeping what a kept chunk list
    names) and restores a file stored as a chunk list, and stores a new large file whole."""
    import json
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    url = str(tmp_path / "store")
    ledger = Ledger(url)
    with ledger.run("v1") as run:
        first = run.save(str(big)).digest
    change_middle(big)
    with ledger.run("v2") as run:
        second = run.save(str(big)).digest
    ledger.refs.set("data/big", second)
    needs = ledger.store.chunks_of(second)
    assert needs is not None
    assert first in needs
    newfile = tmp_path / "new.bin"
    write_random(newfile, SIZE, seed=5)
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRA, url, second, str(tmp_path / "restored.bin"),
         str(newfile)],
        check=True, capture_output=True, text=True,
    ).stdout
    got = json.loads(out)
    assert got["ok"]
    assert got["read"] == SIZE
    assert got["needs"] == list(needs)
    assert not set(needs) & set(got["gc_removed"])
    assert got["ok_after_gc"]
    assert got["restored"] == second
    assert not got["new_chunked"]
    assert got["new"] == digest_file(newfile)[0]


_PUT = (
    "import sys; from mlledger.store import Store; "
    "print(Store(sys.argv[1]).put_file(sys.argv[2]).digest)"
)


@SPECS
def test_concurrent_writers_of_one_large_file(
    store_spec: StoreSpec, big: Path, tmp_path: Path
) -> None:
    """Two processes storing the same new version of a large file at once both get its
    digest, and the store holds it soundly (create-only chunks and chunk list)."""
    import subprocess
    import sys

    store = open_store(store_spec)
    store.put_file(big)
    change_middle(big)
    d = digest_file(big)[0]
    env = {**os.environ, "MLLEDGER_URL": store_spec.url}
    code = _PUT if store_spec.kind == "local" else _PUT.replace(
        "Store(sys.argv[1])", f"Store(sys.argv[1], **{store_spec.storage_options!r})"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, store_spec.url, str(big)],
                         stdout=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs == [d, d]
    store = open_store(store_spec)
    assert store.verify().ok
    assert store.has(d)
    assert store.get(d) == big.read_bytes()


@SPECS
def test_file_changed_while_chunked_stores_no_chunk_list(
    store_spec: StoreSpec, big: Path
) -> None:
    """A large file written to while it is stored as chunks raises ConflictError, leaves no
    chunk list (neither digest is stored) and no chunker thread behind."""
    import threading

    from fsspec.callbacks import Callback

    from mlledger.errors import ConflictError

    store = open_store(store_spec)
    first = store.put_file(big).digest
    change_middle(big)
    before = digest_file(big)[0]

    class Writer(Callback):  # a real write to the file once the first chunk is stored
        def relative_update(self, inc: int = 1) -> None:
            if not self.value:
                with open(big, "r+b") as f:
                    f.seek(SIZE - 10 * MiB)
                    f.write(b"changed while stored")
            self.value += inc

    with pytest.raises(ConflictError):
        store.put_file(big, callback=Writer())
    assert not store.has(before)
    assert not store.has(digest_file(big)[0])
    assert set(store.iter_chunked()) <= {first}
    assert store.verify().ok
    assert not [t for t in threading.enumerate() if t.name == "mlledger-chunker"]


@SPECS
def test_tree_holding_a_chunked_file_restores(
    store_spec: StoreSpec, big: Path, tmp_path: Path
) -> None:
    """A folder whose large file is stored as a chunk list restores byte-identical, from
    local disk and from S3 (where a tree's files download concurrently)."""
    store = open_store(store_spec)
    folder = tmp_path / "folder"
    folder.mkdir()
    store.put_file(big)  # an earlier version: locally, the next one is a chunk list
    change_middle(big)
    shutil.copyfile(big, folder / "big.bin")
    (folder / "small.txt").write_text("small")
    tree = store.put_tree(folder).digest
    inner = digest_file(folder / "big.bin")[0]
    if store_spec.kind == "s3":
        assert store.chunks_of(inner) is not None
    out = store.restore(tree, tmp_path / "out")
    assert (out / "big.bin").read_bytes() == big.read_bytes()
    assert (out / "small.txt").read_text() == "small"
