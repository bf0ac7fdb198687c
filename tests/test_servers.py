"""The test infrastructure itself, proven on the real protocols."""

from __future__ import annotations

import os
import socket
import threading

import fsspec
import pytest
from helpers.servers import StoreSpec, fake_gcs_server, fs_root, make_fs, moto_server

RACERS = 12
ROUNDS = 5


def test_roundtrip_bytes(store_spec: StoreSpec) -> None:
    """Bytes written through the raw fsspec filesystem read back identical."""
    fs = make_fs(store_spec)
    root = fs_root(store_spec)
    path = f"{root}/sub/blob.bin"
    data = bytes(range(256)) * 5
    fs.makedirs(f"{root}/sub", exist_ok=True)
    fs.pipe_file(path, data)
    assert fs.cat_file(path) == data
    assert fs.size(path) == len(data)
    assert fs.ls(f"{root}/sub", detail=False) == [path]


def test_root_starts_empty(store_spec: StoreSpec) -> None:
    """Each test gets a root that holds nothing yet."""
    fs = make_fs(store_spec)
    root = fs_root(store_spec)
    assert not fs.exists(f"{root}/sub/blob.bin")
    assert not fs.exists(root) or fs.find(root) == []


def test_second_instance_sees_new_key(store_spec: StoreSpec) -> None:
    """A new filesystem object sees a key another instance just wrote."""
    root = fs_root(store_spec)
    first = make_fs(store_spec)
    second = make_fs(store_spec)
    if store_spec.kind in ("s3", "gcs"):
        assert first is not second
    first.makedirs(root, exist_ok=True)
    assert second.find(root) == []  # would populate a listings cache, if any
    first.pipe_file(f"{root}/key", b"v1")
    assert second.find(root) == [f"{root}/key"]
    assert second.exists(f"{root}/key")
    assert second.cat_file(f"{root}/key") == b"v1"
    third = make_fs(store_spec)
    assert third.cat_file(f"{root}/key") == b"v1"


@pytest.mark.parametrize("store_spec", ["s3", "gcs"], indirect=True)
def test_create_only_race_has_one_winner(store_spec: StoreSpec) -> None:
    """Of 12 threads racing pipe_file(mode="create") on one key, exactly one wins."""
    fs = make_fs(store_spec)
    root = fs_root(store_spec)
    for round_ in range(ROUNDS):
        path = f"{root}/race-{round_}"
        barrier = threading.Barrier(RACERS)
        outcomes: list[object] = [None] * RACERS

        def write(i: int, path: str = path, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                fs.pipe_file(path, f"writer-{i}".encode(), mode="create")
            except BaseException as exc:
                outcomes[i] = exc
            else:
                outcomes[i] = "won"

        threads = [threading.Thread(target=write, args=(i,)) for i in range(RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        winners = [i for i, o in enumerate(outcomes) if o == "won"]
        losers = [o for o in outcomes if o != "won"]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, FileExistsError) for o in losers), losers
        assert make_fs(store_spec).cat_file(path) == f"writer-{winners[0]}".encode()


def test_memory_roots_are_cleared() -> None:
    """The memory store holds no test root once its test is over."""
    mem = fsspec.filesystem("memory")
    leftovers = [k for k in [*mem.store, *mem.pseudo_dirs] if k.startswith("/mlledger-")]
    assert leftovers == []


def test_isolated_dirs(isolated_dirs) -> None:
    """XDG dirs point into this test's tmp dir; MLLEDGER_URL/DISABLE are unset."""
    for var, path in (
        ("XDG_DATA_HOME", isolated_dirs.data),
        ("XDG_CACHE_HOME", isolated_dirs.cache),
        ("XDG_CONFIG_HOME", isolated_dirs.config),
        ("XDG_STATE_HOME", isolated_dirs.state),
    ):
        assert os.environ[var] == str(path)
        assert path.is_dir()
    assert "MLLEDGER_URL" not in os.environ
    assert "MLLEDGER_DISABLE" not in os.environ


@pytest.mark.parametrize("factory", [moto_server, fake_gcs_server], ids=["moto", "fake-gcs"])
def test_server_stops_cleanly(factory) -> None:
    """A started server answers quickly; after stop() its process and port are gone."""
    server = factory()
    url = server.start()
    try:
        pid, port = server.pid, server.port
        assert server.running
        assert url == f"http://127.0.0.1:{port}"
        assert server.startup_seconds < 15
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as sock:
        # SO_REUSEADDR: closed connections may linger in TIME_WAIT; a listener may not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
