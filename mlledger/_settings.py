"""Everything mlledger reads from the environment, in one place.

The ``MLLEDGER_*`` variables, the user data and cache folders (platformdirs:
``$XDG_DATA_HOME`` and ``$XDG_CACHE_HOME`` on Linux) and the identity of this
process's user and host.  Each is read when asked, not at import, so a changed
environment is honoured (tests and notebooks change it).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
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
    "cache_folder",
    "data_dir",
    "debug",
    "default_url",
    "disabled",
    "host_name",
    "outer_run",
    "spool_dir",
    "spool_waiting",
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


def _plain_abs(path: str) -> str | None:
    """``path`` as ``pathlib`` spells it, when it is absolute and plain (no ``//`` or
    ``.`` inside; trailing slashes dropped), else None."""
    path = path.rstrip("/")
    if not path.startswith("/") or "//" in path or "/./" in f"{path}/":
        return None
    return path


#: platformdirs' folders on Linux: (variable, default under $HOME)
_XDG = {"data": ("XDG_DATA_HOME", ".local/share"), "cache": ("XDG_CACHE_HOME", ".cache")}


def _user_folder(kind: str) -> str:
    """mlledger's user ``data`` or ``cache`` folder, as platformdirs names it.

    On Linux (the usual case: an absolute ``$XDG_*_HOME``, or none and an absolute
    ``$HOME``) it is worked out here by platformdirs' own rule, because importing
    platformdirs (with pathlib and tempfile) costs more than the rest of opening a
    store; anywhere else, and for anything unusual, platformdirs itself answers.
    ``tests/test_coldstart.py`` holds the two to the same answers.
    """
    var, default = _XDG[kind]
    env = os.environ
    if sys.platform == "linux" and not (
        env.get("ANDROID_DATA") == "/data" and env.get("ANDROID_ROOT") == "/system"
    ):
        value = env.get(var, "")
        base = _plain_abs(value) if value else None
        if base is None and not value:
            home = _plain_abs(env.get("HOME", ""))
            base = f"{home}/{default}" if home is not None else None
        if base is not None:
            return f"{base}/mlledger"
    import platformdirs

    got = platformdirs.user_data_path if kind == "data" else platformdirs.user_cache_path
    return str(got("mlledger"))


def data_dir() -> Path:
    """The user data folder of mlledger (where the default store lives)."""
    from pathlib import Path

    return Path(_user_folder("data"))


def spool_dir(url: str) -> str:
    """The spool folder of the store at ``url`` (in the user data dir, one per store): where
    a run's entries wait while the store refuses them."""
    import hashlib

    h = hashlib.sha256(url.encode()).hexdigest()[:16]
    return os.path.join(_user_folder("data"), "spool", h)


def spool_waiting(url: str) -> bool:
    """Whether runs of the store at ``url`` wait in its spool folder (checked without
    hashing ``url`` when no store has a spool at all, the usual case)."""
    return os.path.isdir(os.path.join(_user_folder("data"), "spool")) and os.path.isdir(
        spool_dir(url)
    )


def default_url() -> str:
    """``$MLLEDGER_URL``, else ``<user data dir>/mlledger/store``."""
    env = os.environ.get(URL)
    if env:
        return env
    return os.path.join(_user_folder("data"), "store")


def cache_folder() -> str:
    """:func:`cache_dir` as a string (which needs no pathlib)."""
    return _user_folder("cache")


_cache_dirs: dict[str, Path] = {}


def cache_dir() -> Path:
    """mlledger's cache folder (stat cache, catalogs); safe to delete.

    Follows platformdirs (``$XDG_CACHE_HOME`` on Linux), read each call so a
    changed environment is honoured.
    """
    folder = _user_folder("cache")
    got = _cache_dirs.get(folder)
    if got is None:
        from pathlib import Path

        got = _cache_dirs[folder] = Path(folder)
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
    import socket

    return socket.gethostname()
