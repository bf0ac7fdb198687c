"""Shared helpers for the benchmarks: timing, A/B interleaving, the result table.

Every benchmark module ``benchmarks/bench_*.py`` defines ``main(quick=False)``
that returns (or prints) a list of :class:`Row`; ``benchmarks/run.py`` runs
them all.  The rules (see ``BENCHMARKS.md``, "How to measure"):

- warm up once, then take the median of at least 5 runs and show min-max;
- time the baseline in the same round, interleaved A B A B ...;
- say what was cached and what the store was.

Usage::

    from _common import Row, ab, measure, table, workdir

    with workdir("mine") as tmp:
        res = ab(lambda: ours(), lambda: plain(), repeat=7, setup_a=reset)
        rows = Row.from_ab("ours", res, "cp", max_ratio=1.25)  # ours + baseline
    table(rows, title="mine")
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "REPO",
    "ABResult",
    "Row",
    "Timing",
    "ab",
    "fmt_value",
    "fs_type",
    "machine",
    "machine_notes",
    "measure",
    "rmtree",
    "table",
    "workdir",
]

#: the repository root (so benchmarks import the working tree, not an install)
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: runs per figure unless a benchmark says otherwise (at least 5)
REPEAT = 7
MIN_REPEAT = 5
#: a side whose max/min exceeds this is flagged noisy in its row's note
NOISY = 2.0

Setup = Callable[[], object] | None


@dataclass
class Timing:
    """Seconds taken by each timed run (warm-up excluded): wall clock and CPU.

    CPU is user + system time of this process and of the children it waited
    for (``cp``), so it leaves out time spent waiting for a busy machine.
    """

    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def lo(self) -> float:
        return min(self.samples)

    @property
    def hi(self) -> float:
        return max(self.samples)


@dataclass
class ABResult:
    """Two interleaved timings; ``ratio`` is the median of the per-round ratios a/b."""

    a: Timing
    b: Timing
    ratios: list[float]
    cpu_ratios: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def cpu_ratio(self) -> float | None:
        return statistics.median(self.cpu_ratios) if self.cpu_ratios else None


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (µs resolution)."""
    try:
        import resource
    except ImportError:  # not on Unix: os.times() has only clock-tick resolution
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], object], setup: Setup, into: Timing | None = None) -> float:
    if setup is not None:
        setup()
    gc.collect()
    c0 = _cpu()
    t0 = time.perf_counter()
    fn()
    t = time.perf_counter() - t0
    if into is not None:
        into.samples.append(t)
        into.cpu.append(_cpu() - c0)
    return t


def measure(
    fn: Callable[[], object],
    repeat: int = REPEAT,
    *,
    setup: Setup = None,
    warmup: bool = True,
) -> Timing:
    """Time ``fn`` ``repeat`` times after one warm-up; ``setup`` runs untimed before each call."""
    repeat = max(repeat, MIN_REPEAT)
    if warmup:
        _timed(fn, setup)
    t = Timing()
    for _ in range(repeat):
        _timed(fn, setup, t)
    return t


def ab(
    fn_a: Callable[[], object],
    fn_b: Callable[[], object],
    repeat: int = REPEAT,
    *,
    setup_a: Setup = None,
    setup_b: Setup = None,
    warmup: bool = True,
) -> ABResult:
    """Time ``fn_a`` (ours) against ``fn_b`` (the baseline) in rounds A B A B ...

    Each function is warmed up once first; ``setup_a``/``setup_b`` run untimed
    before every call (to reset state: a fresh store, a fresh destination).
    The two sides alternate which goes first each round, so a drift in the
    machine's speed does not favour either.
    """
    repeat = max(repeat, MIN_REPEAT)
    if warmup:
        _timed(fn_a, setup_a)
        _timed(fn_b, setup_b)
    res = ABResult(Timing(), Timing(), [], [])
    for i in range(repeat):
        if i % 2 == 0:
            ta = _timed(fn_a, setup_a, res.a)
            tb = _timed(fn_b, setup_b, res.b)
        else:
            tb = _timed(fn_b, setup_b, res.b)
            ta = _timed(fn_a, setup_a, res.a)
        res.ratios.append(ta / tb if tb > 0 else float("inf"))
        ca, cb = res.a.cpu[-1], res.b.cpu[-1]
        if cb > 0:
            res.cpu_ratios.append(ca / cb)
    return res


