"""Runs: a run's life, from ``ledger.run()`` or a tracked call to its end entry.

The package knows the Store, never the Ledger.  Its rooms: ``active`` (the
active-run variable), ``run`` (the ``Run`` and its context), and the rest as
they are split out.
"""

from __future__ import annotations

from .._settings import disabled as _is_disabled  # the notebook's import (shim: to go)
from .binder import SelfType
from .process import process_start
from .run import METRIC_CHUNK, Run, RunContext, current_run, make_tracked

__all__ = [
    "METRIC_CHUNK",
    "Run",
    "RunContext",
    "SelfType",
    "_is_disabled",
    "current_run",
    "make_tracked",
    "process_start",
]
