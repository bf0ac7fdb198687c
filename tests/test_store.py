"""The content-addressed store: opening, objects, create-only entries, atomicity, errors."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BUCKET, IsolatedDirs, gcs_options, s3_options
from helpers.servers import StoreSpec
from helpers.stores import (
    LARGE,
    count_objects,
    create_in_process,
    deny_reading,
    make_sample_tree,
    memory_store,
    open_store,
    raw_read,
    raw_write,
    snapshot,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlledger import canonical
from mlledger.errors import (
    AccessError,
    ConflictError,
    DigestError,
    ExistsError,
    FormatError,
    LedgerError,
    NotAFileError,
    NotAFolderError,
    NotFoundError,
    SymlinkLoopError,
)
from mlledger.hashing import digest_bytes, digest_file
from mlledger.store import FORMAT, Refs, Store, default_url
from mlledger.store.chunked import CHUNKED_MIN, chunker
from mlledger.store.tree import MAGIC

FAST = ["memory", "local"]


@pytest.fixture(params=FAST, ids=FAST)
def fast_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on memory or local disk (for property tests that run many examples)."""
    if request.param == "memory":
        with memory_store() as store:
            yield store
    else:
        yield Store(tmp_path / "fast-store")


@pytest.fixture
def local_store(tmp_path: Path) -> Store:
    """A fresh store in a local folder."""
    return Store(tmp_path / "store")


def config_of(spec: StoreSpec) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(raw_read(spec, "mlledger.json"))
    return doc


# -- opening a store ---------------------------------------------------------------------


def test_new_root_gets_a_config(store_spec: StoreSpec) -> None:
    """Opening an empty root creates mlledger.json with the format version and the hash."""
    store = open_store(store_spec)
    doc = config_of(store_spec)
    assert doc["format"] == FORMAT
    assert doc["hash"] == "xxh128" == store.algorithm
    assert doc["created_by"].startswith("mlledger ")
    assert store.config == doc
    again = open_store(store_spec)
    assert again.config == doc


def test_existing_config_is_never_rewritten(store_spec: StoreSpec) -> None:
    """An existing mlledger.json is read, not replaced: the config is created create-only."""
    original = canonical.dumps({"format": FORMAT, "hash": "sha256", "created": "then",
                                "created_by": "someone else", "policy": {}})
    raw_write(store_spec, "mlledger.json", original)
    store = open_store(store_spec)
    assert store.algorithm == "sha256"
    assert raw_read(store_spec, "mlledger.json") == original


def test_openers_of_a_new_root_at_once_agree_on_one_config(store_spec: StoreSpec) -> None:
    """Many openers of one new root race to create mlledger.json; all end up with the same one."""
    n = 4
    barrier = threading.Barrier(n)
    configs: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            barrier.wait()
            configs.append(open_store(store_spec).config)
        except BaseException as e:  # collected and re-raised in the test thread
            errors.append(e)

    threads = [threading.Thread(target=opener) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(configs) == n
    assert all(c == config_of(store_spec) for c in configs)


def test_plain_path_and_file_url_open_the_same_store(tmp_path: Path) -> None:
    """A plain path and a file:// URL of the same folder are the same store."""
    root = tmp_path / "store"
    d = Store(root).put_bytes(b"same store")
    via_url = Store(f"file://{root}")
    assert via_url.get(d) == b"same store"
    assert via_url.is_local
    assert (root / "mlledger.json").is_file()


def test_s3_and_gs_urls_open_real_stores(s3_endpoint: str, gcs_endpoint: str) -> None:
    """s3:// and gs:// URLs with storage options open stores a second client can read."""
    for url, options in (
        (f"s3://{BUCKET}/open-{uuid.uuid4().hex}", s3_options(s3_endpoint)),
        (f"gs://{BUCKET}/open-{uuid.uuid4().hex}", gcs_options(gcs_endpoint)),
    ):
        d = Store(url, **options).put_bytes(b"remote")
        other = Store(url, **options)
        assert not other.is_local
        assert other.get(d) == b"remote"
        assert other.algorithm == "xxh128"


def test_memory_url_opens_a_store() -> None:
    """A memory:// URL opens a store living in this process."""
    with memory_store() as store:
        d = store.put_bytes(b"in memory")
        assert Store(store.url).get(d) == b"in memory"


def test_newer_format_is_refused_naming_the_upgrade(store_spec: StoreSpec) -> None:
    """A store written by a newer format raises FormatError that says how to upgrade."""
    raw_write(store_spec, "mlledger.json",
              canonical.dumps({"format": FORMAT + 1, "hash": "xxh128"}))
    with pytest.raises(FormatError) as info:
        open_store(store_spec)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LedgerError)
    msg = str(info.value)
    assert f"format {FORMAT + 1}" in msg
    assert 'pip install -U mlledger' in msg
    assert "upgrade" in msg


