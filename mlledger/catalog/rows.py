"""Fields of many runs at once, straight from the index's rows (for ``RunList``).

Building a ``Run`` reads and parses its whole record (code, process,
warnings, a metrics tail...).  A table of the matched runs needs a few
fields of each: here they come from one query per 500 runs, the metrics from
the ``metrics`` table and the params, tags and resources as the small JSON
objects SQLite extracts from each record.  A run still ``running`` in the
index is left to the caller (its status is resolved by building its Run).
"""

from __future__ import annotations

import sqlite3
from itertools import groupby
from operator import itemgetter
from typing import Any

from .. import canonical

__all__ = ["fields_of", "metrics_of", "records_of"]

_CHUNK = 500


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def metrics_of(db: sqlite3.Connection, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """Each run's metrics, key -> last value (sorted by key; a run without metrics is not
    in it); None for a run with a last value the number column cannot hold (not finite,
    not a number): read its record."""
    out: dict[str, dict[str, Any] | None] = {}
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        rows = db.execute(  # in primary key order: each run's rows together, keys sorted
            f'SELECT run_id, key, "last" FROM metrics WHERE run_id IN ({marks}) '
            "ORDER BY run_id, key",
            chunk,
        ).fetchall()
        for rid, group in groupby(rows, itemgetter(0)):
            m = {k: v for _, k, v in group}
            out[rid] = None if None in m.values() else m
    return out


def fields_of(db: sqlite3.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each run's id, name, status, start and end times (ISO text), params, tags and
    resources (dicts), as the index holds them."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        try:
            rows = db.execute(
                "SELECT id, name, status, started_at, ended_at, json_extract(record, '$.params'),"
                " json_extract(record, '$.tags'), json_extract(record, '$.resources')"
                f" FROM runs WHERE id IN ({marks})",
                chunk,
            ).fetchall()
        except sqlite3.OperationalError:  # a record SQLite's JSON cannot read (Infinity)
            rows = [
                (rid, r.get("name"), r.get("status", "running"), r.get("started_at"),
                 r.get("ended_at"), r.get("params"), r.get("tags"), r.get("resources"))
                for rid, r in records_of(db, chunk).items()
            ]  # fmt: skip
        for rid, name, status, started, ended, params, tags, res in rows:
            out[rid] = {
                "id": rid,
                "name": name,
                "status": status,
                "started_at": started,
                "ended_at": ended,
                "params": _obj(params),
                "tags": _obj(tags),
                "resources": _obj(res),
            }
    return out


def records_of(db: sqlite3.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The indexed records of runs (those the index holds)."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        for rid, text in db.execute(f"SELECT id, record FROM runs WHERE id IN ({marks})", chunk):
            out[rid] = dict(canonical.loads(text))
    return out


def _obj(text: str | dict[str, Any] | None) -> dict[str, Any]:
    if not text:
        return {}
    got = canonical.loads(text) if isinstance(text, str) else text
    return dict(got) if isinstance(got, dict) else {}