# ---------------------------------------------------------------------------
# results


@dataclass
class Row:
    """One line of the result table.

    ``median``/``lo``/``hi`` are in ``unit``: ``"s"`` (shown as s/ms/µs),
    ``"MiB"`` or ``"GiB/s"``.  ``ratio`` is to the row's baseline (None for a
    row that is itself a baseline or has no ratio); ``cpu_ratio`` the same for
    CPU time, shown for context (targets are on wall-clock ``ratio``).
    ``passed`` is True/False against ``target``, or None for an informational row.
    """

    figure: str
    median: float
    lo: float | None = None
    hi: float | None = None
    unit: str = "s"
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""
    cpu_ratio: float | None = None

    @classmethod
    def from_timing(
        cls,
        figure: str,
        t: Timing,
        *,
        ratio: float | None = None,
        target: str = "",
        passed: bool | None = None,
        note: str = "",
        cpu_ratio: float | None = None,
    ) -> Row:
        return cls(figure, t.median, t.lo, t.hi, "s", ratio, target, passed, note, cpu_ratio)

    @classmethod
    def from_ab(
        cls,
        figure: str,
        res: ABResult,
        baseline: str,
        *,
        max_ratio: float | None = None,
        target: str | None = None,
        note: str = "",
    ) -> list[Row]:
        """Two rows: ours (with its ratio and verdict) and the baseline under it."""
        passed = None if max_ratio is None else res.ratio <= max_ratio
        spread = max(t.hi / t.lo for t in (res.a, res.b) if t.lo > 0)
        if spread > NOISY:
            # a side that varied this much was disturbed in some rounds: the best
            # runs of each side say what the code costs when it is not
            noisy = f"noisy ({spread:.1f}x spread); min/min {res.a.lo / res.b.lo:.2f}x"
            note = f"{note}; {noisy}" if note else noisy
        if target is None:
            target = f"<= {max_ratio:g}x" if max_ratio is not None else ""
        return [
            cls.from_timing(
                figure,
                res.a,
                ratio=res.ratio,
                target=target,
                passed=passed,
                note=note,
                cpu_ratio=res.cpu_ratio,
            ),
            cls.from_timing(f"  baseline: {baseline}", res.b, ratio=1.0),
        ]

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: ""}[self.passed]


def fmt_value(v: float | None, unit: str) -> str:
    """``v`` in ``unit`` as a short human string."""
    if v is None:
        return "-"
    if unit == "s":
        if v >= 1:
            return f"{v:.3f} s"
        if v >= 1e-3:
            return f"{v * 1e3:.2f} ms"
        return f"{v * 1e6:.1f} µs"
    return f"{v:.2f} {unit}"


def table(rows: list[Row], title: str = "", notes: list[str] | None = None) -> str:
    """Print (and return) ``rows`` as an aligned table, with ``notes`` under it."""
    head = ("figure", "median", "min-max", "ratio", "cpu ratio", "target", "result")
    body = [
        (
            r.figure,
            fmt_value(r.median, r.unit),
            f"{fmt_value(r.lo, r.unit)} - {fmt_value(r.hi, r.unit)}" if r.lo is not None else "",
            f"{r.ratio:.2f}x" if r.ratio is not None else "",
            f"{r.cpu_ratio:.2f}x" if r.cpu_ratio is not None else "",
            r.target,
            r.verdict + (f"  {r.note}" if r.note else ""),
        )
        for r in rows
    ]
    widths = [max(len(str(c[i])) for c in [head, *body]) for i in range(len(head))]
    align = ["<", ">", ">", ">", ">", "<", "<"]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths, strict=True)
        ).rstrip()

    out = []
    if title:
        out += [title, "=" * len(title)]
    out += [line(head), line(tuple("-" * w for w in widths))]
    out += [line(c) for c in body]
    out += [f"* {n}" for n in notes or []]
    text = "\n".join(out)
    print(text, flush=True)
    return text


