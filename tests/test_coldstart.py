"""The first ``Ledger()`` of a process stays cheap: what opening a local store imports.

Timing lives in ``benchmarks/bench_coldstart.py``; these tests guard the cause instead:
the modules a fresh process has loaded after ``import mlledger; Ledger(path)``, so a
change that brings a heavy import back to the open of a store fails here.  And the two
shortcuts that made it cheap keep their promise: the user folders are platformdirs'
own, and a first run reads the installed distributions only when it must.
"""

from __future__ import annotations

import json
from pathlib import Path

import platformdirs
import pytest
from helpers.runs import run_python

import mlledger
from mlledger import _settings

#: what the open of a local store must not import (each costs milliseconds of a 20 ms
#: budget, or brings more that do): attrs/cattrs and the records built with them, the
#: concurrent transfers of a restore, fsspec, progress bars, platformdirs with pathlib
#: and tempfile, SQLite (the stat cache opens on first use), OpenSSL's hashlib, typing
#: (names for type checkers only), and the parts of mlledger a run, a query or
#: maintenance needs
HEAVY = (
    "attr",
    "attrs",
    "cattrs",
    "asyncio",
    "concurrent",
    "fsspec",
    "tqdm",
    "click",
    "platformdirs",
    "pathlib",
    "tempfile",
    "shutil",
    "sqlite3",
    "hashlib",
    "inspect",
    "uuid",
    "socket",
    "typing",
    "subprocess",
    "email",
    "importlib.metadata",
    "mlledger.records",
    "mlledger.runs",
    "mlledger.capture",
    "mlledger.catalog",
    "mlledger.store.refs",
    "mlledger.store.tree",
    "mlledger.store.restore",
    "mlledger.store.transfers",
    "mlledger.store.verify",
    "mlledger.store.backends.remote",
)

_OPEN = """
import sys
before = set(sys.modules)  # what the interpreter's start-up (site, .pth files) loaded
import mlledger
ledger = mlledger.Ledger(sys.argv[1])
print(repr(sorted(set(sys.modules) - before)))
print(repr((ledger.store.algorithm, ledger.store.is_local)))
"""


def _heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_first_ledger_on_a_local_store_imports_nothing_heavy(tmp_path: Path) -> None:
    """A fresh process that opens an existing local store loads none of HEAVY."""
    mlledger.Ledger(tmp_path / "store")  # created here: creating may import more
    lines = run_python(_OPEN, str(tmp_path / "store")).splitlines()
    assert eval(lines[1]) == ("xxh128", True)
    modules = eval(lines[0])
    assert "mlledger.store.store" in modules
    assert _heavy(modules) == []


def test_first_ledger_with_a_sha256_store_and_a_waiting_spool(tmp_path: Path) -> None:
    """A sha256 store opens without hashlib too; a spool that waits is still pushed."""
    url = str(tmp_path / "store")
    mlledger.Ledger(url, algorithm="sha256")
    lines = run_python(_OPEN, url).splitlines()
    assert eval(lines[1]) == ("sha256", True)
    assert _heavy(eval(lines[0])) == []
    spool = Path(_settings.spool_dir(url))
    spool.mkdir(parents=True)
    assert _settings.spool_waiting(url)
    assert not _settings.spool_waiting(str(tmp_path / "other"))


def test_a_store_still_hands_out_what_it_no_longer_imports_at_open(tmp_path: Path) -> None:
    """The names opening a store skips are still there on first use, the same objects."""
    from mlledger import store as store_pkg
    from mlledger.store import stored, tree, verify
    from mlledger.store.store import Stored

    assert Stored is stored.Stored is store_pkg.Stored
    assert store_pkg.Tree is tree.Tree
    assert store_pkg.VerifyReport is verify.VerifyReport
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = store_pkg.Nope
    s = mlledger.Ledger(tmp_path / "store").store
    (tmp_path / "a.txt").write_bytes(b"a")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.txt").write_bytes(b"b")
    got = s.put(tmp_path / "a.txt")
    assert got == Stored(s.digest(b"a"), 1, "file")
    t = s.put(tmp_path / "d")
    assert (t.kind, t.files, s.kind(t.digest)) == ("tree", 1, "tree")
    assert s.restore(t.digest, tmp_path / "back").joinpath("b.txt").read_bytes() == b"b"
    assert s.verify().ok


# the user folders: platformdirs' answers, without importing platformdirs on Linux

_CASES = [
    {"XDG_DATA_HOME": None, "XDG_CACHE_HOME": None, "HOME": "/home/someone"},
    {"XDG_DATA_HOME": None, "XDG_CACHE_HOME": None, "HOME": "/home/someone/"},
    {"XDG_DATA_HOME": "", "XDG_CACHE_HOME": "", "HOME": "/h"},
    {"XDG_DATA_HOME": "/x/data", "XDG_CACHE_HOME": "/x/cache/", "HOME": "/h"},
    {"XDG_DATA_HOME": "/x//data", "XDG_CACHE_HOME": "/x/./cache", "HOME": "/h"},
    {"XDG_DATA_HOME": "relative/data", "XDG_CACHE_HOME": "  ", "HOME": "/h"},
    {"XDG_DATA_HOME": None, "XDG_CACHE_HOME": None, "HOME": "relative-home"},
    {"XDG_DATA_HOME": None, "XDG_CACHE_HOME": None, "HOME": None},
    {"XDG_DATA_HOME": "/", "XDG_CACHE_HOME": "//", "HOME": "/h"},
]


