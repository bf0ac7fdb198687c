"""Every key name of a store, in one place.

Layout under the root URL::

    mlledger.json                  format version, hash algorithm, policy
    objects/<algo>/<ab>/<cdef…>    blobs, tree manifests, serialized values, chunks
    chunked/<algo>/<ab>/<cdef…>    the chunk list of a large file stored as chunks
    runs/<yyyy>/<mm>/<dd>/…        run entries, each written once (create-only)
    refs/<name…>/<seq>.json        each move of a named ref
    policy/<seq>.json              each change of the store's policy
    alerts/<key hash>/…            each alert's claims and outcomes, per sink
    checks/<yyyy>/<mm>/<dd>/<run id>/<id>.json   each check of a run, by the run's day
    gc/<name>.json                 what each gc removed
    late/<yyyy>-<mm>-<dd>.late-<id>.json   a run entry landed in a day catalogs may have sealed
    segments/<yyyy>/<mm>/<dd>/<digest>.json.gz   a sealed day's run records in one object
    cache/<function>/<call>/<seq>.json   which finished run answers a memoized call
    reports/<yyyy>/<mm>/<dd>/<id>.<ext>   published reports (``mlledger report --publish``)
    tmp/                           local stores only: unfinished writes

And under mlledger's cache folder (``_settings.cache_dir()``), which any
process may delete: the stat cache and the catalogs.
"""

from __future__ import annotations

from ..errors import LedgerError
from ..hashing import parse_digest
from ..ids import day_path

__all__ = [
    "ALERTS",
    "CACHE",
    "CATALOGS",
    "CHECKS",
    "CHUNKED",
    "CONFIG_KEY",
    "GC",
    "LATE",
    "OBJECTS",
    "POLICY",
    "REFS",
    "REPORTS",
    "RUNS",
    "SEGMENTS",
    "STATCACHE",
    "TMP",
    "alert_prefix",
    "cache_prefix",
    "check_key",
    "checks_prefix",
    "chunked_key",
    "digest_of_key",
    "object_key",
    "objects_prefix",
    "ref_prefix",
    "report_key",
    "segment_key",
]

#: the store's config: its format, hash algorithm and policy (its presence makes a store)
CONFIG_KEY = "mlledger.json"
#: content-addressed objects, by algorithm and the first two hex digits of the digest
OBJECTS = "objects"
#: chunk lists of large files stored as chunks (:mod:`mlledger.store.chunked`)
CHUNKED = "chunked"
#: run entries, by day
RUNS = "runs"
#: named refs, one history each
REFS = "refs"
#: the store's policy history
POLICY = "policy"
#: alert deliveries: ``alerts/<key hash>/alert.json`` and, per sink,
#: ``<sink>/attempt-<n>.json`` (a claim), ``<sink>/failed-<n>.json``, ``<sink>/sent.json``
ALERTS = "alerts"
#: the checks of each run, under the run's day (one entry per check, created once)
CHECKS = "checks"
#: gc's log of removed runs
GC = "gc"
#: late markers: a run entry landed in a day catalogs may have sealed (see ``late``)
LATE = "late"
#: catalog segments: a sealed day's run records in one object (see ``segments``)
SEGMENTS = "segments"
#: published reports, by day, each written once
REPORTS = "reports"
#: unfinished writes of a local store
TMP = "tmp"
#: the memo index: one append-only history per (function, call key)
CACHE = "cache"

#: the stat cache file, under the cache folder
STATCACHE = "statcache.sqlite3"
#: the catalogs' folder, under the cache folder
CATALOGS = "catalogs"


def object_key(algorithm: str, hexpart: str) -> str:
    """The key of the object whose digest is ``<algorithm>:<hexpart>`` (not checked)."""
    return f"{OBJECTS}/{algorithm}/{hexpart[:2]}/{hexpart[2:]}"


def chunked_key(algorithm: str, hexpart: str) -> str:
    """The key of the chunk list of the file whose digest is ``<algorithm>:<hexpart>``."""
    return f"{CHUNKED}/{algorithm}/{hexpart[:2]}/{hexpart[2:]}"


def objects_prefix(algorithm: str) -> str:
    """The folder of every object hashed with ``algorithm``."""
    return f"{OBJECTS}/{algorithm}"


def digest_of_key(key: str) -> str | None:
    """The digest an object key names; None for a key that is not a well-formed object key."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] not in (OBJECTS, CHUNKED):
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


def alert_prefix(key: str) -> str:
    """The folder of the alert whose key is ``key`` (any text: it is hashed)."""
    import hashlib

    return f"{ALERTS}/{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}"


def report_key(report_id: str, ext: str) -> str:
    """The key of a published report: ``reports/<yyyy>/<mm>/<dd>/<id>.<ext>`` (``report_id``
    a run-style id, which tells the day)."""
    day = day_path(report_id).split("/", 1)[1].rsplit("/", 1)[0]
    return f"{REPORTS}/{day}/{report_id}.{ext}"


def checks_prefix(run_id: str) -> str:
    """``checks/<yyyy>/<mm>/<dd>/<run id>``: the folder of a run's check reports."""
    return CHECKS + day_path(run_id)[len(RUNS) :]


def check_key(run_id: str, report_id: str) -> str:
    """The key of one check report of ``run_id`` (``report_id`` sorts by time)."""
    return f"{checks_prefix(run_id)}/{report_id}.json"


def cache_prefix(function: str, call: str) -> str:
    """The folder holding the memo entries of one call (``function`` key, ``call`` key)."""
    return f"{CACHE}/{function}/{call}"


def segment_key(day: str, name: str) -> str:
    """The key of a segment of ``day`` (``yyyy/mm/dd``) named ``name``."""
    return f"{SEGMENTS}/{day}/{name}"
