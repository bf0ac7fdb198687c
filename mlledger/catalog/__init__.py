"""The local catalog: a SQLite index of one store, synced incrementally (``catalog``).

``index`` holds every SQL statement, ``sync`` the incremental sync from the
store, ``files`` the catalog file's location, generations and damage.
"""

from .catalog import Catalog
from .files import catalog_path
from .runlist import RunList
from .schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Catalog", "RunList", "catalog_path"]
