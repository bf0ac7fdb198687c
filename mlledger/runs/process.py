"""This process's identity over time: its start tick (with the pid, it tells a live
process from a later one that reuses the pid), and whether a recorded process lives."""

from __future__ import annotations

import os

__all__ = ["pid_alive", "process_start"]


def _proc_start() -> int | None:
    try:
        with open(f"/proc/{os.getpid()}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


#: this process's start time in clock ticks (with the pid, it tells a live process from a
#: later one that reuses the pid); read once per process, again in a forked child
_proc_start_cache: list[int | None] = []


def process_start() -> int | None:
    if not _proc_start_cache:
        _proc_start_cache.append(_proc_start())
    return _proc_start_cache[0]


def pid_alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is None:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19]) == start
    except (OSError, ValueError, IndexError):
        return True


def _after_fork_in_child() -> None:
    """A forked child reads its own start time again."""
    _proc_start_cache.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
