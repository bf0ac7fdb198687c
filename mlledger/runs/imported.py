"""Runs that happened elsewhere (another tracker), written as ordinary sealed run entries.

An imported run is a run like any other once it is in the store: a start entry,
its metric chunks, an end entry naming the digests of both (the audit chain),
each created once through :class:`RunWriter` (so a back-dated day is marked for
the catalogs, and a store that refuses writes spools them).  Its id comes from
its origin (:func:`mlledger.ids.fixed_run_id`), so importing it again finds it:
a run whose end entry exists is left alone; one whose import was cut short (a
start, some chunks, no end) is finished, each entry already there checked to
hold the same bytes.  Readers never see half a run: a start without an end is
an unfinished run, as for any run whose process died.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConflictError
from ..ids import day_path
from ..records import record_digests
from ..store.chain import entry_digest, seal
from .metrics import Column, fold_stats
from .state import END_KEYS, START_KEYS
from .writer import RunWriter

__all__ = ["CHUNK_VALUES", "is_imported", "write_past_run"]

#: values per metric chunk entry
CHUNK_VALUES = 20_000
#: at most this many values ride in the end entry instead of a chunk (as a short run's do)
_TAIL_VALUES = 200


def write_past_run(
    writer: RunWriter, record: dict[str, Any], metrics: dict[str, Column]
) -> dict[str, Any] | None:
    """Write the ended run ``record`` (its id, times, status, params, tags, outputs...)
    with the metric columns ``metrics`` (steps, values, times in seconds, in order).

    Returns the record as a catalog reads it from the store (for the caller to index),
    or None when the run is in the store already (nothing is written).  Objects the
    record names (outputs) must be stored before.
    """
    rid = record["id"]
    base = day_path(rid)
    if writer.read_entry(f"{base}/end.json") is not None:
        return None
    resume = writer.read_entry(f"{base}/start.json") is not None
    rec = dict(record)
    stats: dict[str, list[Any]] = {}
    fold_stats(metrics, {}, stats)
    rec["metrics"] = {
        k: {"last": v[0], "min": v[1], "max": v[2], "step": v[3], "count": v[4]}
        for k, v in sorted(stats.items())
    }
    chunks = _chunks(metrics)
    algo = writer.store.algorithm
    entries: dict[str, str] = {}

    def put(name: str, data: bytes) -> None:
        key = f"{base}/{name}"
        if resume:
            have = writer.read_entry(key)
            if have is not None:
                if have != data:
                    raise ConflictError(
                        f"{key} in {writer.url} differs from what this import writes: the run "
                        "changed at its origin after an import was cut short; remove that "
                        "run's folder and import again"
                    )
                entries[name] = entry_digest(data, algo)
                return
        writer.write_entry(key, data, None)
        entries[name] = entry_digest(data, algo)

    start = {k: rec[k] for k in START_KEYS if k in rec}
    # what the end names (outputs) is pinned by the start against a gc running meanwhile
    uses = sorted(set(record_digests(rec)) - set(record_digests(start)))
    if uses:
        start["uses"] = uses
    put("start.json", seal(start, algo))
    if len(chunks) == 1 and _count(chunks[0]) <= _TAIL_VALUES:
        rec["metrics_tail"] = _chunk_doc(chunks[0])
        chunks = []
    for i, cols in enumerate(chunks, 1):
        put(f"metrics-{i:06d}.json", json.dumps(_chunk_doc(cols)).encode())
    rec["metric_chunks"] = len(chunks)
    end = {k: rec[k] for k in END_KEYS if k in rec}
    end["entries"] = dict(entries)
    writer.write_entry(f"{base}/end.json", seal(end, algo), None)
    return {**start, **end}


def _chunk_doc(cols: dict[str, Column]) -> dict[str, Any]:
    """A chunk document as ``run.log`` writes one (``metrics.chunk_doc``), its offsets
    rounded, not cut: times that came in whole milliseconds read back as the same ones."""
    t0 = min(c[2][0] for c in cols.values())
    base = round(t0 * 1000)
    doc = {
        k: {"step": c[0], "value": c[1], "ms": [round(t * 1000) - base for t in c[2]]}
        for k, c in cols.items()
    }
    return {"t0": t0, "metrics": doc}


def _count(cols: dict[str, Column]) -> int:
    return sum(len(c[1]) for c in cols.values())


def _chunks(metrics: dict[str, Column]) -> list[dict[str, Column]]:
    """The columns cut into chunks of at most CHUNK_VALUES values (a metric's values in
    order across chunks)."""
    out: list[dict[str, Column]] = []
    cur: dict[str, Column] = {}
    room = CHUNK_VALUES
    for k, (steps, vals, times) in sorted(metrics.items()):
        i = 0
        while i < len(vals):
            n = min(room, len(vals) - i)
            cur[k] = (steps[i : i + n], vals[i : i + n], times[i : i + n])
            i += n
            room -= n
            if room == 0:
                out.append(cur)
                cur, room = {}, CHUNK_VALUES
    if cur:
        out.append(cur)
    return out


def is_imported(writer: RunWriter, run_id: str) -> bool:
    """Whether the run ``run_id`` is in the store with its end (an import wrote it whole)."""
    return writer.read_entry(f"{day_path(run_id)}/end.json") is not None
