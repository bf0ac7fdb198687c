"""Ledgers with runs filed under past days, and catalogs that see a store for the first
time (another machine, a new team member): for the segment, cold-sync and late-run tests.

Not a test module itself.  The runs are made by really running ``ledger.run()`` blocks
under a clock set back (``clock_at``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from helpers.ledgers import clock_at
from mlledger import Ledger
from mlledger.ids import day_path

DAY = 86400.0


def newcomer(url: str, options: dict[str, Any], cache: Path, mp: pytest.MonkeyPatch) -> Ledger:
    """A Ledger whose catalog lives under ``cache`` (another machine, a new team member)."""
    cache.mkdir(exist_ok=True)
    mp.setenv("XDG_CACHE_HOME", str(cache))
    return Ledger(url, capture_files=False, **options)


def runs_over_days(
    ledger: Ledger, mp: pytest.MonkeyPatch, days: range, per_day: int
) -> dict[int, list[str]]:
    """``per_day`` finished runs filed under each day ``days`` back; their ids by day."""
    made: dict[int, list[str]] = {}
    for ago in days:
        with clock_at(mp, time.time() - ago * DAY):
            for i in range(per_day):
                with ledger.run("old", params={"i": i, "day": ago}) as run:
                    run.log(loss=i / 10 + ago)
                made.setdefault(ago, []).append(run.id)
    return made


def day_of(run_id: str) -> str:
    """The day folder (``yyyy/mm/dd``) a run is filed under."""
    return day_path(run_id).split("/", 1)[1].rsplit("/", 1)[0]


def summary(ledger: Ledger) -> dict[str, Any]:
    """What a catalog answers: every run's id, params, metrics and status."""
    return {r.id: (r.params, r.metrics, r.status) for r in ledger.runs()}
