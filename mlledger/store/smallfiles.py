"""Many small files into a local store at once: the local half of ``Store.put_tree``.

Each small file is read whole, hashed and created under its digest by one of a
few threads while the caller goes on walking the folder.  Nearly all of the
work is system calls (open, read, the unnamed temp file, write, ``linkat``),
which release the GIL, so the threads overlap each other's time in the
filesystem.  The fan-out folders (``objects/<algo>/<ab>``) are made and opened
once, and each object is created relative to its folder's descriptor instead
of through its whole path.

Atomicity is the local backend's (principles 2-4): the bytes go into an
unnamed ``O_TMPFILE`` file, which gets its name with ``linkat``; that fails on
an existing name (another writer's identical object: a success), and a
writer killed at any instant leaves no name behind.  Where the filesystem or
the system cannot do that, :meth:`LocalBackend.create` (a named temp file in
the same folder, then a link) writes each object.
"""

from __future__ import annotations

import errno
import os
import queue
import threading

from ..hashing import ALGORITHMS, check_algorithm
from . import layout
from .backends import LocalBackend, store_error
from .backends.local import proc_fd
from .localfiles import os_error, read_small
from .tree import TreeEntry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["BATCH", "SmallFileWriter", "SmallFiles", "default_workers"]

#: files handed to a worker thread at a time
BATCH = 64

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_READ = os.O_RDONLY | _CLOEXEC
_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
#: errors that mean "no unnamed temp files here" (as in the local backend)
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT)
_NO_LINK = (errno.EOPNOTSUPP, errno.EXDEV, errno.EPERM, errno.ENOENT, errno.EINVAL)

#: (rel, full path, size when stat'ed, executable)
Job = tuple[str, str, int, bool]


def default_workers() -> int:
    """Threads that store small files when the caller does not say: one.

    Measured on a 2-CPU machine with one CPU free (row 4 of ``bench_store``, 15 paired
    rounds against ``cp -r``): one thread 0.73-1.27x, two threads 1.54-2.39x with 2.4-4.6x
    the CPU. The per-file work holds the GIL between its system calls, so threads take
    turns rather than run side by side; ``put_tree(path, concurrency=N)`` still asks for
    N (a machine with many free CPUs and a slow filesystem may gain).
    """
    return 1


class SmallFileWriter:
    """Reads, hashes and creates small files in a local store; safe to call from threads.

    Call :meth:`close` when done: it closes the folder descriptors.
    """

    def __init__(self, backend: LocalBackend, algorithm: str) -> None:
        self.backend = backend
        self.algorithm = algorithm
        self._make = ALGORITHMS[check_algorithm(algorithm)][0]
        self._objects = os.path.join(backend.root, layout.objects_prefix(algorithm))
        self._folders: dict[str, int] = {}
        self._lock = threading.Lock()
        tmpfile = getattr(os, "O_TMPFILE", 0)
        self._proc = proc_fd() if tmpfile else None  # None: named temp files instead
        self._tmpfile = tmpfile | os.O_WRONLY | _CLOEXEC

    def put_batch(self, batch: list[Job]) -> list[TreeEntry]:
        """Store each small file of ``batch``; their tree entries.

        One tight loop (this is the hot path: 10,000 files of 1 KiB spend more time in
        Python's per-file steps than in copying bytes): each file is opened, read whole
        (all of it, if it grew since it was stat'ed), hashed and created.
        """
        algo = self.algorithm
        make = self._make
        out: list[TreeEntry] = []
        for rel, full, size, executable in batch:
            try:
                fd = os.open(full, _READ)
                try:
                    data = os.read(fd, size + 1)
                    if len(data) > size:  # it grew: read to its end
                        data = read_small(full, size)
                finally:
                    os.close(fd)
            except OSError as e:
                raise os_error(full, e) from e
            h = make()
            h.update(data)
            hexpart = h.hexdigest()
            proc = self._proc
            if proc is None or not self._create_unnamed(hexpart, data, proc):
                self.backend.create(layout.object_key(algo, hexpart), data)
            out.append(TreeEntry(rel, "file", f"{algo}:{hexpart}", len(data), executable))
        return out

    def _create_unnamed(self, hexpart: str, data: bytes, proc: int) -> bool:
        """Create the object through an unnamed temp file, linked by its descriptor's name
        under ``proc`` (``/proc/<pid>/fd``); False where that cannot be done here (then,
        and for the rest of this writer's life, the backend writes each object)."""
        folder = self._folder(hexpart[:2])
        name = hexpart[2:]
        try:
            fd = os.open(".", self._tmpfile, 0o444, dir_fd=folder)
        except OSError as e:
            if e.errno in _NO_TMPFILE:
                self._proc = None
                return False
            raise store_error("write", self._where(hexpart), e) from e
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.link(str(fd), name, src_dir_fd=proc, dst_dir_fd=folder, follow_symlinks=True)
        except FileExistsError:
            return True  # stored before (by anyone): the same bytes
        except OSError as e:
            if e.errno in _NO_LINK:
                self._proc = None
                return False
            raise store_error("write", self._where(hexpart), e) from e
        finally:
            os.close(fd)
        return True

    def _folder(self, ab: str) -> int:
        """The open fan-out folder ``objects/<algo>/<ab>``, made on first use."""
        fd = self._folders.get(ab)
        if fd is not None:
            return fd
        path = os.path.join(self._objects, ab)
        try:  # outside the lock: the other threads go on meanwhile
            os.makedirs(path, exist_ok=True)
            fd = os.open(path, _FOLDER)
        except OSError as e:
            raise store_error("write", path, e) from e
        with self._lock:
            first = self._folders.setdefault(ab, fd)
        if first != fd:  # another thread opened it first
            os.close(fd)
        return first

    def _where(self, hexpart: str) -> str:
        return os.path.join(self.backend.root, layout.object_key(self.algorithm, hexpart))

    def close(self) -> None:
        with self._lock:
            fds, self._folders = list(self._folders.values()), {}
        for fd in fds:
            os.close(fd)


