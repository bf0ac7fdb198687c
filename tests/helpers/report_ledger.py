"""A small ledger that exercises every part of the report: a lineage chain, long metric
histories, NaN/inf values, a failed run, a huge param, HTML in messages and params, refs
with moves, a cost, and one run whose record is damaged.  Not a test module itself."""

from __future__ import annotations

import math
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mlledger import Ledger
from mlledger.errors import LedgerWarning
from mlledger.ids import whole_key
from mlledger.store.backends import LocalBackend

#: what the hostile run carries: it must show as text and never run
SCRIPT_MESSAGE = "<script>window.__pwned = 1</script> fixed </script><b>bold</b>"
IMG_PARAM = '<img src=x onerror="window.__pwned = 2">'
#: points logged by each training run (more than the report draws: downsampled)
STEPS = 1500
LONG_PARAM = "x" * 10_000


@dataclass
class ReportLedger:
    """The fixture ledger and the ids the tests look for."""

    ledger: Ledger
    prep: str = ""
    trains: list[str] = field(default_factory=list)
    hostile: str = ""
    failed: str = ""
    damaged: str = ""


def fill_report_ledger(ledger: Ledger, workdir: Path) -> ReportLedger:
    """Fill ``ledger`` (a local store) with the report's fixture runs (see the module doc)."""
    out = ReportLedger(ledger)
    data = workdir / "data.csv"
    data.write_text("x,y\n1,2\n3,4\n")
    with ledger.run("prep", message="clean the raw data") as run:
        run.save(str(data))
    out.prep = run.id
    for i, lr in enumerate((0.1, 0.03, 0.01)):
        model = workdir / f"model-{i}.pt"
        with ledger.run(
            "train",
            params={"lr": lr, "batch": 32, "optimizer": {"name": "adam", "beta": 0.9}},
            message=f"train with lr={lr}",
            tags={"team": "cv"},
        ) as run:
            run.use(str(data))
            for step in range(STEPS):
                loss = (1 + i) * math.exp(-step / 400) + 0.05 * math.sin(step / 7)
                run.log(step=step, loss=loss, accuracy=1 - loss / 4)
            model.write_bytes(os.urandom(64))
            run.save(str(model))
        out.trains.append(run.id)
    with ledger.run("evaluate", params={"model": "model-0.pt"}) as run:
        run.use(str(workdir / "model-0.pt"))
        run.log(step=0, score=float("nan"))
        run.log(step=1, score=float("inf"))
        run.log(step=2, score=0.5, drift=float("inf"))
    with ledger.run(
        "train", params={"lr": 0.3, "notes": LONG_PARAM, "html": IMG_PARAM}, message=SCRIPT_MESSAGE
    ) as run:
        run.log(step=0, loss=2.0)
    out.hostile = run.id
    try:
        with ledger.run("train", params={"lr": 5.0}, message="diverged") as run:
            raise FloatingPointError("loss is nan")
    except FloatingPointError:
        pass
    out.failed = run.id
    with ledger.run("broken", params={"k": 1}) as run:
        pass
    out.damaged = run.id
    ledger.refs.set("model/prod", f"{out.trains[0]}/model-0.pt", message="first model")
    ledger.refs.set("model/prod", f"{out.trains[2]}/model-2.pt", message="<i>lower lr</i>")
    ledger.refs.rollback("model/prod", message="accuracy dropped")
    ledger.check(
        out.trains[1],
        rules=[
            {
                "name": "loss-holds",
                "field": "metrics.loss",
                "baseline": out.trains[0],
                "max_rise": 0.001,
            },
            {"name": "accuracy-floor", "field": "metrics.accuracy", "min": 0.5},
        ],
    )
    damage_run(ledger, out.damaged)
    return out


def damage_run(ledger: Ledger, run_id: str) -> None:
    """Replace the one entry of a short run with garbage, behind mlledger's back."""
    backend = ledger.store.backend
    assert isinstance(backend, LocalBackend)
    path = backend.local_path(whole_key(run_id))
    os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
    Path(path).write_bytes(b"\xff\xfe garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LedgerWarning)
        ledger.reindex()
