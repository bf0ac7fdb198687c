"""``@tracked``: every call of a function is a run (``make_tracked`` and its binder)."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .._settings import disabled
from ..capture import files as _files
from ..errors import LedgerError, LedgerWarning
from .binder import Binder
from .context import RunContext, RunMaker, tracked_context
from .memo import Memo, cache_mode

__all__ = ["make_tracked"]

F = TypeVar("F", bound=Callable[..., Any])


@overload
@overload
def make_tracked(ledger_getter: Callable[[], RunMaker], fn: F, **opts: Any) -> F: ...
@overload
def make_tracked(
    ledger_getter: Callable[[], RunMaker], fn: None = None, **opts: Any
) -> Callable[[F], F]: ...


def make_tracked(ledger_getter: Callable[[], RunMaker], fn: Any = None, **opts: Any) -> Any:
    """The machinery behind ``@ledger.tracked`` and ``@mlledger.tracked``."""
    allowed = {"name", "ignore", "capture_files", "message", "tags", "cache", "sample"}
    unknown = set(opts) - allowed
    if unknown:
        raise TypeError(
            f"tracked() got unknown option(s) {sorted(unknown)}; it takes "
            f"{', '.join(sorted(allowed))}"
        )
    if "sample" in opts:
        from .sampler import check_interval

        check_interval(opts["sample"])  # a bad interval is refused where it is written
    if fn is None:
        return lambda f: make_tracked(ledger_getter, f, **opts)
    if isinstance(fn, (staticmethod, classmethod)):
        return type(fn)(make_tracked(ledger_getter, fn.__func__, **opts))
    if isinstance(fn, str):
        raise TypeError(
            "tracked got a string: write @tracked(name='...') with the name as a keyword"
        )
    if not callable(fn):
        raise TypeError(f"@tracked decorates a function, not a {type(fn).__qualname__}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"@tracked cannot wrap the generator function {fn.__qualname__}: its work happens "
            "after the call returns, while it is iterated. Track the function that consumes "
            "it, or wrap the loop in `with ledger.run(...)`"
        )
    ignore = frozenset(opts.get("ignore") or ())
    name = opts.get("name")
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    binder = Binder(sig, ignore) if sig is not None else None
    cache = cache_mode(opts.get("cache"))
    memo = Memo(fn, binder, cache, opts) if cache else None

    def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> RunContext | None:
        params: dict[str, Any] = {}
        if binder is not None:
            try:
                params = binder.params(args, kwargs)
            except TypeError:
                return None  # a bad call: the plain call raises the function's own TypeError
        ledger = ledger_getter()
        with _files.quiet():  # reading fn's source is not the enclosing run's input
            return tracked_context(ledger, fn, params, name=name, opts=opts)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            if disabled():
                return await fn(*args, **kwargs)
            if memo is not None:
                return await memo.acall(
                    ledger_getter, lambda: _safe_start(start, args, kwargs), args, kwargs
                )
            ctx = _safe_start(start, args, kwargs)
            if ctx is None:
                return await fn(*args, **kwargs)
            with ctx as run:
                result = await fn(*args, **kwargs)
                ctx.writer.record_return(run, result)
                return result

        awrapper.__mlledger_tracked__ = True  # type: ignore[attr-defined]
        return awrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if disabled():
            return fn(*args, **kwargs)
        if memo is not None:
            return memo.call(ledger_getter, lambda: _safe_start(start, args, kwargs), args, kwargs)
        ctx = _safe_start(start, args, kwargs)
        if ctx is None:
            return fn(*args, **kwargs)
        with ctx as run:
            result = fn(*args, **kwargs)
            ctx.writer.record_return(run, result)
            return result

    wrapper.__mlledger_tracked__ = True  # type: ignore[attr-defined]
    return wrapper


def _safe_start(
    start: Callable[[tuple[Any, ...], dict[str, Any]], RunContext | None],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> RunContext | None:
    """Build the run context; a capture failure warns and runs the call untracked."""
    try:
        return start(args, kwargs)
    except LedgerError as e:
        from ..errors import PolicyError

        if isinstance(e, PolicyError):
            raise
        warnings.warn(f"mlledger: call not tracked: {e}", LedgerWarning, stacklevel=3)
        return None
    except Exception as e:
        warnings.warn(f"mlledger: call not tracked: {e!r}", LedgerWarning, stacklevel=3)
        return None
