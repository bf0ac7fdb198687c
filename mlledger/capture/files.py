"""See the files a run opens, through one ``sys.addaudithook`` hook.

The hook is installed once per process, on the first run that captures
files, and stays (audit hooks cannot be removed).  Outside runs it costs one
global check.  Inside a run it records paths opened for reading and for
writing; hashing happens when the run ends, except that a file read first
and then opened for writing is hashed just before the write, so the input
records what was read.

A new thread starts with an empty context, so it has no current run: with the
hook, ``threading.Thread.start`` is wrapped to note the run current where a
thread was started, and that thread's files are that run's (also while other
runs are active, and inside a child run).  A thread started while the hook is
suspended for mlledger's own work (the threads that store a folder) stays
suspended.  Files opened by C code (a library
writing through its own file API) raise no audit event and are not seen.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import inspect
import os
import site
import sys
import sysconfig
import tempfile
import threading
import weakref
from collections.abc import Iterable
from typing import Any

__all__ = ["FileWatch", "install_hook", "quiet", "suspend", "watch_begin", "watch_end"]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

_installed: list[bool] = []  # [True] once the hook is in (audit hooks cannot be removed)
_install_lock = threading.Lock()
#: watches active in this process; the hook returns at once when empty
_active: list[FileWatch] = []
_guard = threading.local()


#: removable drives mounted under an ignored root (udisks2: /run/media/<user>/<label>)
_MOUNTS = ("/run/media/",)


@functools.lru_cache(maxsize=1)
def _default_ignored() -> tuple[str, ...]:
    roots: set[str] = set()
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        roots.add(os.path.realpath(p))
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            roots.add(os.path.realpath(sysconfig.get_paths()[name]))
    with contextlib.suppress(AttributeError):  # old virtualenv's site module lacks it
        roots.update(os.path.realpath(p) for p in site.getsitepackages())
    if site.ENABLE_USER_SITE and site.USER_SITE:
        roots.add(os.path.realpath(site.USER_SITE))
    roots.update(("/proc", "/dev", "/sys"))
    # the operating system's own files, which libraries read for their set-up (time zones,
    # CA certificates, locales, /etc/passwd for the user name), and /run (sockets, and
    # secrets a container mounts in /run/secrets): never a run's data.  /usr/share holds
    # data too (nltk_data, dict), so only its set-up folders; /run/media is kept (_MOUNTS)
    roots.update(("/etc", "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/run"))
    roots.update(
        f"/usr/share/{d}"
        for d in ("zoneinfo", "locale", "i18n", "ca-certificates", "mime", "fonts", "terminfo")
    )
    # mlledger itself, wherever it is installed (an editable install lives outside site-packages)
    roots.add(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    roots.add(os.path.realpath(tempfile.gettempdir()))
    return tuple(sorted(r.rstrip(os.sep) + os.sep for r in roots if r))


@functools.lru_cache(maxsize=64)
def _prefixes(paths: tuple[str, ...]) -> tuple[str, ...]:
    """Real paths as prefixes ending in a separator (cached: realpath stats every component)."""
    return tuple(os.path.realpath(p).rstrip(os.sep) + os.sep for p in paths)


@functools.lru_cache(maxsize=64)
def _inside(roots: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    """The roots that lie below ``prefix`` (both as separator-terminated prefixes)."""
    return tuple(r for r in roots if r.startswith(prefix) and r != prefix)


class FileWatch:
    """The files one run opened; filled by the hook, read when the run ends."""

    def __init__(
        self,
        owner: object,
        ignore: Iterable[str] = (),
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        cwd: str | None = None,
    ) -> None:
        self.owner = owner
        self.cwd = cwd or os.getcwd()
        self.cwd_prefix = _prefixes((self.cwd,))[0]
        self.ignored = _default_ignored()
        #: ignored folders inside the cwd (a project's own .venv): the cwd rule does not
        #: take them in
        self.ignored_inside = _inside(self.ignored, self.cwd_prefix)
        #: mlledger's own folders (store, cache, spool): ignored even under the cwd
        self.own = _prefixes(tuple(p for p in ignore if p))
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.reads: dict[str, None] = {}  # ordered set
        self.writes: dict[str, None] = {}
        self.read_digests: dict[str, Any] = {}  # path -> Stored, hashed before an overwrite
        self.hash_before_write: Any = None  # callable(path) set by the run
        self.thread = threading.get_ident()

    def wants(self, path: str) -> bool:
        if self.own and path.startswith(self.own):
            return False
        if self.include and any(fnmatch.fnmatch(path, pat) for pat in self.include):
            return True
        if self.exclude and any(fnmatch.fnmatch(path, pat) for pat in self.exclude):
            return False
        if path.startswith(self.cwd_prefix):
            return not (self.ignored_inside and path.startswith(self.ignored_inside))
        return not path.startswith(self.ignored) or path.startswith(_MOUNTS)

    def seen(self, path: str, writing: bool) -> None:
        if writing:
            if path in self.reads and path not in self.writes and path not in self.read_digests:
                fn = self.hash_before_write
                if fn is not None and os.path.isfile(path):
                    self.read_digests[path] = fn(path)
            self.writes[path] = None
        elif path not in self.writes and path not in self.reads and os.path.isfile(path):
            self.reads[path] = None  # only files that exist: a failed open read nothing


#: threads started while a run was current in the starting thread -> a weak reference
#: to that run (a new thread has no context of its own, so its files are found this way)
_thread_runs: weakref.WeakKeyDictionary[threading.Thread, Any] = weakref.WeakKeyDictionary()
#: threading's own table of live threads by ident (None where it is not there)
_threads: dict[int, threading.Thread] | None = getattr(threading, "_active", None)


def _owner_watch() -> FileWatch | None:
    from ..runs.active import current_run

    run = current_run()
    if run is None:
        # a thread has no context of its own: the run current where it was started
        # (looked up without current_thread(), which makes a dummy for a raw _thread)
        thread = _threads.get(threading.get_ident()) if _threads is not None else None
        ref = _thread_runs.get(thread) if thread is not None else None
        started_in = ref() if ref is not None else None
        if started_in is not None and started_in.active:
            run = started_in
    while run is not None:
        for w in _active:
            if w.owner is run:
                return w
        run = run.parent
    # a thread started elsewhere (a pool made before the run): when one run is active
    # in the process, its files are that run's
    tops = [w for w in _active if getattr(w.owner, "parent", None) is None]
    return tops[0] if len(tops) == 1 else None


def _patch_thread_start() -> None:
    """Wrap ``threading.Thread.start`` to remember the run current in the starting thread.

    Python has no audit event for a thread start before 3.13, and a new thread
    starts with an empty context; this is how a worker thread started inside a
    run (a pool made in it, a loader thread) has its files counted for that run
    even while other runs are active.  The wrapper only notes the thread and calls
    the original.
    """
    original = threading.Thread.start
    if getattr(original, "__mlledger__", False):
        return

    @functools.wraps(original)
    def start(self: threading.Thread) -> None:
        if getattr(_guard, "busy", False):  # mlledger's own work (put_tree's threads)
            _quiet_thread(self)
        if _active:
            with contextlib.suppress(Exception):  # noting it must never break start()
                from ..runs.active import current_run

                run = current_run()
                # a pool's worker serves whichever run submits next: it is not the
                # starting run's (the one-run-active rule still covers a pool then)
                if run is not None and not _is_pool_worker(self):
                    _thread_runs[self] = weakref.ref(run)
        original(self)

    start.__mlledger__ = True  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign]


def _quiet_thread(thread: threading.Thread) -> None:
    """Suspend the hook for the whole life of ``thread``, started while it was suspended in
    the starting thread: its opens are mlledger's own work, never a run's files."""
    inner = thread.run

    def run() -> None:
        _guard.busy = True
        inner()

    thread.run = run  # type: ignore[method-assign]


def _is_pool_worker(thread: threading.Thread) -> bool:
    target = getattr(thread, "_target", None)
    return getattr(target, "__module__", None) in _POOL_MODULES


#: modules whose threads are pool workers (ThreadPoolExecutor, asyncio's default executor)
_POOL_MODULES = frozenset({"concurrent.futures.thread", "multiprocessing.pool"})


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _active:
        return
    if getattr(_guard, "busy", False):
        return
    path, mode, flags = args
    if isinstance(path, int) or path is None:
        return
    caller = inspect.currentframe()
    caller = caller.f_back if caller is not None else None
    if caller is not None and caller.f_code.co_filename.startswith("<frozen importlib"):
        return  # the import system loading code: code identity records that, not inputs
    _guard.busy = True
    try:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        path = os.fspath(path)
        if isinstance(mode, str):
            writing = any(c in mode for c in "wax+")
        else:
            writing = bool((flags or 0) & _WRITE_FLAGS)
        full = os.path.realpath(path)
        watch = _owner_watch()
        if watch is not None and watch.wants(full):
            watch.seen(full, writing)
    except Exception:  # the hook must never break the user's open()
        pass
    finally:
        _guard.busy = False


def install_hook() -> None:
    if _installed:
        return
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)
            _patch_thread_start()
            _installed.append(True)


def watch_begin(watch: FileWatch) -> None:
    install_hook()
    _active.append(watch)


def watch_end(watch: FileWatch) -> None:
    with contextlib.suppress(ValueError):
        _active.remove(watch)


def suspend() -> Any:
    """Context manager: the hook ignores opens made by mlledger itself in this thread."""
    return _Suspend()


_NOTHING = contextlib.nullcontext()


def quiet() -> Any:
    """:func:`suspend` while any run watches files, else a no-op (the cheap case): for
    mlledger's own reads while a run starts (source for code identity, hashing a path
    argument), which are no run's inputs."""
    return _Suspend() if _active else _NOTHING


class _Suspend:
    def __enter__(self) -> None:
        self.prev = getattr(_guard, "busy", False)
        _guard.busy = True

    def __exit__(self, *exc: object) -> None:
        _guard.busy = self.prev
