"""The stat cache: unchanged large files are not read again; any change forces a rehash."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from conftest import IsolatedDirs
from helpers.servers import StoreSpec
from helpers.stores import LARGE, OpenCounter, memory_store, open_store

import mlledger.store.statcache as statcache_module
from mlledger.hashing import digest_bytes, digest_file
from mlledger.store import Store, cache_dir
from mlledger.store.statcache import StatCache


@pytest.fixture
def trust_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust a stat-cache entry the moment it is recorded (no racy window)."""
    monkeypatch.setattr(statcache_module, "RACY_NS", 0)


@pytest.fixture
def large_file(tmp_path: Path) -> Path:
    """A file big enough to go through the stat cache, last changed a moment ago."""
    p = tmp_path / "large.bin"
    p.write_bytes(os.urandom(LARGE))
    time.sleep(0.05)  # later writes get a later ctime than this one, whatever the clock tick
    return p


@pytest.mark.usefixtures("trust_at_once")
def test_unchanged_large_file_is_not_read_again(store_spec: StoreSpec, large_file: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Storing an unchanged large file a second time returns its digest without opening it."""
    store = open_store(store_spec)
    first = store.put_file(large_file)
    opens = OpenCounter(monkeypatch, large_file)
    again = store.put_file(large_file)
    assert again == first
    assert opens.count == 0
    assert open_store(store_spec).put_file(large_file) == first, "another Store shares the cache"
    assert opens.count == 0


@pytest.mark.usefixtures("trust_at_once")
def test_cached_digest_is_used_inside_trees(large_file: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Storing a folder again does not reread its unchanged large files."""
    folder = tmp_path / "folder"
    folder.mkdir()
    inside = folder / "large.bin"
    os.rename(large_file, inside)
    time.sleep(0.05)
    store = Store(tmp_path / "store")
    first = store.put_tree(folder)
    opens = OpenCounter(monkeypatch, inside)
    assert store.put_tree(folder) == first
    assert opens.count == 0


def test_a_just_written_file_is_hashed_again(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry recorded within RACY_NS of the file's last change is not trusted (racy git rule)."""
    p = tmp_path / "fresh.bin"
    p.write_bytes(os.urandom(LARGE))
    store = Store(tmp_path / "store")
    first = store.put_file(p)
    opens = OpenCounter(monkeypatch, p)
    assert store.put_file(p) == first
    assert opens.count == 1


@pytest.mark.usefixtures("trust_at_once")
def test_size_change_forces_a_rehash(store_spec: StoreSpec, large_file: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose size changed is read again and gets its new digest."""
    store = open_store(store_spec)
    store.put_file(large_file)
    opens = OpenCounter(monkeypatch, large_file)
    with open(large_file, "ab") as f:
        f.write(b"more")
    stored = store.put_file(large_file)
    assert opens.count >= 2  # the append, then the rehash
    assert stored.digest == digest_file(large_file)[0]
    assert stored.size == LARGE + 4
    assert store.get(stored.digest) == large_file.read_bytes()


@pytest.mark.usefixtures("trust_at_once")
def test_mtime_change_forces_a_rehash(large_file: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose mtime changed is read again, even when its bytes did not change."""
    store = Store(tmp_path / "store")
    first = store.put_file(large_file)
    st = large_file.stat()
    os.utime(large_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    opens = OpenCounter(monkeypatch, large_file)
    assert store.put_file(large_file) == first
    assert opens.count == 1


@pytest.mark.usefixtures("trust_at_once")
def test_same_size_and_mtime_edit_still_rehashes(store_spec: StoreSpec, large_file: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing bytes in place and setting mtime back still rehashes: the ctime moved."""
    store = open_store(store_spec)
    first = store.put_file(large_file)
    before = large_file.stat()
    with open(large_file, "r+b") as f:
        f.seek(LARGE // 2)
        f.write(b"EDITED")
    os.utime(large_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = large_file.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns
    stored = store.put_file(large_file)
    assert stored.digest != first.digest
    assert stored.digest == digest_bytes(large_file.read_bytes())
    assert store.get(stored.digest) == large_file.read_bytes()


@pytest.mark.usefixtures("trust_at_once")
def test_replaced_file_with_same_size_and_mtime_rehashes(large_file: Path, tmp_path: Path) -> None:
    """A file replaced by another of the same size and mtime (a new inode) is hashed again."""
    store = Store(tmp_path / "store")
    first = store.put_file(large_file)
    before = large_file.stat()
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(LARGE))
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(other, large_file)
    stored = store.put_file(large_file)
    assert stored.digest != first.digest
    assert stored.digest == digest_file(large_file)[0]


@pytest.mark.usefixtures("trust_at_once")
def test_large_file_with_a_non_utf8_name_is_cached(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A large file whose name is not valid UTF-8 is stored, and cached like any other."""
    p = os.fsdecode(os.fsencode(tmp_path) + b"/latin1-\xe9.bin")
    with open(p, "wb") as f:
        f.write(os.urandom(LARGE))
    time.sleep(0.05)
    store = Store(tmp_path / "store")
    first = store.put_file(p)
    assert first.digest == digest_file(p)[0]
    opens = OpenCounter(monkeypatch, p)
    assert store.put_file(p) == first
    assert opens.count == 0


def test_small_files_are_always_hashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files under 256 KiB skip the stat cache: they are cheap to read."""
    monkeypatch.setattr(statcache_module, "RACY_NS", 0)
    p = tmp_path / "small.bin"
    p.write_bytes(b"small" * 100)
    store = Store(tmp_path / "store")
    store.put_file(p)
    opens = OpenCounter(monkeypatch, p)
    store.put_file(p)
    assert opens.count == 1
    assert not os.path.exists(store.statcache.path) or _rows(store.statcache.path) == 0


def _rows(path: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM stat").fetchone()[0])


def test_cache_file_lives_in_the_user_cache_dir(isolated_dirs: IsolatedDirs,
                                                large_file: Path, tmp_path: Path) -> None:
    """The stat cache is one SQLite file under the user cache dir (XDG_CACHE_HOME on Linux)."""
    expected = isolated_dirs.cache / "mlledger" / "statcache.sqlite3"
    assert cache_dir() == isolated_dirs.cache / "mlledger"
    store = Store(tmp_path / "store")
    assert store.statcache.path == str(expected)
    store.put_file(large_file)
    assert expected.is_file()
    assert _rows(str(expected)) == 1
    assert not list((tmp_path / "store").rglob("*.sqlite3")), "the cache is not in the store"


@pytest.mark.usefixtures("trust_at_once")
def test_deleting_the_cache_loses_nothing(isolated_dirs: IsolatedDirs, large_file: Path,
                                          tmp_path: Path) -> None:
    """With the cache folder deleted, storing again rehashes and gives the same digest."""
    store = Store(tmp_path / "store")
    first = store.put_file(large_file)
    store.statcache.close()
    for p in (isolated_dirs.cache / "mlledger").iterdir():
        p.unlink()
    assert Store(tmp_path / "store").put_file(large_file) == first


def test_corrupt_cache_file_does_not_break_storing(isolated_dirs: IsolatedDirs,
                                                   large_file: Path, tmp_path: Path) -> None:
    """A cache file that is not a database only costs time: storing still works."""
    cache = isolated_dirs.cache / "mlledger" / "statcache.sqlite3"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"this is not an SQLite database" * 100)
    store = Store(tmp_path / "store")
    for _ in range(2):
        stored = store.put_file(large_file)
        assert stored.digest == digest_file(large_file)[0]
    assert store.get(stored.digest) == large_file.read_bytes()


@pytest.mark.parametrize("blocker", ["cache-path-is-a-folder", "cache-dir-is-a-file"])
def test_unwritable_cache_does_not_break_storing(isolated_dirs: IsolatedDirs, large_file: Path,
                                                 tmp_path: Path, blocker: str) -> None:
    """A cache that cannot be created or written only costs time: storing still works."""
    mlledger_cache = isolated_dirs.cache / "mlledger"
    if blocker == "cache-path-is-a-folder":
        (mlledger_cache / "statcache.sqlite3").mkdir(parents=True)
    else:
        mlledger_cache.write_bytes(b"a file where the cache folder should be")
    with memory_store() as store:
        for _ in range(2):
            assert store.put_file(large_file).digest == digest_file(large_file)[0]


def test_cache_entry_is_per_algorithm(tmp_path: Path, large_file: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An xxh128 digest cached for a file is never handed to a sha256 store."""
    monkeypatch.setattr(statcache_module, "RACY_NS", 0)
    xxh = Store(tmp_path / "xxh").put_file(large_file)
    sha = Store(tmp_path / "sha", algorithm="sha256").put_file(large_file)
    assert xxh.digest.startswith("xxh128:")
    assert sha.digest == digest_file(large_file, "sha256")[0]


@pytest.mark.usefixtures("trust_at_once")
def test_cached_digest_does_not_skip_storing_into_another_store(large_file: Path,
                                                                tmp_path: Path) -> None:
    """A digest cached while storing into one store still gets the bytes into another store."""
    first = Store(tmp_path / "one").put_file(large_file)
    with memory_store() as other:
        assert other.put_file(large_file) == first
        assert other.get(first.digest) == large_file.read_bytes()
    second = Store(tmp_path / "two")
    assert second.put_file(large_file) == first
    assert second.get(first.digest) == large_file.read_bytes()


def test_statcache_lookup_and_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """StatCache returns a recorded digest only for the same stat and algorithm, once non-racy."""
    p = tmp_path / "f"
    p.write_bytes(b"x")
    st = os.stat(p)
    cache = StatCache(str(tmp_path / "cache" / "stat.sqlite3"))
    assert cache.lookup(str(p), st, "xxh128") is None
    cache.record(str(p), st, "xxh128", "xxh128:" + "0" * 32)
    assert cache.lookup(str(p), st, "xxh128") is None, "racy: recorded right after a change"
    monkeypatch.setattr(statcache_module, "RACY_NS", 0)
    assert cache.lookup(str(p), st, "xxh128") == "xxh128:" + "0" * 32
    assert cache.lookup(str(p), st, "sha256") is None
    assert cache.lookup(str(tmp_path / "other"), st, "xxh128") is None
    results: list[str | None] = []
    thread = threading.Thread(target=lambda: results.append(cache.lookup(str(p), st, "xxh128")))
    thread.start()
    thread.join()
    assert results == ["xxh128:" + "0" * 32], "each thread gets its own connection"
    cache.close()
