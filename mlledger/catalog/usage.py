"""The SQL behind ``mlledger cost`` and ``mlledger du``: sums over the catalog's runs,
resources, edges and artifacts (the reports themselves are in ``mlledger.usage``).

Every function takes the catalog's :class:`~mlledger.catalog.index.Index` as it is
(the caller syncs it first) and only reads it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..query import compile_where
from . import files

if TYPE_CHECKING:
    from .index import Index

__all__ = ["artifact_sizes", "cost_rows", "name_usage", "reference_totals"]

#: what each ``--by`` groups on: SQL over ``runs r`` (``tags.X`` joins ``tags t``)
GROUPS = {
    "name": "r.name",
    "user": "r.user",
    "host": "r.host",
    "day": "substr(r.started_at, 1, 10)",
    "status": "r.status",
}


def _selection(where: str | None, since: str | None) -> tuple[str, list[Any]]:
    """A CTE ``sel(id, parent_id)`` of the runs a ``where`` selects that started at or
    after ``since`` (an ISO time), and its arguments."""
    q = "WITH sel AS (SELECT r.id AS id, r.parent_id AS parent_id FROM runs r WHERE 1"
    args: list[Any] = []
    if since:
        q += " AND r.started_at >= ?"
        args.append(since)
    if where:
        sql, wargs = compile_where(where)
        q += f" AND ({sql})"
        args.extend(wargs)
    return q + ") ", args


#: a selected run whose parent is selected too is inside the parent's time: left out
_COUNTED = "(s.parent_id IS NULL OR s.parent_id NOT IN (SELECT id FROM sel))"


@files.healing
def cost_rows(
    index: Index, by: str, where: str | None, since: str | None
) -> tuple[list[tuple[Any, ...]], int]:
    """``(group, currency, runs, wall seconds, priced runs, cost)`` of the selected runs
    (see :func:`_selection`) grouped by ``by`` (a key of GROUPS or ``tags.X``) and
    currency, nested runs whose parent is selected left out; and how many were."""
    cte, args = _selection(where, since)
    join = ""
    if by.startswith("tags."):
        join = "LEFT JOIN tags t ON t.run_id = r.id AND t.key = ?"
        args.append(by[5:])
        group = "t.value_text"
    else:
        group = GROUPS[by]
    q = (
        f"{cte}SELECT {group} AS g, cu.value_text AS cur, COUNT(*), TOTAL(w.value_num), "
        "COUNT(c.value_num), TOTAL(c.value_num) FROM sel s JOIN runs r ON r.id = s.id "
        "LEFT JOIN resources w ON w.run_id = r.id AND w.key = 'wall_s' "
        "LEFT JOIN resources c ON c.run_id = r.id AND c.key = 'cost' "
        "LEFT JOIN resources cu ON cu.run_id = r.id AND cu.key = 'currency' "
        f"{join} WHERE {_COUNTED} GROUP BY g, cur"
    )
    rows = [tuple(row) for row in index.db.execute(q, args)]
    cte, args = _selection(where, since)
    nested = index.db.execute(
        f"{cte}SELECT COUNT(*) FROM sel s WHERE NOT {_COUNTED}", args
    ).fetchone()[0]
    return rows, int(nested)


#: each run's distinct artifacts (an artifact a run both used and produced counts once)
_REFS = "(SELECT DISTINCT run_id, digest FROM edges)"


@files.healing
def reference_totals(index: Index) -> tuple[int, float, float, int]:
    """``(runs, logical bytes, distinct bytes, artifacts)``: the bytes every run references
    summed run by run (what a store keeping a copy per run would hold), and the bytes of
    the distinct artifacts."""
    db = index.db
    runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    logical = db.execute(
        f"SELECT TOTAL(a.size) FROM {_REFS} e JOIN artifacts a ON a.digest = e.digest"
    ).fetchone()[0]
    distinct, n = db.execute(
        "SELECT TOTAL(size), COUNT(*) FROM artifacts "
        "WHERE digest IN (SELECT digest FROM edges)"
    ).fetchone()
    return int(runs), float(logical), float(distinct), int(n)


@files.healing
def name_usage(index: Index) -> list[tuple[str, int, float, float, float]]:
    """``(name, runs, referenced, distinct, exclusive bytes)`` per run name: the bytes its
    runs reference summed run by run, the bytes of the distinct artifacts they reference,
    and of those no run of another name references."""
    db = index.db
    out: dict[str, list[Any]] = {
        r[0]: [r[0], r[1], 0.0, 0.0, 0.0]
        for r in db.execute("SELECT name, COUNT(*) FROM runs GROUP BY name")
    }
    queries = (
        (
            2,
            f"SELECT r.name, TOTAL(a.size) FROM {_REFS} e JOIN runs r ON r.id = e.run_id "
            "JOIN artifacts a ON a.digest = e.digest GROUP BY r.name",
        ),
        (
            3,
            "SELECT x.name, TOTAL(a.size) FROM (SELECT DISTINCT r.name AS name, e.digest AS "
            "digest FROM edges e JOIN runs r ON r.id = e.run_id) x "
            "JOIN artifacts a ON a.digest = x.digest GROUP BY x.name",
        ),
        (
            4,
            "SELECT x.name, TOTAL(a.size) FROM (SELECT e.digest AS digest, MIN(r.name) AS "
            "name FROM edges e JOIN runs r ON r.id = e.run_id GROUP BY e.digest "
            "HAVING COUNT(DISTINCT r.name) = 1) x JOIN artifacts a ON a.digest = x.digest "
            "GROUP BY x.name",
        ),
    )
    for col, q in queries:
        for name, total in db.execute(q):
            if name in out:
                out[name][col] = float(total)
    return [tuple(v) for v in out.values()]


@files.healing
def artifact_sizes(index: Index, digests: list[str]) -> dict[str, int]:
    """The size of each of ``digests`` the catalog knows."""
    rows = index.db.execute(
        "SELECT digest, size FROM artifacts WHERE digest IN (SELECT value FROM json_each(?))",
        (json.dumps(digests),),
    )
    return {d: int(s or 0) for d, s in rows}
