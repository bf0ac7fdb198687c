"""The content-addressed store and its refs."""

from .refs import Refs, check_ref_name
from .store import FORMAT, Store, Stored, VerifiedReader, VerifyReport, cache_dir, default_url
from .tree import Tree, TreeEntry

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
]
