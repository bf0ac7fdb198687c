"""The ``Ledger``: the one object users hold."""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import stat
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import canonical, run_entries
from .capture import code as _code
from .capture import files as _files
from .capture.environment import DEFAULT_ENV_VARS, environment, process_facts
from .capture.redact import REDACTED, is_secret_name, redact_text, redacted_repr
from .capture.values import (
    Encoded,
    describe,
    encode_redacted,
    jsonable_scalar,
    load_value,
    plain_number,
    why_not_stored,
)
from .encodable import dumps_storable
from .errors import (
    AmbiguousError,
    LedgerError,
    LedgerWarning,
    NotFoundError,
    PolicyError,
    StoreError,
    UsageError,
)
from .ids import day_path, is_run_id, whole_key
from .late import LateMarks
from .records import Artifact, RefEntry, record_digests
from .runs import Run, RunContext, SelfType, current_run, make_tracked, process_start
from .store import Store, cache_dir
from .store.store import _os_error

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .catalog import Catalog, RunList
    from .diff import RunDiff
    from .gc import GcReport
    from .lineage import Lineage
    from .store import VerifyReport

__all__ = ["Ledger", "LedgerRefs", "default_ledger", "set_default_ledger"]

F = TypeVar("F", bound=Callable[..., Any])

_MAX_PATH_ARG = 4096
#: seconds an object is trusted to exist after this process wrote or saw it
KNOWN_TTL = 60.0
_CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


