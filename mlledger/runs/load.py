"""A run read back from the store: its entries merged into one record."""

from __future__ import annotations

import contextlib

from .. import canonical, run_entries
from ..errors import NotFoundError
from ..ids import day_path, whole_key
from .run import Run
from .writer import RunWriter

__all__ = ["load_run"]


def load_run(writer: RunWriter, run_id: str) -> Run:
    """A run straight from the store, by full id."""
    base = day_path(run_id)
    start = writer.read_entry(f"{base}/start.json")
    end_key = f"{base}/end.json"
    end = writer.read_entry(end_key)
    whole = start is None and end is None
    if whole:
        end_key = whole_key(run_id)  # a short run: one entry, no folder
        end = writer.read_entry(end_key)
    if start is None and end is None:
        raise NotFoundError(f"no run {run_id} in the store at {writer.url}")
    record = run_entries.merge(  # DamagedEntryError names a damaged entry
        run_id,
        None if start is None else (f"{base}/start.json", start),
        None if end is None else (end_key, end),
        whole=whole,
    )
    if record is None:
        raise NotFoundError(f"run {run_id} is being written; try again in a moment")
    if end is None:
        names = writer.store.backend.list_dir(base)
        hbs = sorted(n for n in names if n.startswith("hb-"))
        if hbs:
            hb = writer.read_entry(f"{base}/{hbs[-1]}")
            with contextlib.suppress(ValueError, TypeError, KeyError):  # damaged: no beat
                if hb is not None and isinstance(at := canonical.loads(hb)["at"], str):
                    record["heartbeat"] = at
        record["metric_chunks"] = max(
            (int(n[8:14]) for n in names if n.startswith("metrics-") and n[8:14].isdigit()),
            default=0,
        )
        record.setdefault("status", "running")
    run = Run(writer, record)
    run.resolve_status()
    return run
