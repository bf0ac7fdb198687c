"""Shared fixtures: real S3 / GCS servers, isolated user dirs, store specs."""

from __future__ import annotations

import os

# Before anything imports s3fs/botocore or gcsfs (gcsfs reads this at import:
# left on, every operation waits ~60 s on a gRPC lookup the emulator cannot
# answer).
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import pytest
from helpers import servers
from helpers.servers import StoreSpec
from hypothesis import HealthCheck, settings

pytest_plugins = ["helpers.notebooks"]  # the kernel_env fixture for notebook tests

if TYPE_CHECKING:
    from mlledger import Ledger

# No per-example deadline: on a loaded 2-core CI machine one slow example is
# not a bug, and hypothesis would report it as a failure (or as "flaky").
settings.register_profile(
    "mlledger", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("mlledger")

BUCKET = "mlledger-test"
STORE_KINDS = ["memory", "local", "s3", "gcs"]

__all__ = ["BUCKET", "STORE_KINDS", "IsolatedDirs", "StoreSpec", "gcs_options", "s3_options"]


@dataclass
class IsolatedDirs:
    """The per-test user directories ``isolated_dirs`` points the XDG vars at."""

    data: Path
    cache: Path
    config: Path
    state: Path


def s3_options(endpoint: str) -> dict[str, Any]:
    """s3fs options for the moto server at ``endpoint``."""
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint},
        "skip_instance_cache": True,
        "use_listings_cache": False,
    }


def gcs_options(endpoint: str) -> dict[str, Any]:
    """gcsfs options for the fake-gcs-server at ``endpoint``."""
    return {
        "endpoint_url": endpoint,
        "token": "anon",
        "project": "test",
        "skip_instance_cache": True,
        "use_listings_cache": False,
    }


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server for the session, with bucket ``mlledger-test``."""
    with servers.moto_server() as server:
        assert server.url is not None
        fs = fsspec.filesystem("s3", **s3_options(server.url))
        fs.mkdir(BUCKET)
        yield server.url


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """fake-gcs-server for the session, with bucket ``mlledger-test``."""
    import gcsfs

    if gcsfs.GCSFileSystem.__name__ != "GCSFileSystem":
        pytest.fail(
            "gcsfs was imported before tests/conftest.py set "
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false; every call would wait ~60 s"
        )
    with servers.fake_gcs_server() as server:
        assert server.url is not None
        fs = fsspec.filesystem("gs", **gcs_options(server.url))
        fs.mkdir(BUCKET)
        yield server.url


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> IsolatedDirs:
    """Fresh XDG data/cache/config/state dirs per test; no MLLEDGER_URL/DISABLE."""
    base = tmp_path / "xdg"
    dirs = IsolatedDirs(
        data=base / "data", cache=base / "cache", config=base / "config", state=base / "state"
    )
    for var, path in (
        ("XDG_DATA_HOME", dirs.data),
        ("XDG_CACHE_HOME", dirs.cache),
        ("XDG_CONFIG_HOME", dirs.config),
        ("XDG_STATE_HOME", dirs.state),
    ):
        path.mkdir(parents=True)
        monkeypatch.setenv(var, str(path))
    monkeypatch.delenv("MLLEDGER_URL", raising=False)
    monkeypatch.delenv("MLLEDGER_DISABLE", raising=False)
    return dirs


def _clear_memory_root(root: str) -> None:
    """Remove everything at or under ``root`` from fsspec's global memory store."""
    from mlledger import late

    late.flush_all()  # markers still due would land after the root is gone
    mem = fsspec.filesystem("memory")
    prefix = root.rstrip("/") + "/"
    for key in [k for k in mem.store if k == root or k.startswith(prefix)]:
        mem.store.pop(key, None)
    mem.pseudo_dirs[:] = [d for d in mem.pseudo_dirs if not (d == root or d.startswith(prefix))]
    mem.invalidate_cache()


@pytest.fixture(params=STORE_KINDS, ids=STORE_KINDS)
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSpec]:
    """A fresh, empty store root per test on memory, local disk, S3 (moto) or GCS (fake)."""
    kind: str = request.param
    name = uuid.uuid4().hex
    if kind == "memory":
        spec = StoreSpec(kind, f"memory://mlledger-{name}", {})
        root = servers.fs_root(spec)
        try:
            yield spec
        finally:
            _clear_memory_root(root)
    elif kind == "local":
        yield StoreSpec(kind, str(tmp_path / "store"), {})
    elif kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        yield StoreSpec(kind, f"s3://{BUCKET}/{name}", s3_options(endpoint))
    elif kind == "gcs":
        endpoint = request.getfixturevalue("gcs_endpoint")
        yield StoreSpec(kind, f"gs://{BUCKET}/{name}", gcs_options(endpoint))
    else:  # pragma: no cover - params are fixed above
        raise AssertionError(kind)


# -- shared by the run and capture test modules ---------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (the current one for the test)."""
    d = tmp_path / "work"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


@pytest.fixture
def ledger(tmp_path: Path, workdir: Path) -> Ledger:
    """A Ledger on a fresh local store outside the working directory.

    Modules with a ledger of their own (catalog, gc, targets...) override this one.
    """
    from mlledger import Ledger

    return Ledger(str(tmp_path / "store"))


@pytest.fixture(params=["memory", "local"], ids=["memory", "local"])
def fast_store_ledger(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Ledger]:
    """An empty ledger on a memory or local store, working in a temp folder (the ledger of
    the catalog, diff, gc, lineage and targets modules: the catalog is the same SQLite on
    every store, so the slow ones add nothing there)."""
    from helpers.ledgers import fast_ledger

    monkeypatch.chdir(tmp_path)
    with fast_ledger(request.param, tmp_path) as got:
        yield got


@pytest.fixture
def fresh_git_cache() -> Iterator[None]:
    """No git state cached from another test's repository."""
    from mlledger.capture import code as code_mod

    code_mod.clear_git_cache()
    yield
    code_mod.clear_git_cache()
