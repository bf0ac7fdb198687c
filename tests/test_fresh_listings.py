"""Listings that decide something are fresh on S3 (moto), whatever fsspec caches.

s3fs caches directory listings per filesystem object unless told not to; these
tests open stores the way a user does (default storage options, listing cache
on) and let other processes write between two listings.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from conftest import BUCKET

from mlledger import Ledger
from mlledger.store import Refs, Store


def user_options(endpoint: str, **more: Any) -> dict[str, Any]:
    """s3fs options as a user passes them: no use_listings_cache=False, instances cached."""
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint},
            **more}


#: the listing cache as mlledger sets it by default, and turned on by the user
CACHES = [pytest.param({}, id="default"), pytest.param({"use_listings_cache": True}, id="cached")]


_CHILD = """
import json, sys, time
from mlledger.store import Refs, Store
url, opts, name, worker, moves, start_at = sys.argv[1:7]
store = Store(url, **json.loads(opts))
while time.time() < float(start_at):
    time.sleep(0.005)
t0 = time.monotonic()
seqs = []
try:
    for j in range(int(moves)):
        seqs.append(Refs(store).set(name, f"worker-{worker}-move-{j}").seq)
    print(json.dumps({"ok": True, "seqs": seqs, "s": time.monotonic() - t0}))
except Exception as e:
    print(json.dumps({"ok": False, "error": repr(e), "s": time.monotonic() - t0}))
"""


def _movers(url: str, endpoint: str, name: str, workers: int, moves: int,
            timeout: float) -> list[dict[str, Any]]:
    """Start ``workers`` processes that move ref ``name`` ``moves`` times each, at once."""
    start_at = str(time.time() + 3.0)  # after every interpreter has started
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, url, json.dumps(user_options(endpoint)), name,
             str(w), str(moves), start_at],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(workers)
    ]
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            out.append({"ok": False, "error": "still retrying at the deadline"})
            continue
        out.append(json.loads(stdout) if stdout.strip() else {"ok": False, "error": stderr})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("cache", CACHES)
def test_ref_set_after_another_process_moved_it(s3_endpoint: str, cache: dict[str, Any]) -> None:
    """A process that read a ref, then sets it after another process moved it, succeeds at once."""
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    store = Store(url, **user_options(s3_endpoint, **cache))
    Refs(store).set("model/prod", "first")
    assert Refs(store).get("model/prod").seq == 1  # this process has now listed the ref
    other = _movers(url, s3_endpoint, "model/prod", workers=1, moves=2, timeout=60)
    assert other[0]["ok"], other
    t0 = time.monotonic()
    entry = Refs(store).set("model/prod", "mine")
    assert time.monotonic() - t0 < 10
    assert entry.seq == 4
    assert [e.seq for e in Refs(store).history("model/prod")] == [1, 2, 3, 4]


@pytest.mark.slow
def test_four_concurrent_movers_on_s3_all_succeed(s3_endpoint: str) -> None:
    """Four processes moving one ref on S3 at once all succeed; every move is kept, no gap."""
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    moves = 5
    t0 = time.monotonic()
    got = _movers(url, s3_endpoint, "model/prod", workers=4, moves=moves, timeout=120)
    elapsed = time.monotonic() - t0
    assert all(r["ok"] for r in got), got
    history = Refs(Store(url, **user_options(s3_endpoint))).history("model/prod")
    assert [e.seq for e in history] == list(range(1, 4 * moves + 1))
    assert sorted(s for r in got for s in r["seqs"]) == list(range(1, 4 * moves + 1))
    assert Refs(Store(url, **user_options(s3_endpoint))).check("model/prod") == ([], 0)
    print(f"4 movers x {moves} moves on S3: {elapsed:.1f} s")


_RUN_CHILD = """
import sys
from mlledger import Ledger
import json
ledger = Ledger(sys.argv[1], capture_files=False, **json.loads(sys.argv[2]))
with ledger.run("from-elsewhere"):
    pass
"""


@pytest.mark.slow
@pytest.mark.parametrize("cache", CACHES)
def test_long_lived_ledger_sees_other_processes_runs(s3_endpoint: str,
                                                     cache: dict[str, Any]) -> None:
    """A Ledger kept open sees, through sync(), the runs other processes record meanwhile."""
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    ledger = Ledger(url, capture_files=False, **user_options(s3_endpoint, **cache))
    with ledger.run("here"):
        pass
    assert [r.name for r in ledger.runs()] == ["here"]
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _RUN_CHILD, url,
                        json.dumps(user_options(s3_endpoint))], check=True, timeout=120)
    ledger.sync()
    assert sorted(r.name for r in ledger.runs()) == ["from-elsewhere", "from-elsewhere", "here"]
