"""What the framework hooks share (``transformers``, ``lightning``, ``keras``).

A :class:`TrainingRun` links one training to a run: the active run
(``mlledger.current_run()``) when there is one, else a run it opens at train
begin on the ledger it was given (or the default ledger) and closes at train
end.  It logs params and numeric metrics, stores checkpoints and the final
model as outputs at once, and never raises into the training loop: a capture
problem is one :class:`~mlledger.errors.LedgerWarning` per kind.  Only a policy
the user set (a required message) may refuse to open a run, before training
starts.

A training that raises never reaches the framework's "train end" event, so the
framework's training entry (``Trainer.train``, ``Model.fit``) is wrapped once,
at its class, by :func:`guard`: when the call raises, each run a hook opened
during it ends ``failed`` (``interrupted`` for Ctrl-C) with the traceback, and
the exception goes on unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..capture import files
from ..errors import LedgerWarning, PolicyError
from ..runs import current_run

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..records import Artifact
    from ..runs import Run, RunContext

__all__ = [
    "TrainingRun",
    "call_info",
    "env_rank",
    "exc_now",
    "guard",
    "metric_values",
    "missing_extra",
]

#: environment variables that hold a process's global rank under common launchers
_RANK_VARS = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")

_local = threading.local()


def _opened() -> list[TrainingRun]:
    """The runs hooks opened in this thread and have not ended, oldest first."""
    got: list[TrainingRun] | None = getattr(_local, "opened", None)
    if got is None:
        got = _local.opened = []
    return got


def env_rank() -> int:
    """This process's global rank as the launcher's environment tells it (0 when none does)."""
    for var in _RANK_VARS:
        value = os.environ.get(var)
        if value:
            try:
                return int(value)
            except ValueError:
                continue
    return 0


def missing_extra(framework: str, extra: str, e: ImportError) -> ImportError:
    """The error to raise when ``framework`` cannot be imported: an install hint when the
    framework itself is missing, else the framework's own import error."""
    from ..errors import MissingExtraError

    top = framework.split(".", maxsplit=1)[0]
    if e.name is None or e.name.split(".")[0] == top:
        return MissingExtraError(
            f"mlledger.integrations.{extra} needs {top}: pip install 'mlledger[{extra}]'"
        )
    return e


def metric_values(values: Mapping[str, Any]) -> dict[str, float]:
    """The numbers among ``values`` (floats, ints, numpy and 0-d tensor scalars), as floats;
    text, bools, None and non-finite numbers are left out."""
    out: dict[str, float] = {}
    for k, v in values.items():
        if type(v) is float:
            if math.isfinite(v):
                out[k] = v
            continue
        if v is None or isinstance(v, (bool, str, bytes)):
            continue
        try:
            f = float(v.item() if hasattr(v, "item") else v)
        except (TypeError, ValueError, RuntimeError, OverflowError):
            continue
        if math.isfinite(f):
            out[str(k)] = f
    return out


def guard(owner: type, attr: str, on_call: Callable[..., Any] | None = None) -> None:
    """Wrap ``owner.attr`` (a training entry) once: a run a hook opened during a call that
    raises ends ``failed``.  ``on_call(args, kwargs)`` (optional) sees each call's
    arguments first and returns what the call's hooks may read with :func:`call_info`."""
    fn = owner.__dict__.get(attr) or getattr(owner, attr)
    if getattr(fn, "__mlledger_guard__", False):
        return

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        opened = _opened()
        depth = len(opened)
        calls = _calls()
        info = None
        if on_call is not None:
            try:
                info = on_call(args, kwargs)
            except Exception:  # reading the arguments never stops the call
                info = None
        calls.append(info)
        try:
            return fn(*args, **kwargs)
        except BaseException as e:
            for tr in reversed(opened[depth:]):
                tr.end(e)
            raise
        finally:
            calls.pop()

    guarded.__mlledger_guard__ = True  # type: ignore[attr-defined]
    setattr(owner, attr, guarded)


def _calls() -> list[Any]:
    got: list[Any] | None = getattr(_local, "calls", None)
    if got is None:
        got = _local.calls = []
    return got


def call_info() -> Any:
    """What the innermost guarded call's ``on_call`` returned, or None."""
    calls = _calls()
    return calls[-1] if calls else None


