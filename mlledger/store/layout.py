"""Every key name of a store, in one place.

Layout under the root URL::

    mlledger.json                  format version, hash algorithm, policy
    objects/<algo>/<ab>/<cdef…>    blobs, tree manifests, serialized values
    runs/<yyyy>/<mm>/<dd>/…        run entries, each written once (create-only)
    refs/<name…>/<seq>.json        each move of a named ref
    policy/<seq>.json              each change of the store's policy
    checks/<yyyy>/<mm>/<dd>/<run id>/<id>.json   each check of a run, by the run's day
    gc/<name>.json                 what each gc removed
    tmp/                           local stores only: unfinished writes

And under mlledger's cache folder (``_settings.cache_dir()``), which any
process may delete: the stat cache and the catalogs.
"""

from __future__ import annotations

from ..errors import LedgerError
from ..hashing import parse_digest
from ..ids import day_path

__all__ = [
    "CATALOGS",
    "CHECKS",
    "CONFIG_KEY",
    "GC",
    "OBJECTS",
    "POLICY",
    "REFS",
    "RUNS",
    "STATCACHE",
    "TMP",
    "check_key",
    "checks_prefix",
    "digest_of_key",
    "object_key",
    "objects_prefix",
    "ref_prefix",
]

#: the store's config: its format, hash algorithm and policy (its presence makes a store)
CONFIG_KEY = "mlledger.json"
#: content-addressed objects, by algorithm and the first two hex digits of the digest
OBJECTS = "objects"
#: run entries, by day
RUNS = "runs"
#: named refs, one history each
REFS = "refs"
#: the store's policy history
POLICY = "policy"
#: the checks of each run, under the run's day (one entry per check, created once)
CHECKS = "checks"
#: gc's log of removed runs
GC = "gc"
#: unfinished writes of a local store
TMP = "tmp"

#: the stat cache file, under the cache folder
STATCACHE = "statcache.sqlite3"
#: the catalogs' folder, under the cache folder
CATALOGS = "catalogs"


def object_key(algorithm: str, hexpart: str) -> str:
    """The key of the object whose digest is ``<algorithm>:<hexpart>`` (not checked)."""
    return f"{OBJECTS}/{algorithm}/{hexpart[:2]}/{hexpart[2:]}"


def objects_prefix(algorithm: str) -> str:
    """The folder of every object hashed with ``algorithm``."""
    return f"{OBJECTS}/{algorithm}"


def digest_of_key(key: str) -> str | None:
    """The digest an object key names; None for a key that is not a well-formed object key."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != OBJECTS:
        return None
    d = f"{parts[1]}:{parts[2]}{parts[3]}"
    try:
        parse_digest(d)
    except LedgerError:
        return None
    return d


def ref_prefix(name: str) -> str:
    """The folder holding the history of the ref ``name``."""
    return f"{REFS}/{name}"


def checks_prefix(run_id: str) -> str:
    """``checks/<yyyy>/<mm>/<dd>/<run id>``: the folder of a run's check reports."""
    return CHECKS + day_path(run_id)[len(RUNS):]


def check_key(run_id: str, report_id: str) -> str:
    """The key of one check report of ``run_id`` (``report_id`` sorts by time)."""
    return f"{checks_prefix(run_id)}/{report_id}.json"
