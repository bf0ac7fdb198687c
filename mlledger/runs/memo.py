"""Memoization: ``tracked(cache=True)`` answers a call from a finished run of the same call.

The **call key** is a digest over the function's code identity (the one
``capture.code.code_identity`` a diff compares: its source, closure, module file
and every user module loaded), the Python version and installed packages, and
the params: scalars and strings as they are, every other value by the digest of
its stored form (a numpy array's digest is worked out over its buffer in place,
and handed to the writer, so neither a hit nor a miss hashes it twice).  Files a
run read (path arguments, files opened during the run) cannot be known before
the call: the memo entry lists them with their digests, and an entry answers
only while they still have those bytes.

A **hit** loads the recorded return value (verified), restores the run's output
files that are missing, and writes one small run entry (``status="cached"``,
``cached_from=<run id>``, the original's params, inputs and outputs).  A **miss**
runs the call as a tracked run and, once it finished, appends a memo entry
(``store/cacheindex.py``; what an entry holds and what a hit writes:
``memoentry.py``).  A memo entry that cannot answer (its value was
deleted, an entry damaged) is a miss with a :class:`LedgerWarning`; nothing about
the cache ever raises into the user's code, but a policy that refuses the run.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .. import canonical
from .._settings import cache_enabled
from ..capture import arrays
from ..capture import files as _files
from ..capture.code import code_identity, function_code, user_modules
from ..capture.environment import environment
from ..capture.redact import REDACTED, is_secret_name, redact_text
from ..capture.values import encode_redacted, jsonable_scalar, load_value, plain_number
from ..errors import DamagedEntryError, LedgerError, LedgerWarning, PolicyError, UsageError
from ..hashing import digest_bytes
from ..records import now_iso
from ..store.cacheindex import CacheIndex, function_key
from .active import CURRENT
from .binder import Binder, SelfType
from .context import RunContext, RunMaker
from .memoentry import can_answer, entry_doc, return_form, run_exists, write_cached_run
from .run import Run
from .writer import RunWriter

__all__ = ["Memo", "cache_mode"]

#: a string param longer than this is keyed by its digest
_LONG_STR = 4096


def cache_mode(value: Any) -> bool | str:
    """The checked ``cache=`` option of ``tracked``: False, True or ``"pickle"``."""
    if value is None or value is False:
        return False
    if value is True or value == "pickle":
        return value  # type: ignore[no-any-return]
    raise UsageError(
        f"tracked(cache=...) takes True, False or 'pickle', not {value!r}: cache=True reuses "
        "results stored as JSON, npy, parquet or torch; cache='pickle' also unpickles"
    )


class _Uncacheable(Exception):
    """This call cannot be keyed (a param that cannot be stored): it runs, unmemoized."""


class _Probe:
    """A call's key and what its lookup found."""

    __slots__ = ("call", "code", "function", "hints", "started", "t0")

    def __init__(self, function: str, call: str, code: dict[str, Any], hints: Any) -> None:
        self.function = function
        self.call = call
        self.code = code
        #: id(value) -> (value, digest, size) of the arrays hashed for the key
        self.hints: dict[int, tuple[Any, str, int]] = hints
        self.started = now_iso()
        self.t0 = time.perf_counter()


