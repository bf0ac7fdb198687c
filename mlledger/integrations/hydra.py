"""A Hydra app's composed config as params, while its script runs under ``mlledger run``.

``mlledger run train.py lr=0.2 model.depth=3`` on a script whose entry point is
``@hydra.main(...)``: the config the task function receives (after defaults,
config groups and overrides, interpolations resolved) becomes the run's params,
one param per top-level key, so a nested group reads as dotted fields
(``params.model.depth = 3``, the same reading as any dict param).

Nothing here is imported unless the script imported Hydra: :class:`ScriptArgs`
sees Hydra's own command-line parser parse ``sys.argv`` and hands the parsed
namespace to :class:`HydraHook`.  When Hydra is about to run a task (a run or
a ``--multirun`` sweep) the hook adds one Hydra override registering
:class:`LedgerCallback` under ``hydra.callbacks`` (Hydra's public way to add a
callback; it shows in the job's ``.hydra/hydra.yaml``); the task's overrides,
``argv`` and ``sys.argv`` are left as they are.  The callback:

- a run: the task's config becomes params of the script's run;
- a sweep: each job is a child run of the script's run (same name, tag
  ``hydra_job`` = the job's number) holding that job's config as params, its
  files, metrics and outcome; the script's run keeps ``argv`` and the files
  Hydra composed the configs from;
- Hydra's own files (``.hydra/*.yaml``, the job's log file, ``multirun.yaml``)
  are written while file capture is paused, so they are no run's outputs; what
  the task writes (also into Hydra's output folder, also after ``chdir``) is.

``--help``, ``--hydra-help``, ``--cfg``, ``--info`` and a refused override run
no task: the run gets a warning saying so and the exit status is the script's.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from hydra.experimental.callback import Callback

from .._fmt import one_line
from ..capture import files
from .argvalues import NOT_SIMPLE, simple_value

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from omegaconf import DictConfig

    from ..runs import Run, RunContext

__all__ = ["HydraHook", "LedgerCallback", "config_params"]

#: the key under ``hydra.callbacks`` the hook registers its callback as
CALLBACK_KEY = "mlledger_run"
_TARGET = f"{__name__}.LedgerCallback"

#: the hooks of scripts running now (innermost last); a callback finds its hook here, so
#: a callback Hydra pickles to another process (a remote launcher) does nothing there
_ACTIVE: list[HydraHook] = []

#: Hydra's flags that run no composed task through the callbacks, and what they did
_SHOWS = (
    ("help", "--help printed the app's help; no task ran"),
    ("hydra_help", "--hydra-help printed Hydra's help; no task ran"),
    ("cfg", "--cfg printed the config; no task ran"),
    ("info", "--info printed information about the app; no task ran"),
    ("shell_completion", "--shell-completion ran; no task ran"),
    (
        "experimental_rerun",
        "--experimental-rerun ran the task from a saved config, which is not recorded as params",
    ),
)


def config_params(config: Any) -> tuple[dict[str, Any], list[str]]:
    """The task's part of a composed config as params: ``{top-level key: plain value}``
    with interpolations resolved, and the keys left out with why (one text each)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    out: dict[str, Any] = {}
    skipped: list[str] = []
    for key in config:
        if key == "hydra" or not isinstance(key, str):
            continue
        try:
            if OmegaConf.is_missing(config, key):
                skipped.append(f"{key} (no value: ???)")
                continue
            node = config[key]
            if isinstance(node, (DictConfig, ListConfig)):
                node = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
            value = _plain(node)
        except Exception as e:  # an interpolation that does not resolve, a resolver failing
            skipped.append(f"{key} ({one_line(str(e))})")
            continue
        if value is NOT_SIMPLE:
            skipped.append(f"{key} (a {type(node).__qualname__})")
        else:
            out[key] = value
    return out, skipped


def config_files(config: Any) -> list[str]:
    """The config files on disk a composed config was made of: the primary config and
    each group's choice, found in the ``file://`` config sources (first source wins)."""
    from omegaconf import OmegaConf

    runtime = OmegaConf.select(config, "hydra.runtime", default=None)
    if runtime is None:
        return []
    sources = OmegaConf.to_container(runtime.get("config_sources") or OmegaConf.create([]))
    folders = [
        str(src["path"])
        for src in (sources if isinstance(sources, list) else [])
        if isinstance(src, dict) and src.get("schema") == "file" and src.get("path")
    ]
    names = []
    primary = OmegaConf.select(config, "hydra.job.config_name", default=None)
    if isinstance(primary, str):
        names.append(primary)
    for key, option in (runtime.get("choices") or {}).items():
        group = str(key).split("@", 1)[0]  # db@backup: group db, placed at backup
        if isinstance(option, str) and not group.startswith("hydra/"):
            names.append(f"{group}/{option}")
    found = []
    for name in names:
        file = name if name.endswith(".yaml") else f"{name}.yaml"
        for folder in folders:
            path = os.path.join(folder, file)
            if os.path.isfile(path):
                found.append(path)
                break
    return found