def test_unknown_algorithm_in_config_is_refused(local_store: Store) -> None:
    """A store hashing with an algorithm this version does not know raises FormatError."""
    (Path(local_store.url) / "mlledger.json").write_bytes(
        canonical.dumps({"format": FORMAT, "hash": "blake9"}))
    with pytest.raises(FormatError, match="pip install -U mlledger"):
        Store(local_store.url)


def test_damaged_config_is_refused(tmp_path: Path) -> None:
    """A mlledger.json that does not parse raises FormatError pointing at the store folder."""
    root = tmp_path / "store"
    root.mkdir()
    (root / "mlledger.json").write_text("{not json")
    with pytest.raises(FormatError, match="not a valid mlledger store config"):
        Store(root)


def test_other_algorithm_on_existing_store_is_a_conflict(store_spec: StoreSpec) -> None:
    """Opening an existing store asking for another algorithm raises ConflictError."""
    open_store(store_spec)
    with pytest.raises(ConflictError) as info:
        open_store(store_spec, algorithm="sha256")
    assert isinstance(info.value, RuntimeError)
    assert "already hashes with xxh128" in str(info.value)
    assert "fixed when it is created" in str(info.value)
    assert open_store(store_spec, algorithm="xxh128").algorithm == "xxh128"


def test_unknown_algorithm_for_a_new_store_is_refused(tmp_path: Path) -> None:
    """Creating a store with an unknown algorithm raises DigestError naming the known ones."""
    with pytest.raises(DigestError, match="sha256, xxh128"):
        Store(tmp_path / "store", algorithm="md5")
    assert not (tmp_path / "store" / "mlledger.json").exists()


def test_sha256_store_works_end_to_end(store_spec: StoreSpec, tmp_path: Path) -> None:
    """A sha256 store names objects sha256:<64 hex> and stores, restores, verifies and refs."""
    store = open_store(store_spec, algorithm="sha256")
    assert config_of(store_spec)["hash"] == "sha256"
    d = store.put_bytes(b"adversarial")
    assert d == "sha256:" + hashlib.sha256(b"adversarial").hexdigest()
    assert store.get(d) == b"adversarial"
    assert store.key(d) == f"objects/sha256/{d[7:9]}/{d[9:]}"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(LARGE))
    f = store.put_file(big)
    assert f.digest == "sha256:" + hashlib.sha256(big.read_bytes()).hexdigest()
    src = make_sample_tree(tmp_path / "src")
    t = store.put(src)
    assert t.digest.startswith("sha256:")
    assert snapshot(store.restore(t.digest, tmp_path / "out")) == snapshot(src)
    assert Refs(store).set("model/prod", t.digest).target == t.digest
    reopened = open_store(store_spec)
    assert reopened.algorithm == "sha256"
    assert Refs(reopened).get("model/prod").target == t.digest
    report = reopened.verify()
    assert report.ok
    assert report.checked == count_objects(reopened) >= 9
    with pytest.raises(DigestError, match="this store hashes with sha256"):
        reopened.get(digest_bytes(b"adversarial"))


