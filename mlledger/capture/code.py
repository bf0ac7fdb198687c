"""Code identity: what code a run ran, with or without git.

- a function's qualified name, the digest of its source (closure values
  included), the digest of its module file;
- the digests of the user's own modules loaded in the process: every loaded
  file that belongs neither to the standard library nor to an installed
  distribution (mlledger included), so an edit to a helper module shows even
  without git;
- git: commit, branch, remote (credentials stripped), dirty flag and the
  dirty diff (stored as an object by the caller).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping, Set
from typing import Any

from ..hashing import digest_bytes
from .redact import strip_url_credentials
from .values import encode_value

__all__ = [
    "IDENTITY_KEYS",
    "code_identity",
    "function_code",
    "git_state",
    "source_code",
    "user_modules",
]

_fn_cache: dict[Any, tuple[dict[str, Any], list[str]]] = {}
_file_digests: dict[tuple[str, str], tuple[tuple[int, int], str]] = {}
#: [(len(sys.modules), {module name: real path})] of the user's modules
#: ``(len(sys.modules), the newest module object, {user module: (real path, module)})``
_modules_cache: list[tuple[int, object, dict[str, tuple[str, object]]]] = [(-1, None, {})]
_lock = threading.Lock()


def file_digest(path: str, algorithm: str) -> str | None:
    """Digest of a source file, cached by (size, mtime)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_size, st.st_mtime_ns)
    got = _file_digests.get((path, algorithm))
    if got is not None and got[0] == key:
        return got[1]
    try:
        with open(path, "rb") as f:
            d = digest_bytes(f.read(), algorithm)
    except OSError:
        return None
    _file_digests[(path, algorithm)] = (key, d)
    return d


def _closure_digest(fn: Callable[..., Any], algorithm: str) -> str | None:
    cells = getattr(fn, "__closure__", None)
    if not cells:
        return None
    parts: list[bytes] = []
    for name, cell in zip(fn.__code__.co_freevars, cells, strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            parts.append(f"{name}=<empty>".encode())
            continue
        if callable(value) and hasattr(value, "__code__"):
            # a helper function closed over counts by its own code and closure, not its name
            ident = _function_identity(value, algorithm)
            parts.append(f"{name}=<function {value.__qualname__} {ident}>".encode())
            continue
        enc = encode_value(value)  # never raises; None when the value cannot be stored
        if enc is not None:
            parts.append(name.encode() + b"=" + digest_bytes(enc.data, algorithm).encode())
        else:
            parts.append(f"{name}={type(value).__qualname__}".encode())
    return digest_bytes(b"\n".join(parts), algorithm)


#: functions whose identity is being worked out in this thread (closures can cycle)
_in_progress = threading.local()


def _function_identity(fn: Any, algorithm: str) -> str:
    """``source digest/closure digest`` of a function closed over by another one."""
    raw = inspect.unwrap(fn)
    if getattr(raw, "__code__", None) is None:
        return "?"
    # guarded per function object, not per code object: closures made by one factory
    # share their code but not their values (compose(f, compose(g, h)))
    busy: set[int] = _in_progress.__dict__.setdefault("functions", set())
    if id(raw) in busy:
        return "recursive"
    busy.add(id(raw))
    try:
        record, _warnings = function_code(fn, algorithm)
    finally:
        busy.discard(id(raw))
    return f"{record.get('source_digest')}/{record.get('closure_digest')}"


def _lambda_span(code: Any) -> str:
    """Where a lambda's body sits in its source lines (``line:col-line:col``, relative):
    two lambdas on one line share their source text, not their place in it."""
    positions = getattr(code, "co_positions", None)
    if positions is None:  # Python 3.10
        return ""
    spans = [p for p in positions() if None not in p]
    if not spans:
        return ""
    start = min((p[0], p[2]) for p in spans)
    end = max((p[1], p[3]) for p in spans)
    first = code.co_firstlineno
    return f"\n#lambda {start[0] - first}:{start[1]}-{end[0] - first}:{end[1]}"


def _const_repr(c: Any, algorithm: str) -> str:
    """A constant's repr that is the same in every process (set order follows the hash seed)."""
    if hasattr(c, "co_code"):
        return _bytecode_digest(c, algorithm)
    if isinstance(c, frozenset):
        return "frozenset({" + ", ".join(sorted(_const_repr(x, algorithm) for x in c)) + "})"
    if isinstance(c, tuple):
        return "(" + "".join(_const_repr(x, algorithm) + ", " for x in c) + ")"
    return repr(c)


def _bytecode_digest(code: Any, algorithm: str) -> str:
    parts = [code.co_code]
    parts.extend(_const_repr(c, algorithm).encode() for c in code.co_consts)
    parts.append(repr(code.co_names).encode())
    return digest_bytes(b"\0".join(parts), algorithm)


def function_code(fn: Callable[..., Any], algorithm: str) -> tuple[dict[str, Any], list[str]]:
    """The code record of ``fn`` and any warnings; cached per code object and closure."""
    raw = inspect.unwrap(fn)
    if isinstance(raw, (staticmethod, classmethod)):
        raw = raw.__func__
    code = getattr(raw, "__code__", None)
    closure = _closure_digest(raw, algorithm) if code is not None else None
    key = (code if code is not None else id(raw), closure, algorithm)
    got = _fn_cache.get(key)
    if got is not None:
        return got
    warnings: list[str] = []
    module = getattr(raw, "__module__", None) or "__main__"
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None) if mod is not None else None
    if code is not None:
        file = code.co_filename or file
    record: dict[str, Any] = {
        "kind": "function",
        "qualname": getattr(raw, "__qualname__", repr(raw)),
        "module": module,
    }
    if file:
        record["file"] = _display_path(file)
    try:
        source = inspect.getsource(raw)
        if code is not None and code.co_name == "<lambda>":
            source += _lambda_span(code)
        record["source_digest"] = digest_bytes(source.encode("utf-8"), algorithm)
    except (OSError, TypeError):
        if code is not None:
            record["source_digest"] = _bytecode_digest(code, algorithm)
            record["source_from"] = "bytecode"
            warnings.append(
                f"no source for {record['qualname']}: code identity is the bytecode digest"
            )
        else:
            warnings.append(f"no source or bytecode for {record['qualname']}")
    if closure is not None:
        record["closure_digest"] = closure
    if file and os.path.isfile(file):
        md = file_digest(file, algorithm)
        if md is not None:
            record["module_digest"] = md
    result = (record, warnings)
    if len(_fn_cache) > 10_000:
        _fn_cache.clear()
    _fn_cache[key] = result
    return result


