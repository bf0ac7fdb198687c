"""``mlledger init``, ``restore``, ``verify``, ``gc``, ``sync`` and ``reindex``
(mlledger.cli.maintain)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import (
    MLLEDGER,
    Shared,
    build_shared,
    console,
    copy_store,
    invoke,
    one_error_line,
    runs_in,
)

from mlledger import Ledger
from mlledger.cli import state as cli_state


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """A store with prep -> train x2 (one a ref target), a failed run and a folder output."""
    yield from build_shared(tmp_path_factory)


@pytest.fixture
def store_copy(shared: Shared, tmp_path: Path) -> str:
    """A private copy of the shared store, for tests that change it."""
    return copy_store(shared, tmp_path)


# ------------------------------------------------------------------------------ init


def test_init_creates_then_reports_existing(tmp_path: Path) -> None:
    """init creates the store (JSON says created), a second init changes nothing."""
    url = str(tmp_path / "new-store")
    first = invoke("init", "--json", url=url)
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout) == {"url": url, "hash": "xxh128", "created": True, "policy": {}}
    second = invoke("init", url=url)
    assert second.exit_code == 0
    assert "already" in second.stdout
    assert (tmp_path / "new-store" / "mlledger.json").is_file()


def test_init_other_algorithm_conflicts(tmp_path: Path) -> None:
    """Asking an existing xxh128 store for sha256 is refused on one line, exit 2."""
    url = str(tmp_path / "s")
    invoke("init", url=url)
    result = invoke("init", "--hash", "sha256", url=url)
    assert result.exit_code == 2
    assert "sha256" in one_error_line(result.stderr)


def test_init_console(tmp_path: Path) -> None:
    """``mlledger init --hash sha256`` in a real process makes a sha256 store."""
    url = str(tmp_path / "sha-store")
    out = console("init", "--hash", "sha256", url=url)
    assert out.returncode == 0, out.stderr
    assert "created" in out.stdout
    assert "sha256" in out.stdout
    assert json.loads((tmp_path / "sha-store" / "mlledger.json").read_text())["hash"] == "sha256"


# --------------------------------------------------------------------------- restore


def test_restore_file_and_refuse_clobber(shared: Shared, tmp_path: Path) -> None:
    """restore writes the bytes; again without --force is refused (exit 2), with it replaces."""
    dest = tmp_path / "out" / "model.bin"
    result = invoke("restore", f"{shared.train1}/model.bin", str(dest), url=shared.url)
    assert result.exit_code == 0, result.stderr
    assert dest.read_bytes() == b"weights 0.1"
    assert "restored file" in result.stdout
    dest.write_bytes(b"changed")
    again = invoke("restore", f"{shared.train1}/model.bin", str(dest), url=shared.url)
    assert again.exit_code == 2
    assert "--force" in one_error_line(again.stderr)
    assert dest.read_bytes() == b"changed"
    forced = invoke("restore", "--force", "--json", shared.model1, str(dest), url=shared.url)
    assert forced.exit_code == 0, forced.stderr
    assert json.loads(forced.stdout) == {
        "target": shared.model1,
        "digest": shared.model1,
        "kind": "file",
        "size": 11,
        "path": str(dest),
    }
    assert dest.read_bytes() == b"weights 0.1"


def test_restore_to_stdout(shared: Shared) -> None:
    """DEST "-" writes a file's exact bytes to stdout and nothing else; a folder is refused."""
    out = console("restore", f"{shared.train1}/model.bin", "-", url=shared.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "weights 0.1"
    folder = invoke("restore", shared.bundle, "-", url=shared.url)
    assert folder.exit_code == 2
    assert "folder" in one_error_line(folder.stderr)


def test_restore_tree_with_progress_bar(
    shared: Shared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder restores whole; with stderr a terminal a progress bar is drawn there."""
    monkeypatch.setattr(cli_state, "stderr_is_terminal", lambda: True)
    dest = tmp_path / "bundle"
    result = invoke("restore", shared.export, str(dest), url=shared.url)
    assert result.exit_code == 0, result.stderr
    assert (dest / "big.bin").read_bytes() == shared.bundle_bytes
    assert (dest / "sub" / "b.txt").read_text() == "beta\n"
    assert "restore:" in result.stderr
    assert "/3" in result.stderr


def test_no_progress_bar_off_a_terminal() -> None:
    """Off a terminal there is no progress callback at all."""
    assert cli_state.progress("restore", "B") is None


def test_restore_console(shared: Shared, tmp_path: Path) -> None:
    """``mlledger restore @REF DEST`` in a real process; stderr stays quiet off a terminal."""
    dest = tmp_path / "prod.bin"
    out = console("restore", "@model/prod", str(dest), url=shared.url)
    assert out.returncode == 0, out.stderr
    assert dest.read_bytes() == b"weights 0.2"
    assert out.stderr == ""
    again = console("restore", "@model/prod", str(dest), url=shared.url)
    assert again.returncode == 2
    one_error_line(again.stderr)


# ---------------------------------------------------------------------------- verify


def _corrupt(url: str, digest: str) -> None:
    path = Path(url) / Ledger(url).store.key(digest)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def test_verify_clean(shared: Shared) -> None:
    """A sound store verifies: exit 0, 'ok', JSON ok true."""
    result = invoke("verify", url=shared.url)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert ": ok" in result.stdout
    data = json.loads(invoke("verify", "--json", url=shared.url).stdout)
    assert data["ok"] is True
    assert data["checked"] > 5
    assert set(data) == {
        "ok",
        "checked",
        "corrupt",
        "missing",
        "dangling",
        "problems",
        "trail",
        "unchained",
        "damaged",
    }
    assert (data["trail"], data["unchained"], data["damaged"]) == ([], 0, [])


def test_verify_finds_corruption(store_copy: str, shared: Shared) -> None:
    """A flipped byte: exit 1, the object listed as corrupt (text and JSON)."""
    _corrupt(store_copy, shared.model1)
    result = invoke("verify", url=store_copy)
    assert result.exit_code == 1
    assert f"corrupt   {shared.model1}" in result.stdout
    data = json.loads(invoke("verify", "--json", url=store_copy).stdout)
    assert data["ok"] is False
    assert data["corrupt"] == [shared.model1]


def test_restore_of_corrupt_object_fails_check(
    store_copy: str, shared: Shared, tmp_path: Path
) -> None:
    """Restoring a corrupt object writes nothing and exits 1 (a failed check), one line."""
    _corrupt(store_copy, shared.model1)
    dest = tmp_path / "m.bin"
    result = invoke("restore", shared.model1, str(dest), url=store_copy)
    assert result.exit_code == 1
    assert "corrupt" in one_error_line(result.stderr)
    assert not dest.exists()
    to_stdout = invoke("restore", shared.model1, "-", url=store_copy)
    assert to_stdout.exit_code == 1
    assert "corrupt" in one_error_line(to_stdout.stderr)
    assert to_stdout.stdout_bytes == b""  # not one unverified byte went out


def test_restore_to_stdout_of_a_large_corrupt_object_writes_nothing(tmp_path: Path) -> None:
    """``restore TARGET -`` of a damaged 3 MiB object emits no byte at all, and exits 1."""
    url = str(tmp_path / "store")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    digest = Ledger(url).store.put(big).digest
    path = Path(url) / Ledger(url).store.key(digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # damage at the very end: the first 3 MiB still read fine
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    out = subprocess.run(
        [MLLEDGER or "mlledger", "--store", url, "restore", digest, "-"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert out.stdout == b""
    assert b"corrupt" in out.stderr


def test_verify_console(store_copy: str, shared: Shared) -> None:
    """``mlledger verify`` in a real process: 0 when sound, 1 after corruption."""
    assert console("verify", url=store_copy).returncode == 0
    _corrupt(store_copy, shared.data)
    out = console("verify", "--json", url=store_copy)
    assert out.returncode == 1
    assert json.loads(out.stdout)["corrupt"] == [shared.data]


# -------------------------------------------------------------------------------- gc


def test_gc_dry_run_by_default(store_copy: str, shared: Shared) -> None:
    """gc only reports unless --delete: nothing disappears."""
    result = invoke("gc", "--keep-days", "0", "--grace", "0", "-v", url=store_copy)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("would delete 2 runs")
    assert f"run     {shared.failed}" in result.stdout
    assert "--delete" in result.stderr
    assert len(runs_in(store_copy)) == 5


def test_gc_delete(store_copy: str, shared: Shared) -> None:
    """gc --delete removes what no ref or kept run needs; the ref's lineage stays."""
    result = invoke("gc", "--delete", "--keep-days", "0", "--grace", "0", "--json", url=store_copy)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is False
    assert set(report["runs"]) == {shared.failed, shared.export}
    assert shared.bundle in report["objects"]
    left = {r["id"] for r in runs_in(store_copy)}
    assert left == {shared.prep, shared.train1, shared.train2}
    assert invoke("verify", url=store_copy).exit_code == 0


def test_gc_console(store_copy: str) -> None:
    """``mlledger gc --json`` in a real process: a dry run by default."""
    out = console("gc", "--json", url=store_copy)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["dry_run"] is True
    assert report["runs"] == []


# ------------------------------------------------------------------- sync, reindex


def test_sync_and_reindex(shared: Shared) -> None:
    """sync reports changed runs; reindex rebuilds the catalog and counts runs."""
    synced = json.loads(invoke("sync", "--json", url=shared.url).stdout)
    assert synced == {"changed": 5}
    assert json.loads(invoke("reindex", "--json", url=shared.url).stdout) == {"runs": 5}
    assert invoke("reindex", url=shared.url).stdout.strip() == "catalog rebuilt: 5 runs"


def test_sync_and_reindex_console(shared: Shared) -> None:
    """``mlledger sync`` and ``mlledger reindex`` in real processes."""
    out = console("sync", url=shared.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("catalog synced")
    out = console("reindex", "--json", url=shared.url)
    assert json.loads(out.stdout) == {"runs": 5}