def test_default_url_comes_from_mlledger_url(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """$MLLEDGER_URL names the default store."""
    monkeypatch.setenv("MLLEDGER_URL", str(tmp_path / "from-env"))
    assert default_url() == str(tmp_path / "from-env")
    Store().put_bytes(b"x")
    assert (tmp_path / "from-env" / "mlledger.json").is_file()


def test_default_url_is_in_the_user_data_dir(isolated_dirs: IsolatedDirs,
                                             monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """Without $MLLEDGER_URL the store lives in the user data dir, resolved when opened."""
    expected = isolated_dirs.data / "mlledger" / "store"
    assert default_url() == str(expected)
    store = Store()
    assert Path(store.url) == expected
    assert (expected / "mlledger.json").is_file()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "elsewhere"))
    assert default_url() == str(tmp_path / "elsewhere" / "mlledger" / "store")


# -- objects -----------------------------------------------------------------------------


def test_bytes_round_trip_with_has_size_and_streaming_open(store_spec: StoreSpec) -> None:
    """put_bytes returns the digest; get/has/size/open give back exactly those bytes."""
    store = open_store(store_spec)
    data = bytes(range(256)) * 41
    d = store.put_bytes(data)
    assert d == digest_bytes(data)
    assert store.has(d)
    assert not store.has(digest_bytes(b"never stored"))
    assert store.size(d) == len(data)
    assert store.get(d) == data
    assert store.kind(d) == "file"
    with store.open(d) as reader:
        chunks = list(iter(lambda: reader.read(1000), b""))
    assert b"".join(chunks) == data
    assert len(chunks) == 11
    with store.open(d) as reader:
        assert reader.read() == data
    assert list(store.iter_objects()) == [d]


