"""``RunWriter``: everything a run writes to the store or reads back from it.

Param values, return values, files opened, run entries, the local spool and
the caches that spare writes (objects known to exist, the environment and
modules records).  It knows the Store and capture, never the Ledger (joblib's
``Memory`` hands its worker the store backend, never itself): the Ledger makes
one writer and hands it to each run and run context.  Its methods are public
because it IS the internal API of ``runs/``.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import time
import warnings
from pathlib import Path
from typing import Any

from .. import canonical
from .._settings import cache_dir, host_name, user_name
from ..capture import code as _code
from ..capture import files as _files
from ..capture.arrays import array_digest, recall
from ..capture.environment import environment, process_facts
from ..capture.redact import REDACTED, is_secret_name, redact_text, redacted_repr
from ..capture.values import (
    Encoded,
    describe,
    encode_redacted,
    jsonable_scalar,
    plain_number,
    why_not_stored,
)
from ..errors import LedgerError, LedgerWarning, NotFoundError, StoreError
from ..late import LateMarks
from ..policy import Policy
from ..records import Artifact
from ..store import Store
from ..store.localfiles import os_error
from .active import CURRENT
from .binder import SelfType
from .caller import CallerCode
from .encodable import dumps_storable
from .outputs import collect_files, collect_path_outputs, display_relative, file_sig
from .process import process_start
from .state import WrittenRun

__all__ = ["KNOWN_TTL", "RunWriter", "WrittenRun"]

_MAX_PATH_ARG = 4096
#: an array param this large is looked for in the store before it is encoded
_LOOK_MIN = 1 << 20
#: seconds an object is trusted to exist after this process wrote or saw it
KNOWN_TTL = 60.0


class RunWriter:
    """Writes runs into ``store`` (and its local spool while the store refuses writes).

    ``env_vars`` are the environment variable names recorded with each run;
    ``inline_limit`` the bytes of JSON a param may take before it is stored as an
    artifact.  ``index`` is the catalog once the ledger opened one: each ended run
    is added to it.
    """

    def __init__(self, store: Store, *, env_vars: tuple[str, ...], inline_limit: int) -> None:
        self.store = store
        self.url = store.url
        self.env_vars = env_vars
        self.inline_limit = inline_limit
        #: the ledger's catalog once it opened one (anything with ``add_run(record)``)
        self.index: Any = None
        #: digest -> when it was last known to exist in the store (re-checked after KNOWN_TTL,
        #: so an object a gc elsewhere deleted is written again before a new run refers to it)
        self.known: dict[str, float] = {}
        self._late = LateMarks(store)
        #: the last environment record, as stored, and its digest
        self._env_blob: tuple[dict[str, Any], bytes, str] | None = None
        #: the last user-modules record, as stored, and its digest
        self._modules_blob: tuple[dict[str, str], bytes, str] | None = None
        #: fields of those two records that were escaped to be stored (warned in each run)
        self._env_problems: list[str] = []
        self._modules_problems: list[str] = []
        self._spool: Store | None = None
        #: the spool holds writes the store refused: ordered entries follow them there
        self.spool_pending = False
        self._ignored: tuple[str, ...] | None = None
        #: the code identity of a ``with ledger.run()`` block's caller
        self.code = CallerCode(store)
        self.host = host_name()
        self.user = user_name()
        #: the store's policy (``ledger.policy``), read again at most every few seconds
        self.policy = Policy(store)

    def check_policy(self, message: str | None, tags: dict[str, Any] | None = None) -> None:
        """Refuse (PolicyError) a run the store's policy does not allow."""
        self.policy.check_run(message, tags)

    def ignored_paths(self) -> tuple[str, ...]:
        if self._ignored is not None:
            return self._ignored
        out = [str(cache_dir()), self.spool_dir()]
        if self.store.is_local:
            out.append(self.store.backend.root)  # type: ignore[attr-defined]
        self._ignored = tuple(out)
        return self._ignored

    def fill_start(self, run: WrittenRun, code: dict[str, Any] | None, cwd: str) -> None:
        """Environment, code, git and process facts of a starting run."""
        rec = run.state.record
        rec["host"] = self.host
        rec["user"] = self.user
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
                run.state.warn(w)
            rec["env"] = self.put_blob(self._env_blob[1], run, self._env_blob[2])
        except Exception as e:
            run.state.warn(f"environment not recorded: {e}")
        code = dict(code) if code else {}
        try:
            modules = _code.user_modules(algo)
            if modules:
                last = self._modules_blob
                if last is None or last[0] != modules:
                    data, self._modules_problems = dumps_storable(modules, "code.modules")
                    last = self._modules_blob = (modules, data, self.store.digest(data))
                code["modules"] = self.put_blob(last[1], run, last[2])
                for w in self._modules_problems:
                    run.state.warn(w)
        except Exception as e:
            run.state.warn(f"user modules not recorded: {e}")
        rec["code"] = code
        try:
            git, diff, warns = _code.git_state(cwd)
            for w in warns:
                run.state.warn(w)
            if git is not None:
                git = dict(git)
                if diff:
                    git["diff"] = self.put_blob(diff, run)
                rec["git"] = git
        except Exception as e:
            run.state.warn(f"git state not recorded: {e}")

    def param_value(self, k: str, v: Any, run: WrittenRun, *, inputs: bool = True) -> Any:
        """The recorded form of one param; files and non-scalar values become inputs too."""
        try:
            if is_secret_name(str(k)):
                if isinstance(v, str):  # masked wherever it shows up later (an exception)
                    run.state.secret_values.add(v)
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
                sig = file_sig(s) if inputs and _looks_like_path(s) else None
                if sig is not None or (inputs and _looks_like_path(s) and _file_like(s)):
                    # a file the run creates or changes under this name is an output, also
                    # when C code wrote it (torch.save, to_parquet), which the hook misses
                    run.state.path_args.append((k, os.path.abspath(s), sig))
                if sig is not None:
                    why = self.not_an_input_folder(s)
                    if why:
                        run.state.warn(f"param {k}: {s!r} not stored: {why}")
                    else:
                        try:
                            run.state.inputs[k] = self.put_path(s)
                        except LedgerError as e:
                            run.state.warn(f"param {k}: {s!r} not stored: {e}")
                if isinstance(v, str) and len(s.encode("utf-8", "replace")) > self.inline_limit:
                    enc = encode_redacted(v)
                    assert enc is not None
                    art = self.store_encoded(enc, run)
                    if inputs:
                        run.state.inputs[k] = art
                    return {"type": "str", "len": len(s), "digest": art.digest}
                return redact_text(s)  # a database URL keeps no password
            # an array already stored (passed again, or hashed for a memoized call's key)
            # is not encoded again: one pass over its buffer, no copy
            fast = recall(v) or array_digest(v, self.store.algorithm)
            if fast is not None and self.has_object(fast[0], look=fast[1] >= _LOOK_MIN):
                if inputs:
                    run.state.inputs[k] = Artifact(fast[0], fast[1], "value", format="npy")
                return {**describe(v), "digest": fast[0]}
            enc = encode_redacted(v)
            if enc is None:
                run.state.warn(
                    f"param {k}: a {type(v).__qualname__} cannot be stored ({why_not_stored(v)}); "
                    "recorded as type and redacted repr"
                )
                return {"type": describe(v)["type"], "repr": _safe_repr(v, run, k)}
            known = fast[0] if fast is not None and fast[1] == len(enc.data) else None
            art = self.store_encoded(enc, run, known if enc.format == "npy" else None)
            if inputs:
                run.state.inputs[k] = art
            if enc.format == "json" and len(enc.data) <= self.inline_limit:
                # a copy, as stored: the caller may change its object in place later
                return canonical.loads(enc.data)
            return {**enc.summary, "digest": art.digest}
        except Exception as e:
            run.state.warn(f"param {k} not recorded: {e!r}")
            return {"type": type(v).__qualname__, "error": "not recorded"}

    def not_an_input_folder(self, path: str) -> str | None:
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
        for own in self.ignored_paths():
            mine = os.path.realpath(own)
            if mine == real or mine.startswith(inside):
                return (
                    f"it holds this ledger's own files ({mine}); "
                    "record the data in it with run.use(path)"
                )
        return None

    def record_return(self, run: WrittenRun, result: Any) -> None:
        if result is None:
            return
        if inspect.isgenerator(result) or inspect.isasyncgen(result):
            # a generator function behind a decorator (a bare one is refused by @tracked)
            msg = (
                f"the call returned a {type(result).__name__}: its work runs while it is "
                "iterated, after this run ended, and is not recorded; track the code that "
                "consumes it instead"
            )
            run.state.warn(msg)
            with contextlib.suppress(Exception):  # warnings as errors: still return the result
                warnings.warn(f"mlledger: run {run.id}: {msg}", LedgerWarning, stacklevel=4)
            return
        with _files.quiet():  # hashing the result is not the run reading an input
            self.store_return(run, result)

    def store_return(self, run: WrittenRun, result: Any) -> None:
        try:
            if (
                isinstance(result, (str, Path))
                and _looks_like_path(os.fspath(result))
                and os.path.exists(result)
            ):
                run.state.outputs["return"] = self.put_path(os.fspath(result))
                return
            art = self.put_value(result, run)
            if art is None:
                run.state.warn(
                    f"return value: a {type(result).__qualname__} cannot be stored "
                    f"({why_not_stored(result)}); recorded as type and redacted repr"
                )
                run.state.record.setdefault(
                    "returned",
                    {"type": describe(result)["type"], "repr": _safe_repr(result, run, "return")},
                )
                return
            run.state.outputs["return"] = art
        except Exception as e:
            run.state.warn(f"return value not recorded: {e!r}")

    def collect_files(self, run: WrittenRun, watch: Any) -> None:
        """Hash and store the files a run opened: written ones are outputs, read ones inputs."""
        collect_files(self, run, watch)

    def collect_path_outputs(self, run: WrittenRun, watch: Any) -> None:
        """Files named by path arguments that the run created or changed: outputs."""
        collect_path_outputs(self, run, watch)

    def after_run(self, run: WrittenRun) -> None:
        if self.index is not None:
            with contextlib.suppress(Exception):
                self.index.add_run(run.record)
        if self.spool_pending:
            self.push_spool(quiet=True)

    # ------------------------------------------------------------- storing
    def put_path(self, path: str, run: WrittenRun | None = None) -> Artifact:
        """Store a file or folder (spooled locally if the store fails)."""
        try:
            got = self.store.put(path)
        except LedgerError as e:
            if not isinstance(e, StoreError) or isinstance(e, NotFoundError):
                raise
            got = self.spool_store(e, run or CURRENT.get()).put(path)
        except OSError as e:
            raise os_error(path, e) from e
        self.known[got.digest] = time.monotonic()
        return Artifact(
            got.digest,
            got.size,
            got.kind,
            path=display_relative(path, os.getcwd()),
            files=got.files if got.kind == "tree" else None,
        )

    def put_value(self, value: Any, run: WrittenRun | None = None) -> Artifact | None:
        """Store a value (secret-looking keys of a mapping redacted); None if it cannot be."""
        enc = encode_redacted(value)
        if enc is None:
            return None
        return self.store_encoded(enc, run)

    def store_encoded(
        self, enc: Encoded, run: WrittenRun | None, digest: str | None = None
    ) -> Artifact:
        d = self.put_blob(enc.data, run, digest)
        return Artifact(d, len(enc.data), "value", format=enc.format)

    def has_object(self, digest: str, *, look: bool = True) -> bool:
        """Whether the store holds ``digest``: known from a recent write or sighting, else
        (with ``look``) asked of the store; a store that cannot answer says no."""
        now = time.monotonic()
        if now - self.known.get(digest, -KNOWN_TTL) < KNOWN_TTL:
            return True
        if not look:
            return False
        try:
            found = self.store.has(digest)
        except (LedgerError, OSError):
            return False
        if found:
            self.known[digest] = now
        return found

    def put_blob(self, data: bytes, run: WrittenRun | None, digest: str | None = None) -> str:
        """Store ``data`` (its ``digest`` when the caller knows it) unless written lately."""
        d = digest or self.store.digest(data)
        now = time.monotonic()
        if now - self.known.get(d, -KNOWN_TTL) < KNOWN_TTL:
            return d
        try:
            self.store.backend.create(self.store.key(d), data)
        except (StoreError, OSError) as e:
            self.spool_store(e, run).put_bytes(data)
        self.known[d] = now
        return d

    def write_entry(
        self, key: str, data: bytes, run: WrittenRun | None, *, ordered: bool = True
    ) -> None:
        """Create a run's entry in the store, or in the spool when the store refuses it.

        An ``ordered`` entry (start, metric chunk, end: what readers follow to objects
        and to other entries) goes to the spool while the spool holds anything, so it
        is never published before what it refers to (see spool.py); heartbeats and
        pins are not ordered.
        """
        if ordered and self.spool_pending and self._spool is not None:
            self._spool.create_entry(key, data)
            return
        try:
            self._late.before(key)  # a day catalogs may have sealed: marked before the entry
            created = self.store.create_entry(key, data)
        except (StoreError, OSError) as e:
            self.spool_store(e, run).create_entry(key, data)
            return
        self._late.wrote(key)  # into a day catalogs may have sealed: mark it
        if not created:
            raise StoreError(f"{key} already exists in {self.url}: run ids collided; this is a bug")

    def read_entry(self, key: str) -> bytes | None:
        try:
            return self.store.read_entry(key)
        except NotFoundError:
            pass
        if self._spool is not None:
            with contextlib.suppress(NotFoundError):
                return self._spool.read_entry(key)
        return None

    # -------------------------------------------------------------- spool
    def spool_dir(self) -> str:
        from .spool import spool_dir

        return spool_dir(self.url)

    def spool_store(self, error: Exception, run: WrittenRun | None = None) -> Store:
        """The local spool that keeps what the store refused; warns loudly."""
        if self._spool is None:
            self._spool = Store(self.spool_dir(), algorithm=self.store.algorithm)
        if not self.spool_pending or (run is not None and not run.state.spooled):
            msg = (
                f"mlledger: the store at {self.url} refused a write ({error}); the run and "
                "everything it writes after this are kept "
                f"in the local spool {self._spool.url} and will be written to the store when it "
                "accepts writes again (next run, or Ledger.push_spool())"
            )
            warnings.warn(msg, LedgerWarning, stacklevel=4)
            if run is not None:
                run.state.warn(msg)
                run.state.spooled = True
        self.spool_pending = True
        return self._spool

    def push_spool(self, *, quiet: bool = False) -> int:
        """Write everything in the local spool to the store; returns how many keys moved."""
        d = self.spool_dir()
        if not os.path.isdir(d):
            return 0
        from .spool import push

        spool = self._spool or Store(d, algorithm=self.store.algorithm)
        self._spool = spool
        try:
            moved = push(self.store, spool, mark=self.mark_late, before=self._late.before_all)
        except (LedgerError, OSError):
            self.spool_pending = True  # the store still refuses: try again after the next run
            if not quiet:
                raise
            return 0
        # another thread may have spooled an entry while this pushed: then the spool still
        # holds something, and later entries must keep following it there
        self.spool_pending = any(spool.backend.list("runs")) or any(spool.iter_objects())
        return moved

    def mark_late(self, keys: list[str]) -> None:
        """Entries pushed from the spool into days catalogs may have sealed: mark those days."""
        days = {self._late.needs(k) for k in keys}
        for day in sorted(d for d in days if d is not None):
            self._late.mark(day)


def _file_like(s: str) -> bool:
    """Whether a string naming nothing yet may name a file to come (``model.pt``,
    ``out/run1``): a dot or a separator; ``adam`` or ``resnet18`` are only checked when they
    name a file when the run starts."""
    return "." in s or "/" in s or os.sep in s


def _looks_like_path(s: str) -> bool:
    return 0 < len(s) < _MAX_PATH_ARG and "\n" not in s and "\0" not in s


def _safe_repr(value: Any, run: WrittenRun, name: str) -> str:
    """The repr recorded for a value that is not stored: secrets redacted (redact.py)."""
    try:
        repr(value)
    except Exception as e:
        run.state.warn(f"{name}: repr() of a {type(value).__qualname__} failed ({e!r})")
        return f"<{type(value).__qualname__}>"
    return redacted_repr(value, run.state.secret_values)
