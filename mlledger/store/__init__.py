"""The content-addressed store and its refs.

``cache_dir`` and ``default_url`` live in :mod:`mlledger._settings`; they are
re-exported here for the modules (and tests) that still import them from here.
"""

from .._settings import cache_dir, default_url
from .config import FORMAT, store_exists
from .refs import Refs, check_ref_name
from .store import Store, Stored
from .tree import Tree, TreeEntry
from .verified import VerifiedReader
from .verify import VerifyReport

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