class SmallFiles:
    """Small files of one tree stored by ``workers`` threads while the caller walks.

    :meth:`add` each file; :meth:`finish` waits and returns their tree entries (in no
    set order: a manifest sorts them), or raises the first error a file met.
    :meth:`close` (in a ``finally``) stops the threads if the walk itself failed.
    With one worker, or fewer files than one batch, everything runs in the caller's
    thread.
    """

    def __init__(
        self,
        backend: LocalBackend,
        algorithm: str,
        workers: int,
        callback: Callback | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"concurrency must be at least 1, not {workers}")
        self._writer = SmallFileWriter(backend, algorithm)
        self._algorithm = algorithm
        self._workers = workers
        self._callback = callback
        self._batch: list[Job] = []
        self._queue: queue.Queue[list[Job] | None] = queue.Queue(maxsize=4 * workers)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._entries: list[TreeEntry] = []
        self._error: BaseException | None = None
        self._abort = False  # the walk failed: queued batches are dropped
        self._closed = False

    def add(self, rel: str, full: str, size: int, executable: bool) -> None:
        """Store the file ``full`` (``size`` bytes when stat'ed) as the entry ``rel``."""
        if self._error is not None:  # a worker failed: stop walking, say why
            raise self._error
        self._batch.append((rel, full, size, executable))
        if len(self._batch) >= BATCH:
            batch, self._batch = self._batch, []
            if self._workers == 1:
                self._store(batch)
                return
            if not self._threads:
                self._start()
            self._queue.put(batch)

    def finish(self) -> list[TreeEntry]:
        """Wait for every file added; their entries.  Raises the first error met."""
        batch, self._batch = self._batch, []
        if batch:
            if self._threads:
                self._queue.put(batch)
            else:
                self._run(batch)
        self._shut_down()
        if self._error is not None:
            raise self._error
        return self._entries

    def close(self) -> None:
        """Drop what is still queued, stop the threads and close the folders (after a
        failed walk; after :meth:`finish` it does nothing)."""
        self._abort = True
        self._shut_down()

    def _shut_down(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for _ in self._threads:
                self._queue.put(None)
            for t in self._threads:
                t.join()
        finally:
            self._writer.close()

    def _start(self) -> None:
        for i in range(self._workers):
            t = threading.Thread(target=self._work, name=f"mlledger-put-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def _work(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None and not self._abort:
                self._run(batch)

    def _run(self, batch: list[Job]) -> None:
        try:
            self._store(batch)
        except BaseException as e:
            with self._lock:
                if self._error is None:
                    self._error = e

    def _store(self, batch: list[Job]) -> None:
        done = self._writer.put_batch(batch)
        with self._lock:
            self._entries.extend(done)
            if self._callback is not None:
                self._callback.relative_update(len(done))
