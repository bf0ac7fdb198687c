"""Store benchmarks on S3 (moto's server): restoring a large file and a tree of many
files, against raw s3fs ``fs.get`` of the same bytes, directly and with 20 ms of round
trip added by a TCP proxy (``tests/helpers/proxy.py``, in its own process).

    python benchmarks/bench_store_remote.py [--quick]
    python benchmarks/run.py store_remote
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import REPO, Parts, Row, ab, moto_s3, rmtree, s3_missing, workdir

MB = 10**6
FULL = {"big": 200 * MB, "files": 1000, "file_size": 8192, "repeat": 7}
QUICK = {"big": 20 * MB, "files": 100, "file_size": 8192, "repeat": 5}
#: the round trip the latency rows add, seconds
RTT = 0.02


class State:
    """What a round's setup hands to the timed call."""

    store: Any = None
    fs: Any = None


@contextlib.contextmanager
def latency_proxy(url: str, rtt: float) -> Iterator[str]:
    """The test suite's TCP proxy in front of ``url``, in a child process (so relaying
    does not share the timed process's GIL), adding ``rtt`` seconds of round trip."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "helpers" / "proxy.py"), url,
         "--latency", str(rtt)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_tree(root: Path, files: int, size: int) -> None:
    for i in range(files):
        p = root / f"part-{i % 10}" / f"f{i:05d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))


def via(opts: dict[str, Any], endpoint: str) -> dict[str, Any]:
    out = dict(opts)
    out["client_kwargs"] = {"endpoint_url": endpoint}
    return out


def bench_s3_restore(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    missing = s3_missing()
    if missing:
        return [], [f"rows 1-2 skipped: {missing}"]
    import s3fs

    from mlledger.store import Store

    bucket = "mlledger-bench-remote"
    big = tmp / "big.bin"
    big.write_bytes(os.urandom(cfg["big"]))
    tree = tmp / "tree"
    make_tree(tree, cfg["files"], cfg["file_size"])
    rows: list[Row] = []
    with moto_s3(bucket) as (fs, opts):
        url = f"s3://{bucket}/ours"
        seed = Store(url, **opts)
        big_digest = seed.put(big).digest
        tree_digest = seed.put(tree).digest
        fs.put_file(str(big), f"{bucket}/raw/big.bin")
        fs.put(str(tree), f"{bucket}/raw/tree", recursive=True)
        endpoint = opts["client_kwargs"]["endpoint_url"]
        st = State()
        dest = tmp / "dest"

        def case(options: dict[str, Any], digest: str, raw: str, recursive: bool) -> Any:
            def fresh_store() -> None:
                rmtree(dest)
                st.store = Store(url, **options)  # opening reads the store's config

            def fresh_fs() -> None:
                rmtree(dest)
                st.fs = s3fs.S3FileSystem(**options)
                st.fs.exists(f"{bucket}/raw/mlledger.json")  # one request, as opening does

            def ours() -> None:
                st.store.restore(digest, dest)

            def theirs() -> None:
                if recursive:
                    st.fs.get(f"{bucket}/raw/{raw}/", str(dest), recursive=True)
                else:
                    st.fs.get(f"{bucket}/raw/{raw}", str(dest))

            res = ab(ours, theirs, cfg["repeat"], setup_a=fresh_store, setup_b=fresh_fs)
            rmtree(dest)
            return res

        mb = cfg["big"] // MB
        n = cfg["files"]
        kib = cfg["file_size"] // 1024
        for label, ctx in (
            ("", contextlib.nullcontext(endpoint)),
            (f", +{RTT * 1000:.0f} ms RTT", latency_proxy(endpoint, RTT)),
        ):
            with ctx as proxied:
                options = via(opts, proxied)
                target = 0.95 if not label else 0.9
                res = case(options, big_digest, "big.bin", recursive=False)
                rows += Row.from_ab(
                    f"1. S3 restore {mb} MB file{label}",
                    res,
                    "fs.get(key, path)",
                    max_ratio=1 / target,
                    target=f">= {target}x raw (<= {1 / target:.2f}x time)",
                    note=f"{cfg['big'] / res.a.median / MB:,.0f} MB/s ours, "
                    f"{cfg['big'] / res.b.median / MB:,.0f} MB/s raw",
                )
                res = case(options, tree_digest, "tree", recursive=True)
                rows += Row.from_ab(
                    f"2. S3 restore {n:,} x {kib} KiB tree{label}",
                    res,
                    "fs.get(prefix/, dir, recursive=True)",
                    max_ratio=1 / target,
                    target=f">= {target}x raw (<= {1 / target:.2f}x time)",
                    note=f"{n / res.a.median:,.0f} files/s ours, {n / res.b.median:,.0f} raw",
                )
    notes = [
        "rows 1-2: moto server on 127.0.0.1; a fresh Store (ours) or a fresh s3fs filesystem "
        "warmed by one request (raw) every round; destination on local disk, removed before "
        "each round; ours verifies every byte (xxh3-128) as it arrives, raw checks nothing",
        f"rows 1-2 with RTT: the suite's asyncio TCP proxy in a child process holds each "
        f"piece back {RTT * 500:.0f} ms each way, for both sides",
        f"ours: {os.environ.get('MLLEDGER_TRANSFERS') or 'default'} transfers in flight; "
        "raw: s3fs defaults (a large file in 50 MiB ranges, 10 at a time; fsspec's batch)",
    ]
    return rows, notes


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("store_remote", quick)
    with workdir("store-remote") as tmp:
        parts.run("s3-restore", lambda: bench_s3_restore(tmp, cfg))
    return parts.report()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(quick="--quick" in sys.argv[1:])
