"""``RunContext``: ``with ledger.run(...)`` and a tracked call start a run on enter and
end it on exit."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import json
import os
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from .._settings import disabled, outer_run
from ..capture import code as _code
from ..capture import files as _files
from ..capture import resources as _resources
from ..capture.redact import (
    REDACTED,
    environ_secrets,
    is_secret_name,
    redact_text,
    scrub,
    secret_attributes,
)
from ..cost import priced
from ..errors import LedgerWarning, UsageError
from ..ids import day_path, new_run_id, whole_key
from ..records import Artifact, now_iso
from ..store.chain import seal_bytes
from . import heartbeat, sampler
from .active import CURRENT
from .run import MONITOR_FLUSH_SECONDS, Run
from .state import END_KEYS, START_KEYS, start_doc
from .writer import RunWriter

__all__ = ["RunContext", "RunMaker", "tracked_context"]

F = TypeVar("F", bound=Callable[..., Any])

#: the package folder (mlledger/): frames of its own code at the head of a traceback are skipped
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _user_tb(tb: Any) -> Any:
    """The traceback from the user's first frame: ``@tracked``'s own wrapper frames at its
    head are not the user's (the exception itself is left as it is)."""
    while (
        tb is not None
        and tb.tb_next is not None
        and tb.tb_frame.f_code.co_filename.startswith(_OWN_DIR)
    ):
        tb = tb.tb_next
    return tb


class RunMaker(Protocol):
    """What makes runs (the Ledger): its writer and its run settings, read at each start."""

    url: str
    start_delay: float
    capture_files: bool
    capture_include: tuple[str, ...]
    capture_exclude: tuple[str, ...]

    @property
    def writer(self) -> RunWriter: ...


def tracked_context(
    maker: RunMaker,
    fn: Callable[..., Any],
    params: dict[str, Any],
    *,
    name: str | None,
    opts: dict[str, Any],
) -> RunContext:
    """The run context of one call of the tracked function ``fn``."""
    code, warns = _code.function_code(fn, maker.writer.store.algorithm)
    return RunContext(
        maker,
        name or code.get("qualname"),
        params=params,
        message=opts.get("message"),
        tags=opts.get("tags"),
        capture_files=opts.get("capture_files"),
        code=dict(code),
        code_warnings=list(warns),
        kind="call",
        checked=True,
        sample=opts.get("sample"),
    )