class Parts:
    """A module's benchmark parts: each runs on its own, a failing one prints its traceback
    and the others go on; :meth:`report` prints the table and then fails the module."""

    def __init__(self, kind: str, quick: bool) -> None:
        self.kind = kind
        self.quick = quick
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.failed: list[str] = []

    def run(self, name: str, fn: Callable[[], tuple[list[Row], list[str]]]) -> None:
        try:
            rows, notes = fn()
        except Exception:
            traceback.print_exc()
            self.failed.append(name)
            return
        self.rows += rows
        self.notes += notes

    def report(self) -> list[Row]:
        title = f"{self.kind} benchmarks{' (quick sizes)' if self.quick else ''}"
        table(self.rows, title=title, notes=self.notes)
        if self.failed:
            raise RuntimeError(
                f"{self.kind} benchmark parts failed: {', '.join(self.failed)} (see above)"
            )
        return self.rows


# ---------------------------------------------------------------------------
# environment


def s3_missing() -> str | None:
    """Why the S3 rows cannot run (s3fs or moto's server not installed), or None."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    try:
        import s3fs  # noqa: F401
        from helpers import servers  # noqa: F401
    except ImportError as e:
        return f"{e} (pip install 'moto[server]' s3fs)"
    return None


@contextlib.contextmanager
def moto_s3(bucket: str = "mlledger-bench") -> Iterator[tuple[Any, dict[str, Any]]]:
    """A moto S3 server on 127.0.0.1 (the test suite's ``helpers/servers.py``), for as long
    as the block runs: ``(s3fs filesystem, storage options)``, with ``bucket`` made.  Check
    :func:`s3_missing` first."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    s3_missing()  # puts tests/ on sys.path
    import s3fs
    from helpers import servers

    server = servers.moto_server()
    url = server.start()
    try:
        opts: dict[str, Any] = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": url},
            "skip_instance_cache": True,
            "use_listings_cache": False,
        }
        fs = s3fs.S3FileSystem(**opts)
        fs.mkdir(bucket)
        yield fs, opts
    finally:
        server.stop()


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    """A fresh folder under the system temp dir, removed afterwards.

    XDG_CACHE_HOME and XDG_DATA_HOME point into it while it is open, so a
    benchmark never touches the user's real cache or data (mlledger's stat
    cache lives in the cache dir).
    """
    root = Path(tempfile.mkdtemp(prefix=f"mlledger-bench-{name}-"))
    saved = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "XDG_DATA_HOME")}
    os.environ["XDG_CACHE_HOME"] = str(root / "xdg-cache")
    os.environ["XDG_DATA_HOME"] = str(root / "xdg-data")
    try:
        yield root
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(root, ignore_errors=True)


def rmtree(path: str | os.PathLike[str]) -> None:
    """Remove a file or folder if it exists (read-only store objects included)."""
    p = os.fspath(path)
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    elif os.path.lexists(p):
        os.unlink(p)


def fs_type(path: str | os.PathLike[str]) -> str:
    """The filesystem type of the mount holding ``path`` (from /proc/mounts), e.g. ``ext4``."""
    p = os.path.realpath(os.fspath(path))
    best, kind = "", "unknown"
    with contextlib.suppress(OSError), open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            mnt = parts[1]
            inside = p == mnt or p.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) > len(best):
                best, kind = mnt, parts[2]
    return kind


def machine() -> str:
    """One line about this machine, its load and the interpreter."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.machine()} {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} CPUs (load {load}), Python {platform.python_version()}"
    )


def machine_notes() -> list[str]:
    """Facts about this machine that bend the figures, to print with them."""
    notes = []
    order = Path("/sys/module/page_reporting/parameters/page_reporting_order")
    with contextlib.suppress(OSError, ValueError):
        kib = 1 << (int(order.read_text()) + 2)
        notes.append(
            f"this VM hands freed memory back to its host (free page reporting, blocks >= "
            f"{kib // 1024} MiB): writing into fresh page cache can cost several times more "
            "when the host must back the pages again, and it varies from run to run; "
            "trust the paired ratio and the cpu ratio over absolute times"
        )
    with contextlib.suppress(OSError):
        cpus = os.cpu_count() or 1
        if os.getloadavg()[0] > cpus / 2:
            notes.append(
                f"the machine is busy (load {os.getloadavg()[0]:.1f} on {cpus} CPUs): "
                "expect wide min-max"
            )
    return notes
