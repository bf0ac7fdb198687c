"""Run records into the index's tables, many at once.

A record becomes one ``runs`` row and rows of ``params``, ``tags``,
``metrics``, ``resources``, ``edges`` and ``artifacts``.  Inserting a batch
runs one ``executemany`` per table for the whole batch, and deletes the old
rows only of runs the index already held: a first sync of a million runs
pays for the rows, not for a dozen statements per run.

Every write of a run gets a fresh rowid, greater than any before and at
least the time in microseconds (never reused, even for the newest row
replaced or deleted), so ``changes_since`` lists exactly what changed after
a point.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from .. import canonical
from ..records import param_fields
from .schema import num_value, text_value

__all__ = ["PER_RUN", "insert_records"]

#: the tables holding rows of each run (deleted with it)
PER_RUN = ("params", "tags", "metrics", "resources", "edges")


def insert_records(
    db: sqlite3.Connection,
    records: list[dict[str, Any]],
    texts: dict[str, str] | None = None,
) -> None:
    """Index ``records`` (replacing what the index held of those runs), inside the
    caller's transaction.  ``texts``: run id -> the record's canonical JSON, when the
    caller read it as such (a segment's): stored as is instead of encoded again."""
    if not records:
        return
    texts = texts or {}
    ids = [rec["id"] for rec in records]
    held: list[str] = []
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        marks = ", ".join("?" * len(chunk))
        held += [
            r[0]
            for r in db.execute(
                f"SELECT id FROM runs WHERE id IN ({marks}) UNION "
                f"SELECT id FROM damaged WHERE id IN ({marks})",
                [*chunk, *chunk],
            )
        ]
    for i in range(0, len(held), 500):
        chunk = held[i : i + 500]
        marks = ", ".join("?" * len(chunk))
        db.execute(f"DELETE FROM damaged WHERE id IN ({marks})", chunk)
        for table in PER_RUN:
            db.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", chunk)
    top = db.execute("SELECT ifnull(max(rowid), 0) FROM runs").fetchone()[0]
    first = max(int(top) + 1, time.time_ns() // 1000)
    runs, params, tags, metrics, resources, edges, arts = [], [], [], [], [], [], []
    for n, rec in enumerate(records):
        rid = rec["id"]
        runs.append(
            (
                first + n,
                rid,
                rec.get("name"),
                rec.get("status", "running"),
                rec.get("kind"),
                rec.get("started_at"),
                rec.get("ended_at"),
                rec.get("parent_id"),
                rec.get("user"),
                rec.get("host"),
                rec.get("message"),
                texts.get(rid) or canonical.dumps(rec).decode("utf-8"),
            )
        )
        # each param, then the fields of dict params: params.cfg.optim.lr
        params += [
            (rid, k, num_value(v) if not isinstance(v, str) else None, text_value(v))
            for k, v in param_fields(rec.get("params") or {}, nodes=True).items()
        ]
        tags += [(rid, k, num_value(v), str(v)) for k, v in (rec.get("tags") or {}).items()]
        metrics += [
            (
                rid,
                k,
                num_value(m.get("last")),
                num_value(m.get("min")),
                num_value(m.get("max")),
                m.get("step"),
                m.get("count"),
            )
            for k, m in (rec.get("metrics") or {}).items()
            if isinstance(m, dict)
        ]
        resources += [  # resources.wall_s, resources.cost... (gpu_model is text)
            (rid, k, None, v) if isinstance(v, str) else (rid, k, num_value(v), None)
            for k, v in (rec.get("resources") or {}).items()
        ]
        for direction, key in (("in", "inputs"), ("out", "outputs")):
            for name, a in (rec.get(key) or {}).items():
                edges.append((rid, a["digest"], direction, name))
                arts.append((a["digest"], a.get("size"), a.get("kind"), a.get("format")))
    db.executemany(
        "INSERT OR REPLACE INTO runs(rowid, id, name, status, kind, started_at, ended_at,"
        " parent_id, user, host, message, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        runs,
    )
    # a record listed twice in one batch: its last rows win, as one at a time would
    db.executemany("INSERT OR REPLACE INTO params VALUES (?, ?, ?, ?)", params)
    db.executemany("INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?)", tags)
    db.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)", metrics)
    db.executemany("INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?)", resources)
    db.executemany("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?)", edges)
    db.executemany("INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?)", arts)