def test_missing_object_is_not_found(store_spec: StoreSpec, tmp_path: Path) -> None:
    """get/open/size/restore of an absent digest raise NotFoundError (a KeyError)."""
    store = open_store(store_spec)
    d = digest_bytes(b"absent")
    for call in (store.get, store.open, store.size):
        with pytest.raises(NotFoundError) as info:
            call(d)
        assert isinstance(info.value, KeyError)
    with pytest.raises(NotFoundError, match="not in the store"):
        store.get(d)
    with pytest.raises(NotFoundError, match="not in the store"):
        store.restore(d, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_malformed_digest_is_refused_by_the_store(local_store: Store) -> None:
    """Store methods given a malformed digest raise DigestError showing the expected form."""
    for bad in ("xxh128:abc", "9f2c" * 8, "xxh128:" + "0" * 32 + "\n"):
        with pytest.raises(DigestError, match="xxh128:<32 lowercase hex digits>"):
            local_store.has(bad)
        with pytest.raises(DigestError):
            local_store.get(bad)


def test_multi_mib_file_round_trips(store_spec: StoreSpec, tmp_path: Path) -> None:
    """A file of several MiB is stored streamed and restored byte-identical."""
    store = open_store(store_spec)
    src = tmp_path / "big.bin"
    data = os.urandom(6 * 1024 * 1024 + 17)
    src.write_bytes(data)
    stored = store.put_file(src)
    assert (stored.digest, stored.size, stored.kind) == (digest_file(src)[0], len(data), "file")
    assert store.size(stored.digest) == len(data)
    out = store.restore(stored.digest, tmp_path / "restored.bin")
    assert out.read_bytes() == data
    with store.open(stored.digest) as reader:
        assert hashlib.sha256(reader.read()).digest() == hashlib.sha256(data).digest()


def test_file_that_starts_like_a_manifest_stays_a_file(store_spec: StoreSpec,
                                                      tmp_path: Path) -> None:
    """A file whose bytes begin with the tree header is stored, verified and restored as a file."""
    store = open_store(store_spec)
    for i, data in enumerate([MAGIC, MAGIC + b"not json", MAGIC + b'{"entries": [], "x": 1} ',
                              MAGIC + b'{"entries": "no"}', MAGIC + b"\xff\xfe"]):
        src = tmp_path / f"looks-like-a-tree-{i}"
        src.write_bytes(data)
        stored = store.put(src)
        assert stored.kind == "file"
        assert store.kind(stored.digest) == "file"
        assert store.restore(stored.digest, tmp_path / f"out-{i}").read_bytes() == data
    assert store.verify().ok


def test_put_dispatches_files_and_folders(local_store: Store, tmp_path: Path) -> None:
    """put() stores a file as a file and a folder as a tree."""
    (tmp_path / "f").write_bytes(b"file")
    (tmp_path / "d").mkdir()
    assert local_store.put(tmp_path / "f").kind == "file"
    assert local_store.put(tmp_path / "d").kind == "tree"


def test_storing_what_exists_writes_nothing_new(store_spec: StoreSpec, tmp_path: Path) -> None:
    """Putting bytes, a file or a folder again returns the same digest and adds no object."""
    store = open_store(store_spec)
    src = make_sample_tree(tmp_path / "src")
    big = src / "data" / "nested" / "deep" / "large.bin"
    first = (store.put_bytes(b"blob"), store.put_file(big), store.put_tree(src))
    n = count_objects(store)
    assert n == 9  # 7 files (one of them the large one), the blob, the manifest
    if store_spec.kind == "local":
        obj = Path(store.url) / store.key(first[1].digest)
        before = obj.stat()
    again = (store.put_bytes(b"blob"), store.put_file(big), store.put_tree(src))
    assert again == first
    assert count_objects(store) == n
    assert store.put_many([b"blob"]) == [first[0]]
    assert count_objects(store) == n
    if store_spec.kind == "local":
        after = obj.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert list(Path(store.url).rglob(".tmp-*")) == []


def test_put_many_stores_every_blob_once(store_spec: StoreSpec) -> None:
    """put_many returns each blob's digest in order and stores duplicates once."""
    store = open_store(store_spec)
    blobs = [f"blob {i}".encode() for i in range(20)] + [b"blob 3", b""]
    digests = store.put_many(blobs)
    assert digests == [digest_bytes(b) for b in blobs]
    assert sorted(store.iter_objects()) == sorted(set(digests))
    assert all(store.get(d) == b for d, b in zip(digests, blobs, strict=True))
    assert store.put_many([]) == []


def test_objects_are_read_only_on_local_disk(local_store: Store) -> None:
    """A local object file is created read-only (0o444), so nothing rewrites it by accident."""
    d = local_store.put_bytes(b"read only")
    assert (Path(local_store.url) / local_store.key(d)).stat().st_mode & 0o777 == 0o444


def test_restore_refuses_an_existing_destination(store_spec: StoreSpec, tmp_path: Path) -> None:
    """restore() without overwrite refuses an existing file, folder or link: ExistsError."""
    store = open_store(store_spec)
    f = store.put_bytes(b"new content")
    t = store.put_tree(make_sample_tree(tmp_path / "src")).digest
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    (tmp_path / "file").write_bytes(b"old")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "keep").write_bytes(b"keep")
    os.symlink("nowhere", tmp_path / "dangling")
    for digest in (f, t):
        for dest in ("file", "folder", "dangling"):
            with pytest.raises(ExistsError) as info:
                store.restore(digest, tmp_path / dest)
            assert isinstance(info.value, FileExistsError)
            assert "already exists" in str(info.value)
            assert "overwrite=True" in str(info.value)
    assert (tmp_path / "file").read_bytes() == b"old"
    assert (tmp_path / "folder" / "keep").read_bytes() == b"keep"
    assert os.readlink(tmp_path / "dangling") == "nowhere"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "file", "folder"]


