"""The catalog's tables, and how a value is stored in their columns.

Runs are indexed with their params, tags, metric summaries, resources (wall and
CPU time, memory, cost) and input and output edges; a param, tag or resource
value goes into a number column and a text column, so a query compares numbers
as numbers and strings as strings.  A file written under another
``SCHEMA_VERSION`` is left for a fresh one (the catalog is only a cache).
"""

from __future__ import annotations

import math
from typing import Any

from .. import canonical

__all__ = ["SCHEMA", "SCHEMA_VERSION", "num_value", "text_value"]

SCHEMA_VERSION = 7
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, status TEXT, kind TEXT, started_at TEXT, ended_at TEXT,
    parent_id TEXT, user TEXT, host TEXT, message TEXT, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_name ON runs(name, id);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, id);
CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_id);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value_num REAL, value_text TEXT,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS params_num ON params(key, value_num);
CREATE INDEX IF NOT EXISTS params_text ON params(key, value_text);
CREATE TABLE IF NOT EXISTS tags (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value_num REAL, value_text TEXT,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_text ON tags(key, value_text);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, key TEXT NOT NULL, "last" REAL, "min" REAL, "max" REAL,
    step INTEGER, "count" INTEGER, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metrics_last ON metrics(key, "last");
CREATE INDEX IF NOT EXISTS metrics_min ON metrics(key, "min");
CREATE INDEX IF NOT EXISTS metrics_max ON metrics(key, "max");
CREATE INDEX IF NOT EXISTS metrics_key_run ON metrics(key, run_id, "last", "min", "max");
CREATE INDEX IF NOT EXISTS params_key_run ON params(key, run_id, value_num, value_text);
CREATE INDEX IF NOT EXISTS tags_key_run ON tags(key, run_id, value_num, value_text);
CREATE TABLE IF NOT EXISTS resources (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value_num REAL, value_text TEXT,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resources_num ON resources(key, value_num);
CREATE INDEX IF NOT EXISTS resources_key_run ON resources(key, run_id, value_num, value_text);
CREATE TABLE IF NOT EXISTS edges (
    run_id TEXT NOT NULL, digest TEXT NOT NULL, dir TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (run_id, dir, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_digest ON edges(digest, dir);
CREATE TABLE IF NOT EXISTS artifacts (
    digest TEXT PRIMARY KEY, size INTEGER, kind TEXT, format TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS days (day TEXT PRIMARY KEY, sealed INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gc_seen (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS late_seen (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS damaged (id TEXT PRIMARY KEY, final INTEGER NOT NULL) WITHOUT ROWID;
"""


def num_value(v: Any) -> float | None:
    """A value as the number its ``value_num`` column holds (None: not a finite number)."""
    if type(v) is float:  # the common case first (a sync computes millions of these)
        return v if math.isfinite(v) else None
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def text_value(v: Any) -> str | None:
    """A param as its ``value_text`` column holds it: strings as they are, other JSON
    values (lists, dicts) as canonical JSON, numbers and booleans not at all."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return None
    return canonical.dumps(v).decode("utf-8")
