"""Opt-in sampling of a run's system figures as ordinary metrics of the run.

``ledger.run(..., sample=10)`` records every 10 seconds, and once more when the
run ends (unless the last sample is less than half an interval old):

``sys.cpu_percent``
    CPU time (``getrusage``) of the process (every thread, user and system) over the wall time
    since the last sample, in percent of one core (200 is two busy cores).
``sys.rss_bytes``
    resident memory of the process now (its peak so far where the system does
    not say, as on macOS).
``sys.gpu_util_percent`` / ``sys.gpu_memory_bytes``
    where NVML answers (``pynvml`` importable, a driver): the utilization and
    the memory this process holds on the GPUs it uses, else the whole of the
    GPUs it may use.

For a program ``mlledger run`` starts, the figures are the program's own
(``/proc/<pid>``, Linux), from the moment it starts.

One daemon thread serves every sampling run of the process; it starts with
the first and ends with the last, so a process that never asks for sampling
never has it.  Samples are logged at their own step (0, 1, 2...): they never
move the step a run's own ``run.log()`` counts from.  Figures come from the
standard library (``resource.getrusage``, ``/proc/self/statm``).
"""

from __future__ import annotations

import math
import os
import resource
import threading
import time
from typing import Any, Protocol

from ..capture.resources import nvml, nvml_devices, rss_bytes
from ..errors import UsageError

__all__ = [
    "MIN_INTERVAL",
    "SampledRun",
    "add",
    "check_interval",
    "follow",
    "remove",
    "thread",
]

#: the shortest interval between samples (seconds)
MIN_INTERVAL = 0.01


class SampledRun(Protocol):
    """What the sampler needs of a run (``runs.run.Run``)."""

    def add_sample(self, step: int, values: dict[str, float]) -> None: ...


def check_interval(sample: Any) -> float | None:
    """``sample`` as seconds between samples (None or 0: no sampling); UsageError otherwise."""
    if sample is None or sample is False or sample == 0:
        return None
    if (
        isinstance(sample, bool)
        or not isinstance(sample, (int, float))
        or not math.isfinite(sample)
        or sample < MIN_INTERVAL
    ):
        raise UsageError(
            f"sample is the seconds between samples of a run's CPU and memory, a number of "
            f"at least {MIN_INTERVAL} (sample=10), or None for no sampling; not {sample!r}"
        )
    return float(sample)