def test_restore_with_overwrite_replaces_files_and_folders(store_spec: StoreSpec,
                                                           tmp_path: Path) -> None:
    """overwrite=True replaces a file or a whole folder with exactly what was stored."""
    store = open_store(store_spec)
    src = make_sample_tree(tmp_path / "src")
    t = store.put_tree(src).digest
    f = store.put_bytes(b"new content")
    work = tmp_path / "work"
    work.mkdir()
    (work / "file").write_bytes(b"old")
    (work / "folder").mkdir()
    (work / "folder" / "stale.txt").write_bytes(b"stale")
    store.restore(t, work / "file", overwrite=True)
    assert snapshot(work / "file") == snapshot(src)
    store.restore(t, work / "folder", overwrite=True)
    assert snapshot(work / "folder") == snapshot(src)
    store.restore(f, work / "folder", overwrite=True)
    assert (work / "folder").read_bytes() == b"new content"
    store.restore(f, work / "file", overwrite=True)
    assert (work / "file").read_bytes() == b"new content"
    assert sorted(os.listdir(work)) == ["file", "folder"], "no temp or .old files left"


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), repeat=st.sampled_from([1, 1, 1, 300]))
def test_any_bytes_round_trip(fast_store: Store, data: bytes, repeat: int) -> None:
    """Any bytes stored come back identical, under the digest of those bytes."""
    data *= repeat
    d = fast_store.put_bytes(data)
    assert d == digest_bytes(data)
    assert fast_store.get(d) == data
    with fast_store.open(d) as reader:
        assert reader.read() == data


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), large=st.booleans())
def test_any_file_round_trips(fast_store: Store, tmp_path: Path, data: bytes,
                              large: bool) -> None:
    """Any file stored and restored comes back identical, small or through the large-file path."""
    if large:
        data = data * (LARGE // max(len(data), 1) + 1) if data else bytes(LARGE)
    name = uuid.uuid4().hex
    src = tmp_path / f"{name}.in"
    src.write_bytes(data)
    stored = fast_store.put_file(src)
    assert stored.digest == digest_bytes(data)
    assert fast_store.restore(stored.digest, tmp_path / f"{name}.out").read_bytes() == data


def test_progress_callbacks_see_every_byte(store_spec: StoreSpec, tmp_path: Path) -> None:
    """A callback given to put_file and restore is told the size and sees it all go by."""
    from fsspec.callbacks import Callback

    store = open_store(store_spec)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024))
    up = Callback()
    d = store.put_file(src, callback=up).digest
    assert (up.size, up.value) == (src.stat().st_size, src.stat().st_size)
    down = Callback()
    store.restore(d, tmp_path / "out.bin", callback=down)
    assert (down.size, down.value) == (src.stat().st_size, src.stat().st_size)
    tree = Callback()
    t = store.put_tree(make_sample_tree(tmp_path / "src"), callback=tree).digest
    assert tree.value == 7
    back = Callback()
    store.restore(t, tmp_path / "out", callback=back)
    assert back.value == back.size == len(store.read_tree(t).entries)


def test_file_changing_while_stored_is_a_conflict(fast_store: Store, tmp_path: Path) -> None:
    """A file that changes while it is copied raises ConflictError and leaves no object."""
    from fsspec.callbacks import Callback

    src = tmp_path / "growing.bin"
    src.write_bytes(os.urandom(LARGE))

    class AppendOnce(Callback):  # type: ignore[misc]
        """Progress of the copy: after its first chunk, the file grows."""

        done = False

        def relative_update(self, inc: int = 1) -> None:
            if not self.done:
                self.done = True
                with open(src, "ab") as f:
                    f.write(b"appended while being stored")
            super().relative_update(inc)

    with pytest.raises(ConflictError) as info:
        fast_store.put_file(src, callback=AppendOnce())
    assert isinstance(info.value, RuntimeError)
    assert "changed while it was being stored" in str(info.value)
    assert "store it again" in str(info.value)
    assert count_objects(fast_store) == 0
    if fast_store.is_local:
        assert not list(Path(fast_store.url).rglob(".tmp-*"))


# -- create-only entries -----------------------------------------------------------------


def test_create_entry_never_overwrites(store_spec: StoreSpec) -> None:
    """create_entry writes a key once; a second create returns False and changes nothing."""
    store = open_store(store_spec)
    assert store.create_entry("runs/2026/01/01/r1/start.json", b"first") is True
    assert store.create_entry("runs/2026/01/01/r1/start.json", b"second") is False
    assert store.read_entry("runs/2026/01/01/r1/start.json") == b"first"
    with pytest.raises(NotFoundError):
        store.read_entry("runs/2026/01/01/r1/end.json")


RACERS = 12


