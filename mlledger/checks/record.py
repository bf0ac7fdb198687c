"""Check reports in the store: ``checks/<day>/<run id>/<id>.json``, created once, sealed.

Each check of a run is its own entry, never changed: a run checked again gets
a new one, so the history of a run's checks is complete.  The entry's id sorts
by time (a run id's clock), so the newest report is the last listed.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from .. import canonical
from ..errors import LedgerWarning
from ..ids import is_run_id, new_run_id
from ..store.chain import seal, seal_ok
from ..store.layout import check_key, checks_prefix
from .result import CheckReport

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["checks_of", "write_report"]


def write_report(store: Store, report: CheckReport) -> str:
    """Write ``report`` create-only under its run; returns the key."""
    doc = report.to_json()
    for _ in range(5):  # a fresh id per attempt: two writers never share one
        key = check_key(report.run_id, new_run_id())
        if store.create_entry(key, seal(doc, store.algorithm)):
            return key
    raise RuntimeError(f"could not record the check of run {report.run_id}: ids kept clashing")


def checks_of(store: Store, run_id: str) -> list[CheckReport]:
    """Every recorded check report of ``run_id``, oldest first (``[]`` when never checked).

    An entry whose seal no longer matches (edited, damaged) is left out with a warning.
    """
    prefix = checks_prefix(run_id)
    names = sorted(
        n for n in store.backend.list_dir(prefix) if n.endswith(".json") and is_run_id(n[:-5])
    )
    keys = [f"{prefix}/{n}" for n in names]
    out: list[CheckReport] = []
    for key, raw in store.backend.read_many(keys).items():
        if raw is None:
            continue
        try:
            doc = canonical.loads(raw)
            if not isinstance(doc, dict) or not seal_ok(doc, store.algorithm):
                raise ValueError("its seal does not match its content")
            out.append(CheckReport.from_json(doc))
        except Exception as e:
            warnings.warn(
                f"mlledger: check report {key} in {store.url} is damaged ({e}); left out",
                LedgerWarning,
                stacklevel=2,
            )
    out.sort(key=lambda r: r.at)
    return out
