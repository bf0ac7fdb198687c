"""The machine and software a run ran on, computed once per process.

Installed distributions are read from dist-info/egg-info folder names on
every ``sys.path`` entry (no imports, no metadata parsing).  Environment
variables are captured from an allow-list, secrets redacted.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import sys
import threading
from typing import Any

from .._settings import host_name, user_name
from .redact import REDACTED, is_secret_name, redact_argv, strip_url_credentials

__all__ = ["DEFAULT_ENV_VARS", "environment", "installed_packages", "process_facts"]

DEFAULT_ENV_VARS = (
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "TF_DETERMINISTIC_OPS",
    "TORCH_DETERMINISTIC",
    "CUDA_LAUNCH_BLOCKING",
)

_DIST_RE = re.compile(
    r"^(?P<name>.+?)-(?P<version>[^-]+?)(?:-py[\d.]+)?(?:-[^-]+)?\.(?:dist|egg)-info$"
)
_cache: dict[tuple[str, ...], dict[str, Any]] = {}
_lock = threading.Lock()


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_packages(paths: list[str] | None = None) -> dict[str, str]:
    """``{normalized name: version}`` of every distribution on ``sys.path``.

    The first entry on the path wins, as it does for imports.
    """
    out: dict[str, str] = {}
    for entry in paths if paths is not None else sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for n in names:
            if not n.endswith((".dist-info", ".egg-info")):
                continue
            m = _DIST_RE.match(n)
            if m is None:
                continue
            key = _normalize(m.group("name"))
            out.setdefault(key, m.group("version"))
    return dict(sorted(out.items()))


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[dict[str, Any]]:
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        return [
            {
                "name": torch.cuda.get_device_name(i),
                "memory": int(torch.cuda.get_device_properties(i).total_memory),
            }
            for i in range(torch.cuda.device_count())
        ]
    except Exception:
        return []


def _machine() -> dict[str, Any]:
    """Everything but the environment variables: the expensive part, computed once."""
    got = _cache.get(())
    if got is None:
        vi = sys.version_info
        got = {
            "python": {
                "version": f"{vi.major}.{vi.minor}.{vi.micro}",
                "implementation": platform.python_implementation(),
                "executable": sys.executable,
            },
            "platform": {
                "system": platform.system(),
                "release": platform.release(),
                "machine": platform.machine(),
                "libc": "-".join(platform.libc_ver()).strip("-"),
            },
            "host": {
                "hostname": host_name(),
                "user": user_name(),
                "cpu": _cpu_name(),
                "cpu_count": os.cpu_count(),
                "memory": _memory_bytes(),
                "gpus": _gpus(),
            },
            "packages": installed_packages(),
        }
        _cache[()] = got
    return got


def environment(env_vars: tuple[str, ...] = DEFAULT_ENV_VARS) -> dict[str, Any]:
    """The environment record.

    The machine, Python and packages are worked out once per process; the
    allow-listed environment variables are read on every call (a sweep that sets
    ``CUDA_VISIBLE_DEVICES`` per run records each value), and the record is
    cached per allow-list and values: the same values give the same object.
    """
    values = _env_values(env_vars)
    key = (env_vars, values)
    got = _env_cache.get(key)
    if got is not None:
        return got
    with _lock:
        got = _env_cache.get(key)
        if got is None:
            got = {
                **_machine(),
                "env_vars": {
                    k: (REDACTED if is_secret_name(k) else strip_url_credentials(os.environ[k]))
                    for k in sorted(set(env_vars))
                    if k in os.environ
                },
            }
            if len(_env_cache) > 1024:
                _env_cache.clear()
            _env_cache[key] = got
    return got


#: (allow-list, its values as read) -> environment record
_env_cache: dict[tuple[tuple[str, ...], tuple[Any, ...]], dict[str, Any]] = {}


@functools.lru_cache(maxsize=16)
def _encoded_keys(names: tuple[str, ...]) -> tuple[Any, ...] | None:
    encode = getattr(os.environ, "encodekey", None)
    return None if encode is None else tuple(encode(k) for k in names)


def _env_values(names: tuple[str, ...]) -> tuple[Any, ...]:
    """The current values of ``names`` (None where unset), read straight from the
    environment's own mapping: a twentieth of the cost of ``os.environ.get`` each."""
    data = getattr(os.environ, "_data", None)
    keys = _encoded_keys(names)
    if data is None or keys is None:
        return tuple(os.environ.get(k) for k in names)
    return tuple(map(data.get, keys))


#: (sys.argv as last seen, its redacted copy): argv rarely changes, redacting it costs
_argv_cache: list[tuple[list[str], list[str]]] = [([], [])]
#: this process's id, refreshed in a forked child
_pid = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def process_facts(cwd: str | None = None) -> dict[str, Any]:
    """Facts of this process that a run shows but a diff ignores: argv, cwd, pid."""
    seen, redacted = _argv_cache[0]
    argv = sys.argv
    if argv != seen:
        seen, redacted = list(argv), redact_argv(list(argv))
        _argv_cache[0] = (seen, redacted)
    return {"argv": list(redacted), "cwd": cwd or os.getcwd(), "pid": _pid[0]}


def clear_cache() -> None:
    """Forget the cached environment (tests, or after installing packages)."""
    _cache.clear()
    _env_cache.clear()
