"""Helpers shared by the run and capture test modules (not a test module itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers.servers import StoreSpec
from mlledger import Ledger
from mlledger.ids import day_path

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent


def open_ledger(spec: StoreSpec, **kwargs: Any) -> Ledger:
    """A Ledger on ``spec`` (its URL and storage options)."""
    return Ledger(spec.url, **spec.storage_options, **kwargs)


def reopen(ledger: Ledger) -> Ledger:
    """A fresh Ledger on the same store: what it reads comes from the store, not memory."""
    return Ledger(ledger.url, **ledger.store.storage_options)


def run_keys(ledger: Ledger, run_id: str) -> list[str]:
    """The names of the entries a run has in the store (start, metric chunks, end…).

    A short run has no folder, only its one entry, listed here as ``<id>.json``.
    """
    names = ledger.store.backend.list_dir(day_path(run_id))
    day = day_path(run_id).rsplit("/", 1)[0]
    if f"{run_id}.json" in ledger.store.backend.list_dir(day):
        names.append(f"{run_id}.json")
    return sorted(names)


def write_git_repo(path: Path, *, remote: str | None = None) -> str:
    """A git repository at ``path`` with one commit of ``tracked.txt``; returns the commit."""
    path.mkdir(parents=True, exist_ok=True)

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=path, check=True, capture_output=True, text=True,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(path.parent)},
        )
        return out.stdout.strip()

    git("init", "-q", "-b", "main")
    git("config", "user.email", "test@example.com")
    git("config", "user.name", "Test")
    (path / "tracked.txt").write_text("one\n")
    git("add", "tracked.txt")
    git("commit", "-q", "-m", "first")
    if remote is not None:
        git("remote", "add", "origin", remote)
    return git("rev-parse", "HEAD")


def python_env() -> dict[str, str]:
    """The environment for a child Python: this one, with the repo importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_DIR), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    return env


def run_python(code: str, *args: str, **env: str) -> str:
    """Run ``code`` in a fresh Python; return its stdout (fails the test on a non-zero exit)."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
        env={**python_env(), **env}, check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def import_fresh(
    folder: Path, name: str, source: str, monkeypatch: Any
) -> tuple[Any, Path]:
    """Write ``folder/name.py`` with ``source``, put ``folder`` first on sys.path (undone by
    ``monkeypatch``) and import it afresh: ``(module, its file)``."""
    import importlib

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    # noted as absent (or as what it was), so the undo removes the module imported here
    monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module(name)
    return module, path


def entry_run_id(key: str) -> str:
    """The run id a store key under runs/ belongs to (a run's folder, or a short run's one file)."""
    from mlledger.ids import run_id_of_entry

    parts = key.split("/")
    return run_id_of_entry(parts[-1]) or parts[-2]