class Ledger:
    """A ledger of runs in a store.

    ``Ledger()`` opens ``$MLLEDGER_URL``, else a folder in the user data dir;
    ``Ledger("s3://bucket/ml", endpoint_url=...)`` passes extra keyword
    arguments to fsspec as storage options.

    Capture options: ``capture_files`` (see files opened during a run),
    ``capture_include``/``capture_exclude`` (glob patterns on absolute paths),
    ``env_vars`` (more environment variable names to record),
    ``inline_limit`` (bytes of JSON a param may take before it is stored as
    an artifact instead of inline), ``start_delay`` (seconds a run may last
    before its start entry is written: shorter runs write one entry, not
    two; 0 writes it at once, so even a process killed in its first
    instant leaves an ``incomplete`` run).  ``algorithm`` (``xxh128`` or ``sha256``)
    applies when the store is created; ``create=False`` refuses to create a
    store that does not exist yet (NotFoundError).
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        capture_files: bool = True,
        capture_include: Iterable[str] = (),
        capture_exclude: Iterable[str] = (),
        env_vars: Iterable[str] = (),
        inline_limit: int = 64 * 1024,
        start_delay: float = 0.1,
        algorithm: str | None = None,
        create: bool = True,
        **storage_options: Any,
    ) -> None:
        self.store = Store(url, algorithm=algorithm, create=create, **storage_options)
        self.url = self.store.url
        self.capture_files = capture_files
        self.capture_include = tuple(capture_include)
        self.capture_exclude = tuple(capture_exclude)
        self.env_vars = tuple(dict.fromkeys((*DEFAULT_ENV_VARS, *env_vars)))
        self.inline_limit = inline_limit
        self.start_delay = start_delay
        #: digest -> when it was last known to exist in the store (re-checked after KNOWN_TTL,
        #: so an object a gc elsewhere deleted is written again before a new run refers to it)
        self._known: dict[str, float] = {}
        self._late = LateMarks(self.store)
        #: the last environment record, as stored, and its digest
        self._env_blob: tuple[dict[str, Any], bytes, str] | None = None
        #: the last user-modules record, as stored, and its digest
        self._modules_blob: tuple[dict[str, str], bytes, str] | None = None
        #: fields of those two records that were escaped to be stored (warned in each run)
        self._env_problems: list[str] = []
        self._modules_problems: list[str] = []
        self._spool: Store | None = None
        self._spool_pending = False
        self._catalog: Catalog | None = None
        self._ignored: tuple[str, ...] | None = None
        self._file_cache: dict[tuple[str, str], tuple[float, str, str | None]] = {}
        self._host = socket.gethostname()
        self._user = _user_name()
        self._push_spool(quiet=True)

    def __repr__(self) -> str:
        return f"Ledger({self.url!r})"

    # ------------------------------------------------------------------ runs
    def run(
        self,
        name: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        message: str | None = None,
        tags: dict[str, Any] | None = None,
        capture_files: bool | None = None,
    ) -> RunContext:
        """A run around a block: ``with ledger.run("train", params={...}) as run:``."""
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"ledger.run() takes the run's name as a string, not {type(name).__qualname__}"
            )
        with _files.quiet():  # hashing the calling file is no enclosing run's input
            code, warns = self._caller_code()
        return RunContext(
            self,
            name,
            params=params,
            message=message,
            tags=tags,
            capture_files=capture_files,
            code=code,
            code_warnings=warns,
            kind="block",
        )

    def tracked(self, fn: Any = None, **options: Any) -> Any:
        """Decorator: every call of the function is a run.

        ``@ledger.tracked`` or ``@ledger.tracked(name=..., ignore=[...], capture_files=True)``.
        """
        return make_tracked(lambda: self, fn, **options)

    # ------------------------------------------------------------ internals
    def _check_policy(self, message: str | None) -> None:
        policy = self.store.config.get("policy") or {}
        if policy.get("require_message") and not (message and message.strip()):
            raise PolicyError(
                f"the store at {self.url} requires a message on every run: "
                "pass message='why this run' (or -m on the command line)"
            )

    def _ignored_paths(self) -> tuple[str, ...]:
        if self._ignored is not None:
            return self._ignored
        out = [str(cache_dir()), self._spool_dir()]
        if self.store.is_local:
            out.append(self.store.backend.root)  # type: ignore[attr-defined]
        self._ignored = tuple(out)
        return self._ignored

    def _caller_code(self) -> tuple[dict[str, Any] | None, list[str]]:
        """Code identity of a ``with ledger.run()`` block: the calling file and function."""
        try:
            frame = sys._getframe(2)
            while frame is not None and frame.f_code.co_filename.startswith(_PKG):
                frame = frame.f_back  # type: ignore[assignment]
            if frame is None:
                return None, []
            fc = frame.f_code
            filename = fc.co_filename
            display, digest = self._file_facts(filename)
            record: dict[str, Any] = {
                "kind": "block",
                "qualname": getattr(fc, "co_qualname", fc.co_name),
                "module": frame.f_globals.get("__name__", "__main__"),
                "line": frame.f_lineno,
                "file": display,
            }
            if digest is not None:
                record["module_digest"] = digest
            return record, []
        except Exception as e:
            return None, [f"code identity not recorded: {e}"]

    def _file_facts(self, filename: str) -> tuple[str, str | None]:
        """``(display path, digest)`` of a calling file, cached for a second: a tight
        loop of ``with ledger.run()`` blocks stats and hashes its file once a second."""
        now = time.monotonic()
        key = (filename, os.getcwd())
        got = self._file_cache.get(key)
        if got is not None and now - got[0] < 1.0:
            return got[1], got[2]
        digest = (
            _code.file_digest(filename, self.store.algorithm) if os.path.isfile(filename) else None
        )
        display = _code._display_path(filename)
        if len(self._file_cache) > 256:
            self._file_cache.clear()
        self._file_cache[key] = (now, display, digest)
        return display, digest

    def _tracked_context(
        self,
        fn: Callable[..., Any],
        params: dict[str, Any],
        *,
        name: str | None,
        opts: dict[str, Any],
    ) -> RunContext:
        code, warns = _code.function_code(fn, self.store.algorithm)
        return RunContext(
            self,
            name or code.get("qualname"),
            params=params,
            message=opts.get("message"),
            tags=opts.get("tags"),
            capture_files=opts.get("capture_files"),
            code=dict(code),
            code_warnings=list(warns),
            kind="call",
            checked=True,
        )

    def _fill_start(self, run: Run, code: dict[str, Any] | None, cwd: str) -> None:
        """Environment, code, git and process facts of a starting run."""
        rec = run._record
        rec["host"] = self._host
        rec["user"] = self._user
        proc = process_facts(cwd)
        proc["proc_start"] = process_start()
        rec["process"] = proc
        algo = self.store.algorithm
        try:
            env = environment(self.env_vars)  # the same object while nothing changed
            if self._env_blob is None or self._env_blob[0] is not env:
                # a value with no UTF-8 form (undecodable bytes) is escaped, with a warning
                data, self._env_problems = dumps_storable(env, "env")
                self._env_blob = (env, data, self.store.digest(data))
            for w in self._env_problems:
                run._warn(w)
            rec["env"] = self._put_blob(self._env_blob[1], run, self._env_blob[2])
        except Exception as e:
            run._warn(f"environment not recorded: {e}")
        code = dict(code) if code else {}
        try:
            modules = _code.user_modules(algo)
            if modules:
                last = self._modules_blob
                if last is None or last[0] != modules:
                    data, self._modules_problems = dumps_storable(modules, "code.modules")
                    last = self._modules_blob = (modules, data, self.store.digest(data))
                code["modules"] = self._put_blob(last[1], run, last[2])
                for w in self._modules_problems:
                    run._warn(w)
        except Exception as e:
            run._warn(f"user modules not recorded: {e}")
        rec["code"] = code
        try:
            git, diff, warns = _code.git_state(cwd)
            for w in warns:
                run._warn(w)
            if git is not None:
                git = dict(git)
                if diff:
                    git["diff"] = self._put_blob(diff, run)
                rec["git"] = git
        except Exception as e:
            run._warn(f"git state not recorded: {e}")

    def _param_value(self, k: str, v: Any, run: Run, *, inputs: bool = True) -> Any:
        """The recorded form of one param; files and non-scalar values become inputs too."""
        try:
            if is_secret_name(str(k)):
                if isinstance(v, str):  # masked wherever it shows up later (an exception)
                    run._secret_values.add(v)
                return REDACTED
            if isinstance(v, SelfType):
                return {"type": v.name}
            if v is None or (isinstance(v, (bool, int, float)) and type(v) in (bool, int, float)):
                return jsonable_scalar(v)
            plain = plain_number(v)
            if plain is not None:  # numpy.float64(0.01) is the number 0.01 to a query
                return jsonable_scalar(plain)
            if isinstance(v, (str, Path)):
                s = os.fspath(v)
                sig = _file_sig(s) if inputs and _looks_like_path(s) else None
                if sig is not None or (inputs and _looks_like_path(s) and _file_like(s)):
                    # a file the run creates or changes under this name is an output, also
                    # when C code wrote it (torch.save, to_parquet), which the hook misses
                    run._path_args.append((k, os.path.abspath(s), sig))
                if sig is not None:
                    why = self._not_an_input_folder(s)
                    if why:
                        run._warn(f"param {k}: {s!r} not stored: {why}")
                    else:
                        try:
                            run._inputs[k] = self._put_path(s)
                        except LedgerError as e:
                            run._warn(f"param {k}: {s!r} not stored: {e}")
                if isinstance(v, str) and len(s.encode("utf-8", "replace")) > self.inline_limit:
                    enc = encode_redacted(v)
                    assert enc is not None
                    art = self._store_encoded(enc, run)
                    if inputs:
                        run._inputs[k] = art
                    return {"type": "str", "len": len(s), "digest": art.digest}
                return redact_text(s)  # a database URL keeps no password
            enc = encode_redacted(v)
            if enc is None:
                run._warn(
                    f"param {k}: a {type(v).__qualname__} cannot be stored ({why_not_stored(v)}); "
                    "recorded as type and redacted repr"
                )
                return {"type": describe(v)["type"], "repr": _safe_repr(v, run, k)}
            art = self._store_encoded(enc, run)
            if inputs:
                run._inputs[k] = art
            if enc.format == "json" and len(enc.data) <= self.inline_limit:
                # a copy, as stored: the caller may change its object in place later
                return canonical.loads(enc.data)
            return {**enc.summary, "digest": art.digest}
        except Exception as e:
            run._warn(f"param {k} not recorded: {e!r}")
            return {"type": type(v).__qualname__, "error": "not recorded"}

    def _not_an_input_folder(self, path: str) -> str | None:
        """Why a folder named by a param is not snapshotted as an input, or None.

        A param such as ``sep="/"`` names a folder by accident: a filesystem root, the
        home folder, or a folder holding this ledger's own store, cache or spool (whose
        snapshot would change with every run; ``out_dir="."`` with the store under the
        working directory) is left alone.  Any other folder is data, and stored.
        """
        if not os.path.isdir(path):
            return None
        real = os.path.realpath(path)
        if os.path.dirname(real) == real:
            return "it is a filesystem root"
        if real == os.path.realpath(os.path.expanduser("~")):
            return "it is the home folder"
        inside = real.rstrip(os.sep) + os.sep
        for own in self._ignored_paths():
            mine = os.path.realpath(own)
            if mine == real or mine.startswith(inside):
                return (
                    f"it holds this ledger's own files ({mine}); "
                    "record the data in it with run.use(path)"
                )
        return None

    def _record_return(self, run: Run, result: Any) -> None:
        if result is None:
            return
        if inspect.isgenerator(result) or inspect.isasyncgen(result):
            # a generator function behind a decorator (a bare one is refused by @tracked)
            msg = (
                f"the call returned a {type(result).__name__}: its work runs while it is "
                "iterated, after this run ended, and is not recorded; track the code that "
                "consumes it instead"
            )
            run._warn(msg)
            with contextlib.suppress(Exception):  # warnings as errors: still return the result
                warnings.warn(f"mlledger: run {run.id}: {msg}", LedgerWarning, stacklevel=4)
            return
        with _files.quiet():  # hashing the result is not the run reading an input
            self._store_return(run, result)

    def _store_return(self, run: Run, result: Any) -> None:
        try:
            if (
                isinstance(result, (str, Path))
                and _looks_like_path(os.fspath(result))
                and os.path.exists(result)
            ):
                run._outputs["return"] = self._put_path(os.fspath(result))
                return
            art = self._put_value(result, run)
            if art is None:
                run._warn(
                    f"return value: a {type(result).__qualname__} cannot be stored "
                    f"({why_not_stored(result)}); recorded as type and redacted repr"
                )
                run._record.setdefault(
                    "returned",
                    {"type": describe(result)["type"], "repr": _safe_repr(result, run, "return")},
                )
                return
            run._outputs["return"] = art
        except Exception as e:
            run._warn(f"return value not recorded: {e!r}")

    def _collect_files(self, run: Run, watch: Any) -> None:
        """Hash and store the files a run opened: written ones are outputs, read ones inputs."""
        # a path argument naming a file the run only wrote (an output path that
        # happened to exist from an earlier run) was not read: it is no input
        for name, art in list(run._inputs.items()):
            if art.path and art.kind == "file":
                real = os.path.realpath(art.path)
                if real in watch.writes and real not in watch.reads:
                    del run._inputs[name]
        known_in = {os.path.realpath(a.path) for a in run._inputs.values() if a.path}
        # outputs: a file written is recorded under its path even when it is also the
        # return value (``RUN/model.pt`` and ``RUN/return`` both name it); only a file
        # saved explicitly (run.save) under the same path is not recorded twice
        known_out = {
            os.path.realpath(a.path) for n, a in run._outputs.items() if a.path and n != "return"
        }
        for path in watch.writes:
            name = _display(path, watch.cwd)
            if path in watch.read_digests and path not in known_in:
                run._inputs.setdefault(name, watch.read_digests[path])
            if path not in known_out and name not in run._outputs:
                self._record_file(run, run._outputs, name, path, role="output", verb="written")
        for path in watch.reads:
            name = _display(path, watch.cwd)
            if path not in watch.writes and path not in known_in and name not in run._inputs:
                self._record_file(run, run._inputs, name, path, role="input", verb="read")

    def _collect_path_outputs(self, run: Run, watch: Any) -> None:
        """Files named by path arguments that the run created or changed: outputs (the
        hook misses files written by C code).  A file the run overwrote without reading
        it is no input: its old content was never used."""
        known = {
            os.path.realpath(a.path) for n, a in run._outputs.items() if a.path and n != "return"
        }
        for param, path, before in run._path_args:
            after = _file_sig(path)
            if after is None or after == before or after[3]:  # missing, unchanged, a folder
                continue
            real = os.path.realpath(path)
            if not watch.wants(real):  # capture_exclude, the interpreter, temp folders...
                continue
            shown = _display(real, watch.cwd)
            old = run._inputs.get(param)
            if old is not None and old.kind == "file" and real not in watch.reads:
                del run._inputs[param]
            if real in known or shown in run._outputs:
                continue
            known.add(real)
            self._record_file(run, run._outputs, shown, real, role="output", verb="written")

    def _record_file(
        self, run: Run, into: dict[str, Artifact], name: str, path: str, *, role: str, verb: str
    ) -> None:
        """Store one file the run opened; a vanished or unreadable file is a warning."""
        if not os.path.isfile(path):
            if not os.path.exists(path):
                run._warn(f"{name} was {verb} during the run but deleted before it was hashed")
            return
        try:
            into[name] = self._put_path(path)
        except LedgerError as e:
            run._warn(f"{role} {name} not stored: {e}")

    def _after_run(self, run: Run) -> None:
        if self._catalog is not None:
            with contextlib.suppress(Exception):
                self._catalog.add_run(run.record)
        if self._spool_pending:
            self._push_spool(quiet=True)

    # ------------------------------------------------------------- storing
    def _put_path(self, path: str, run: Run | None = None) -> Artifact:
        """Store a file or folder (spooled locally if the store fails)."""
        try:
            got = self.store.put(path)
        except LedgerError as e:
            if not isinstance(e, StoreError) or isinstance(e, NotFoundError):
                raise
            got = self._spool_store(e, run or current_run()).put(path)
        except OSError as e:
            raise _os_error(path, e) from e
        self._known[got.digest] = time.monotonic()
        return Artifact(
            got.digest,
            got.size,
            got.kind,
            path=_display(path, os.getcwd()),
            files=got.files if got.kind == "tree" else None,
        )

    def _put_value(self, value: Any, run: Run | None = None) -> Artifact | None:
        """Store a value (secret-looking keys of a mapping redacted); None if it cannot be."""
        enc = encode_redacted(value)
        if enc is None:
            return None
        return self._store_encoded(enc, run)

    def _store_encoded(self, enc: Encoded, run: Run | None) -> Artifact:
        d = self._put_blob(enc.data, run)
        return Artifact(d, len(enc.data), "value", format=enc.format)

    def _put_blob(self, data: bytes, run: Run | None, digest: str | None = None) -> str:
        """Store ``data`` (its ``digest`` when the caller knows it) unless written lately."""
        d = digest or self.store.digest(data)
        now = time.monotonic()
        if now - self._known.get(d, -KNOWN_TTL) < KNOWN_TTL:
            return d
        try:
            self.store.backend.create(self.store.key(d), data)
        except (StoreError, OSError) as e:
            self._spool_store(e, run).put_bytes(data)
        self._known[d] = now
        return d

    def _write_entry(
        self, key: str, data: bytes, run: Run | None, *, ordered: bool = True
    ) -> None:
        """Create a run's entry in the store, or in the spool when the store refuses it.

        An ``ordered`` entry (start, metric chunk, end: what readers follow to objects
        and to other entries) goes to the spool while the spool holds anything, so it
        is never published before what it refers to (see spool.py); heartbeats and
        pins are not ordered.
        """
        if ordered and self._spool_pending and self._spool is not None:
            self._spool.create_entry(key, data)
            return
        try:
            created = self.store.create_entry(key, data)
        except (StoreError, OSError) as e:
            self._spool_store(e, run).create_entry(key, data)
            return
        self._late.wrote(key)  # into a day catalogs may have sealed: mark it
        if not created:
            raise StoreError(f"{key} already exists in {self.url}: run ids collided; this is a bug")

    def _read_entry(self, key: str) -> bytes | None:
        try:
            return self.store.read_entry(key)
        except NotFoundError:
            pass
        if self._spool is not None:
            with contextlib.suppress(NotFoundError):
                return self._spool.read_entry(key)
        return None

    # -------------------------------------------------------------- spool
    def _spool_dir(self) -> str:
        from .spool import spool_dir

        return spool_dir(self.url)

    def _spool_store(self, error: Exception, run: Run | None = None) -> Store:
        """The local spool that keeps what the store refused; warns loudly."""
        if self._spool is None:
            self._spool = Store(self._spool_dir(), algorithm=self.store.algorithm)
        if not self._spool_pending or (run is not None and not run._spooled):
            msg = (
                f"mlledger: the store at {self.url} refused a write ({error}); the run and "
                "everything it writes after this are kept "
                f"in the local spool {self._spool.url} and will be written to the store when it "
                "accepts writes again (next run, or Ledger.push_spool())"
            )
            warnings.warn(msg, LedgerWarning, stacklevel=4)
            if run is not None:
                run._warn(msg)
                run._spooled = True
        self._spool_pending = True
        return self._spool

    def _push_spool(self, *, quiet: bool = False) -> int:
        """Write everything in the local spool to the store; returns how many keys moved."""
        d = self._spool_dir()
        if not os.path.isdir(d):
            return 0
        from .spool import push

        spool = self._spool or Store(d, algorithm=self.store.algorithm)
        self._spool = spool
        try:
            moved = push(self.store, spool, mark=self._mark_late)
        except (LedgerError, OSError):
            self._spool_pending = True  # the store still refuses: try again after the next run
            if not quiet:
                raise
            return 0
        # another thread may have spooled an entry while this pushed: then the spool still
        # holds something, and later entries must keep following it there
        self._spool_pending = any(spool.backend.list("runs")) or any(spool.iter_objects())
        return moved

    def _mark_late(self, keys: list[str]) -> None:
        """Entries pushed from the spool into days catalogs may have sealed: mark those days."""
        days = {self._late.needs(k) for k in keys}
        for day in sorted(d for d in days if d is not None):
            self._late.mark(day)

    def push_spool(self) -> int:
        """Write runs kept in the local spool (while the store refused writes) to the store."""
        return self._push_spool(quiet=False)

    # ------------------------------------------------------------- reading
    def _load_run(self, run_id: str) -> Run:
        """A run straight from the store, by full id."""
        base = day_path(run_id)
        start = self._read_entry(f"{base}/start.json")
        end_key = f"{base}/end.json"
        end = self._read_entry(end_key)
        whole = start is None and end is None
        if whole:
            end_key = whole_key(run_id)  # a short run: one entry, no folder
            end = self._read_entry(end_key)
        if start is None and end is None:
            raise NotFoundError(f"no run {run_id} in the store at {self.url}")
        record = run_entries.merge(  # DamagedEntryError names a damaged entry
            run_id,
            None if start is None else (f"{base}/start.json", start),
            None if end is None else (end_key, end),
            whole=whole,
        )
        if record is None:
            raise NotFoundError(f"run {run_id} is being written; try again in a moment")
        if end is None:
            names = self.store.backend.list_dir(base)
            hbs = sorted(n for n in names if n.startswith("hb-"))
            if hbs:
                hb = self._read_entry(f"{base}/{hbs[-1]}")
                with contextlib.suppress(ValueError, TypeError, KeyError):  # damaged: no beat
                    if hb is not None and isinstance(at := canonical.loads(hb)["at"], str):
                        record["heartbeat"] = at
            record["metric_chunks"] = max(
                (int(n[8:14]) for n in names if n.startswith("metrics-") and n[8:14].isdigit()),
                default=0,
            )
            record.setdefault("status", "running")
        run = Run(self, record)
        run._resolve_status()
        return run

    def get(self, run_id: str) -> Run:
        """A run by id (or unique id prefix, once the catalog knows it)."""
        if isinstance(run_id, Run):
            return run_id
        if not isinstance(run_id, str) or not run_id:
            raise NotFoundError(f"a run id is a non-empty string, not {run_id!r}")
        if is_run_id(run_id.upper()):
            return self._load_run(run_id.upper())
        return self._get_by_prefix(run_id)

    def _get_by_prefix(self, prefix: str) -> Run:
        return self._load_run(self.catalog.resolve_run(prefix))

    @property
    def catalog(self) -> Catalog:
        """The local SQLite index of this store (synced on use)."""
        if self._catalog is None:
            from .catalog import Catalog

            self._catalog = Catalog(self)
        return self._catalog

    def load(self, target: str, *, allow_pickle: bool = False) -> Any:
        """A stored value back as a Python object (pickles only with ``allow_pickle=True``)."""
        digest, fmt = self._resolve_value(target)
        return load_value(self.store.get(digest), fmt, allow_pickle=allow_pickle)

    def _resolve_value(self, target: str) -> tuple[str, str | None]:
        art = self.resolve(target)
        if isinstance(art, Run):
            out = art.outputs.get("return")
            if out is None:
                raise NotFoundError(
                    f"run {art.id} has no return value; name an output: {art.id}/NAME"
                )
            return out.digest, out.format
        return art.digest, art.format

    def resolve(self, target: str) -> Artifact | Run:
        """Resolve a target to an artifact or a run.

        A target is a digest or unique hex prefix (at least 6), a run id or
        unique prefix, ``RUN/NAME`` for one named output (or input) of a run,
        ``@REF`` for a ref's current target, or a file or folder on disk that
        none of those readings finds (the artifact holding exactly its bytes).
        """
        if isinstance(target, Run):
            return target
        if isinstance(target, Artifact):
            return target
        if isinstance(target, os.PathLike):
            return self._artifact_on_disk(os.fspath(target))
        if not isinstance(target, str) or not target.strip():
            raise UsageError(f"a target is a digest, a run id, RUN/NAME or @REF, not {target!r}")
        t = target.strip()
        if t.startswith("@"):
            entry = self.store.refs.get(t[1:])
            return self.resolve(entry.target)
        try:
            return self._resolve_text(t)
        except NotFoundError:
            if not os.path.exists(os.path.expanduser(t)):
                raise
        return self._artifact_on_disk(t)

    def _artifact_on_disk(self, path: str) -> Artifact:
        """The artifact whose bytes a local file or folder holds now."""
        full = os.path.expanduser(path)
        if not os.path.exists(full):
            raise NotFoundError(
                f"no file or folder {path!r}; give a digest, run id, RUN/NAME or @REF"
            )
        digest = self.store.digest_path(full)
        try:
            return self.catalog.artifact(digest)
        except NotFoundError:
            raise NotFoundError(
                f"{path!r} holds bytes ({digest}) that no run used or produced and that are "
                "not in the store: it changed since, or it was never recorded"
            ) from None

    def _resolve_text(self, t: str) -> Artifact | Run:
        """A target string that is not a ref: RUN/NAME, a digest, or a run or hex prefix."""
        if "/" in t and ":" not in t.split("/", 1)[0]:
            rid, _, name = t.partition("/")
            run = self.get(rid)
            art = run.outputs.get(name) or run.inputs.get(name)
            if art is None:
                names = ", ".join(sorted(run.outputs)) or "none"
                raise NotFoundError(f"run {run.id} has no output {name!r}; its outputs: {names}")
            return art
        cat = self.catalog
        if ":" in t:
            return cat.artifact(t)
        # a prefix may read as a run id and as a digest: try each reading it allows (an
        # ambiguous one raises at once; one that finds nothing is left out)
        lookups: list[Callable[[], Artifact | Run]] = []
        if all(c.upper() in _CROCKFORD for c in t):
            lookups.append(lambda: self.get(t))
        if len(t) >= 6 and all(c in "0123456789abcdefABCDEF" for c in t):
            lookups.append(lambda: cat.artifact(t))
        found: list[Artifact | Run] = []
        for look in lookups:
            with contextlib.suppress(NotFoundError):
                found.append(look())
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise AmbiguousError(
                f"{t!r} matches both a run and an artifact; give more characters or the "
                "digest's algo: prefix",
                [str(getattr(f, "id", getattr(f, "digest", ""))) for f in found],
            )
        raise NotFoundError(
            f"no run or artifact matches {t!r}: give a digest (or a hex prefix of at least 6), "
            "a run id (or prefix), RUN/NAME or @REF"
        )

    def restore(
        self,
        target: str,
        dest: str | os.PathLike[str],
        overwrite: bool = False,
        *,
        callback: Callback | None = None,
    ) -> Path:
        """Write an artifact (file or folder) to ``dest``, byte-identical.

        Refuses to replace an existing ``dest`` unless ``overwrite=True``.
        """
        got = self.resolve(target)
        if isinstance(got, Run):
            outs = got.outputs
            distinct = {a.digest: a for a in outs.values()}
            if len(distinct) != 1:  # a written file that is also the return value is one
                names = ", ".join(sorted(outs)) or "none"
                raise NotFoundError(
                    f"run {got.id} has {len(outs)} outputs ({names}); name one: {got.id}/NAME"
                )
            got = next(iter(distinct.values()))
        return self.store.restore(got.digest, dest, overwrite=overwrite, callback=callback)

    # ----------------------------------------------------------- queries
    def runs(
        self,
        name: str | None = None,
        status: str | Iterable[str] | None = None,
        where: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> RunList:
        """Runs matching a filter, newest first (or by ``order_by``, ``-`` for descending).

        ``where`` is the query language: ``"params.lr > 0.01 and metrics.loss < 0.5"``.
        """
        from .catalog import RunList

        ids = self.catalog.query(
            name=name, status=status, where=where, order_by=order_by, limit=limit
        )
        return RunList(self, ids)

    def sync(self) -> int:
        """Bring the local catalog up to date with the store; returns how many runs changed."""
        return int(self.catalog.sync())

    def reindex(self) -> int:
        """Rebuild the local catalog from the store alone; returns how many runs it holds."""
        return int(self.catalog.reindex())

    def artifact(self, digest: str) -> Artifact:
        """An artifact by digest or unique prefix, with ``.producers`` and ``.consumers``."""
        if isinstance(digest, Artifact):
            digest = digest.digest
        if not isinstance(digest, str):
            raise UsageError(f"artifact() takes a digest string, not {type(digest).__qualname__}")
        return self.catalog.artifact(digest)

    def lineage(
        self,
        target: str | Run | Artifact,
        direction: str = "upstream",
        depth: int | None = None,
    ) -> Lineage:
        """Runs and artifacts around ``target``.

        ``upstream``: what produced it; ``downstream``: what was built from it; ``both``.
        ``depth`` counts runs, each with its direct inputs (upstream) or outputs: 1 is
        the run, or the runs that made (used) an artifact, with theirs; None: no limit.
        """
        from .lineage import Lineage, traverse

        got = self.resolve(target)  # type: ignore[arg-type]
        cat = self.catalog
        cat.ensure_synced()
        if isinstance(got, Run):
            root = got.id
            run_ids, digests, edges, names = traverse(
                cat, runs=[got.id], direction=direction, depth=depth
            )
        else:
            root = got.digest
            run_ids, digests, edges, names = traverse(
                cat, digests=[got.digest], direction=direction, depth=depth
            )
        runs = [cat.run(r) for r in sorted(run_ids)]
        arts: list[Artifact] = []
        for d in sorted(digests):
            row = cat._artifact_row(d)
            arts.append(row if row is not None else Artifact(d, 0, "file"))
        return Lineage(root, direction, runs, arts, edges, names)

    def diff(self, a: str | Run, b: str | Run) -> RunDiff:
        """What changed from run ``a`` to run ``b``: params, metrics, inputs, outputs, code, env."""
        from .diff import diff_runs

        ra = a if isinstance(a, Run) else self.get(a)
        rb = b if isinstance(b, Run) else self.get(b)
        return diff_runs(ra, rb)

    @property
    def refs(self) -> LedgerRefs:
        """Named refs (``model/prod``): set, get, history, rollback; targets resolved first."""
        return LedgerRefs(self)

    def verify(self, *, callback: Callback | None = None) -> VerifyReport:
        """Rehash every object; check every object a run or ref references exists and is
        sound, that every run entry is a readable record (``damaged`` lists those not), and
        every seal and link of the audit trail (``.trail``; ``.unchained`` counts entries
        from before the chain)."""
        import attrs

        report = attrs.evolve(self.store.verify(callback=callback), damaged=self._damaged_entries())
        corrupt = set(report.corrupt)
        present_missing: list[tuple[str, str]] = []
        problems = list(report.problems)
        for rid, digest in self._referenced_digests():
            if digest in corrupt:
                problems.append(f"run {rid} references the corrupt object {digest}")
            elif not self.store.has(digest):
                present_missing.append((rid, digest))
        for name in self.store.refs.names():
            try:
                entry = self.store.refs.get(name)
                self.resolve(entry.target)
            except LedgerError as e:
                problems.append(f"ref {name}: {e}")
        missing = sorted(set(report.missing) | {d for _, d in present_missing})
        from .audit import check_trail

        trail, unchained = check_trail(self.store)
        return attrs.evolve(
            report,
            missing=tuple(missing),
            dangling=tuple(sorted(set(report.dangling) | set(present_missing))),
            problems=tuple(problems),
            trail=tuple(trail),
            unchained=unchained,
        )

    def _damaged_entries(self) -> tuple[tuple[str, str], ...]:
        """``(key, what is wrong)`` of every run entry in the store that is not a readable
        record (read from the store: the catalog skips such runs)."""
        return tuple(run_entries.scan(self.store))

    def _referenced_digests(self) -> Iterable[tuple[str, str]]:
        """``(run id, digest)`` for every object the runs in the store reference."""
        cat = self.catalog
        cat.sync()
        for rid, rec_text in cat.records():
            for digest in record_digests(canonical.loads(rec_text)):
                yield rid, digest

    def gc(
        self,
        dry_run: bool = True,
        *,
        keep_days: float | None = None,
        grace_seconds: float = 3600.0,
    ) -> GcReport:
        """Delete what nothing keeps; by default only reports (``dry_run=True``).

        Kept: every ref's target and its whole upstream lineage; every run
        started within ``keep_days`` (all runs when None) with everything it
        references; any object younger than ``grace_seconds``; and every object
        a live run (in any process, on any machine) names in its start or pin
        entries, read last, so a run in progress never loses an object, however
        old.  Runs not kept are deleted too.
        """
        from .gc import collect

        return collect(self, dry_run=dry_run, keep_days=keep_days, grace_seconds=grace_seconds)


class LedgerRefs:
    """``ledger.refs``: the store's refs, with targets resolved through the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._refs = ledger.store.refs

    def _canonical(self, target: Any) -> tuple[str, str | None]:
        """The full target and the run the user named with it: a run, ``RUN/NAME``'s run,
        the run an ``@REF`` entry names; for bytes alone (a digest, a file on disk) the run
        that made them when exactly one did, else None (never a guess among equal bytes)."""
        got = self._ledger.resolve(target)
        if isinstance(got, Run):
            return got.id, got.id
        named = self._named_run(target)
        if named is not None:
            return got.digest, named
        producers = self._ledger.catalog.artifact(got.digest).producers if got.kind else ()
        return got.digest, (producers[0] if len(producers) == 1 else None)

    def _named_run(self, target: Any) -> str | None:
        """The run a target string names besides its bytes: ``RUN`` of ``RUN/NAME`` (as
        resolve reads it), or the run of the entry an ``@REF`` points at."""
        if not isinstance(target, str):
            return None
        t = target.strip()
        if t.startswith("@"):
            entry = self._refs.get(t[1:])
            return entry.run or self._named_run(entry.target)
        if "/" in t and ":" not in t.split("/", 1)[0]:
            with contextlib.suppress(NotFoundError):
                return self._ledger.get(t.partition("/")[0]).id
        return None

    def set(self, name: str, target: Any, message: str | None = None) -> RefEntry:
        """Point ``name`` at a target (digest, run, ``RUN/NAME``, ``@OTHER``); return the entry."""
        t, run = self._canonical(target)
        return self._refs.set(name, t, message, run=run, run_entry=self._run_entry(run))

    def _run_entry(self, run: str | None) -> str | None:
        """The digest of ``run``'s final entry (the ref entry pins the run's record), or None
        while it has not ended."""
        if run is None:
            return None
        from .audit import final_entry
        from .store.chain import entry_digest

        data = final_entry(self._ledger.store, run)
        return None if data is None else entry_digest(data, self._ledger.store.algorithm)

    def get(self, name: str) -> RefEntry:
        """The current entry of ``name`` (``.target``); NotFoundError if unset."""
        return self._refs.get(name)

    def history(self, name: str) -> list[RefEntry]:
        """Every move of ``name``, oldest first."""
        return self._refs.history(name)

    def rollback(self, name: str, to: Any = None, message: str | None = None) -> RefEntry:
        """Move ``name`` back to its previous target, or to ``to`` (a target or an entry number)."""
        run = None
        if to is not None and not isinstance(to, int):
            to, run = self._canonical(to)
        return self._refs.rollback(name, to, message, run=run, run_entry=self._run_entry(run))

    def names(self) -> list[str]:
        """Every ref name in the store."""
        return self._refs.names()


