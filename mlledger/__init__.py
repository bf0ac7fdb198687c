"""mlledger: a ledger of machine-learning work.

``@tracked`` on a training function, or ``with ledger.run():`` around a
block, records its inputs, environment, code and outputs in a
content-addressed store on any fsspec filesystem, and answers what changed,
what produced this model, and gives the bytes back.
"""

from __future__ import annotations

from .errors import (
    AccessError,
    AmbiguousError,
    ConflictError,
    DamagedEntryError,
    DigestError,
    ExistsError,
    FormatError,
    IntegrityError,
    LedgerError,
    LedgerWarning,
    MissingExtraError,
    NotAFileError,
    NotAFolderError,
    NotFoundError,
    PolicyError,
    QueryError,
    StoreError,
    SymlinkLoopError,
    UnsafePathError,
    UsageError,
)

# `typing` costs more to import than the rest of this module together: type
# checkers see TYPE_CHECKING as True, the interpreter never imports typing here.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ._api import current_run, run, tracked
    from .changelog import Changelog, ChangelogEntry
    from .checks import CheckReport, CheckResult, checks_of, field_value
    from .ledger import Ledger, default_ledger, set_default_ledger
    from .records import Artifact, MetricStats, RefEntry, RunError
    from .runs import Run, RunContext

    __version__: str

# Public names that live in heavier modules are imported on first use, so
# `import mlledger` stays cheap (see benchmarks/bench_runs.py).
_LAZY = {
    "current_run": "_api",
    "run": "_api",
    "tracked": "_api",
    "Changelog": "changelog",
    "ChangelogEntry": "changelog",
    "Ledger": "ledger",
    "default_ledger": "ledger",
    "set_default_ledger": "ledger",
    "Artifact": "records",
    "MetricStats": "records",
    "RefEntry": "records",
    "RunError": "records",
    "Run": "runs",
    "RunContext": "runs",
    "CheckReport": "checks",
    "CheckResult": "checks",
    "checks_of": "checks",
    "field_value": "checks",
}

__all__ = [
    "AccessError",
    "AmbiguousError",
    "Artifact",
    "Changelog",
    "ChangelogEntry",
    "CheckReport",
    "CheckResult",
    "ConflictError",
    "DamagedEntryError",
    "DigestError",
    "ExistsError",
    "FormatError",
    "IntegrityError",
    "Ledger",
    "LedgerError",
    "LedgerWarning",
    "MetricStats",
    "MissingExtraError",
    "NotAFileError",
    "NotAFolderError",
    "NotFoundError",
    "PolicyError",
    "QueryError",
    "RefEntry",
    "Run",
    "RunContext",
    "RunError",
    "StoreError",
    "SymlinkLoopError",
    "UnsafePathError",
    "UsageError",
    "__version__",
    "checks_of",
    "current_run",
    "default_ledger",
    "field_value",
    "load_ipython_extension",
    "run",
    "set_default_ledger",
    "tracked",
    "unload_ipython_extension",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("mlledger")
        except PackageNotFoundError:
            from ._version import __version__

            return __version__
    raise AttributeError(f"module 'mlledger' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext mlledger``: the ``%%track`` cell magic and friends (extra ``notebook``)."""
    from .notebook import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext mlledger``."""
    from .notebook import unload_ipython_extension as _unload

    _unload(ipython)
