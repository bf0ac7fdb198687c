"""The report as a Markdown summary: for a CI step summary or a pull request.

Every value is escaped for Markdown tables and for the HTML that Markdown renders
(``<``, ``>``, ``&``, ``|``, backticks, newlines), so a message cannot add markup.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ROWS", "render_markdown"]

#: runs listed in the table
ROWS = 30
#: metrics summarised
METRICS = 12


def _cell(v: Any, limit: int = 80) -> str:
    s = "" if v is None else str(v)
    s = " ".join(s.split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "\\`")):
        s = s.replace(a, b)
    return s


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return (
        {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(v)
        if isinstance(v, str)
        else None
    )


def _fmt(v: Any) -> str:
    n = _num(v)
    if n is None:
        return "" if v is None else _cell(v)
    if not math.isfinite(n):
        return str(n)
    return f"{n:.6g}"


def _who(run: dict[str, Any]) -> str:
    return f"`{run['id'][:12]}` {_cell(run['name'], 30)}"


def render_markdown(data: dict[str, Any]) -> str:
    """A summary of ``data`` (from ``data.collect``): counts, a runs table, each metric's
    range and best runs."""
    runs = data["runs"]
    lines = ["## mlledger report", ""]
    scope = f"{len(runs):,} run{'s' if len(runs) != 1 else ''}"
    if data["total"] > len(runs):
        scope += f" (newest {len(runs):,} of {data['total']:,})"
    if data["where"]:
        scope += f" where `{_cell(data['where'], 200)}`"
    lines += [f"Store `{_cell(data['store'], 200)}` · {scope} · written {data['written']}", ""]
    if not runs:
        lines.append(
            "No run matches this filter." if data["where"] else "This ledger has no runs yet."
        )
        return "\n".join(lines) + "\n"
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    lines += [" · ".join(f"{n:,} {s}" for s, n in sorted(statuses.items())), ""]
    keys = sorted({k for r in runs for k in r["metrics"]})
    shown = keys[:4]
    head = ["run", "name", "status", "started", "user", "message", *shown]
    lines.append("| " + " | ".join(_cell(h) for h in head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in runs[:ROWS]:
        cells = [
            f"`{r['id'][:12]}`",
            _cell(r["name"]),
            _cell(r["status"]),
            _cell((r.get("started") or "")[:19].replace("T", " ")),
            _cell(r.get("user")),
            _cell(r.get("message"), 60),
            *(_fmt(r["metrics"].get(k)) for k in shown),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if len(runs) > ROWS:
        lines += ["", f"… and {len(runs) - ROWS:,} more runs in the HTML report."]
    if keys:
        lines += [
            "",
            "### Metrics",
            "",
            "| metric | runs | min | max | lowest | highest |",
            "|---|---|---|---|---|---|",
        ]
        for k in keys[:METRICS]:
            vals = [
                (n, r)
                for r in runs
                if (n := _num(r["metrics"].get(k))) is not None and math.isfinite(n)
            ]
            if not vals:
                lines.append(f"| {_cell(k)} | 0 | | | | |")
                continue
            lo = min(vals, key=lambda p: p[0])
            hi = max(vals, key=lambda p: p[0])
            lines.append(
                f"| {_cell(k)} | {len(vals):,} | {_fmt(lo[0])} | {_fmt(hi[0])} | "
                f"{_who(lo[1])} | {_who(hi[1])} |"
            )
        if len(keys) > METRICS:
            lines += ["", f"… and {len(keys) - METRICS} more metrics in the HTML report."]
    return "\n".join(lines) + "\n"