def _user_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd)
        return "unknown"


#: this package's folder: frames of its own code are skipped when looking for the caller
_PKG = os.path.dirname(__file__) + os.sep


def _file_sig(path: str) -> tuple[int, int, int, bool] | None:
    """``(mtime_ns, size, inode, is a folder)`` of what ``path`` names, or None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, stat.S_ISDIR(st.st_mode))


def _file_like(s: str) -> bool:
    """Whether a string naming nothing yet may name a file to come (``model.pt``,
    ``out/run1``): a dot or a separator; ``adam`` or ``resnet18`` are only checked when they
    name a file when the run starts."""
    return "." in s or "/" in s or os.sep in s


def _looks_like_path(s: str) -> bool:
    return 0 < len(s) < _MAX_PATH_ARG and "\n" not in s and "\0" not in s


def _display(path: str, cwd: str) -> str:
    try:
        rel = os.path.relpath(path, cwd)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _safe_repr(value: Any, run: Run, name: str) -> str:
    """The repr recorded for a value that is not stored: secrets redacted (redact.py)."""
    try:
        repr(value)
    except Exception as e:
        run._warn(f"{name}: repr() of a {type(value).__qualname__} failed ({e!r})")
        return f"<{type(value).__qualname__}>"
    return redacted_repr(value, run._secret_values)


_default: tuple[str, Ledger] | None = None
_explicit_default: Ledger | None = None
_default_lock = threading.Lock()


def set_default_ledger(ledger: Ledger | None) -> None:
    """Make ``ledger`` the one behind ``mlledger.tracked`` and ``mlledger.run`` (None: back to
    ``$MLLEDGER_URL`` / the user data dir)."""
    global _explicit_default
    _explicit_default = ledger


def default_ledger() -> Ledger:
    """The ledger behind ``mlledger.tracked`` and ``mlledger.run``: made on first use.

    One set with :func:`set_default_ledger` wins; otherwise it is made again
    when ``$MLLEDGER_URL`` (or the user data dir) changes.
    """
    global _default
    if _explicit_default is not None:
        return _explicit_default
    from .store.store import default_url

    url = default_url()
    got = _default
    if got is None or got[0] != url:
        with _default_lock:
            got = _default
            if got is None or got[0] != url:
                got = (url, Ledger(url))
                _default = got
    return got[1]
