"""The files a run opened or named, recorded as its inputs and outputs at its end."""

from __future__ import annotations

import os
import stat
from typing import Any, Protocol

from ..errors import LedgerError
from ..records import Artifact
from .state import WrittenRun


class PathStorer(Protocol):
    """What recording a file needs of the writer (``RunWriter``)."""

    def put_path(self, path: str, run: WrittenRun | None = None) -> Artifact: ...


__all__ = [
    "PathStorer",
    "collect_files",
    "collect_path_outputs",
    "display_relative",
    "file_sig",
    "record_file",
]


def file_sig(path: str) -> tuple[int, int, int, bool] | None:
    """``(mtime_ns, size, inode, is a folder)`` of what ``path`` names, or None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, stat.S_ISDIR(st.st_mode))


def display_relative(path: str, cwd: str) -> str:
    """``path`` relative to ``cwd`` when inside it, else as given (a relative path outside
    ``cwd`` is kept as written, unlike ``_fmt.display_path``, which normalises it)."""
    try:
        rel = os.path.relpath(path, cwd)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def collect_files(writer: PathStorer, run: WrittenRun, watch: Any) -> None:
    """Hash and store the files a run opened: written ones are outputs, read ones inputs."""
    # a path argument naming a file the run only wrote (an output path that
    # happened to exist from an earlier run) was not read: it is no input
    for name, art in list(run.state.inputs.items()):
        if art.path and art.kind == "file":
            real = os.path.realpath(art.path)
            if real in watch.writes and real not in watch.reads:
                del run.state.inputs[name]
    known_in = {os.path.realpath(a.path) for a in run.state.inputs.values() if a.path}
    # outputs: a file written is recorded under its path even when it is also the
    # return value (``RUN/model.pt`` and ``RUN/return`` both name it); only a file
    # saved explicitly (run.save) under the same path is not recorded twice
    known_out = {
        os.path.realpath(a.path) for n, a in run.state.outputs.items() if a.path and n != "return"
    }
    for path in watch.writes:
        name = display_relative(path, watch.cwd)
        if path in watch.read_digests and path not in known_in:
            run.state.inputs.setdefault(name, watch.read_digests[path])
        if path not in known_out and name not in run.state.outputs:
            record_file(writer, run, run.state.outputs, name, path, role="output", verb="written")
    for path in watch.reads:
        name = display_relative(path, watch.cwd)
        if path not in watch.writes and path not in known_in and name not in run.state.inputs:
            record_file(writer, run, run.state.inputs, name, path, role="input", verb="read")


def collect_path_outputs(writer: PathStorer, run: WrittenRun, watch: Any) -> None:
    """Files named by path arguments that the run created or changed: outputs (the
    hook misses files written by C code).  A file the run overwrote without reading
    it is no input: its old content was never used."""
    known = {
        os.path.realpath(a.path) for n, a in run.state.outputs.items() if a.path and n != "return"
    }
    for param, path, before in run.state.path_args:
        after = file_sig(path)
        if after is None or after == before or after[3]:  # missing, unchanged, a folder
            continue
        real = os.path.realpath(path)
        if not watch.wants(real):  # capture_exclude, the interpreter, temp folders...
            continue
        shown = display_relative(real, watch.cwd)
        old = run.state.inputs.get(param)
        if old is not None and old.kind == "file" and real not in watch.reads:
            del run.state.inputs[param]
        if real in known or shown in run.state.outputs:
            continue
        known.add(real)
        record_file(writer, run, run.state.outputs, shown, real, role="output", verb="written")


def record_file(
    writer: PathStorer,
    run: WrittenRun,
    into: dict[str, Artifact],
    name: str,
    path: str,
    *,
    role: str,
    verb: str,
) -> None:
    """Store one file the run opened; a vanished or unreadable file is a warning."""
    if not os.path.isfile(path):
        if not os.path.exists(path):
            run.state.warn(f"{name} was {verb} during the run but deleted before it was hashed")
        return
    try:
        into[name] = writer.put_path(path)
    except LedgerError as e:
        run.state.warn(f"{role} {name} not stored: {e}")
