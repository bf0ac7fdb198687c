"""Runs: a run's life, from ``ledger.run()`` or a tracked call to its end entry.

The package knows the Store, never the Ledger.  Its rooms: ``active`` (the
active-run variable capture reads), ``state`` (what a run's writer fills),
``writer`` (``RunWriter``: everything a run writes or reads back), ``run`` (the
``Run``), ``metrics`` (buffered metrics and chunks), ``context`` (``RunContext``),
``heartbeat`` (deferred starts and heartbeats), ``tracked`` and ``binder``
(``@tracked``), ``load`` (a run read back), ``outputs``, ``caller``, ``pins``,
``spool``, ``encodable``, ``dry`` and ``process``.
"""

from __future__ import annotations

from .context import RunContext
from .run import Run, current_run
from .tracked import make_tracked

__all__ = ["Run", "RunContext", "current_run", "make_tracked"]
