"""The report: one self-contained HTML page (or a Markdown summary) of a ledger.

``write_report`` gathers the data (``data.collect``), renders it (``page`` for HTML,
``markdown``) and writes it to a file through a temp name, or publishes it into the
store create-only under ``reports/``.  ``Ledger.report`` and ``mlledger report`` call it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import ExistsError, UsageError
from ..ids import new_run_id
from ..store.layout import report_key
from .data import CURVE_RUNS, collect
from .markdown import render_markdown
from .page import embed_json, render_html, write_atomic

if TYPE_CHECKING:
    from .source import ReportSource

__all__ = ["FORMATS", "collect", "embed_json", "render_html", "render_markdown", "write_report"]

#: the formats a report is written in, and each one's file extension
FORMATS = {"html": "html", "markdown": "md"}


def write_report(
    ledger: ReportSource,
    path: str | os.PathLike[str] | None = "mlledger-report.html",
    where: str | None = None,
    *,
    limit: int | None = None,
    format: str = "html",
    publish: bool = False,
    curve_runs: int = CURVE_RUNS,
    extras: dict[str, Any] | None = None,
) -> str:
    """Write the report to ``path`` and, with ``publish``, into the store (create-only,
    under ``reports/``); returns where it went (the store URL of its key when published,
    else the file's path).  ``path=None`` with ``publish`` writes no local file."""
    if format not in FORMATS:
        raise UsageError(f"unknown report format {format!r}: use one of {', '.join(FORMATS)}")
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be a positive number of runs, not {limit}")
    if curve_runs < 0:
        raise UsageError(f"curve_runs must be 0 or more, not {curve_runs}")
    if path is None and not publish:
        raise UsageError("give a path to write the report to, or publish=True")
    data = collect(ledger, where=where, limit=limit, curve_runs=curve_runs, extras=extras)
    text = render_html(data) if format == "html" else render_markdown(data)
    blob = text.encode("utf-8")
    written = None if path is None else str(write_atomic(path, blob))
    if not publish:
        return str(written)
    key = report_key(new_run_id(), FORMATS[format])
    if not ledger.store.create_entry(key, blob):
        raise ExistsError(f"a report already exists at {key}; publish again for a new key")
    return f"{ledger.url.rstrip('/')}/{key}"