class TrainingRun:
    """One training's run: the active run, or one opened at :meth:`begin` and closed at
    :meth:`end`.  Every method is safe to call in a training loop: problems warn."""

    def __init__(
        self,
        hook: str,
        *,
        ledger: Ledger | str | None = None,
        name: str | None = None,
        message: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        if ledger is not None and not isinstance(ledger, str) and not hasattr(ledger, "run"):
            raise TypeError(
                f"{hook}(ledger=...) takes a mlledger.Ledger or a store URL, "
                f"not a {type(ledger).__qualname__}"
            )
        if tags is not None and not isinstance(tags, Mapping):
            raise TypeError(f"{hook}(tags=...) takes a dict, not a {type(tags).__qualname__}")
        self.hook = hook
        self.ledger = ledger
        self.name = name
        self.message = message
        self.tags = dict(tags) if tags else None
        #: the run this training logs into, or None (not begun, ended, or not rank 0)
        self.run: Run | None = None
        #: the run was opened here (and is closed here), not the caller's active run
        self.owned = False
        self._context: RunContext | None = None
        self._warned: set[str] = set()
        #: (mtime_ns, size) of each checkpoint path already stored
        self._stored: dict[str, tuple[int, int]] = {}

    # -- problems ------------------------------------------------------------------
    def warn(self, what: str, e: BaseException | str) -> None:
        """One LedgerWarning per kind of problem (``what``), with the run noting each."""
        text = f"{what}: {e}" if isinstance(e, str) else f"{what}: {e!r}"
        run = self.run
        if run is not None:
            with contextlib.suppress(Exception):
                run.state.warn(text)
        if what in self._warned:
            return
        self._warned.add(what)
        warnings.warn(f"mlledger: {self.hook}: {text}", LedgerWarning, stacklevel=3)

    # -- life ------------------------------------------------------------------------
    def begin(self, name: str, params: Mapping[str, Any] | None = None) -> Run | None:
        """At train begin: log into the active run, or open one named ``name`` (or the
        name given at construction) and log ``params`` into it."""
        if self.owned and self.run is not None:  # the last training never reached its end
            self.end(RuntimeError("the training ended without its train-end event"))
        self.run, self.owned = None, False
        active = current_run()
        if active is not None and active.active:
            self.run = active
        else:
            self._open(self.name or name)
        if self.run is not None and params:
            self.log_params(params)
        return self.run

    def _open(self, name: str) -> None:
        try:
            ledger = self._ledger()
        except Exception as e:
            self.warn(
                "no run recorded (the ledger could not be opened); training goes on untracked",
                e,
            )
            return
        try:
            context = ledger.run(name, message=self.message, tags=self.tags)
            run = context.__enter__()
        except PolicyError:
            raise  # the user's own rule refuses the run, before any training step
        except Exception as e:
            self.warn("no run recorded; training goes on untracked", e)
            return
        self._context, self.run, self.owned = context, run, True
        _opened().append(self)

    def _ledger(self) -> Ledger:
        from ..ledger import Ledger, default_ledger

        if self.ledger is None:
            return default_ledger()
        if isinstance(self.ledger, str):
            self.ledger = Ledger(self.ledger)
        return self.ledger

    def end(self, error: BaseException | None = None) -> None:
        """At train end (``error``: the exception training raised): close the run if it
        was opened here; the caller's own run is left open."""
        run, context = self.run, self._context
        self.run, self._context = None, None
        if not self.owned or context is None or run is None:
            return
        self.owned = False
        opened = _opened()
        if self in opened:
            opened.remove(self)
        try:
            if error is None:
                context.__exit__(None, None, None)
            else:
                context.__exit__(type(error), error, error.__traceback__)
        except Exception as e:
            msg = f"mlledger: {self.hook}: run {run.id} not closed: {e!r}"
            warnings.warn(msg, LedgerWarning, stacklevel=2)

    # -- what a training logs ----------------------------------------------------------
    def log(self, step: int | None, values: Mapping[str, Any]) -> None:
        """Numeric ``values`` at ``step`` (the global step); others are left out."""
        run = self.run
        if run is None or not run.active:  # a late call from a framework's worker thread
            return
        numbers = metric_values(values)
        if not numbers:
            return
        try:
            run.log(step=step, **numbers)
        except Exception as e:
            self.warn("metrics not recorded", e)

    def log_params(self, params: Mapping[str, Any]) -> None:
        run = self.run
        if run is None or not params:
            return
        try:
            run.log_params(**{str(k): v for k, v in params.items()})
        except Exception as e:
            self.warn("params not recorded", e)

    def save(self, path: str, name: str | None = None) -> Artifact | None:
        """Store the file or folder at ``path`` as an output now (a checkpoint)."""
        run = self.run
        if run is None:
            return None
        try:
            with files.quiet():  # hashing it is not the run reading an input
                art = run.save(path, name=name)
        except Exception as e:
            self.warn(f"output {name or path} not recorded", e)
            return None
        return art

    def mark_seen(self, paths: Iterable[str]) -> None:
        """Take ``paths`` as they are now as already stored (files from before training)."""
        for p in paths:
            try:
                st = os.stat(p)
            except OSError:
                continue
            self._stored[p] = (st.st_mtime_ns, st.st_size)

    def save_new(self, paths: Iterable[str]) -> None:
        """Store each of ``paths`` that exists and changed since it was last stored here."""
        for p in paths:
            try:
                st = os.stat(p)
            except OSError:
                continue
            sig = (st.st_mtime_ns, st.st_size)
            if self._stored.get(p) == sig:
                continue
            if self.save(p) is not None:
                self._stored[p] = sig

    def save_model(self, write: Callable[[str], str], name: str = "model") -> Artifact | None:
        """The final model as output ``name``: ``write(folder)`` saves it into a fresh
        temporary folder and returns the file or folder to store."""
        if self.run is None:
            return None
        folder = tempfile.mkdtemp(prefix="mlledger-model-")
        try:
            path = write(folder)
            return self.save(path, name=name)
        except Exception as e:
            self.warn("final model not recorded", e)
            return None
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def exc_now() -> BaseException | None:
    """The exception being handled here, if any (Lightning finalizes inside ``except``)."""
    return sys.exc_info()[1]
