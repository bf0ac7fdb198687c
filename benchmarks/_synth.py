"""Generated run entries for the large-ledger benchmarks (not real runs).

A real run costs ~1 ms through ``ledger.run()``; a million of them would take
a quarter of an hour.  Here each run is a short run's one entry
(``runs/<yyyy>/<mm>/<dd>/<id>.json``, sealed as mlledger seals it) with the
fields a finished run has: 8 params, two metrics, resources.  The ids carry
the run's time, spread evenly over the span asked for.
"""

from __future__ import annotations

import datetime as _dt
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import REPO  # noqa: F401 - puts the working tree on sys.path

from mlledger import canonical
from mlledger.ids import day_path, fixed_run_id
from mlledger.store.chain import seal_bytes

__all__ = ["entries", "write_local"]

NAMES = ("train", "eval", "prep", "sweep")
_ENV = "xxh128:" + "0" * 32


def _iso(ms: int) -> str:
    t = _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def record(rid: str, ms: int, k: int, rng: random.Random) -> dict[str, Any]:
    loss, acc = rng.random(), rng.random()
    return {
        "code": {"kind": "block", "module": "__main__", "qualname": "<module>"},
        "ended_at": _iso(ms + 1500),
        "env": _ENV,
        "format": 1,
        "host": "bench",
        "id": rid,
        "inputs": {},
        "kind": "block",
        "message": None,
        "metric_chunks": 0,
        "metrics": {
            "loss": {"count": 5, "last": loss, "max": loss + 0.4, "min": loss, "step": 4},
            "acc": {"count": 5, "last": acc, "max": acc, "min": acc, "step": 4},
        },
        "name": rng.choice(NAMES),
        "outputs": {},
        "params": {
            "lr": 10 ** rng.uniform(-4, -1),
            "batch": rng.choice((16, 32, 64, 128)),
            "optimizer": rng.choice(("adam", "sgd", "adamw")),
            "epochs": rng.randint(1, 50),
            "dropout": round(rng.uniform(0, 0.5), 3),
            "weight_decay": rng.choice((0.0, 1e-5, 1e-4)),
            "model": rng.choice(("resnet18", "resnet50", "vit-b")),
            "seed": k,
        },
        "parent_id": None,
        "process": {"argv": ["train.py"], "cwd": "/work", "pid": 1000 + k % 30000},
        "resources": {"cpu_system_s": 0.01, "cpu_user_s": 1.2, "wall_s": 1.5},
        "started_at": _iso(ms),
        "status": "finished",
        "tags": {},
        "user": "bench",
        "warnings": [],
    }


def entries(n: int, start_ms: int, end_ms: int, seed: int = 1) -> Iterator[tuple[str, bytes]]:
    """``(key, bytes)`` of ``n`` short runs' entries, their times spread over the span."""
    rng = random.Random(seed)
    span = max(1, end_ms - start_ms)
    for k in range(n):
        ms = start_ms + k * span // n
        rid = fixed_run_id(ms, f"{seed}:{k}".encode())
        body = canonical.dumps(record(rid, ms, k, rng))
        yield day_path(rid) + ".json", seal_bytes(body, "xxh128")


def write_local(root: Path, n: int, start_ms: int, end_ms: int, seed: int = 1) -> None:
    """Write the entries straight into a local store's folders."""
    made: set[str] = set()
    for key, raw in entries(n, start_ms, end_ms, seed):
        folder = key.rsplit("/", 1)[0]
        if folder not in made:
            os.makedirs(root / folder, exist_ok=True)
            made.add(folder)
        with open(root / key, "wb") as f:
            f.write(raw)