class RunContext:
    """``with ledger.run(...) as run:``: starts a run on enter, ends it on exit.

    Also usable as a decorator: ``@ledger.run("name")``.
    """

    def __init__(
        self,
        ledger: RunMaker,
        name: str | None,
        *,
        params: dict[str, Any] | None = None,
        message: str | None = None,
        tags: dict[str, Any] | None = None,
        capture_files: bool | None = None,
        code: dict[str, Any] | None = None,
        code_warnings: list[str] | None = None,
        inputs: dict[str, Artifact] | None = None,
        kind: str = "block",
        checked: bool = False,
        baseline: str | None = None,
        sample: float | None = None,
    ) -> None:
        self.ledger = ledger
        #: seconds between samples of the process's CPU and memory (sampler.py), or None
        self.sample = sampler.check_interval(sample)
        self.writer = ledger.writer
        #: the caller already found tracking enabled (a tracked call checks MLLEDGER_DISABLE)
        self.checked = checked
        self.name = name
        self.params = params
        self.message = message
        self.tags = tags
        self.capture_files = capture_files
        self.code = code
        self.code_warnings = code_warnings or []
        self.pre_inputs = inputs
        self.kind = kind
        self.baseline = baseline
        self.run: Run | None = None
        #: the run of another process this one runs inside (``mlledger run``), if any
        self.outer_id: str | None = None
        self._token: contextvars.Token[Run | None] | None = None
        self._watch: _files.FileWatch | None = None
        self._res0: _resources.Start = (0.0, 0.0, 0.0)

    # -- start -----------------------------------------------------------------------
    def __enter__(self) -> Run:
        if self.run is not None:
            raise UsageError("this run context was already entered; call ledger.run() again")
        for what, value in (("params", self.params), ("tags", self.tags)):
            if value is not None and not isinstance(value, Mapping):
                raise TypeError(
                    f"ledger.run({what}=...) takes a dict, not a {type(value).__qualname__}: "
                    f"{what}={{'name': value}}"
                )
        parent = CURRENT.get()
        # a nested or tracked run carries on its parent's why and tags; so does a run of a
        # program that `mlledger run` runs, under that command's run (another process)
        outer = parent.state.record if parent is not None else outer_run(self.ledger.url)
        if outer is not None:
            if self.message is None:
                self.message = outer.get("message")
            inherited = outer.get("tags") or {}
            if inherited:
                self.tags = {**inherited, **(self.tags or {})}
        self.outer_id = outer.get("id") if parent is None and outer is not None else None
        if not self.checked and disabled():
            return self._enter_detached(None)
        self.writer.check_policy(self.message, self.tags)
        try:
            with _files.quiet():  # hashing path arguments is no enclosing run's input
                return self._start()
        except Exception as e:  # capture never breaks the user's code: run it untracked
            self._abandon()
            return self._enter_detached(e)

    def __call__(self, fn: F) -> F:
        """``@ledger.run("name")``: every call of ``fn`` runs inside a fresh run like this one."""
        if not callable(fn) or inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                "@ledger.run(...) decorates a plain or async function; for a generator, "
                "wrap the loop that consumes it in `with ledger.run(...)`"
            )
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with self._again():
                    return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._again():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def _again(self) -> RunContext:
        """A fresh context with the same settings (a context is entered once)."""
        return RunContext(
            self.ledger,
            self.name,
            params=self.params,
            message=self.message,
            tags=self.tags,
            capture_files=self.capture_files,
            code=self.code,
            code_warnings=self.code_warnings,
            inputs=self.pre_inputs,
            kind=self.kind,
            baseline=self.baseline,
            sample=self.sample,
        )

    def _enter_detached(self, error: Exception | None) -> Run:
        """A run that records nothing: tracking is disabled, or the run could not be started."""
        name = self.name or (self.code or {}).get("qualname") or "run"
        if error is not None:
            warnings.warn(
                f"mlledger: run {name!r} is not recorded: it could not be started in the store "
                f"at {self.ledger.url} ({error!r}); the code runs untracked",
                LedgerWarning,
                stacklevel=3,
            )
        run = self._new_run(name)
        run.state.detached = True
        run.state.record["tags"] = dict(self.tags or {})
        run.state.record["params"] = dict(self.params or {})
        self._token = CURRENT.set(run)
        return run

    def _abandon(self) -> None:
        """Undo a start that failed half-way."""
        if self._watch is not None:
            _files.watch_end(self._watch)
            self._watch = None
        if self.run is not None:
            heartbeat.unschedule(self.run)
            if self.sample:
                sampler.remove(self.run, last=False)
            self.run = None
        if self._token is not None:
            with contextlib.suppress(ValueError):
                CURRENT.reset(self._token)
            self._token = None

    def _new_run(self, name: str) -> Run:
        """The active run this context stands for: a fresh id, under the current run."""
        parent = CURRENT.get()
        record: dict[str, Any] = {
            "format": 1,
            "id": new_run_id(),
            "name": name,
            "kind": self.kind,
            "status": "running",
            "started_at": now_iso(),
            "parent_id": parent.id if parent is not None else self.outer_id,
            "message": scrub(self.message) if isinstance(self.message, str) else self.message,
            "tags": {},
            "params": {},
        }
        if self.baseline is not None:
            record["baseline"] = self.baseline
        run = Run(self.writer, record, active=True)
        if self.kind == "monitor":
            run.flush_seconds = MONITOR_FLUSH_SECONDS
        run.parent = parent
        self.run = run
        return run

    def _start(self) -> Run:
        ledger = self.ledger
        self._res0 = _resources.start()
        run = self._new_run(self.name or (self.code or {}).get("qualname") or "run")
        record = run.state.record
        for w in self.code_warnings:
            run.state.warn(w)
        try:
            record["tags"] = {
                str(k): (REDACTED if is_secret_name(str(k)) else redact_text(str(v)))
                for k, v in (self.tags or {}).items()
            }
        except Exception as e:
            run.state.warn(f"tags not recorded: {e}")
        params = self.params
        if params:
            out = record["params"]
            slow = self.writer.param_value
            for k, v in params.items():
                # numbers, bools and None under a plain name are kept as they are (the
                # common case, without the general path's checks); the rest go through it
                if type(v) in _PLAIN and type(k) is str and not is_secret_name(k):
                    out[k] = v if type(v) is not float or v - v == 0.0 else repr(v)
                else:
                    out[k] = slow(k, v, run)
        if self.pre_inputs:
            run.state.inputs.update(self.pre_inputs)
        cwd = os.getcwd()
        self.writer.fill_start(run, self.code, cwd)
        run.state.start_doc = start_doc(run.state)  # encoded only if it is ever written
        delay = ledger.start_delay
        if not delay or delay <= 0:
            run.ensure_started()
        capture = ledger.capture_files if self.capture_files is None else self.capture_files
        if capture:
            try:
                watch = _files.FileWatch(
                    run,
                    cwd=cwd,
                    ignore=self.writer.ignored_paths(),
                    include=ledger.capture_include,
                    exclude=ledger.capture_exclude,
                )
                watch.hash_before_write = self.writer.put_path
                _files.watch_begin(watch)
                self._watch = watch
            except Exception as e:
                run.state.warn(f"file capture not started: {e}")
        if self.kind == "monitor":  # its metrics reach the store every few seconds
            run.state.flush_due = time.monotonic() + run.flush_seconds
            run.ensure_started()
        heartbeat.schedule(run, delay if delay and delay > 0 else None)
        if self.sample:
            sampler.add(run, self.sample)
        self._token = CURRENT.set(run)
        return run

    # -- end ---------------------------------------------------------------------------
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        run = self.run
        if run is None:
            return
        try:
            if run.state.detached:
                run.active = False
                run.state.record["status"] = _status(exc_type, exc)
                run.state.record["ended_at"] = now_iso()
            else:
                self._finish(run, exc_type, exc, tb)
        except Exception as e:  # never replace the user's result or exception
            run.active = False
            warnings.warn(
                f"mlledger: run {run.id} ({run.name!r}) could not be recorded in the store at "
                f"{self.ledger.url} nor in the local spool: {e!r}",
                LedgerWarning,
                stacklevel=2,
            )
        finally:
            if self._token is not None:
                with contextlib.suppress(ValueError):
                    CURRENT.reset(self._token)
                self._token = None

    def _param_secrets(self) -> list[str]:
        """Values held under secret names anywhere in the params given (a config's nested
        ``db.password``, an object's ``token``): looked for only when a run fails."""
        try:
            found = secret_attributes(dict(self.params or {}))
        except Exception:
            return []
        return [str(v) for v in found.values() if isinstance(v, (str, int)) and v is not True]

    def _finish(
        self, run: Run, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        record = run.state.record
        heartbeat.unschedule(run)
        if self.sample:
            sampler.remove(run)  # with a last sample of the time since the one before
        status = _status(exc_type, exc)
        if exc is not None and status != "finished":
            # what an exception says (its message, the source lines of its traceback) may
            # quote a secret: the run's secret params and the environment's are masked
            known = [*run.state.secret_values, *environ_secrets(), *self._param_secrets()]
            tb_text = "".join(traceback.format_exception(exc_type, exc, _user_tb(tb)))
            record["error"] = {
                "type": f"{exc_type.__module__}.{exc_type.__qualname__}"
                if exc_type and exc_type.__module__ != "builtins"
                else (exc_type.__qualname__ if exc_type else "Exception"),
                "message": scrub(_safe_str(exc), known),
                "traceback": scrub(tb_text, known),
            }
        watch = self._watch
        if watch is not None:
            _files.watch_end(watch)
            self._watch = None
            try:
                if watch.reads or watch.writes:
                    with _files.suspend():
                        self.writer.collect_files(run, watch)
            except Exception as e:
                run.state.warn(f"files opened during the run not recorded: {e!r}")
        if run.state.path_args and watch is not None:
            try:
                with _files.suspend():
                    self.writer.collect_path_outputs(run, watch)
            except Exception as e:
                run.state.warn(f"files named by path arguments not recorded: {e!r}")
        resources, warns = _resources.measure(self._res0)
        for w in warns:
            run.state.warn(w)
        self._price(run, resources)
        run.active = False
        try:
            # the last chunk rides in end.json: one write fewer for every short run
            tail = run.take_chunk()
            if tail is not None:
                if sum(len(c["value"]) for c in tail["metrics"].values()) <= 200:
                    record["metrics_tail"] = tail
                else:
                    run.state.chunks += 1
                    name = f"metrics-{run.state.chunks:06d}.json"
                    run.write_chunk(name, json.dumps(tail).encode())
        except Exception as e:
            run.state.warn(f"metrics not written: {e}")
        record["status"] = status
        record["ended_at"] = now_iso()
        record["resources"] = resources
        record["metric_chunks"] = run.state.chunks
        with run.state.start_lock:
            whole = not run.state.start_written
            run.state.start_written = True  # the deferred start is no longer needed
        keys = START_KEYS + END_KEYS if whole else END_KEYS

        def build() -> dict[str, Any]:
            end = run.record
            end_doc = {k: end[k] for k in keys if k in end}
            if run.state.entry_digests:
                end_doc["entries"] = dict(run.state.entry_digests)
            return end_doc

        key = whole_key(run.id) if whole else f"{day_path(run.id)}/end.json"
        writer = self.writer
        writer.write_entry(key, seal_bytes(run.encode_entry(build), writer.store.algorithm), run)
        writer.after_run(run)


    def _price(self, run: Run, resources: dict[str, Any]) -> None:
        """Add ``cost`` and ``currency`` at the policy's rates (a cached read: no listing of
        the store per run); a policy that cannot be read costs a warning, not the run."""
        try:
            rates = self.writer.policy.current().get("rates")
            if rates:
                resources.update(priced(resources, rates))
        except Exception as e:
            run.state.warn(f"cost not recorded: {e}")


#: param types recorded as they are (a float that is NaN or infinite is written as its repr)
_PLAIN = frozenset({int, float, bool, type(None)})


def _status(exc_type: type[BaseException] | None, exc: BaseException | None) -> str:
    if exc_type is None:
        return "finished"
    if issubclass(exc_type, KeyboardInterrupt):
        return "interrupted"
    if issubclass(exc_type, SystemExit) and getattr(exc, "code", None) in (0, None):
        return "finished"  # sys.exit(0) ends the process successfully
    return "failed"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__qualname__}: str() failed>"
