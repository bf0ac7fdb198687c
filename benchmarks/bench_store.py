"""Store benchmarks: big files, many small files, memory, S3, hashing.

Each figure is timed against a plain baseline in the same rounds (A B A B),
on a local store in a fresh temp folder, page cache warm.  Run through
``python benchmarks/run.py`` or alone: ``python benchmarks/bench_store.py [--quick]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import REPO, Parts, Row, ab, fs_type, moto_s3, rmtree, s3_missing, workdir

MiB = 1 << 20
GiB = 1 << 30

#: the stat cache distrusts entries recorded this soon after a change (statcache.RACY_NS)
RACY_S = 2.0

FULL = {"big": GiB, "files": 10_000, "file_size": 1024, "s3_objects": 1000, "repeat": 9}
#: paired rounds of row 4 at full size
ROW4_ROUNDS = 15
QUICK = {"big": 64 * MiB, "files": 1000, "file_size": 1024, "s3_objects": 100, "repeat": 5}

#: peak memory allowed over the RSS after ``import mlledger.store`` ("a few MiB")
MEMORY_TARGET_MIB = 16


def _pieces(size: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    left = size
    while left:
        n = min(left, 64 * MiB)
        yield rng.randbytes(n)
        left -= n


def random_bytes(size: int, seed: int = 0) -> bytes:
    """``size`` incompressible bytes (randbytes alone overflows past 256 MiB)."""
    return b"".join(_pieces(size, seed))


def write_random(path: Path, size: int, seed: int = 0) -> None:
    """A file of ``size`` incompressible bytes, written in 64 MiB pieces."""
    with open(path, "wb") as f:
        for piece in _pieces(size, seed):
            f.write(piece)


def make_tree(root: Path, files: int, size: int) -> None:
    """``files`` distinct random files of ``size`` bytes, 100 to a folder."""
    rng = random.Random(1)
    per = 100
    for i in range(files):
        d = root / f"d{i // per:03d}"
        if i % per == 0:
            d.mkdir(parents=True)
        (d / f"f{i % per:03d}.bin").write_bytes(rng.randbytes(size))


def wait_until_aged(path: Path, seconds: float) -> None:
    """Sleep until ``path`` was last changed more than ``seconds`` ago."""
    st = os.stat(path)
    changed = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
    left = changed + seconds - time.time()
    if left > 0:
        time.sleep(left)


def cp(*args: str | os.PathLike[str]) -> None:
    subprocess.run(["cp", *map(os.fspath, args)], check=True)


def size_label(n: int) -> str:
    return f"{n // GiB} GiB" if n >= GiB and n % GiB == 0 else f"{n // MiB} MiB"


class State:
    """What setup functions hand to the timed functions."""

    store: Any = None
    prefix: str = ""
    fs: Any = None
    before: int = 0


# ---------------------------------------------------------------------------
# local store


def bench_local(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    from mlledger.store import Store

    big, repeat = cfg["big"], cfg["repeat"]
    rows: list[Row] = []
    notes: list[str] = []
    src = tmp / "big.bin"
    write_random(src, big)
    st = State()

    # rows 1, 3, 3b with the chunks extra (large files as chunks) and without it (whole)
    chunking = _chunker_installed()
    if not chunking:
        notes.append("the chunks extra (pyfastcdc) is not installed: rows 1c, 3c, 3bc skipped")
    kept: dict[str, tuple[Any, Any]] = {}
    for mode in ("chunks", "whole") if chunking else ("whole",):
        with _chunking(mode == "chunks"):
            more, kept[mode] = bench_big(tmp, src, mode, repeat)
        rows += more
        if mode == "whole":
            rows += bench_unchanged(src, kept[mode][0], repeat, notes)
    stored = kept["chunks" if chunking else "whole"][1]

    # 4. many small files ---------------------------------------------------
    nfiles, fsize = cfg["files"], cfg["file_size"]
    tree = tmp / "tree"
    make_tree(tree, nfiles, fsize)
    # Every round writes to a new folder and all are removed only after the row:
    # ext4 skips inodes freed in the last minute when it allocates new ones, so
    # deleting 10,000 files right before a round slows that round 3-4x.
    outs = tmp / "tree-outs"
    outs.mkdir()
    fresh = iter(range(1_000_000))

    def fresh_tree_store() -> None:
        os.sync()
        st.store = Store(outs / f"store-{next(fresh)}")

    def fresh_tree_dst() -> None:
        os.sync()
        st.prefix = str(outs / f"cp-{next(fresh)}")

    from mlledger.store.smallfiles import default_workers

    threads: list[int] = []

    def put_tree() -> None:
        threads.append(default_workers())  # what put_tree picks now (the load may change)
        st.store.put_tree(tree)

    # a round's ratio swings 0.8x-2.7x with what other processes do to the filesystem
    # (see benchmarks/README.md): more rounds than the other rows for a steady median
    res = ab(
        put_tree,
        lambda: subprocess.run(["cp", "-r", tree, st.prefix], check=True),
        max(repeat, ROW4_ROUNDS) if repeat >= FULL["repeat"] else repeat,
        setup_a=fresh_tree_store,
        setup_b=fresh_tree_dst,
    )
    rows += Row.from_ab(
        f"4. put_tree {nfiles:,} files of {fsize} B, fresh store", res, "cp -r", max_ratio=1.5
    )
    notes.append(
        f"row 4: {len(res.ratios)} rounds; put_tree's threads (its default): "
        f"{min(threads)}-{max(threads)} (load {os.getloadavg()[0]:.1f} at the end of the row)"
    )
    rmtree(outs)
    rmtree(tree)

    # 5. peak memory while storing / restoring ---------------------------------
    rows += bench_memory(
        tmp, src, stored.digest, keep_dir=tmp / f"store-keep-{'chunks' if chunking else 'whole'}",
        repeat=repeat,
    )

    for mode in kept:
        rmtree(tmp / f"store-keep-{mode}")
    rmtree(src)
    rmtree(tmp / "versioned.bin")
    notes += [
        f"local store on {fs_type(tmp)} under {tmp.parent}; page cache warm (sources read in "
        "the warm-up round and kept in RAM); dirty pages flushed with sync() before every "
        "timed run, untimed",
        "rows 1, 4: each round stores into a fresh empty store (Store() opened untimed); "
        "cp goes to a fresh destination on the same filesystem; row 4 deletes nothing "
        "until all its rounds are done (ext4 is slow to allocate inodes next to ones "
        "freed within the last minute)",
        "ratio = median over rounds of (ours / baseline in the same round); cpu ratio = "
        "the same for CPU time (user + system, cp's included)",
    ]
    return rows, notes


@contextlib.contextmanager
def _chunking(on: bool) -> Iterator[None]:
    """Store large files as chunks (``on``: the chunks extra as installed) or whole, as
    on a machine without the extra (its import blocked, as the tests do)."""
    if on:
        yield
        return
    saved = sys.modules.get("pyfastcdc")
    sys.modules["pyfastcdc"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["pyfastcdc"]
        else:
            sys.modules["pyfastcdc"] = saved


def _chunker_installed() -> bool:
    from mlledger.store.chunked import chunker

    return chunker() is not None


def bench_big(tmp: Path, src: Path, mode: str, repeat: int) -> tuple[list[Row], tuple[Any, Any]]:
    """Rows 1, 3b and 3 for one mode (``chunks``: the extra installed, or ``whole``); the
    store kept and what it holds of the file stored in versions."""
    from mlledger.store import Store

    label = size_label(os.path.getsize(src))
    tag = "c" if mode == "chunks" else ""
    how = "(chunks extra)" if mode == "chunks" else "(no chunks extra)"
    rows: list[Row] = []
    st = State()

    # 1. store a big file on a fresh local store vs cp --------------------
    store_dir, cp_dst = tmp / "store-fresh", tmp / "cp-dst.bin"

    def fresh_store() -> None:
        rmtree(store_dir)
        os.sync()
        st.store = Store(store_dir)

    def fresh_cp_dst() -> None:
        rmtree(cp_dst)
        os.sync()

    res = ab(
        lambda: st.store.put_file(src),
        lambda: cp(src, cp_dst),
        repeat,
        setup_a=fresh_store,
        setup_b=fresh_cp_dst,
    )
    rows += Row.from_ab(f"1{tag}. store {label} file, fresh store {how}", res, "cp", max_ratio=1.1)
    rmtree(store_dir)
    rmtree(cp_dst)

    # 3b. 1 MiB changed in the middle, stored again ----------------------------------
    keep = Store(tmp / f"store-keep-{mode}")
    ver = tmp / "versioned.bin"
    cp(src, ver)
    keep.put_file(ver)
    rows += bench_small_change(ver, keep, repeat, tag, how)
    stored = keep.put_file(ver)  # the last version: a chunk list with the extra
    assert (keep.chunks_of(stored.digest) is not None) == (mode == "chunks")

    # 3. restore a big artifact vs cp ----------------------------------------
    restored, cp_dst2 = tmp / "restored.bin", tmp / "cp-dst2.bin"

    def clear_restored() -> None:
        rmtree(restored)
        os.sync()

    def clear_cp2() -> None:
        rmtree(cp_dst2)
        os.sync()

    res = ab(
        lambda: keep.restore(stored.digest, restored),
        lambda: cp(ver, cp_dst2),
        repeat,
        setup_a=clear_restored,
        setup_b=clear_cp2,
    )
    kind = "a chunk list" if mode == "chunks" else "whole"
    rows += Row.from_ab(
        f"3{tag}. restore {label} stored as {kind} {how}", res, "cp (of the same bytes)",
        max_ratio=1.1,
    )
    rmtree(restored)
    rmtree(cp_dst2)
    if mode == "chunks":
        rows += bench_memory_chunked(tmp, ver, keep, repeat)
    return rows, (keep, stored)


def bench_memory_chunked(tmp: Path, ver: Path, keep: Any, repeat: int) -> list[Row]:
    """Row 5c: peak memory of storing a new version as a chunk list (in a child)."""
    label = size_label(os.path.getsize(ver))
    extra = []
    rng = random.Random(11)
    for _ in range(max(repeat, 5)):
        with open(ver, "r+b") as f:
            f.seek(os.path.getsize(ver) // 3)
            f.write(rng.randbytes(MiB))
        got = _child(["put", keep.backend.root, str(ver)])
        extra.append((got["peak"] - got["after_import"]) / MiB)
    extra.sort()
    mid = extra[len(extra) // 2]
    return [Row(f"5c. peak RSS store {label} as a chunk list, over RSS after import", mid,
                extra[0], extra[-1], unit="MiB", target=f"<= {MEMORY_TARGET_MIB} MiB",
                passed=mid <= MEMORY_TARGET_MIB)]


def bench_unchanged(src: Path, keep: Any, repeat: int, notes: list[str]) -> list[Row]:
    """Row 2: storing the unchanged big file again (the stat cache)."""
    label = size_label(os.path.getsize(src))
    wait_until_aged(src, RACY_S + 0.5)
    stored = keep.put_file(src)  # records the digest in the stat cache
    hit = keep.statcache.lookup(str(src), os.stat(src), keep.algorithm)
    res = ab(lambda: keep.put_file(src), lambda: os.stat(src), repeat)
    rows = Row.from_ab(
        f"2. store the unchanged {label} file again",
        res,
        "os.stat",
        target="<= 10 ms",
        note="" if hit == stored.digest else "(stat cache missed!)",
    )
    rows[-2].passed = res.a.median <= 0.010
    notes.append(
        f"row 2: the file was left to age > {RACY_S:g} s after its last change before the "
        "first store (the stat cache distrusts younger entries, statcache.RACY_NS); "
        f"stat cache hit: {hit == stored.digest}"
    )
    return rows


def bench_small_change(ver: Path, keep: Any, repeat: int, tag: str, how: str) -> list[Row]:
    """Change 1 MiB in the middle of ``ver`` (new bytes every round) and store it again into
    the store that holds its earlier versions: time vs cp of the same file, bytes added.
    The first round also indexes the version stored whole before (its max)."""
    from mlledger.gc import object_sizes

    label = size_label(os.path.getsize(ver))
    cp_dst = ver.parent / "cp-changed.bin"
    rng = random.Random(7)
    added: list[int] = []
    st = State()

    def total() -> int:
        return sum(n for _, n in object_sizes(keep))

    st.before = total()

    def change() -> None:  # and count what the round before added (untimed)
        now = total()
        if now != st.before:
            added.append(now - st.before)
        st.before = now
        with open(ver, "r+b") as f:
            f.seek(os.path.getsize(ver) // 2)
            f.write(rng.randbytes(MiB))
        os.sync()

    def fresh_cp_dst() -> None:
        rmtree(cp_dst)
        os.sync()

    res = ab(lambda: keep.put_file(ver), lambda: cp(ver, cp_dst), repeat, setup_a=change,
             setup_b=fresh_cp_dst)
    added.append(total() - st.before)
    rows = Row.from_ab(
        f"3b{tag}. store {label} again, 1 MiB changed in the middle {how}", res, "cp",
        max_ratio=1.5,
    )
    added.sort()
    mid = added[len(added) // 2] / MiB
    rows.append(
        Row(
            "     ... bytes added to the store",
            mid,
            added[0] / MiB,
            added[-1] / MiB,
            unit="MiB",
            target="<= 8 MiB" if tag else "info",
            passed=added[-1] <= 8 * MiB if tag else None,
        )
    )
    rmtree(cp_dst)
    return rows


# ---------------------------------------------------------------------------
# memory (in a child process)

_CHILD = r"""
import json, os, sys

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)