def _plain(v: Any) -> Any:
    """A resolved config value as JSON data (mappings with text keys, lists, scalars, a
    path or an enum as its text), or NOT_SIMPLE."""
    if isinstance(v, Mapping):
        out = {}
        for k, x in v.items():
            p = _plain(x)
            if not isinstance(k, str) or p is NOT_SIMPLE:
                return NOT_SIMPLE
            out[k] = p
        return out
    if isinstance(v, (list, tuple)):
        items = [_plain(x) for x in v]
        return NOT_SIMPLE if any(x is NOT_SIMPLE for x in items) else items
    if isinstance(v, enum.Enum):
        return v.name
    return simple_value(v)


class ScriptHook(Protocol):
    """What the hook needs of :class:`~mlledger.integrations.scriptargs.ScriptArgs`."""

    run: Any
    ledger: Any
    parser_error: str | None

    def record(
        self,
        values: Mapping[str, Any],
        source: str,
        *,
        into: Any = None,
        convert: Callable[[Any], Any] = ...,
    ) -> None: ...

    def exited(self, source: str, code: Any, message: str | None) -> None: ...


class HydraHook:
    """What one script's Hydra app does under ``mlledger run``; owned by ScriptArgs."""

    def __init__(self, args: ScriptHook) -> None:
        self.args = args
        #: the flag that made Hydra print and run no task (from the parsed namespace)
        self.shown: str | None = None
        self.sweep = False
        self.jobs_started = 0
        self.failed: list[str] = []
        self._paused: list[Any] = []  # capture pauses while Hydra writes its own files
        self._child: tuple[RunContext, Run] | None = None
        _ACTIVE.append(self)

    # -- the command line ----------------------------------------------------------------
    def parsed(self, ns: argparse.Namespace) -> None:
        """Hydra parsed ``sys.argv``: register the callback if a task is going to run."""
        for dest, what in _SHOWS:
            if getattr(ns, dest, None):
                self.shown = what
                return
        overrides = getattr(ns, "overrides", None)
        if isinstance(overrides, list):
            overrides.append(f"++hydra.callbacks.{CALLBACK_KEY}._target_={_TARGET}")

    # -- Hydra's events --------------------------------------------------------------------
    def begin(self, sweep: bool) -> None:
        """A run or a sweep begins: Hydra writes its own files from here on."""
        self.sweep = sweep
        self._pause()

    def finish(self) -> None:
        """The run or the sweep ended."""
        self._resume()

    def job_start(self, config: DictConfig, task: Any) -> None:
        """A job's task is about to be called with ``config``."""
        self._resume()
        self.jobs_started += 1
        args = self.args
        run = args.run
        if not getattr(run, "active", False):
            return
        if self.sweep:
            run = self._start_child(config, task)
            if run is None:
                return
        values, skipped = config_params(config)
        args.record(values, "Hydra", into=run, convert=_plain)
        if skipped:
            run.state.warn(f"Hydra config key(s) not recorded as params: {', '.join(skipped)}")
        if self.sweep:  # Hydra composed the job's config while capture was paused
            self._use_config_files(run, config)

    def _use_config_files(self, run: Run, config: DictConfig) -> None:
        """The job's config files as its inputs, named as the script's run names them."""
        from omegaconf import OmegaConf

        try:
            home = OmegaConf.select(config, "hydra.runtime.cwd", default=None) or os.getcwd()
            for path in config_files(config):
                rel = os.path.relpath(path, home)
                run.use(path, name=path if rel.startswith(os.pardir) else rel)
        except Exception as e:  # capture never breaks the user's code
            run.state.warn(f"Hydra config files not recorded as inputs: {e!r}")

    def job_end(self, job_return: JobReturn) -> None:
        """A job's task returned or raised."""
        exc: BaseException | None = None
        try:
            _ = job_return.return_value  # raises what the task raised
        except BaseException as e:
            exc = e
            self.failed.append(f"{type(e).__qualname__}: {one_line(str(e))}")
        self._end_child(exc)
        self._pause()

    def _start_child(self, config: DictConfig, task: Any) -> Run | None:
        parent = self.args.run
        ledger = self.args.ledger
        if ledger is None:
            parent.state.warn("Hydra sweep job not recorded: no ledger given to the hook")
            return None
        from omegaconf import OmegaConf

        from ..runs import RunContext

        num = OmegaConf.select(config, "hydra.job.num", default=None)
        code = {k: v for k, v in (parent.state.record.get("code") or {}).items() if k != "modules"}
        qualname = getattr(task, "__qualname__", None)
        if isinstance(qualname, str):
            code["qualname"] = qualname
        tags = {"hydra_job": str(num)} if num is not None else {}
        ctx = RunContext(
            ledger,
            parent.name,
            tags=tags,
            code=code,
            kind=parent.state.record.get("kind", "script"),
        )
        # the job's run starts from the folder the script's run did, also after Hydra's
        # chdir into the job's output folder: the project's files stay its own (not
        # outside its folder) and are named as the script's run names them
        home = OmegaConf.select(config, "hydra.runtime.cwd", default=None)
        moved = isinstance(home, str) and os.path.isdir(home) and home != os.getcwd()
        try:
            with _in_folder(home) if moved else contextlib.nullcontext():
                child = ctx.__enter__()
        except Exception as e:  # a policy refused it: the job runs, unrecorded
            parent.state.warn(f"Hydra sweep job {num} not recorded: {e}")
            return None
        self._child = (ctx, child)
        return child

    def _end_child(self, exc: BaseException | None) -> None:
        if self._child is None:
            return
        ctx, _ = self._child
        self._child = None
        if exc is None:
            ctx.__exit__(None, None, None)
        else:
            ctx.__exit__(type(exc), exc, exc.__traceback__)

    def _pause(self) -> None:
        pause = files.suspend()
        pause.__enter__()
        self._paused.append(pause)

    def _resume(self) -> None:
        while self._paused:
            self._paused.pop().__exit__(None, None, None)

    # -- the end ---------------------------------------------------------------------------
    def ended(self, status: int, exc: BaseException | None) -> None:
        """The script ended with ``status``: say why no task ran, end a job left open."""
        self._resume()
        if self._child is not None:  # the task ended the process (sys.exit, Ctrl-C)
            self._end_child(exc or SystemExit(status))
        run = self.args.run
        if not getattr(run, "active", False):
            return
        if self.shown is not None and status == 0:
            self.args.exited("Hydra", status, self.shown)
        elif self.jobs_started == 0 and status != 0:
            # Hydra prints why and exits 1 while handling the error: it is the exit's
            # context (or Hydra raised it: two commands such as --cfg with --multirun)
            cause = exc.__context__ if isinstance(exc, SystemExit) else exc
            if cause is not None:
                why = one_line(str(cause))
            else:  # argparse refused a word after the parse (unrecognized arguments)
                why = self.args.parser_error or "no task ran"
            self.args.exited("Hydra", status, why)
        elif self.failed and not self.sweep:
            run.state.warn(f"the Hydra task raised {self.failed[-1]}")
        elif self.failed:
            run.state.warn(
                f"{len(self.failed)} of {self.jobs_started} Hydra sweep job(s) failed (their "
                f"runs are this run's children), the first: {self.failed[0]}"
            )

    def close(self) -> None:
        """Put everything back (ScriptArgs is leaving)."""
        self._resume()
        if self._child is not None:
            self._end_child(SystemExit(1))
        with contextlib.suppress(ValueError):
            _ACTIVE.remove(self)


@contextlib.contextmanager
def _in_folder(path: str) -> Iterator[None]:
    """The working directory is ``path`` inside the block (contextlib.chdir, on 3.10)."""
    back = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(back)


class LedgerCallback(Callback):
    """Hydra's callback, registered by :class:`HydraHook` through ``hydra.callbacks``.

    Outside ``mlledger run`` (another process, the hook gone) it does nothing; a
    problem inside it is a warning on the script's run, never an error of the app.
    """

    @staticmethod
    def _call(event: str, *args: Any) -> None:
        hook = _ACTIVE[-1] if _ACTIVE and os.getpid() == _PID else None
        if hook is None:
            return
        try:
            getattr(hook, event)(*args)
        except Exception as e:  # capture never breaks the user's code
            with contextlib.suppress(Exception):
                hook.args.run.state.warn(f"Hydra {event} not recorded: {e!r}")

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._call("begin", False)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._call("finish")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._call("begin", True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._call("finish")

    def on_job_start(self, config: DictConfig, *, task_function: Any, **kwargs: Any) -> None:
        self._call("job_start", config, task_function)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        self._call("job_end", job_return)


_PID = os.getpid()