def cpu_seconds(pid: int | None = None) -> float | None:
    """CPU time so far, every thread, user and system, of this process or of process
    ``pid`` (``/proc/<pid>/stat``; None when it is gone or the system has no /proc)."""
    if pid is None:
        ru = resource.getrusage(resource.RUSAGE_SELF)  # microseconds, where os.times has ticks
        return ru.ru_utime + ru.ru_stime
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2 :].split()  # after the command name
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def pid_rss(pid: int) -> int | None:
    """Resident memory of process ``pid`` now (``/proc/<pid>/statm``), or None."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def gpu_figures(pid: int | None = None) -> dict[str, float]:
    """``sys.gpu_util_percent`` and ``sys.gpu_memory_bytes`` from NVML, or {} without it."""
    devices = nvml_devices()
    if not devices:
        return {}
    nv = nvml()
    try:
        pid = pid or os.getpid()
        mine: dict[int, float] = {}
        for i, h in enumerate(devices):
            try:
                procs = nv.nvmlDeviceGetComputeRunningProcesses(h)
            except Exception:
                continue
            for p in procs:
                if getattr(p, "pid", None) == pid:
                    mine[i] = mine.get(i, 0.0) + float(getattr(p, "usedGpuMemory", 0) or 0)
        used = [devices[i] for i in mine] or devices
        util = [float(nv.nvmlDeviceGetUtilizationRates(h).gpu) for h in used]
        memory = (
            sum(mine.values())
            if mine
            else sum(float(nv.nvmlDeviceGetMemoryInfo(h).used) for h in devices)
        )
        return {"sys.gpu_util_percent": sum(util) / len(util), "sys.gpu_memory_bytes": memory}
    except Exception:  # a driver that stops answering: no GPU figures this time
        return {}


class _Entry:
    """One sampled run: its interval, next due time, step, last figures, and the process
    it follows (None: this one)."""

    __slots__ = ("cpu", "due", "interval", "lock", "pid", "step", "wall")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.wall = time.monotonic()
        self.cpu = cpu_seconds() or 0.0
        self.due = self.wall + interval
        self.step = 0
        self.pid: int | None = None
        self.lock = threading.Lock()

    def take(
        self,
        run: SampledRun,
        wall: float,
        cpu: float,
        common: dict[str, float],
        *,
        last: bool = False,
    ) -> None:
        """Log one sample of ``run`` measured at ``wall`` (CPU ``cpu``); the ``last`` one,
        at the run's end, only for the run's first or a tail of half an interval or more
        (a few milliseconds of tail would say little)."""
        with self.lock:
            if last and self.step and wall - self.wall < self.interval / 2:
                return
            if self.pid is not None:  # a program's own figures; none once it is gone
                got = cpu_seconds(self.pid)
                rss = pid_rss(self.pid)
                if got is None or rss is None:
                    return
                cpu = got
                common = {**common, **gpu_figures(self.pid), "sys.rss_bytes": float(rss)}
            span = wall - self.wall
            if span <= 0:
                return
            values = {"sys.cpu_percent": round(100.0 * (cpu - self.cpu) / span, 3), **common}
            self.wall, self.cpu = wall, cpu
            step = self.step
            self.step += 1
        run.add_sample(step, values)


def _common() -> dict[str, float]:
    """The figures every run sampled now shares: memory and GPUs."""
    out: dict[str, float] = {}
    rss = rss_bytes()
    if rss is not None:
        out["sys.rss_bytes"] = float(rss)
    out.update(gpu_figures())
    return out


class _Sampler:
    """The one sampling thread of the process and the runs it samples."""

    def __init__(self) -> None:
        self.runs: dict[SampledRun, _Entry] = {}
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None

    def add(self, run: SampledRun, interval: float) -> None:
        with self.cond:
            self.runs[run] = _Entry(interval)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._loop, name="mlledger-sampler", daemon=True
                )
                self.thread.start()
            else:
                self.cond.notify()  # its next wake-up may be later than this run's first sample

    def follow(self, run: SampledRun, pid: int) -> None:
        with self.cond:
            entry = self.runs.get(run)
        if entry is not None:
            with entry.lock:
                entry.pid = pid
                entry.wall = time.monotonic()
                entry.cpu = cpu_seconds(pid) or 0.0

    def remove(self, run: SampledRun, *, last: bool = True) -> None:
        with self.cond:
            entry = self.runs.pop(run, None)
            if not self.runs:
                self.cond.notify()  # the last one: the thread ends
        if entry is not None and last:  # the tail since the last sample
            entry.take(run, time.monotonic(), cpu_seconds() or 0.0, _common(), last=True)

    def _loop(self) -> None:
        while True:
            with self.cond:
                if not self.runs:
                    self.thread = None
                    return
                now = time.monotonic()
                due = [(r, e) for r, e in self.runs.items() if e.due <= now]
                if not due:
                    self.cond.wait(min(e.due for e in self.runs.values()) - now)
                    continue
                for _, e in due:  # a late wake-up skips the samples it missed
                    e.due = max(e.due + e.interval, now + e.interval / 2)
            try:
                common = _common()
                wall, cpu = time.monotonic(), cpu_seconds() or 0.0
                for run, entry in due:
                    entry.take(run, wall, cpu, common)
            except Exception:  # sampling never breaks a run: this sample is lost
                pass
            del due  # hold no run while waiting: an ended run must be free to go


_sampler = _Sampler()


def add(run: SampledRun, interval: float) -> None:
    """Sample ``run`` every ``interval`` seconds until :func:`remove`."""
    _sampler.add(run, interval)


def follow(run: SampledRun, pid: int) -> None:
    """Sample process ``pid`` (a program the run started) for ``run`` from now on, in place
    of this one; nothing when ``run`` is not sampled."""
    _sampler.follow(run, pid)


def remove(run: SampledRun, *, last: bool = True) -> None:
    """Stop sampling ``run``, after one last sample of the time since the previous one
    (``last=False``: none, for a start that failed)."""
    _sampler.remove(run, last=last)


def thread() -> threading.Thread | None:
    """The sampling thread while one runs (tests and benchmarks look at it)."""
    t = _sampler.thread
    return t if t is not None and t.is_alive() else None


def _after_fork_in_child() -> None:
    """A forked child samples none of its parent's runs and has no sampling thread."""
    global _sampler
    _sampler = _Sampler()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
