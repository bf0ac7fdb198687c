"""What a run used: wall and CPU time, peak memory, GPUs (``run.resources``).

CPU time counts this process and the child processes it waited for during the
run (the program ``mlledger run`` starts, a subprocess the user's code runs):
the work a cost at ``cpu_hour`` pays for.

Figures come from the standard library (``time``, ``resource``); the GPUs from
``torch.cuda`` when the user's code already imported and initialized it, else
from NVML when ``pynvml`` (``nvidia-ml-py``) is importable.  Neither is ever
imported for a process that did not ask for it: torch is only looked up in
``sys.modules``, and NVML is tried once per process, its answer kept.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from typing import Any

__all__ = ["Start", "gpu_info", "measure", "nvml", "rss_bytes", "start"]

#: bytes per unit of ``ru_maxrss``: bytes on macOS, KiB elsewhere
RSS_UNIT = 1 if sys.platform == "darwin" else 1024

Start = tuple[float, float, float]


def _cpu() -> tuple[float, float]:
    """User and system CPU seconds of this process and of the children it waited for (a
    program ``mlledger run`` starts, a subprocess the user's code runs)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


def start() -> Start:
    """The figures a run's resources are measured from: ``(wall, cpu user, cpu system)``."""
    user, system = _cpu()
    return time.perf_counter(), user, system


def measure(t0: Start) -> tuple[dict[str, Any], list[str]]:
    """The resources used since ``t0`` (see :func:`start`), and warnings for figures that
    could not be read (the rest are kept)."""
    out: dict[str, Any] = {"wall_s": round(time.perf_counter() - t0[0], 6)}
    warns: list[str] = []
    try:
        user, system = _cpu()
        out["cpu_user_s"] = round(user - t0[1], 6)
        out["cpu_system_s"] = round(system - t0[2], 6)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out["peak_rss_bytes"] = int(ru.ru_maxrss) * RSS_UNIT
    except Exception as e:
        warns.append(f"resources not fully recorded: {e}")
    try:
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            out["gpu_peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
        gpus = gpu_info()
        if gpus is not None:
            out["gpu_count"], out["gpu_model"] = gpus
    except Exception as e:
        warns.append(f"GPU resources not recorded: {e}")
    return out, warns


# -- GPUs ------------------------------------------------------------------------------

_lock = threading.Lock()
#: NVML once loaded (the ``pynvml`` module, initialized), False when it is not available
_nvml: Any = None
#: what the GPUs are, once known: ``(count, model)``, or None (no GPU)
_gpus: tuple[int, str] | None = None
_gpus_known = False


def nvml() -> Any:
    """The ``pynvml`` module, initialized, or None when it is not installed or no driver
    answers (tried once per process)."""
    global _nvml
    if _nvml is None:
        with _lock:
            if _nvml is None:
                try:
                    import pynvml  # type: ignore[import-not-found,unused-ignore]

                    pynvml.nvmlInit()
                    _nvml = pynvml
                except Exception:  # not installed, no driver, no device: no NVML
                    _nvml = False
    return _nvml or None


def _visible(n: int) -> list[int]:
    """The device indices this process may use (``CUDA_VISIBLE_DEVICES`` by index)."""
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return list(range(n))
    out = []
    for raw in spec.split(","):
        part = raw.strip()
        if not part.isdigit():
            break  # a UUID, or the end of the valid list (CUDA stops at the first bad one)
        if int(part) < n:
            out.append(int(part))
    return out


def nvml_devices() -> list[Any]:
    """NVML handles of the GPUs this process may use ([] without NVML)."""
    nv = nvml()
    if nv is None:
        return []
    return [nv.nvmlDeviceGetHandleByIndex(i) for i in _visible(nv.nvmlDeviceGetCount())]


def _name(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _torch_gpus() -> tuple[int, str] | None:
    """``(count, model)`` from ``torch.cuda`` when the user's code initialized it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_initialized():  # a flag: no driver call
            return None
        n = int(torch.cuda.device_count())
        return (n, str(torch.cuda.get_device_name(torch.cuda.current_device()))) if n else None
    except Exception:
        return None


def gpu_info() -> tuple[int, str] | None:
    """``(gpu_count, gpu_model)`` of the GPUs this process may use, or None: from
    ``torch.cuda`` when it is imported and initialized, else from NVML (asked once)."""
    global _gpus, _gpus_known
    got = _torch_gpus()
    if got is not None:
        return got
    if not _gpus_known:
        devices = nvml_devices()
        nv = nvml()
        _gpus = (len(devices), _name(nv.nvmlDeviceGetName(devices[0]))) if devices else None
        _gpus_known = True
    return _gpus


def rss_bytes() -> int | None:
    """The process's resident memory now (``/proc/self/statm``), or its peak so far where
    the current figure is not available (macOS, BSD)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * RSS_UNIT
        except Exception:
            return None


def _reset_after_fork() -> None:
    """A forked child has the parent's NVML handle state; it tries again itself."""
    global _nvml, _lock
    _nvml = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