#: the fields of a code record that say which code ran (``file`` says only where it sat)
IDENTITY_KEYS = ("kind", "qualname", "source_digest", "closure_digest", "module_digest")


def code_identity(
    code: Mapping[str, Any], modules: Mapping[str, str], *, where: bool = False
) -> dict[str, Any]:
    """What code ran, as one flat mapping: the function's or cell's identity fields and
    ``module:<name>`` -> digest of each of the user's own modules loaded then.

    The one notion of code identity: a diff compares it (``where=True`` adds the
    ``file`` the code sat in, which a diff shows), a memoized call keys on it (without
    ``file``: the same code run from another folder is the same code).
    """
    keys = (*IDENTITY_KEYS, "file") if where else IDENTITY_KEYS
    out = {k: code[k] for k in keys if k in code}
    out.update({f"module:{k}": v for k, v in modules.items()})
    return out


def source_code(source: str, kind: str, name: str, algorithm: str) -> dict[str, Any]:
    """The code record of a notebook cell or a script given as text."""
    return {
        "kind": kind,
        "qualname": name,
        "source_digest": digest_bytes(source.encode("utf-8"), algorithm),
    }


def _display_path(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


@functools.lru_cache(maxsize=1)
def _system_roots() -> tuple[str, ...]:
    roots = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(name)
        if p:
            roots.add(os.path.realpath(p))
    for p in (sys.prefix, sys.base_prefix):
        roots.add(os.path.realpath(os.path.join(p, "lib")))
    return tuple(r.rstrip(os.sep) + os.sep for r in roots)


@functools.lru_cache(maxsize=1)
def _distribution_top_levels() -> frozenset[str]:
    """Top-level import names that belong to an installed distribution (editable ones too)."""
    import importlib.metadata as md

    tops: set[str] = {"mlledger"}
    with contextlib.suppress(Exception):
        for name in md.packages_distributions():
            tops.add(name)
        for dist in md.distributions():
            direct = dist.read_text("direct_url.json") or ""
            if "editable" not in direct:  # before parsing the metadata: most are not
                continue
            dname = (dist.metadata["Name"] or "").replace("-", "_").lower()
            if dname:
                tops.add(dname)
    return frozenset(tops)


#: the real path of each module file seen (a file does not move while it is loaded)
_real_paths: dict[str, str] = {}


def _realpath(file: str) -> str:
    real = _real_paths.get(file)
    if real is None:
        real = _real_paths[file] = os.path.realpath(file)
    return real


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def user_modules(algorithm: str) -> dict[str, str]:
    """``{module name: file digest}`` of the user's own loaded modules.

    Which modules are the user's is worked out again only when the loaded modules
    changed; their digests are checked on every call (a stat each, cached by size and
    mtime), so an edited and reloaded module shows.
    """
    mods = sys.modules
    cached = _modules_cache[0]
    if not _still_loaded(mods, cached):
        with _lock:
            count, newest = len(mods), _newest(mods)  # before the scan: a later import rescans
            roots = _system_roots()
            outside: dict[str, tuple[str, object]] = {}
            for name, mod in list(mods.items()):
                file = getattr(mod, "__file__", None)
                if not file or not isinstance(file, str) or not file.endswith(".py"):
                    continue
                if name in ("__main__", "__mp_main__"):  # the script itself
                    continue
                real = _realpath(file)
                if real.startswith(roots) or "site-packages" in real or "dist-packages" in real:
                    continue
                outside[name] = (real, mod)
            # which installed distributions provide which names (reading every one's
            # metadata: ~0.2 s) is asked only about modules outside the installed folders
            tops: Set[str] = {"mlledger"}
            if any(_top(n) != "mlledger" for n in outside):
                tops = _distribution_top_levels()
            found = {n: got for n, got in outside.items() if _top(n) not in tops}
            cached = (count, newest, dict(sorted(found.items())))
            _modules_cache[0] = cached
    out: dict[str, str] = {}
    for name, (real, _) in cached[2].items():
        d = file_digest(real, algorithm)
        if d is not None:
            out[name] = d
    return out


_STALE = object()


def _newest(mods: dict[str, Any]) -> object:
    """The module imported last (dicts keep insertion order); _STALE if that cannot be told."""
    try:
        return mods[next(reversed(mods))]
    except (StopIteration, KeyError, RuntimeError):  # changed while looked at
        return _STALE


def _still_loaded(mods: dict[str, Any], cached: tuple[int, object, dict[str, Any]]) -> bool:
    """Whether the loaded modules are still those ``cached`` was worked out from.

    The count alone misses a module dropped and another imported in its place; the
    newest entry is the one a fresh import changes; and each user module must still be
    the very object found (``sys.modules[name] = a module loaded from another file``).
    """
    if len(mods) != cached[0]:
        return False
    newest = _newest(mods)
    if newest is not cached[1] or newest is _STALE:
        return False
    users = cached[2]
    return not users or all(mods.get(name) is mod for name, (_, mod) in users.items())


# ---------------------------------------------------------------------------
# git

_GIT_TTL = 5.0
_git_cache: dict[str, tuple[float, tuple[float, ...], dict[str, Any] | None, bytes, list[str]]] = {}


def _run_git_bytes(args: list[str], cwd: str) -> bytes:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10, check=False)
    if out.returncode != 0:
        err = out.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(err or f"git {args[0]} failed")
    return out.stdout


