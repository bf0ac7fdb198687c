"""Helpers shared by the store's test modules (not a test module itself)."""

from __future__ import annotations

import builtins
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fsspec
import pytest

from helpers.servers import StoreSpec, fs_root, make_fs
from mlledger.store import Refs, Store

#: a file this large goes through the stat cache and the streaming copy
LARGE = 300 * 1024


def open_store(spec: StoreSpec, **kwargs: Any) -> Store:
    """A Store on ``spec`` (its URL and storage options)."""
    return Store(spec.url, **spec.storage_options, **kwargs)


def raw_path(spec: StoreSpec, key: str) -> str:
    """The path of a store key as the spec's own fsspec filesystem names it."""
    return f"{fs_root(spec)}/{key}"


def raw_write(spec: StoreSpec, key: str, data: bytes) -> None:
    """Write ``data`` under ``key`` behind the store's back (to damage or seed it)."""
    if spec.kind == "local":
        p = Path(spec.url) / key
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists():
            p.chmod(0o644)  # objects are created read-only
        p.write_bytes(data)
        return
    fs = make_fs(spec)
    fs.pipe_file(raw_path(spec, key), data)


def raw_read(spec: StoreSpec, key: str) -> bytes:
    """The bytes stored under ``key``, read behind the store's back."""
    if spec.kind == "local":
        return (Path(spec.url) / key).read_bytes()
    data: bytes = make_fs(spec).cat_file(raw_path(spec, key))
    return data


def flip_byte(spec: StoreSpec, store: Store, digest: str, at: int = 0) -> None:
    """Corrupt the object ``digest`` by flipping one bit of byte ``at``."""
    key = store.key(digest)
    if spec.kind == "local":
        p = Path(spec.url) / key
        assert stat.S_IMODE(p.stat().st_mode) == 0o444, "objects are created read-only"
        p.chmod(0o644)
        with open(p, "r+b") as f:
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 0x01]))
        p.chmod(0o444)
        return
    data = bytearray(raw_read(spec, key))
    data[at] ^= 0x01
    raw_write(spec, key, bytes(data))


def count_objects(store: Store) -> int:
    """How many objects the store holds."""
    return len(list(store.iter_objects()))


@contextmanager
def memory_store(**kwargs: Any) -> Iterator[Store]:
    """A Store on a fresh memory:// root, removed afterwards."""
    name = f"/mlledger-h-{uuid.uuid4().hex}"
    try:
        yield Store(f"memory://{name}", **kwargs)
    finally:
        mem = fsspec.filesystem("memory")
        for key in [k for k in mem.store if k.startswith(name + "/")]:
            mem.store.pop(key, None)
        mem.pseudo_dirs[:] = [d for d in mem.pseudo_dirs if not d.startswith(name)]


Snapshot = dict[str, tuple[Any, ...]]


def snapshot(root: str | os.PathLike[str]) -> Snapshot:
    """Everything under ``root``: files (bytes, executable bit), links (target), folders."""
    out: Snapshot = {}
    root = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                out[rel] = ("dir",)
            else:
                mode = os.stat(full).st_mode
                out[rel] = ("file", Path(full).read_bytes(), bool(mode & 0o111))
    return out


def make_sample_tree(root: Path) -> Path:
    """A folder with nested and empty folders, an executable, links, a large file."""
    (root / "bin").mkdir(parents=True)
    (root / "data" / "nested" / "deep").mkdir(parents=True)
    (root / "data" / "empty-inner").mkdir()
    (root / "empty").mkdir()
    (root / "a.txt").write_text("hello\n")
    (root / "zero.bin").write_bytes(b"")
    (root / "name with spaces.txt").write_text("spaces\n")
    (root / "ünïcode-名前.txt").write_text("unicode\n")
    run = root / "bin" / "run.sh"
    run.write_text("#!/bin/sh\necho hi\n")
    run.chmod(0o755)
    (root / "data" / "nested" / "small.bin").write_bytes(bytes(range(256)) * 3)
    (root / "data" / "nested" / "deep" / "large.bin").write_bytes(os.urandom(LARGE))
    os.symlink("a.txt", root / "link-to-a")
    os.symlink("../a.txt", root / "data" / "link-up")
    os.symlink("data/nested", root / "dirlink")
    return root


class OpenCounter:
    """Counts every opening of one path through ``open`` or ``os.open``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: str | os.PathLike[str]) -> None:
        self.path = os.path.realpath(os.fspath(path))
        self.count = 0
        real_open = builtins.open
        real_os_open = os.open

        def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            self._see(file)
            return real_open(file, *args, **kwargs)

        def counting_os_open(file: Any, *args: Any, **kwargs: Any) -> int:
            self._see(file)
            return real_os_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", counting_open)
        monkeypatch.setattr(os, "open", counting_os_open)

    def _see(self, file: Any) -> None:
        if isinstance(file, (str, os.PathLike)) and os.path.realpath(os.fspath(file)) == self.path:
            self.count += 1


def deny_reading(monkeypatch: pytest.MonkeyPatch, path: str | os.PathLike[str]) -> None:
    """Make opening ``path`` raise PermissionError, as chmod 000 would for a non-root user."""
    target = os.path.realpath(os.fspath(path))
    real_open = builtins.open
    real_os_open = os.open

    def denied(file: Any) -> bool:
        return isinstance(file, (str, os.PathLike)) and os.path.realpath(os.fspath(file)) == target

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if denied(file):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    def guarded_os_open(file: Any, *args: Any, **kwargs: Any) -> int:
        if denied(file):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)


# -- child processes (spawned: they import this module, so keep it light) -----------------


def create_in_process(url: str, keys: list[str], i: int, barrier: Any, queue: Any) -> None:
    """Child process: open the store, wait for the others, create every key."""
    store = Store(url)
    barrier.wait()
    queue.put((i, [store.create_entry(k, f"process {i}".encode()) for k in keys]))


def move_ref_in_process(url: str, name: str, worker: int, moves: int, barrier: Any,
                        queue: Any) -> None:
    """Child process: open the store, wait for the others, move the ref ``moves`` times."""
    store = Store(url)
    barrier.wait()
    seqs = [Refs(store).set(name, f"worker-{worker}-move-{j}").seq for j in range(moves)]
    queue.put((worker, seqs))


def local_or_s3(
    request: pytest.FixtureRequest, tmp_path: Path, prefix: str
) -> tuple[str, dict[str, Any]]:
    """For a fixture parametrized ``["local", "s3"]``: a fresh store URL and its storage
    options, on local disk or under ``prefix`` in the suite's moto S3 bucket."""
    from conftest import BUCKET, s3_options

    if request.param == "local":
        return str(tmp_path / "store"), {}
    endpoint = request.getfixturevalue("s3_endpoint")
    return f"s3://{BUCKET}/{prefix}-{uuid.uuid4().hex}", s3_options(endpoint)
