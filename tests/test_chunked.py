"""Large files stored as content-defined chunks (``mlledger.store.chunked``): a small
change stores little, the file's identity stays its whole-file digest, and verify, gc,
restore and old stores all understand chunk lists, on local disk and on S3 (moto)."""

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


@SPECS
def test_small_change_stores_little(store_spec: StoreSpec, big: Path, tmp_path: Path) -> None:
    """Changing 1 MiB in the middle of a large file and storing it again adds at most 8 MiB,
    both versions keep their whole-file digests and restore byte-identical."""
    store = open_store(store_spec)
    first = store.put_file(big)
    assert first.digest == digest_file(big)[0]
    assert store.chunks_of(first.digest) is not None
    before = stored_bytes(store)
    assert SIZE <= before < SIZE + MiB
    old = tmp_path / "old.bin"
    shutil.copyfile(big, old)
    change_middle(big)
    second = store.put_file(big)
    assert second.digest == digest_file(big)[0] != first.digest
    grew = stored_bytes(store) - before
    assert 0 < grew <= 8 * MiB, f"the store grew by {grew / MiB:.1f} MiB"
    for d, original in ((first.digest, old), (second.digest, big)):
        assert store.has(d)
        assert store.size(d) == SIZE
        assert store.kind(d) == "file"
        out = store.restore(d, tmp_path / f"out-{d[-6:]}")
        assert digest_file(out)[0] == d
        assert out.read_bytes() == original.read_bytes()
        out.unlink()
    assert store.verify().ok


@SPECS
def test_damaged_chunk_is_found_and_refused(
    store_spec: StoreSpec, big: Path, tmp_path: Path
) -> None:
    """A chunk with one flipped bit makes verify report it and its file corrupt, and
    restore raise IntegrityError leaving nothing at the destination."""
    store = open_store(store_spec)
    d = store.put_file(big).digest
    chunks = store.chunks_of(d)
    assert chunks is not None
    assert len(chunks) > 10
    bad = chunks[len(chunks) // 2]
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


@SPECS
def test_missing_chunk_is_dangling(store_spec: StoreSpec, big: Path, tmp_path: Path) -> None:
    """A chunk gone from the store is reported dangling by verify; restore refuses."""
    store = open_store(store_spec)
    d = store.put_file(big).digest
    chunks = store.chunks_of(d)
    assert chunks is not None
    store.backend.delete(store.key(chunks[3]))
    report = store.verify()
    assert (d, chunks[3]) in report.dangling
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
    """gc keeps every chunk of a file a ref keeps, and removes the chunk list and the
    chunks only a deleted run's file had; what stays restores and verifies."""
    monkeypatch.chdir(tmp_path)
    ledger = Ledger(str(tmp_path / "store"))
    kept_file, gone_file = tmp_path / "kept.bin", tmp_path / "gone.bin"
    write_random(kept_file, SIZE, seed=1)
    write_random(gone_file, SIZE, seed=2)
    with ledger.run("keep") as run:
        kept = run.save(str(kept_file)).digest
    with ledger.run("drop") as run:
        gone = run.save(str(gone_file)).digest
    ledger.refs.set("data/kept", kept)
    store = ledger.store
    kept_chunks, gone_chunks = store.chunks_of(kept), store.chunks_of(gone)
    assert kept_chunks
    assert gone_chunks
    assert not set(kept_chunks) & set(gone_chunks)
    report = ledger.gc(dry_run=False, keep_days=0, grace_seconds=0)
    assert gone in report.objects
    assert set(gone_chunks) <= set(report.objects)
    assert not store.has(gone)
    assert not any(store.has(c) for c in gone_chunks)
    assert store.chunks_of(kept) == kept_chunks
    assert all(store.has(c) for c in kept_chunks)
    out = store.restore(kept, tmp_path / "restored.bin")
    assert out.read_bytes() == kept_file.read_bytes()
    assert store.verify().ok
    os.unlink(out)


_PUT = (
    "import sys; from mlledger.store import Store; "
    "print(Store(sys.argv[1]).put_file(sys.argv[2]).digest)"
)


def test_concurrent_writers_of_one_large_file(big: Path, tmp_path: Path) -> None:
    """Three processes storing the same large file at once all get its digest, and the
    store holds one sound copy of it (create-only chunks and chunk list)."""
    import subprocess
    import sys

    url = tmp_path / "store"
    Store(url)
    procs = [
        subprocess.Popen([sys.executable, "-c", _PUT, str(url), str(big)], stdout=subprocess.PIPE)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300)[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    d = digest_file(big)[0]
    assert outs == [d, d, d]
    store = Store(url)
    assert store.verify().ok
    assert store.chunks_of(d) is not None
    assert SIZE <= stored_bytes(store) < SIZE + MiB
    assert store.restore(d, tmp_path / "out.bin").read_bytes() == big.read_bytes()


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
    assert list(store.iter_chunked()) == []
    assert store.verify().ok
    assert not [t for t in threading.enumerate() if t.name == "mlledger-chunker"]