import mlledger.store as ms
after_import = status("VmRSS")
store = ms.Store(sys.argv[2])
before = status("VmRSS")
if sys.argv[1] == "put":
    store.put_file(sys.argv[3])
else:
    store.restore(sys.argv[3], sys.argv[4])
print(json.dumps({"after_import": after_import, "before": before, "peak": status("VmHWM")}))
"""


def _child(args: list[str]) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], check=True, capture_output=True, text=True, env=env
    ).stdout
    got: dict[str, int] = json.loads(out)
    return got


def bench_memory(tmp: Path, src: Path, digest: str, keep_dir: Path, repeat: int) -> list[Row]:
    label = size_label(os.path.getsize(src))
    rows = []
    for what in ("put", "restore"):
        extra, over_open = [], []
        for i in range(max(repeat, 5)):
            if what == "put":
                d = tmp / f"store-mem-{i}"
                got = _child(["put", str(d), str(src)])
                rmtree(d)
            else:
                dest = tmp / f"restored-mem-{i}.bin"
                got = _child(["restore", str(keep_dir), digest, str(dest)])
                rmtree(dest)
            extra.append((got["peak"] - got["after_import"]) / MiB)
            over_open.append((got["peak"] - got["before"]) / MiB)
        extra.sort()
        over_open.sort()
        name = f"store {label}" if what == "put" else f"restore {label}"
        rows.append(
            Row(
                f"5. peak RSS {name}, over RSS after import",
                extra[len(extra) // 2],
                extra[0],
                extra[-1],
                unit="MiB",
                target=f"<= {MEMORY_TARGET_MIB} MiB",
                passed=extra[len(extra) // 2] <= MEMORY_TARGET_MIB,
            )
        )
        rows.append(
            Row(
                "     ... over RSS after Store() opened",
                over_open[len(over_open) // 2],
                over_open[0],
                over_open[-1],
                unit="MiB",
            )
        )
    return rows


# ---------------------------------------------------------------------------
# S3 (moto server)


def bench_s3(cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    from mlledger.hashing import digest_bytes
    from mlledger.store import Store

    n = cfg["s3_objects"]
    rng = random.Random(2)
    blobs = [rng.randbytes(1024) for _ in range(n)]
    keys = []
    for b in blobs:
        h = digest_bytes(b).split(":", 1)[1]
        keys.append(f"objects/xxh128/{h[:2]}/{h[2:]}")
    bucket = "mlledger-bench"
    missing = s3_missing()
    if missing:
        return [], [f"row 6 skipped: {missing}"]
    import s3fs

    with moto_s3(bucket) as (_fs, opts):
        st = State()

        def fresh_store() -> None:
            st.store = Store(f"s3://{bucket}/ours-{uuid.uuid4().hex}", **opts)

        def fresh_prefix() -> None:
            # a new filesystem object per round, as each round opens a new Store,
            # warmed by one request as opening a Store reads its config
            st.fs = s3fs.S3FileSystem(**opts)
            st.prefix = f"{bucket}/raw-{uuid.uuid4().hex}"
            st.fs.exists(f"{st.prefix}/mlledger.json")

        def raw() -> None:
            st.fs.pipe({f"{st.prefix}/{k}": b for k, b in zip(keys, blobs, strict=True)})

        res = ab(
            lambda: st.store.put_many(blobs),
            raw,
            cfg["repeat"],
            setup_a=fresh_store,
            setup_b=fresh_prefix,
        )
    rows = Row.from_ab(
        f"6. S3 put_many {n:,} x 1 KiB",
        res,
        "fs.pipe({path: bytes})",
        max_ratio=1 / 0.9,
        target=">= 0.9x raw (<= 1.11x time)",
    )
    rate = n / res.a.median
    raw_rate = n / res.b.median
    notes = [
        f"row 6: moto server on 127.0.0.1, fresh key prefix and a fresh, once-warmed "
        "filesystem object every round on both sides; "
        f"{rate:,.0f} objects/s ours, {raw_rate:,.0f} objects/s raw "
        "(same s3fs options; ours hashes the blobs too)"
    ]
    return rows, notes


# ---------------------------------------------------------------------------
# hashing


def bench_hash(cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    import xxhash

    size = cfg["big"]
    data = random_bytes(size, seed=3)
    label = size_label(size)

    def xxh() -> None:
        xxhash.xxh3_128(data).digest()

    rows = []
    base = None
    for name, fn in (("md5", hashlib.md5), ("sha256", hashlib.sha256)):
        res = ab(lambda fn=fn: fn(data).digest(), xxh, cfg["repeat"])
        base = base or res.b
        rows.append(_rate_row(f"hash {label} in memory: {name}", res.a, size, ratio=res.ratio))
    assert base is not None
    rows.insert(0, _rate_row(f"hash {label} in memory: xxh3-128", base, size, ratio=1.0))
    notes = ["hash rows: informational; ratio = time relative to xxh3-128 in the same rounds"]
    from mlledger.store.chunked import chunker

    cutter = chunker()
    if cutter is None:
        notes.append("chunker row skipped: the chunks extra (pyfastcdc) is not installed")
        return rows, notes
    view = memoryview(data)

    def cut() -> None:
        for _ in cutter.cut_buf(view):
            pass

    res = ab(cut, xxh, cfg["repeat"])
    row = _rate_row(f"cut {label} in memory: FastCDC (chunks extra)", res.a, size, res.ratio)
    row.target, row.passed = ">= 1 GiB/s", size / GiB / res.a.median >= 1.0
    rows.append(row)
    notes.append("chunker row: pyfastcdc's compiled FastCDC with mlledger's parameters "
                 "(1 MiB min and average, 4 MiB max), the chunk boundaries only")
    return rows, notes


def _rate_row(figure: str, t: Any, size: int, ratio: float) -> Row:
    gib = size / GiB
    return Row(
        figure, gib / t.median, gib / t.hi, gib / t.lo, unit="GiB/s", ratio=ratio, target="info"
    )


# ---------------------------------------------------------------------------


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("store", quick)
    with workdir("store") as tmp:
        parts.run("local", lambda: bench_local(tmp, cfg))
        parts.run("s3", lambda: bench_s3(cfg))
        parts.run("hash", lambda: bench_hash(cfg))
    return parts.report()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
