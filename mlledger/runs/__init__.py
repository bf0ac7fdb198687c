"""Runs: a run's life, from ``ledger.run()`` or a tracked call to its end entry.

The package knows the Store, never the Ledger.  Its rooms: ``active`` (the
active-run variable capture reads), ``state`` (what a run's writer fills),
``writer`` (``RunWriter``: everything a run writes or reads back), ``run`` (the
``Run``), ``context`` (``RunContext``), ``heartbeat`` (deferred starts and
heartbeats), ``tracked`` and ``binder`` (``@tracked``), ``pins``, ``spool``,
``encodable``, ``dry`` and ``process``.
"""

from __future__ import annotations

from .binder import SelfType
from .context import RunContext
from .process import process_start
from .run import METRIC_CHUNK, Run, current_run
from .tracked import make_tracked

__all__ = [
    "METRIC_CHUNK",
    "Run",
    "RunContext",
    "SelfType",
    "current_run",
    "make_tracked",
    "process_start",
]
