"""RunList reads the matched runs in bulk from the catalog's rows: the same answers as
building each Run, for metrics, to_pandas() and the runs themselves."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlledger import Ledger
from mlledger.catalog import RunList


@pytest.fixture
def filled(tmp_path: Path) -> Ledger:
    """A ledger of 600 runs (more than one bulk window) with params, tags, resources and
    metrics, a few with a metric a number column cannot hold, one still going."""
    ledger = Ledger(tmp_path / "store", capture_files=False)
    for i in range(600):
        with ledger.run(
            "train" if i % 3 else "eval",
            params={"lr": 0.001 * (i + 1), "cfg": {"depth": i % 7, "act": "relu"}, "n": i},
            tags={"team": "cv" if i % 2 else "nlp"},
        ) as run:
            run.log(step=0, loss=1.0 / (i + 1), acc=i % 10)
            if i % 97 == 0:
                run.log(step=1, odd=math.inf)
    ledger.sync()
    return ledger


def one_by_one(ledger: Ledger, runs: RunList) -> RunList:
    """The same runs, read one Run at a time (no bulk source)."""
    return RunList(ledger.catalog.run, list(runs.ids))


def test_metrics_in_bulk_equal_each_runs_metrics(filled: Ledger) -> None:
    """``runs.metrics`` is ``[run.metrics for run in runs]``, odd values included."""
    runs = filled.runs(where="metrics.loss < 0.5")
    assert len(runs) > 500
    assert runs.metrics == [r.metrics for r in one_by_one(filled, runs)]
    assert any(math.isinf(m.get("odd", 0)) for m in runs.metrics)


def test_runs_built_in_bulk_equal_runs_read_one_at_a_time(filled: Ledger) -> None:
    """Iterating a RunList builds the same runs (ids, params, metrics, status, inputs)."""
    runs = filled.runs()
    slow = one_by_one(filled, runs)
    assert [(r.id, r.params, r.metrics, r.status, r.tags) for r in runs] == [
        (r.id, r.params, r.metrics, r.status, r.tags) for r in slow
    ]
    assert runs[-1].id == runs.ids[-1]
    assert runs[300].id == runs.ids[300]


def test_to_pandas_in_bulk_equals_the_table_built_from_runs(filled: Ledger) -> None:
    """``to_pandas()`` from the index's rows is the table built from each Run."""
    pytest.importorskip("pandas")
    runs = filled.runs(where="params.n >= 10")
    fast, slow = runs.to_pandas(), one_by_one(filled, runs).to_pandas()
    assert list(fast.columns) == list(slow.columns)
    assert fast.shape == (590, len(slow.columns))
    assert fast.astype(str).equals(slow.astype(str))
