"""Everything mlledger reads from the environment, in one place.

The ``MLLEDGER_*`` variables, the user data and cache folders (platformdirs:
``$XDG_DATA_HOME`` and ``$XDG_CACHE_HOME`` on Linux) and the identity of this
process's user and host.  Each is read when asked, not at import, so a changed
environment is honoured (tests and notebooks change it).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE",
    "DEBUG",
    "DISABLE",
    "PARENT",
    "TRANSFERS",
    "URL",
    "cache_dir",
    "cache_enabled",
    "data_dir",
    "debug",
    "default_url",
    "disabled",
    "host_name",
    "outer_run",
    "spool_dir",
    "transfers",
    "user_name",
]

#: the store a Ledger() opens when given no URL (and the CLI's --store default)
URL = "MLLEDGER_URL"
#: set to anything but "", 0, false or no: every tracked call and run is a plain call
DISABLE = "MLLEDGER_DISABLE"
#: the CLI prints tracebacks (as --debug)
DEBUG = "MLLEDGER_DEBUG"
#: set to 0, false or no: a memoized call (``tracked(cache=True)``) never reuses a result
CACHE = "MLLEDGER_CACHE"
#: how many objects a restore from S3, GCS or Azure keeps in flight at once
TRANSFERS = "MLLEDGER_TRANSFERS"
#: set by ``mlledger run`` for the program it runs: the run that program is inside, as
#: JSON (``id``, ``url``, ``message``, ``tags``); its own runs nest under it
PARENT = "MLLEDGER_PARENT"

_FALSE = ("", "0", "false", "no")


def _flag(name: str) -> bool:
    value = os.environ.get(name)
    return value is not None and value.strip().lower() not in _FALSE


def disabled() -> bool:
    """``MLLEDGER_DISABLE`` is set to a true value: track nothing."""
    return _flag(DISABLE)


def outer_run(url: str) -> dict[str, Any] | None:
    """The run of another process this one runs inside (``$MLLEDGER_PARENT``, set by
    ``mlledger run`` for its program), if it is on the store at ``url``; else None."""
    value = os.environ.get(PARENT)
    if not value:
        return None
    import json

    try:
        outer = json.loads(value)
    except ValueError:
        return None
    if not isinstance(outer, dict) or not isinstance(outer.get("id"), str):
        return None
    return outer if outer.get("url") == url else None


def cache_enabled() -> bool:
    """Memoized calls may reuse recorded results: ``MLLEDGER_CACHE`` is unset, empty, or
    anything but 0, false or no."""
    value = os.environ.get(CACHE)
    return value is None or value.strip().lower() not in ("0", "false", "no")


def debug() -> bool:
    """``MLLEDGER_DEBUG`` is set to a true value."""
    return _flag(DEBUG)


def transfers(default: int) -> int:
    """``MLLEDGER_TRANSFERS`` as a positive count, else ``default``."""
    value = os.environ.get(TRANSFERS, "").strip()
    if not value:
        return default
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        from .errors import UsageError

        raise UsageError(f"{TRANSFERS}={value!r} is not a positive whole number; set it to 16, say")
    return n


def data_dir() -> Path:
    """The user data folder of mlledger (where the default store lives)."""
    import platformdirs

    return platformdirs.user_data_path("mlledger")


def spool_dir(url: str) -> str:
    """The spool folder of the store at ``url`` (in the user data dir, one per store): where
    a run's entries wait while the store refuses them."""
    import hashlib

    h = hashlib.sha256(url.encode()).hexdigest()[:16]
    return str(data_dir() / "spool" / h)


def default_url() -> str:
    """``$MLLEDGER_URL``, else ``<user data dir>/mlledger/store``."""
    env = os.environ.get(URL)
    if env:
        return env
    return str(data_dir() / "store")


_cache_dirs: dict[str, Path] = {}


def cache_dir() -> Path:
    """mlledger's cache folder (stat cache, catalogs); safe to delete.

    Follows platformdirs (``$XDG_CACHE_HOME`` on Linux), read each call so a
    changed environment is honoured; cached per value of that variable.
    """
    key = os.environ.get("XDG_CACHE_HOME", "")
    got = _cache_dirs.get(key)
    if got is None:
        import platformdirs

        got = _cache_dirs[key] = platformdirs.user_cache_path("mlledger")
    return got


def user_name() -> str:
    """The login name of this process's user; "unknown" where there is none (a container
    without a passwd entry)."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def host_name() -> str:
    """This machine's host name."""
    return socket.gethostname()