@pytest.mark.parametrize("env", _CASES, ids=[json.dumps(c) for c in _CASES])
def test_user_folders_are_platformdirs_own(
    env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """data_dir, cache_dir, the spool and the default store are where platformdirs says."""
    for var, value in env.items():
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    try:
        data = platformdirs.user_data_path("mlledger")
        cache = platformdirs.user_cache_path("mlledger")
    except RuntimeError:  # platformdirs finds no home: then neither do we
        with pytest.raises(RuntimeError):
            _settings.data_dir()
        return
    assert _settings.data_dir() == data
    assert _settings.cache_dir() == cache
    assert _settings.cache_folder() == str(cache)
    assert _settings.default_url() == str(data / "store")
    spool = Path(_settings.spool_dir("s3://b/x"))
    assert spool.parent == data / "spool"
    assert len(spool.name) == 16


def test_cache_dir_follows_a_changed_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each call reads the environment: a new HOME (no XDG variable) moves the cache."""
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/one")
    assert str(_settings.cache_dir()) == "/one/.cache/mlledger"
    monkeypatch.setenv("HOME", "/two")
    assert str(_settings.cache_dir()) == "/two/.cache/mlledger"


# a first run reads the installed distributions only for modules that need it

_FIRST_RUN = """
import sys
import mlledger
from mlledger.capture import code
ledger = mlledger.Ledger(sys.argv[1])
with ledger.run("first") as run:
    run.log(step=1, loss=0.5)
print(code._distribution_top_levels.cache_info().currsize, "cattrs" in sys.modules)
if len(sys.argv) > 2:
    sys.path.insert(0, sys.argv[2])
    import helper_mod_for_coldstart
    print(sorted(code.user_modules("xxh128")))
    print(code._distribution_top_levels.cache_info().currsize)
"""


def test_the_records_converter_is_made_on_first_use() -> None:
    """records.converter structures, unstructures and hands out the rest of cattrs'
    API from the one converter it makes on first use."""
    import datetime as dt

    import cattrs

    from mlledger.records import RefEntry, converter

    at = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.timezone.utc)
    entry = RefEntry("model/prod", 1, "xxh128:" + "0" * 32, at, "u", "h")
    assert entry.to_json()["at"] == "2026-12-06T08:00:00.000000Z"
    assert RefEntry.from_json(entry.to_json()) == entry
    assert isinstance(converter.get(), cattrs.Converter)
    assert converter.get() is converter.get()
    made = converter.get()
    assert converter.unstructure_attrs_asdict(entry) == made.unstructure_attrs_asdict(entry)


def test_first_run_reads_distributions_only_for_a_module_outside_them(tmp_path: Path) -> None:
    """With no module of the user's loaded, a run never lists the installed
    distributions; once one is, they are read and the module is recorded as the user's."""
    url = str(tmp_path / "store")
    mlledger.Ledger(url)
    assert run_python(_FIRST_RUN, url).split() == ["0", "False"]  # nor cattrs
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "helper_mod_for_coldstart.py").write_text("VALUE = 1\n")
    lines = run_python(_FIRST_RUN, url, str(lib)).splitlines()
    assert lines[0] == "0 False"
    assert eval(lines[1]) == ["helper_mod_for_coldstart"]
    assert lines[2] == "1"


# the command line: `mlledger log` loads what listing runs needs, not every command's

_LOG = """
import sys
before = set(sys.modules)
from mlledger.cli.main import cli
cli.main(["--store", sys.argv[1], "log"], prog_name="mlledger", standalone_mode=False)
print(repr(sorted(set(sys.modules) - before)))
"""

#: what `mlledger log` must not load: the alert sinks (email, http) of `watch`, the
#: transfers of a restore, fsspec for a local store, platformdirs
LOG_HEAVY = (
    "email",
    "http",
    "asyncio",
    "concurrent",
    "fsspec",
    "platformdirs",
    "mlledger.alerts.send",
    "mlledger.alerts.delivery",
    "mlledger.report",
    "mlledger.store.transfers",
)


def test_mlledger_log_loads_no_other_command_s_machinery(tmp_path: Path) -> None:
    """A first `mlledger log` in a fresh process lists the runs without loading what
    `watch`, `restore` or a remote store need."""
    ledger = mlledger.Ledger(tmp_path / "store")
    with ledger.run("listed"):
        pass
    out = run_python(_LOG, str(tmp_path / "store")).splitlines()
    assert any("listed" in line for line in out[:-1])
    modules = eval(out[-1])
    assert "mlledger.catalog" in modules
    assert (
        sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in LOG_HEAVY)) == []
    )