def test_concurrent_creators_of_one_key_have_one_winner(store_spec: StoreSpec) -> None:
    """Of many threads creating one entry key at once, exactly one wins and its bytes stay."""
    clients = [open_store(store_spec) for _ in range(3)]  # opening an S3 client costs ~0.2 s
    stores = [clients[i % len(clients)] for i in range(RACERS)]
    for round_ in range(3):
        key = f"runs/race/{round_}/entry.json"
        barrier = threading.Barrier(RACERS)
        results: dict[int, bool] = {}
        errors: list[BaseException] = []

        def racer(i: int, key: str = key, barrier: threading.Barrier = barrier,
                  results: dict[int, bool] = results,
                  errors: list[BaseException] = errors) -> None:
            try:
                barrier.wait()
                results[i] = stores[i].create_entry(key, f"writer {i}".encode())
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=racer, args=(i,)) for i in range(RACERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        winners = [i for i, won in results.items() if won]
        assert len(results) == RACERS
        assert len(winners) == 1, f"round {round_}: winners {winners}"
        assert stores[0].read_entry(key) == f"writer {winners[0]}".encode()


def test_concurrent_processes_creating_one_key_have_one_winner(tmp_path: Path) -> None:
    """Of several processes creating the same local entry keys at once, one wins each key."""
    url = str(tmp_path / "store")
    Store(url)
    n = 6
    keys = [f"runs/race/{k}.json" for k in range(5)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    queue = ctx.Queue()
    procs = [ctx.Process(target=create_in_process, args=(url, keys, i, barrier, queue))
             for i in range(n)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=60) for _ in range(n))
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    store = Store(url)
    for k, key in enumerate(keys):
        winners = [i for i in range(n) if results[i][k]]
        assert len(winners) == 1, f"{key}: winners {winners}"
        assert store.read_entry(key) == f"process {winners[0]}".encode()


# -- crash safety ------------------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import os, sys, time
    from fsspec.callbacks import Callback
    from mlledger.store import Store

    class Slow(Callback):  # ~20 ms a MiB: the copy lasts over a second on any machine
        done = 0

        def relative_update(self, inc=1):
            time.sleep(0.02 * inc / 2**20)
            Slow.done += inc
            with open(sys.argv[3] + ".new", "w") as f:
                f.write(str(Slow.done))
            os.replace(sys.argv[3] + ".new", sys.argv[3])

    Store(sys.argv[1]).put_file(sys.argv[2], callback=Slow())
""")


def _progress(path: Path) -> int:
    """How many bytes the writer reported stored so far (0 before its first report)."""
    try:
        return int(path.read_text() or 0)
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("size_mib", [48, 96], ids=["whole", "chunked"])
def test_writer_killed_mid_copy_leaves_no_object(tmp_path: Path, size_mib: int) -> None:
    """A process SIGKILLed while storing a large file (whole or as chunks) leaves nothing
    under the file's digest, a store that verifies, and no obstacle to storing it again."""
    size = size_mib << 20
    url = tmp_path / "store"
    store = Store(url)
    big = tmp_path / "big.bin"
    chunked = size >= CHUNKED_MIN and chunker() is not None
    for version in range(2 if chunked else 1):  # a version stored before: the next is chunked
        with open(big, "wb") as f:  # random, so chunks differ and each is copied
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
        if version == 0 and chunked:
            store.put_file(big)
    digest = digest_file(big)[0]
    progress = tmp_path / "progress"
    try:
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(url), str(big), str(progress)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        try:
            while not _progress(progress) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            assert _progress(progress), "the writer never started copying"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert 0 < _progress(progress) < size, "the kill landed mid-copy"
        assert not store.has(digest)
        assert store.chunks_of(digest) is None
        assert digest not in set(store.iter_objects())
        assert store.verify().ok  # chunks already written are whole objects, nothing partial
        assert store.put_file(big).digest == digest  # what the kill left is harmless
        assert store.verify().ok
        assert (store.chunks_of(digest) is not None) == chunked
    finally:  # free the disk: pytest keeps the last few tmp_path folders
        shutil.rmtree(url, ignore_errors=True)
        big.unlink()


# -- bad input ---------------------------------------------------------------------------


def test_missing_path_is_not_found(local_store: Store, tmp_path: Path) -> None:
    """Storing a path that does not exist raises NotFoundError (a KeyError) saying to check it."""
    for put in (local_store.put, local_store.put_file, local_store.put_tree):
        with pytest.raises(NotFoundError) as info:
            put(tmp_path / "no-such-file")
        assert isinstance(info.value, KeyError)
        assert "no such file or folder" in str(info.value)
        assert "check the path" in str(info.value)


@pytest.mark.parametrize("size", [10, LARGE], ids=["small", "large"])
def test_unreadable_file_is_an_access_error(store_spec: StoreSpec, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """A file that may not be read raises AccessError (a PermissionError) saying what to fix."""
    store = open_store(store_spec)
    src = tmp_path / "secret.bin"
    src.write_bytes(os.urandom(size))
    (tmp_path / "folder").mkdir()
    os.symlink(src, tmp_path / "folder" / "secret.bin")
    deny_reading(monkeypatch, src)  # we run as root: chmod 000 would not stop us
    for call, arg in ((store.put_file, src), (store.put, src),
                      (store.put_tree, tmp_path / "folder")):
        with pytest.raises(AccessError) as info:
            call(arg)
        assert isinstance(info.value, PermissionError)
        assert "permission denied" in str(info.value)
        assert "fix its permissions" in str(info.value)
    assert count_objects(store) == 0


def test_folder_where_a_file_is_expected(local_store: Store, tmp_path: Path) -> None:
    """put_file on a folder raises NotAFileError (an IsADirectoryError) pointing to put_tree."""
    with pytest.raises(NotAFileError) as info:
        local_store.put_file(tmp_path)
    assert isinstance(info.value, IsADirectoryError)
    assert "is a folder, not a file" in str(info.value)
    assert "put_tree()" in str(info.value)


def test_file_where_a_folder_is_expected(local_store: Store, tmp_path: Path) -> None:
    """put_tree on a file raises NotAFolderError (a NotADirectoryError) pointing to put_file."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotAFolderError) as info:
        local_store.put_tree(tmp_path / "f")
    assert isinstance(info.value, NotADirectoryError)
    assert "is a file, not a folder" in str(info.value)
    assert "put_file()" in str(info.value)


def test_special_file_is_refused(local_store: Store, tmp_path: Path) -> None:
    """A named pipe is not a regular file: NotAFileError, and nothing hangs reading it."""
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NotAFileError, match="not a regular file"):
        local_store.put_file(tmp_path / "pipe")


def test_symlink_loop_is_refused(local_store: Store, tmp_path: Path) -> None:
    """Storing a symlink loop (a -> b, b -> a) raises SymlinkLoopError (an OSError)."""
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    for put in (local_store.put, local_store.put_file, local_store.put_tree):
        with pytest.raises(SymlinkLoopError) as info:
            put(tmp_path / "a")
        assert isinstance(info.value, OSError)
        assert "symbolic link loop" in str(info.value)
        assert "fix or remove the link" in str(info.value)


def _store_in_forked_child(args: tuple[str, int]) -> str:
    """Store bytes from a forked child and read them back (module level: picklable)."""
    root, i = args
    child = Store(root)
    data = b"written by child %d " % i * 50
    d = child.put_bytes(data)
    assert child.get(d) == data
    return d


def test_forked_children_write_their_own_bytes(tmp_path: Path) -> None:
    """Objects written by forked children (unnamed temp files linked by fd) hold their own bytes."""
    root = str(tmp_path / "store")
    parent = Store(root)
    parent.put_bytes(b"the parent wrote first, so its fd table view exists")
    with open(tmp_path / "decoy", "wb") as decoy:  # an fd the children inherit
        decoy.write(b"DECOY" * 1000)
        decoy.flush()
        with multiprocessing.get_context("fork").Pool(2) as pool:
            digests = pool.map(_store_in_forked_child, [(root, i) for i in range(8)])
    assert len(set(digests)) == 8
    assert parent.verify().ok
    for i, d in enumerate(digests):
        assert parent.get(d) == b"written by child %d " % i * 50
