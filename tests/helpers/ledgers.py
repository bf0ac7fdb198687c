"""Helpers shared by the catalog, query, lineage, diff, gc and target test modules.

Not a test module itself. Ledgers here are filled by really running tracked
functions and ``ledger.run()`` blocks; nothing writes catalog rows by hand.
"""

from __future__ import annotations

import contextlib
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest

import mlledger
from helpers.servers import StoreSpec
from mlledger import Ledger, Run
from mlledger import ids as _ids

#: the stores most tests run on (the S3/GCS matrix is for a few core tests)
FAST = ["memory", "local"]


def open_ledger(spec: StoreSpec, **kwargs: Any) -> Ledger:
    """A Ledger on ``spec`` (its URL and storage options)."""
    return Ledger(spec.url, **spec.storage_options, **kwargs)


def clear_memory_root(root: str) -> None:
    """Remove everything under ``root`` from fsspec's process-wide memory filesystem."""
    from mlledger import late

    late.flush_all()  # markers still due would land after the root is gone
    mem = fsspec.filesystem("memory")
    prefix = root.rstrip("/") + "/"
    for key in [k for k in mem.store if k == root or k.startswith(prefix)]:
        mem.store.pop(key, None)
    mem.pseudo_dirs[:] = [d for d in mem.pseudo_dirs if not (d == root or d.startswith(prefix))]


@contextlib.contextmanager
def fast_ledger(kind: str, tmp_path: Path, **kwargs: Any) -> Iterator[Ledger]:
    """A Ledger on a fresh memory root or local folder (removed afterwards)."""
    if kind == "memory":
        name = f"/mlledger-t-{uuid.uuid4().hex}"
        ledger = Ledger(f"memory://{name}", **kwargs)
        try:
            yield ledger
        finally:
            if ledger._catalog is not None:
                ledger._catalog.close()
            clear_memory_root(name)
    else:
        ledger = Ledger(tmp_path / "store", **kwargs)
        try:
            yield ledger
        finally:
            if ledger._catalog is not None:
                ledger._catalog.close()


def second_machine(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, cache: Path) -> Ledger:
    """Another Ledger on the same store with its own cache folder (so its own catalog).

    The first ledger's catalog path is fixed before the cache folder moves.
    """
    _ = ledger.catalog  # its path is computed now, under the first cache dir
    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    other = Ledger(ledger.url, **ledger.store.storage_options)
    _ = other.catalog
    return other


@contextlib.contextmanager
def clock_at(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[None]:
    """Run ids made inside carry the time ``seconds`` (since the epoch).

    Only ``mlledger.ids`` sees the fake clock; its per-process "last id"
    memory is reset so that an id older than ones made before is possible.
    """
    with monkeypatch.context() as m:
        m.setattr(_ids, "time", types.SimpleNamespace(time_ns=lambda: int(seconds * 1e9)))
        m.setattr(_ids, "_last", (0, 0))
        yield


#: run ids of the pipeline steps, by step name, as the tracked functions saw them
_SEEN: dict[str, str] = {}


def _me(step: str) -> Run:
    run = mlledger.current_run()
    assert run is not None, "called outside a run"
    _SEEN[step] = run.id
    return run


def prep(n: int) -> list[int]:
    """Make the data."""
    _me("prep")
    return [i * 2 for i in range(n)]


def train(data: list[int], lr: float = 0.1, epochs: int = 3) -> dict[str, float]:
    """Fit a "model" to the data, logging a loss per epoch."""
    run = _me("train")
    for step in range(epochs):
        run.log(step=step, loss=round(1.0 / (step + 1) + lr, 6))
    return {"w": sum(data) * lr, "b": float(len(data))}


def evaluate(model: dict[str, float], data: list[int]) -> float:
    """Score the model on the data."""
    run = _me("evaluate")
    acc = round(min(1.0, model["w"] / 100 + 0.5), 6)
    run.log(accuracy=acc)
    return acc


@dataclass
class Pipeline:
    """A prep -> train -> evaluate pipeline whose values flow between tracked calls."""

    ledger: Ledger
    ids: dict[str, str] = field(default_factory=dict)
    data: Any = None
    model: Any = None
    score: Any = None

    def run(self, name: str) -> Run:
        return self.ledger.get(self.ids[name])


def run_pipeline(ledger: Ledger, *, n: int = 5, lr: float = 0.1, tag: str = "cv") -> Pipeline:
    """Run prep(n) -> train(data, lr) -> evaluate(model, data) as tracked calls."""
    p = Pipeline(ledger)
    _SEEN.clear()
    p.data = ledger.tracked(prep, tags={"team": tag})(n)
    p.model = ledger.tracked(train, tags={"team": tag})(p.data, lr=lr)
    p.score = ledger.tracked(evaluate, tags={"team": tag})(p.model, p.data)
    p.ids = dict(_SEEN)
    assert set(p.ids) == {"prep", "train", "evaluate"}, "a step was not tracked"
    return p


def unique_prefix(ledger: Ledger, run_id: str, *, at_least: int = 6) -> str:
    """The shortest prefix of ``run_id`` (at least ``at_least`` long) no other run shares.

    Runs made in the same millisecond share all but their last characters.
    """
    others = [i for i in ledger.runs().ids if i != run_id]
    for n in range(at_least, len(run_id) + 1):
        if not any(o.startswith(run_id[:n]) for o in others):
            return run_id[:n]
    raise AssertionError(f"{run_id} is not unique")


def shared_prefix(strings: list[str]) -> str:
    """The longest prefix all of ``strings`` share (character by character)."""
    first, last = min(strings), max(strings)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]
