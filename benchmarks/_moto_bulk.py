"""A moto S3 server holding a generated ledger from its first request (benchmarks only).

Putting a million small objects into moto one request at a time takes hours:
moto handles ~200 puts/s here, whatever the client's concurrency.  This
process builds the objects in moto's own in-memory backend with the call its
request handler makes for a put (``put_object``), then serves them over HTTP
like ``python -m moto.server``; every read of the benchmark goes through S3's
HTTP API as before.  What is generated (``_synth``): each run's one sealed
entry, and for each day the catalog segment a sealing sync would write
(``store.segments.build`` + ``encode`` over the same entries), or none.

Run by ``bulk_moto_s3`` (``_common`` style context manager below): argv is
the port, the bucket and a JSON list of ``{"prefix", "n", "start_ms",
"end_ms", "seed", "segments"}``; it prints one line ``ready <objects>
<seconds> <rss MiB>`` once it serves, and serves until killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from _common import REPO
from _synth import entries

from mlledger.store import segments

ACCOUNT = "123456789012"  # moto's default account (the one the test credentials map to)
ALGORITHM = "xxh128"


def _load(bucket: str, jobs: list[dict[str, Any]]) -> int:
    from moto.s3.models import s3_backends

    backend = s3_backends[ACCOUNT]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    count = 0
    for job in jobs:
        prefix, day, got = job["prefix"], "", {}
        for key, raw in entries(job["n"], job["start_ms"], job["end_ms"], job["seed"]):
            backend.put_object(bucket, f"{prefix}/{key}", raw)
            count += 1
            if job["segments"]:
                this = "/".join(key.split("/")[1:4])
                if this != day:
                    count += _segment(backend, bucket, prefix, day, got)
                    day, got = this, {}
                got[key] = raw
        if job["segments"]:
            count += _segment(backend, bucket, prefix, day, got)
    return count


def _segment(backend: Any, bucket: str, prefix: str, day: str, got: dict[str, bytes]) -> int:
    if not got:
        return 0
    seg = segments.build(day, got, ALGORITHM)
    key, data = segments.encode(seg, ALGORITHM)
    backend.put_object(bucket, f"{prefix}/{key}", data)
    return 1


def main() -> None:
    port, bucket, spec = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    from moto.server import ThreadedMotoServer

    t0 = time.perf_counter()
    count = _load(bucket, spec)
    took = time.perf_counter() - t0
    server = ThreadedMotoServer("127.0.0.1", port, verbose=False)
    server.start()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ready {count} {took:.1f} {rss:.0f}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


@contextlib.contextmanager
def bulk_moto_s3(
    bucket: str, jobs: list[dict[str, Any]]
) -> Iterator[tuple[Any, dict[str, Any], str]]:
    """A moto server on 127.0.0.1 holding ``jobs``' generated objects in ``bucket``:
    ``(s3fs filesystem, storage options, the loader's ready line)``."""
    import s3fs

    sys.path.insert(0, str(REPO / "tests"))
    from helpers.servers import free_port

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'benchmarks'}"}
    proc = subprocess.Popen(
        [sys.executable, __file__, str(port), bucket, json.dumps(jobs)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("ready"):
            raise RuntimeError(f"the bulk moto server did not start (exit {proc.wait()})")
        opts: dict[str, Any] = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
            "skip_instance_cache": True,
            "use_listings_cache": False,
        }
        yield s3fs.S3FileSystem(**opts), opts, line
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_rss_mib(line: str) -> float:
    """The loader's peak memory (MiB) from its ready line."""
    return float(line.split()[3])


if __name__ == "__main__":
    main()
