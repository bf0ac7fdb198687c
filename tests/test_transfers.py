"""Concurrent, verified restores from S3 (moto) and GCS (fake-gcs-server), seen through a
TCP proxy that adds latency, counts requests in flight and can cut a connection
mid-transfer."""

from __future__ import annotations

import os
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BUCKET, gcs_options, s3_options
from fsspec.callbacks import Callback
from helpers.proxy import Proxy
from helpers.servers import StoreSpec
from helpers.stores import flip_byte, make_sample_tree, open_store, snapshot

from mlledger.errors import IntegrityError, LedgerError, NotFoundError, UsageError
from mlledger.store import Store
from mlledger.store.transfers import PIECE

REMOTE = ["s3", "gcs"]


@pytest.fixture(params=REMOTE, ids=REMOTE)
def remote(request: pytest.FixtureRequest) -> Iterator[tuple[StoreSpec, Proxy]]:
    """A fresh store root on S3 or GCS, and a proxy in front of its server."""
    kind: str = request.param
    name = uuid.uuid4().hex
    if kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        spec = StoreSpec(kind, f"s3://{BUCKET}/{name}", s3_options(endpoint))
    else:
        endpoint = request.getfixturevalue("gcs_endpoint")
        spec = StoreSpec(kind, f"gs://{BUCKET}/{name}", gcs_options(endpoint))
    with Proxy(endpoint) as proxy:
        yield spec, proxy


def through(spec: StoreSpec, proxy: Proxy) -> Store:
    """A new Store on ``spec`` whose every request goes through ``proxy``."""
    opts = dict(spec.storage_options)
    if spec.kind == "s3":
        opts["client_kwargs"] = {"endpoint_url": proxy.url}
    else:
        opts["endpoint_url"] = proxy.url
    return Store(spec.url, **opts)


def many_files(root: Path, n: int, size: int = 2000) -> Path:
    """A folder of ``n`` distinct files in a few subfolders."""
    for i in range(n):
        p = root / f"d{i % 4}" / f"f{i:04d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size) + i.to_bytes(4, "big"))
    return root


def leftovers(folder: Path) -> list[str]:
    """Names in ``folder`` that a restore's temp places would have."""
    return [n for n in os.listdir(folder) if ".mlledger-" in n]


