"""mlledger: a ledger of machine-learning work.

``@tracked`` on a training function, or ``with ledger.run():`` around a
block, records its inputs, environment, code and outputs in a
content-addressed store on any fsspec filesystem, and answers what changed,
what produced this model, and gives the bytes back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._api import current_run, run, tracked
from .errors import (
    AccessError,
    AmbiguousError,
    ConflictError,
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
from .ledger import Ledger, default_ledger
from .records import Artifact, MetricStats, RefEntry, RunError
from .runs import Run, RunContext

if TYPE_CHECKING:
    __version__: str

__all__ = [
    "AccessError",
    "AmbiguousError",
    "Artifact",
    "ConflictError",
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
    "current_run",
    "default_ledger",
    "load_ipython_extension",
    "run",
    "tracked",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("mlledger")
        except PackageNotFoundError:
            from ._version import __version__

            return __version__
    raise AttributeError(f"module 'mlledger' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext mlledger``: the ``%%track`` cell magic and friends (extra ``notebook``)."""
    from .notebook import load_ipython_extension as _load

    _load(ipython)
