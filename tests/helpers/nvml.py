"""A stand-in for ``nvidia-ml-py`` (module ``pynvml``) on machines without a GPU: the
tests of GPU figures put it first on a subprocess's path (mlledger never imports torch
or NVML itself unless they are importable; no GPU answers here)."""

from __future__ import annotations

import textwrap

FAKE_NVML = textwrap.dedent(
    """
    # a stand-in for nvidia-ml-py on a machine without a GPU: two devices
    NAMES = [b"NVIDIA H100 80GB HBM3", b"NVIDIA H100 80GB HBM3"]
    class _Mem:
        used = 3 * 2**30
    class _Util:
        gpu = 70
    def nvmlInit(): pass
    def nvmlDeviceGetCount(): return len(NAMES)
    def nvmlDeviceGetHandleByIndex(i): return i
    def nvmlDeviceGetName(h): return NAMES[h]
    def nvmlDeviceGetMemoryInfo(h): return _Mem()
    def nvmlDeviceGetUtilizationRates(h): return _Util()
    def nvmlDeviceGetComputeRunningProcesses(h): return []
    """
)