class Recorder(Callback):
    """An fsspec callback that keeps the size it was told and the last value."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int | None] = []

    def set_size(self, size: int | None) -> None:
        self.sizes.append(size)
        super().set_size(size)


def test_a_tree_restores_byte_identical(
    remote: tuple[StoreSpec, Proxy], tmp_path: Path
) -> None:
    """A tree with folders, links, an executable, an empty file, repeated contents and a
    file of several pieces restores byte-identical, its files counted by the callback."""
    spec, _ = remote
    src = make_sample_tree(tmp_path / "src")
    (src / "big.bin").write_bytes(os.urandom(2 * PIECE + 123))
    (src / "copy-of-a.txt").write_text("hello\n")
    (src / "data" / "copy-of-big.bin").write_bytes((src / "big.bin").read_bytes())
    stored = open_store(spec).put(src)
    progress = Recorder()
    out = open_store(spec).restore(stored.digest, tmp_path / "out", callback=progress)
    assert snapshot(out) == snapshot(src)
    assert progress.sizes[-1] == len(open_store(spec).read_tree(stored.digest).entries)
    assert progress.value == progress.sizes[-1]
    assert leftovers(tmp_path) == []


def test_a_large_file_streams_in_verified(
    remote: tuple[StoreSpec, Proxy], tmp_path: Path
) -> None:
    """A file of several pieces restores byte-identical; the callback is told its size
    and sees every byte go by."""
    spec, _ = remote
    data = os.urandom(3 * PIECE + 17)
    (tmp_path / "big.bin").write_bytes(data)
    stored = open_store(spec).put(tmp_path / "big.bin")
    progress = Recorder()
    out = open_store(spec).restore(stored.digest, tmp_path / "out.bin", callback=progress)
    assert out.read_bytes() == data
    assert progress.sizes == [len(data)]
    assert progress.value == len(data)


@pytest.mark.parametrize("what", ["file", "tree member"])
def test_a_corrupt_object_is_refused_naming_its_key(
    remote: tuple[StoreSpec, Proxy], tmp_path: Path, what: str
) -> None:
    """An object whose bytes on the server do not match its digest is refused with an
    IntegrityError naming its key, and nothing appears at the destination."""
    spec, _ = remote
    src = many_files(tmp_path / "src", 12)
    store = open_store(spec)
    tree = store.put(src)
    victim = store.put(src / "d1" / "f0005.bin").digest
    flip_byte(spec, store, victim, at=100)
    target = victim if what == "file" else tree.digest
    with pytest.raises(IntegrityError, match=store.key(victim)):
        open_store(spec).restore(target, tmp_path / "out", concurrency=4)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_a_missing_tree_member_is_named_and_nothing_is_written(
    remote: tuple[StoreSpec, Proxy], tmp_path: Path
) -> None:
    """A tree whose member is gone from the server raises NotFoundError naming the
    object, and nothing appears at the destination."""
    spec, _ = remote
    src = many_files(tmp_path / "src", 12)
    store = open_store(spec)
    tree = store.put(src)
    gone = store.put(src / "d2" / "f0006.bin").digest
    store.delete(gone)
    with pytest.raises(NotFoundError, match=gone):
        open_store(spec).restore(tree.digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("limit", "how"), [(3, "argument"), (2, "environment")])
def test_concurrency_is_bounded(
    remote: tuple[StoreSpec, Proxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    limit: int,
    how: str,
) -> None:
    """A tree restore keeps at most the configured number of requests in flight, as
    counted at the proxy, yet more than one, and more again under a higher limit, so
    the bound is what holds it back."""
    spec, proxy = remote
    src = many_files(tmp_path / "src", 60)
    digest = open_store(spec).put(src).digest
    peaks = {}
    for n in (limit, 8):
        proxy.latency = 0.02  # requests overlap long enough to be seen
        store = through(spec, proxy)
        proxy.reset()
        if how == "environment":
            monkeypatch.setenv("MLLEDGER_TRANSFERS", str(n))
            out = store.restore(digest, tmp_path / f"out-{n}")
        else:
            out = store.restore(digest, tmp_path / f"out-{n}", concurrency=n)
        peaks[n] = proxy.peak
        assert snapshot(out) == snapshot(src)
        del store
    assert 2 <= peaks[limit] <= limit
    assert peaks[8] > limit


def test_a_bad_transfers_setting_is_a_usage_error(
    remote: tuple[StoreSpec, Proxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLLEDGER_TRANSFERS that is not a positive whole number is refused, saying so."""
    spec, _ = remote
    store = open_store(spec)
    digest = store.put_bytes(b"x")
    monkeypatch.setenv("MLLEDGER_TRANSFERS", "0")
    with pytest.raises(UsageError, match="MLLEDGER_TRANSFERS"):
        store.restore(digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_server_failing_mid_transfer_leaves_nothing(
    remote: tuple[StoreSpec, Proxy], tmp_path: Path
) -> None:
    """When every connection dies part way through a large object, a tree restore fails
    with an error naming that object's key and leaves nothing at the destination, not
    even a temp file; once the server behaves, the same store restores the tree.
    (gcsfs retries a failed read five times with back-off: some 30 s on GCS.)"""
    spec, proxy = remote
    src = many_files(tmp_path / "src", 8)
    big = os.urandom(2 * PIECE)
    (src / "big.bin").write_bytes(big)
    plain = open_store(spec)
    target = plain.put(src).digest
    big_key = plain.key(plain.digest(big))
    store = through(spec, proxy)
    proxy.cut_after = 1 << 20  # every response longer than 1 MiB is cut
    with pytest.raises(LedgerError, match=big_key):
        store.restore(target, tmp_path / "out", concurrency=4)
    assert proxy.cuts >= 1
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []
    proxy.cut_after = None
    assert snapshot(store.restore(target, tmp_path / "again")) == snapshot(src)


def test_a_restore_asks_once_per_distinct_object(
    remote: tuple[StoreSpec, Proxy], tmp_path: Path
) -> None:
    """Restoring a tree sends one request per distinct file (no existence check, no
    peek, no size query; repeated contents fetched once) and one for the manifest (two
    on GCS: gcsfs streams no reads, so an object of unknown size is asked its size)."""
    spec, proxy = remote
    src = many_files(tmp_path / "src", 20)
    (src / "again.bin").write_bytes((src / "d0" / "f0000.bin").read_bytes())
    digest = open_store(spec).put(src).digest
    store = through(spec, proxy)
    proxy.reset()
    assert snapshot(store.restore(digest, tmp_path / "out")) == snapshot(src)
    expected = (1 if spec.kind == "s3" else 2) + 20
    # a retry the client makes on its own (gcsfs, on a loaded machine) may add one or two;
    # a size query or peek per file would add twenty
    assert expected <= proxy.requests <= expected + 2


def test_memory_stays_bounded_whatever_the_size(
    remote: tuple[StoreSpec, Proxy], tmp_path: Path
) -> None:
    """Restoring a file of ten pieces allocates a few pieces' worth at most, not the
    file's size."""
    spec, _ = remote
    data = os.urandom(10 * PIECE)
    (tmp_path / "big.bin").write_bytes(data)
    digest = open_store(spec).put(tmp_path / "big.bin").digest
    del data
    store = open_store(spec)
    tracemalloc.start()
    try:
        store.restore(digest, tmp_path / "out.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "out.bin").stat().st_size == 10 * PIECE
    # a piece in hand, the next in flight and the client's own copies of them: a few
    # pieces (GCS's ranged reads peaked at just over 4 under load), never the ten
    assert peak < 6 * PIECE