class _Hit:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class Memo:
    """The memo of one tracked function (``cache`` is True or ``"pickle"``)."""

    def __init__(
        self, fn: Callable[..., Any], binder: Binder | None, cache: bool | str, opts: dict[str, Any]
    ) -> None:
        if binder is None:
            raise TypeError(
                f"tracked(cache=...) needs a function whose signature can be read; "
                f"{getattr(fn, '__qualname__', fn)!r} has none: wrap it in a def"
            )
        self.fn = fn
        self.binder = binder
        self.allow_pickle = cache == "pickle"
        self.opts = opts
        raw = inspect.unwrap(fn)
        self.qualname = f"{getattr(raw, '__module__', None) or '__main__'}." + str(
            getattr(raw, "__qualname__", repr(raw))
        )
        self._packages: tuple[object, str, str] | None = None

    # -- the call ----------------------------------------------------------------
    def call(
        self,
        maker: Callable[[], RunMaker],
        start: Callable[[], RunContext | None],
        args: Any,
        kwargs: Any,
    ) -> Any:
        """The memoized call: a hit returns the recorded value, a miss runs and records."""
        probe = self._probe(maker, args, kwargs)
        if isinstance(probe, _Hit):
            return probe.value
        with self._recording(start, probe) as result:
            result.append(self.fn(*args, **kwargs))
        return result[0]

    async def acall(
        self,
        maker: Callable[[], RunMaker],
        start: Callable[[], RunContext | None],
        args: Any,
        kwargs: Any,
    ) -> Any:
        """:meth:`call` for a coroutine function."""
        probe = self._probe(maker, args, kwargs)
        if isinstance(probe, _Hit):
            return probe.value
        with self._recording(start, probe) as result:
            result.append(await self.fn(*args, **kwargs))
        return result[0]

    @contextlib.contextmanager
    def _recording(
        self, start: Callable[[], RunContext | None], probe: _Probe | None
    ) -> Iterator[list[Any]]:
        """A miss: the run around the call (started while the probe's array digests are
        remembered), its return value recorded before the run ends and remembered in the
        memo index after; the block appends the value to the list it gets.  A call that
        raises records nothing (the run ends failed)."""
        result: list[Any] = []
        with contextlib.ExitStack() as stack:
            with arrays.remembered(probe.hints if probe is not None else None):
                ctx = start()
                run = stack.enter_context(ctx) if ctx is not None else None
            yield result
            if ctx is not None and run is not None:
                ctx.writer.record_return(run, result[0])
        if probe is not None and ctx is not None and run is not None:
            self._remember(ctx.writer, run, probe, result[0])

    # -- the key -----------------------------------------------------------------
    def _probe(self, maker: Callable[[], RunMaker], args: Any, kwargs: Any) -> _Probe | _Hit | None:
        """The call's key and, when a recorded run answers it, the hit; None when the call
        cannot be memoized (it runs as a plain tracked call)."""
        try:
            params = self.binder.params(args, kwargs)
        except TypeError:
            return None  # a bad call: the call itself raises the function's TypeError
        try:
            with _files.quiet():
                ledger = maker()
                probe = self._key(ledger, params, args, kwargs)
        except _Uncacheable as e:
            _warn(f"{self.qualname} is not memoized for this call: {e}")
            return None
        except Exception as e:
            _warn(f"{self.qualname} is not memoized for this call: the key failed ({e!r})")
            return None
        if not cache_enabled():
            return probe  # MLLEDGER_CACHE=0: every call runs (and is remembered)
        try:
            with _files.quiet():
                hit = self._lookup(ledger, probe)
        except PolicyError:
            raise
        except Exception as e:
            _warn(f"the memo of {self.qualname} could not be read ({e!r}); the call runs")
            return probe
        return hit if hit is not None else probe

    def _key(self, ledger: RunMaker, params: dict[str, Any], args: Any, kwargs: Any) -> _Probe:
        writer = ledger.writer
        algo = writer.store.algorithm
        code, _warns = function_code(self.fn, algo)
        modules = user_modules(algo)
        env = environment(writer.env_vars)
        hints: dict[int, tuple[Any, str, int]] = {}
        forms = {str(k): self._form(str(k), v, algo, hints) for k, v in params.items()}
        if self.binder.self_name == "self":  # a method: its instance's state is an argument
            obj = args[0] if args else kwargs.get("self")
            forms["self"] = self._value_form("self", obj, algo, hints)
        python = env.get("python", {})
        doc = {
            "format": 1,
            "function": self.qualname,
            "code": code_identity(code, modules),
            "python": f"{python.get('implementation')} {python.get('version')}",
            "packages": self._packages_digest(env.get("packages") or {}, algo),
            "params": forms,
        }
        call = digest_bytes(canonical.dumps(doc), algo).partition(":")[2]
        return _Probe(function_key(self.qualname, algo), call, dict(code), hints)

    def _packages_digest(self, packages: dict[str, str], algo: str) -> str:
        """The digest of the installed packages (worked out again when they change)."""
        got = self._packages
        if got is None or got[0] is not packages or got[1] != algo:
            got = self._packages = (packages, algo, digest_bytes(canonical.dumps(packages), algo))
        return got[2]

    def _form(self, k: str, v: Any, algo: str, hints: dict[int, tuple[Any, str, int]]) -> Any:
        """A param as the key sees it: its value, or its stored form's digest."""
        if is_secret_name(k):
            return REDACTED  # a credential changes who may read, not what comes out
        if isinstance(v, SelfType):
            return {"type": v.name}
        if v is None or type(v) in (bool, int, float):
            return jsonable_scalar(v)
        num = plain_number(v)
        if num is not None:
            return jsonable_scalar(num)
        if isinstance(v, (str, Path)):
            s = os.fspath(v)
            if len(s) > _LONG_STR:
                return {"str": digest_bytes(s.encode("utf-8", "surrogatepass"), algo)}
            return redact_text(s)
        return self._value_form(k, v, algo, hints)

    @staticmethod
    def _value_form(k: str, v: Any, algo: str, hints: dict[int, tuple[Any, str, int]]) -> Any:
        fast = arrays.array_digest(v, algo)
        if fast is not None:
            hints[id(v)] = (v, fast[0], fast[1])
            return {"npy": fast[0]}
        enc = encode_redacted(v)
        if enc is None:
            raise _Uncacheable(
                f"its argument {k} (a {type(v).__qualname__}) cannot be stored, so no key "
                "can name it; pass the values it holds instead, or ignore=[...] it"
            )
        return {enc.format: digest_bytes(enc.data, algo)}

    # -- the lookup ----------------------------------------------------------------
    def _lookup(self, ledger: RunMaker, probe: _Probe) -> _Hit | None:
        writer = ledger.writer
        index = CacheIndex(writer.store, probe.function, probe.call)
        problems: list[str] = []
        try:
            first = index.read(1)
        except DamagedEntryError as e:
            first = None
            problems.append(f"its memo entry 1 is damaged ({e.reason})")
        later: list[int] | None = None
        if first is None and not problems:
            later = index.later()  # entry 1 may have gone with its run (gc), not the rest
            if not later:
                return None  # never recorded: a plain miss
        writer.check_policy(*self._why(CURRENT.get()))  # a hit is a run: the policy applies
        if first is not None:
            got = self._answer(ledger, probe, first, problems)
            if got is not None:
                return got
        for seq in index.later() if later is None else later:
            try:
                entry = index.read(seq)
            except DamagedEntryError as e:
                problems.append(f"its memo entry {seq} is damaged ({e.reason})")
                continue
            if entry is not None:
                got = self._answer(ledger, probe, entry, problems)
                if got is not None:
                    return got
        for p in dict.fromkeys(problems):
            _warn(f"a recorded call of {self.qualname} is not reused: {p}; the call runs")
        return None

    def _answer(
        self, ledger: RunMaker, probe: _Probe, entry: dict[str, Any], problems: list[str]
    ) -> _Hit | None:
        """The hit ``entry`` gives, or None (a problem that makes it a miss is noted)."""
        store = ledger.writer.store
        for art in entry["files"].values():
            try:
                if store.digest_path(art["path"]) != art["digest"]:
                    return None  # the data changed: another entry, or a miss
            except (LedgerError, OSError, KeyError, TypeError):
                return None  # gone or unreadable: the call decides what that means
        run_id = entry["run"]
        if not run_exists(store, run_id):
            problems.append(f"run {run_id} it names is no longer in the store")
            return None
        for name, art in entry["outputs"].items():
            if not ledger.writer.has_object(art["digest"]):
                problems.append(
                    f"output {name} of run {run_id} ({art['digest']}) is no longer in the store"
                )
                return None
        ret = entry["return"]
        value: Any = None
        if ret.get("kind") == "value":
            if ret.get("format") == "pickle" and not self.allow_pickle:
                problems.append(
                    f"run {run_id} returned a value stored as pickle, and unpickling runs code "
                    "from the store: use tracked(cache='pickle') if you trust its writers"
                )
                return None
            try:
                data = store.get(ret["digest"])
                value = load_value(data, ret.get("format"), allow_pickle=self.allow_pickle)
            except (LedgerError, OSError, ValueError, ImportError) as e:
                problems.append(f"the value run {run_id} returned cannot be read ({e})")
                return None
        elif ret.get("kind") == "path":
            value = Path(ret["path"]) if ret.get("type") == "Path" else str(ret["path"])
        for name, art in entry["outputs"].items():
            where = art.get("path")
            if art.get("kind") in ("file", "tree") and where and not os.path.lexists(where):
                try:
                    store.restore(art["digest"], where)
                except (LedgerError, OSError) as e:
                    problems.append(f"output {name} could not be restored to {where} ({e})")
                    return None
        try:
            self._record_hit(ledger, probe, entry)
        except PolicyError:
            raise
        except Exception as e:
            _warn(f"the cached call of {self.qualname} could not be recorded ({e!r})")
        return _Hit(value)

    def _why(self, parent: Run | None) -> tuple[str | None, dict[str, Any] | None]:
        """The message and tags of a run of this call (a parent's carried on, as a tracked
        call's are)."""
        message = self.opts.get("message")
        tags = self.opts.get("tags")
        if parent is not None:
            if message is None:
                message = parent.state.record.get("message")
            inherited = parent.state.record.get("tags") or {}
            if inherited:
                tags = {**inherited, **(tags or {})}
        return message, tags

    def _record_hit(self, ledger: RunMaker, probe: _Probe, entry: dict[str, Any]) -> None:
        """Write the cached run's one entry: the original's params, inputs and outputs."""
        parent = CURRENT.get()
        message, tags = self._why(parent)
        write_cached_run(
            ledger.writer,
            entry,
            name=self.opts.get("name") or probe.code.get("qualname") or self.qualname,
            code=probe.code,
            parent=parent,
            message=message,
            tags=tags,
            started=probe.started,
            took=time.perf_counter() - probe.t0,
        )

    # -- after a miss ----------------------------------------------------------------
    def _remember(self, writer: RunWriter, run: Run, probe: _Probe, result: Any) -> None:
        """Append the memo entry of a run that finished; never raises."""
        try:
            if run.status != "finished" or run.state.detached:
                return
            ret, why = return_form(writer, run, result)
            if ret is None:
                _warn(f"{self.qualname} is not memoized: {why}")
                return
            doc = entry_doc(run, self.qualname, ret)
            files = doc["files"]
            index = CacheIndex(writer.store, probe.function, probe.call)
            index.add(doc, lambda e: e.get("files") == files and can_answer(writer, e))
        except Exception as e:
            _warn(f"the call of {self.qualname} (run {run.id}) is not memoized: {e!r}")


#: the package folder (mlledger/): a warning points at the first frame outside it
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _warn(message: str) -> None:
    """A :class:`LedgerWarning` pointing at the user's call (never raised into it)."""
    frame, level = inspect.currentframe(), 1
    while frame is not None and frame.f_code.co_filename.startswith(_OWN_DIR):
        frame, level = frame.f_back, level + 1
    with contextlib.suppress(Exception):  # warnings as errors: still no break of the call
        warnings.warn(f"mlledger: {message}", LedgerWarning, stacklevel=level)
