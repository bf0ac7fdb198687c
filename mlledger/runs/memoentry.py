"""What a memo entry holds and what a hit writes (the other half of ``memo.py``).

After a miss: :func:`return_form` (how a hit gives the return value back, and
whether it can) and :func:`entry_doc` (the entry: the run, its params, inputs and
outputs, the files it read, the return form).  On a hit: :func:`can_answer` and
:func:`run_exists` (is everything the entry names still in the store) and
:func:`write_cached_run` (the run with ``status="cached"``).
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any

from .. import canonical
from ..capture.redact import REDACTED, is_secret_name, redact_text, scrub, secret_attributes
from ..hashing import digest_bytes
from ..ids import day_path, new_run_id, whole_key
from ..records import now_iso
from ..store import Store
from ..store.chain import seal_bytes
from .run import Run
from .state import END_KEYS, START_KEYS
from .writer import RunWriter

__all__ = ["can_answer", "entry_doc", "return_form", "run_exists", "write_cached_run"]

#: the fields of a cached run's one entry
_ENTRY_KEYS = tuple(dict.fromkeys((*START_KEYS, *END_KEYS, "cached_from")))


def return_form(
    writer: RunWriter, run: Run, result: Any
) -> tuple[dict[str, Any] | None, str | None]:
    """``(form, None)``: how a hit gives back ``result``; ``(None, why)`` when it cannot.

    A value whose stored form loads back as itself is named by the run's own
    ``return`` artifact.  Another one (a tuple, a dataclass, a subclass: JSON would
    give back a list or a dict) is kept as its pickle, written here, which a hit
    loads only with ``cache="pickle"``.
    """
    if result is None:
        return {"kind": "none"}, None
    art = run.state.outputs.get("return")
    if art is not None and art.kind in ("file", "tree") and isinstance(result, (str, Path)):
        kind = "Path" if isinstance(result, Path) else "str"
        return {"kind": "path", "path": os.fspath(result), "type": kind}, None
    if art is None or art.kind != "value":
        return None, "its return value could not be stored"
    if _exact(art.format, result, art.digest, writer.store.algorithm):
        return {"kind": "value", "digest": art.digest, "format": art.format}, None
    if secret_attributes(result):
        return None, "its return value holds secret-named fields (never pickled)"
    digest = writer.put_blob(pickle.dumps(result, protocol=5), run)
    return {"kind": "value", "digest": digest, "format": "pickle"}, None


def entry_doc(run: Run, function: str, ret: dict[str, Any]) -> dict[str, Any]:
    """The memo entry of the finished ``run`` of ``function`` that returned ``ret``."""
    rec = run.record
    files = {
        name: art
        for name, art in rec["inputs"].items()
        if art.get("kind") in ("file", "tree") and art.get("path")
    }
    return {
        "format": 1,
        "run": run.id,
        "function": function,
        "at": now_iso(),
        "params": rec["params"],
        "inputs": rec["inputs"],
        "outputs": rec["outputs"],
        "files": files,
        "return": ret,
    }


def run_exists(store: Store, run_id: str) -> bool:
    """Whether the run's final entry is in the store (a short run's one entry, or the end
    entry of a longer one): a cached run must name a run that is there."""
    backend = store.backend
    return bool(backend.exists(whole_key(run_id)) or backend.exists(f"{day_path(run_id)}/end.json"))


def can_answer(writer: RunWriter, entry: dict[str, Any]) -> bool:
    """Whether everything ``entry`` names is still in the store: its run, its outputs and
    its return value."""
    if not run_exists(writer.store, entry["run"]):
        return False
    digests = [a["digest"] for a in entry["outputs"].values()]
    if entry["return"].get("kind") == "value":
        digests.append(entry["return"]["digest"])
    return all(writer.has_object(d) for d in digests)


def write_cached_run(
    writer: RunWriter,
    entry: dict[str, Any],
    *,
    name: str,
    code: dict[str, Any],
    parent: Run | None,
    message: str | None,
    tags: dict[str, Any] | None,
    started: str,
    took: float,
) -> Run:
    """Write the one entry of a hit's run: ``status="cached"``, ``cached_from``, and the
    original's params, inputs and outputs; this process's environment, code and git."""
    record: dict[str, Any] = {
        "format": 1,
        "id": new_run_id(),
        "name": name,
        "kind": "call",
        "status": "cached",
        "cached_from": entry["run"],
        "started_at": started,
        "parent_id": parent.id if parent is not None else None,
        "message": scrub(message) if isinstance(message, str) else message,
        "tags": {
            str(k): (REDACTED if is_secret_name(str(k)) else redact_text(str(v)))
            for k, v in (tags or {}).items()
        },
        "params": dict(entry["params"]),
        "inputs": dict(entry["inputs"]),
        "outputs": dict(entry["outputs"]),
        "metric_chunks": 0,
    }
    run = Run(writer, record)
    writer.fill_start(run, code, os.getcwd())
    run.state.record["ended_at"] = now_iso()
    run.state.record["resources"] = {"wall_s": round(took, 6)}

    def build() -> dict[str, Any]:
        full = run.record
        return {k: full[k] for k in _ENTRY_KEYS if k in full}

    writer.write_entry(
        whole_key(run.id), seal_bytes(run.encode_entry(build), writer.store.algorithm), run
    )
    writer.after_run(run)
    return run


def _exact(fmt: str | None, result: Any, digest: str, algorithm: str) -> bool:
    """Whether the stored form of ``result`` loads back as an equal value of the same
    types (JSON without tuples or objects, an exact ndarray, a frame, a tensor)."""
    if fmt == "json":
        try:
            data = canonical.dumps(result)
        except (TypeError, ValueError):
            return False
        # redacted when stored (a secret-named key): the stored value is not the value
        return digest_bytes(data, algorithm) == digest and _json_exact(result)
    if fmt == "npy":
        import numpy as np

        return type(result) is np.ndarray
    return fmt in ("parquet", "torch")


def _json_exact(v: Any, depth: int = 0) -> bool:
    if depth > 50:
        return False
    t = type(v)
    if t in (str, int, bool) or v is None:
        return True
    if t is float:
        return math.isfinite(v)  # NaN and infinities are stored as text
    if t is list:
        return all(_json_exact(x, depth + 1) for x in v)
    if t is dict:
        return all(type(k) is str and _json_exact(x, depth + 1) for k, x in v.items())
    return False
