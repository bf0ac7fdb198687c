"""Uploads to S3 (moto): a killed writer's multipart upload is cleaned up by gc, and a
file that changes while uploaded never costs another writer its object."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import pytest
from conftest import BUCKET, s3_options
from fsspec.callbacks import Callback

from mlledger import Ledger
from mlledger.errors import ConflictError
from mlledger.store import Store

_KILLED_UPLOAD = """
import json, os, sys
import fsspec
fs = fsspec.filesystem("s3", **json.loads(sys.argv[1]))
f = fs.open(sys.argv[2], "wb", block_size=5 * 2**20)
f.write(os.urandom(6 * 2**20))
f.flush()  # the first part goes up: a multipart upload now exists
print("uploading", flush=True)
sys.stdin.read()  # until killed
"""


def _killed_upload(endpoint: str, path: str) -> None:
    """A real process starts a multipart upload of ``path`` and is SIGKILLed mid-way."""
    with subprocess.Popen([sys.executable, "-c", _KILLED_UPLOAD,
                           json.dumps(s3_options(endpoint)), path],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as p:
        try:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "uploading"
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)


def _pending(endpoint: str, prefix: str) -> list[str]:
    """Keys with an unfinished multipart upload under ``prefix`` of the test bucket."""
    fs = fsspec.filesystem("s3", **s3_options(endpoint))
    got = fs.call_s3("list_multipart_uploads", Bucket=BUCKET, Prefix=prefix)
    return [u["Key"] for u in got.get("Uploads", [])]


@pytest.mark.slow
def test_gc_aborts_abandoned_multipart_uploads(s3_endpoint: str) -> None:
    """gc aborts a killed writer's multipart upload once older than the grace period, and only
    its own store's."""
    name, other = uuid.uuid4().hex, uuid.uuid4().hex
    ledger = Ledger(f"s3://{BUCKET}/{name}", **s3_options(s3_endpoint))
    key = f"{name}/objects/xxh128/ab/{'c' * 30}"
    _killed_upload(s3_endpoint, f"{BUCKET}/{key}")
    _killed_upload(s3_endpoint, f"{BUCKET}/{other}/objects/xxh128/ab/{'c' * 30}")
    assert _pending(s3_endpoint, f"{name}/") == [key]
    young = ledger.gc(dry_run=False)  # the default grace keeps an upload that may be live
    assert young.uploads == 0
    assert _pending(s3_endpoint, f"{name}/") == [key]
    dry = ledger.gc(dry_run=True, grace_seconds=0)
    assert dry.uploads == 1
    assert _pending(s3_endpoint, f"{name}/") == [key]
    report = ledger.gc(dry_run=False, grace_seconds=0)
    assert report.uploads == 1
    assert report.to_json()["uploads"] == 1
    assert _pending(s3_endpoint, f"{name}/") == []
    assert len(_pending(s3_endpoint, f"{other}/")) == 1  # another store's upload is theirs


class _Meanwhile(Callback):  # type: ignore[misc]
    """A progress callback that, as the upload starts, lets another process store the same
    bytes and then changes the local file."""

    def __init__(self, url: str, endpoint: str, same: Path, local: Path) -> None:
        super().__init__()
        self.args = (url, endpoint, same, local)

    def set_size(self, size: int) -> None:
        url, endpoint, same, local = self.args
        code = ("import json, sys; from mlledger.store import Store; "
                "print(Store(sys.argv[1], **json.loads(sys.argv[2])).put(sys.argv[3]).digest)")
        subprocess.run([sys.executable, "-c", code, url, json.dumps(s3_options(endpoint)),
                        str(same)], check=True, timeout=120)
        with open(local, "r+b") as f:  # the training job writes on
            f.seek(0)
            f.write(b"changed!")
        super().set_size(size)


@pytest.mark.slow
def test_a_changed_file_never_costs_another_writer_its_object(
    s3_endpoint: str, tmp_path: Path
) -> None:
    """A file that changes while stored raises ConflictError and leaves the object another
    writer stored with the same digest in place, intact."""
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    data = os.urandom(600 * 1024)  # above the small-file limit: the streamed path
    local, same = tmp_path / "model.bin", tmp_path / "copy.bin"
    local.write_bytes(data)
    same.write_bytes(data)
    store = Store(url, **s3_options(s3_endpoint))
    with pytest.raises(ConflictError):
        store.put(local, callback=_Meanwhile(url, s3_endpoint, same, local))
    digest = store.digest(data)
    assert store.has(digest), "the other writer's object was deleted"
    assert store.get(digest) == data
    assert store.verify().ok