def _run_git(args: list[str], cwd: str) -> str:
    return _run_git_bytes(args, cwd).decode("utf-8", "replace")


def _find_git_dir(start: str) -> str | None:
    d = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _stamp(root: str) -> tuple[float, ...]:
    out = []
    for name in ("HEAD", "index"):
        try:
            out.append(os.stat(os.path.join(root, ".git", name)).st_mtime)
        except OSError:
            out.append(0.0)
    return tuple(out)


#: (cwd, PATH) -> (when, repository root, git found): the walk up and the PATH scan, cached
_where_cache: dict[tuple[str, str], tuple[float, str | None, bool]] = {}


def git_state(cwd: str | None = None) -> tuple[dict[str, Any] | None, bytes, list[str]]:
    """``(git record or None, dirty diff bytes, warnings)`` for the repository around ``cwd``.

    Cached for a few seconds per repository (and refreshed at once when HEAD
    or the index changes), so tracking in a tight loop does not fork git each time.
    """
    cwd = cwd or os.getcwd()
    now = time.monotonic()
    where_key = (cwd, os.environ.get("PATH", ""))
    where = _where_cache.get(where_key)
    if where is None or now - where[0] >= _GIT_TTL:
        where = (now, _find_git_dir(cwd), shutil.which("git") is not None)
        _where_cache[where_key] = where
    root = where[1]
    if root is None:
        return None, b"", [f"not a git repository ({cwd}): git state not recorded"]
    if not where[2]:
        return None, b"", ["git is not on PATH: git state not recorded"]
    stamp = _stamp(root)
    got = _git_cache.get(root)
    if got is not None and now - got[0] < _GIT_TTL and got[1] == stamp:
        return got[2], got[3], got[4]
    warnings: list[str] = []
    record: dict[str, Any] | None = None
    diff = b""
    try:
        commit = _run_git(["rev-parse", "HEAD"], root).strip()
    except Exception as e:
        commit = None
        warnings.append(f"git rev-parse failed ({e}): no commit recorded")
    try:
        branch = _run_git(["rev-parse", "--abbrev-ref", "HEAD"], root).strip() or None
    except Exception:
        branch = None
    remote = None
    try:
        url = _run_git(["remote", "get-url", "origin"], root).strip()
        remote = strip_url_credentials(url) or None
    except Exception:
        remote = None
    try:
        status = _run_git(["status", "--porcelain", "--untracked-files=no"], root)
        dirty = bool(status.strip())
        if dirty and commit:
            # the bytes as git gives them: a diff of non-UTF-8 text must apply again
            diff = _run_git_bytes(["diff", "HEAD", "--no-color", "--no-ext-diff"], root)
    except Exception as e:
        dirty = False
        warnings.append(f"git status failed ({e}): dirty state not recorded")
    record = {"commit": commit, "branch": branch, "remote": remote, "dirty": dirty, "root": root}
    _git_cache[root] = (now, stamp, record, diff, warnings)
    return record, diff, warnings


def clear_git_cache() -> None:
    _git_cache.clear()
    _where_cache.clear()
