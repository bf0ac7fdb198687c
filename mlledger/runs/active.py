"""The active run: one context variable, read by capture and set by a run's context.

It sits at the bottom of the package (structlog keeps its contextvars in a bottom
module for the same reason): ``capture/`` reads which run is active without
importing the rest of ``runs/``.
"""

from __future__ import annotations

import contextvars
from typing import Any, Protocol

__all__ = ["CURRENT", "ActiveRun", "current_run"]


class ActiveRun(Protocol):
    """What capture reads of a run: whether it still takes calls, and the run it runs in."""

    @property
    def active(self) -> bool: ...

    @property
    def parent(self) -> ActiveRun | None: ...


#: the run active in this thread or task (a ``runs.run.Run``), or None
CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar("mlledger_run", default=None)


def current_run() -> ActiveRun | None:
    """The run active in this thread or task, or None (capture's view of it)."""
    got: ActiveRun | None = CURRENT.get()
    return got
