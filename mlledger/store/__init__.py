"""The content-addressed store and its refs.

``cache_dir`` and ``default_url`` live in :mod:`mlledger._settings`; they are
re-exported here for the modules (and tests) that still import them from here.

Opening a store needs only :class:`Store` and its config: refs, trees and
verifying (which bring attrs, cattrs and the records) are imported on first use,
so the first ``Ledger()`` of a process stays cheap (``tests/test_coldstart.py``).
"""

from __future__ import annotations

from .._settings import cache_dir, default_url
from .config import FORMAT, store_exists
from .store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .refs import Refs, check_ref_name
    from .stored import Stored
    from .tree import Tree, TreeEntry
    from .verified import VerifiedReader
    from .verify import VerifyReport

#: public names imported from their module on first use
_LAZY = {
    "Refs": "refs",
    "check_ref_name": "refs",
    "Stored": "stored",
    "Tree": "tree",
    "TreeEntry": "tree",
    "VerifiedReader": "verified",
    "VerifyReport": "verify",
}

__all__ = [
    "FORMAT",
    "Refs",
    "Store",
    "Stored",
    "Tree",
    "TreeEntry",
    "VerifiedReader",
    "VerifyReport",
    "cache_dir",
    "check_ref_name",
    "default_url",
    "store_exists",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
