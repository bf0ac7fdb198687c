"""A changelog as aligned text for a terminal and as markdown for a pull request.

Text styles with click (``color=False`` gives plain text); times are UTC with
their age; digests are shown as pasteable ``algo:prefix``.  Markdown gives a
heading per move, a metrics table (old, new, change, %) and the causes as a
list; cell text is escaped so a ``|`` or a newline in a name cannot break a row.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import click

from .._fmt import counted, human_size, num, short_digest, short_value, when
from .entry import CAUSES, ChangelogEntry, MetricEffect

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..checks import CheckReport
    from ..diff import Change

__all__ = ["changelog_markdown", "changelog_text"]

_DIGEST = re.compile(r"[a-z0-9]+:[0-9a-f]{24,}")
_KIND_MARK = {"added": "+", "removed": "-", "changed": "~"}
_KIND_COLOR = {"added": "green", "removed": "red", "changed": "yellow"}


def _value(v: Any) -> str:
    """A changed value on one line: digests as ``algo:prefix``, long values cut."""
    if isinstance(v, str) and _DIGEST.fullmatch(v):
        return short_digest(v)
    if v is None:
        return "-"
    return short_value(v, 60)


def _signed(v: float | None, suffix: str = "") -> str:
    if v is None or not math.isfinite(v):
        return "-"
    if v == 0:
        return f"0{suffix}"
    return f"{v:+.1f}{suffix}" if suffix else f"{v:+.4g}"


def _action(e: ChangelogEntry) -> str:
    what = e.action
    if e.action == "rollback" and e.restores is not None:
        what = f"rollback to #{e.restores}"
    return f"{what} (forced past the policy)" if e.forced else what


def _cost(value: float | None, currency: str | None) -> str:
    return "-" if value is None else f"{value:.4g} {currency or ''}".rstrip()


def _run_label(run_id: str | None, name: str | None, status: str | None) -> str:
    if run_id is None:
        return "-"
    bits = [b for b in (name, status) if b]
    return f"{run_id} ({', '.join(bits)})" if bits else run_id


def _target_lines(e: ChangelogEntry) -> list[tuple[str, str]]:
    """``(label, text)`` rows saying what the move points at and what it is compared to."""
    rows: list[tuple[str, str]] = []
    if e.artifact is not None:
        a = e.artifact
        name = f"{e.output} " if e.output else ""
        rows.append(("target", f"{name}{short_digest(a.digest)} ({a.kind}, {human_size(a.size)})"))
        made = _run_label(e.run_id, e.run_name, e.run_status)
        rows.append(("run", made if e.run_id else "unknown: no one run is recorded as its maker"))
    elif e.target is not None:
        rows.append(("run", _run_label(e.run_id or e.target, e.run_name, e.run_status)))
    if e.before_seq is None:
        rows.append(("before", "nothing: the first move"))
    elif e.before_run is None:
        rows.append(("before", f"#{e.before_seq}, whose target has no known run: no comparison"))
    elif e.run_id is None:
        rows.append(("before", f"#{e.before_seq}, run {e.before_run}: no comparison"))
    elif e.before_run == e.run_id:
        rows.append(("before", f"#{e.before_seq}, the same run: nothing changed"))
    else:
        rows.append(("before", f"#{e.before_seq}, run {e.before_run}"))
    if e.cost is not None or e.before_cost is not None:
        text = _cost(e.cost, e.currency)
        if e.before_cost is not None and e.before_seq is not None:
            text += f" (before: {_cost(e.before_cost, e.currency)})"
        rows.append(("cost", text))
    return rows


def _metric_row(m: MetricEffect) -> tuple[str, str, str, str, str]:
    old = "-" if m.old is None else num(m.old)
    return (m.key, old, num(m.new), _signed(m.change), _signed(m.percent, "%"))


def _change_text(c: Change) -> str:
    if c.kind == "added":
        return f"{c.key}: {_value(c.new)} (added)"
    if c.kind == "removed":
        return f"{c.key}: {_value(c.old)} (removed)"
    return f"{c.key}: {_value(c.old)} -> {_value(c.new)}"


# ------------------------------------------------------------------------------- text


def changelog_text(
    ref: str, moves: int, entries: Sequence[ChangelogEntry], *, color: bool = False
) -> str:
    """The changelog of ``ref`` (``moves`` in all): every move in ``entries``, newest first,
    its fields aligned under it."""

    def style(text: str, **how: Any) -> str:
        return click.style(text, **how) if color else text

    shown = len(entries)
    more = f", the newest {shown} shown" if shown < moves else ""
    out = [style(f"changelog of {ref}: {counted(moves, 'move')}{more}", bold=True)]
    for e in entries:
        out.append("")
        head = f"#{e.seq}  {_action(e)}"
        if not e.readable:
            out.append(style(head, fg="red", bold=True))
            out += [style(f"    ! {p}", fg="red") for p in e.problems]
            continue
        fg = "magenta" if e.action == "rollback" else "yellow"
        out.append(f"{style(head, fg=fg, bold=True)}  {when(e.at)}  {e.who}")
        if e.message:
            out += [f"    {line}" for line in e.message.splitlines()]
        rows = _target_lines(e)
        width = max(len(label) for label, _ in rows)
        out += [f"    {label:<{width}}  {text}" for label, text in rows]
        groups = e.causes_by()
        if groups:
            out.append(style("    causes", bold=True))
            cw = max(len(g) for g in groups)
            for group, changes in groups.items():
                for i, c in enumerate(changes):
                    label = group if i == 0 else ""
                    mark = _KIND_MARK.get(c.kind, "~")
                    out.append(
                        f"      {label:<{cw}}  "
                        + style(f"{mark} {_change_text(c)}", fg=_KIND_COLOR.get(c.kind))
                    )
        elif e.before_run is not None and e.run_id is not None and e.before_run != e.run_id:
            out.append("    causes  none recorded: the runs differ only in time or outputs")
        if e.metrics:
            out += _metrics_text(e, style)
        if e.checks is not None:
            out += _checks_text(e.checks, style)
        out += [style(f"    ! {p}", fg="red") for p in e.problems]
    return "\n".join(out) + "\n"


def _checks_text(report: CheckReport, style: Any) -> list[str]:
    verdict = (
        style("all pass", fg="green")
        if report.ok
        else style(f"{len(report.failed)} failed", fg="red", bold=True)
    )
    out = [f"{style('    checks', bold=True)}  {verdict}, checked {when(report.at)}"]
    width = max((len(r.rule) for r in report.results), default=0)
    for r in report.results:
        mark = style("pass", fg="green") if r.ok else style("FAIL", fg="red", bold=True)
        out.append(f"      {mark}  {r.rule:<{width}}  {r.message}")
    return out


def _metrics_text(e: ChangelogEntry, style: Any) -> list[str]:
    header = ("metric", "old", "new", "change", "%")
    rows = [_metric_row(m) for m in e.metrics]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(5)]

    def line(r: tuple[str, ...]) -> str:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, 5)]
        return "      " + "  ".join(cells)

    return [style("    metrics", bold=True), style(line(header).rstrip(), dim=True)] + [
        line(r).rstrip() for r in rows
    ]


# --------------------------------------------------------------------------- markdown


def _md(text: Any) -> str:
    """Text safe inside a markdown table cell or list item: one line, no table breaks,
    no HTML."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    for ch, esc in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
        s = s.replace(ch, esc)
    return s


def _code(text: Any) -> str:
    """Inline code that a backtick in ``text`` cannot end early."""
    s = str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in s else "`"
    return f"{fence} {s} {fence}" if fence == "``" else f"`{s}`"


def changelog_markdown(ref: str, moves: int, entries: Sequence[ChangelogEntry]) -> str:
    """A heading per move, a metrics table with old/new/change/%, the causes as a list."""
    shown = len(entries)
    more = f" (the newest {shown})" if shown < moves else ""
    out = [f"## Changelog of `{_md(ref)}`", "", f"{counted(moves, 'move')}{more}, newest first."]
    for e in entries:
        out += ["", f"### #{e.seq} {_md(_action(e))}"]
        if not e.readable:
            out += ["", *[f"- **problem**: {_md(p)}" for p in e.problems]]
            continue
        out += ["", f"{when(e.at)} by {_md(e.who)}"]
        if e.message:
            quoted = [f"> {_md(ln)}" if ln.strip() else ">" for ln in e.message.splitlines()]
            out += ["", *quoted]
        out.append("")
        out += [f"- **{label}**: {_md(text)}" for label, text in _target_lines(e)]
        if e.metrics:
            out += ["", "| metric | old | new | change | % |", "|---|--:|--:|--:|--:|"]
            out += ["| " + " | ".join(_md(c) for c in _metric_row(m)) + " |" for m in e.metrics]
        groups = e.causes_by()
        if groups:
            out += ["", "**Causes**", ""]
            for group in (*CAUSES, *(g for g in groups if g not in CAUSES)):
                for c in groups.get(group, ()):
                    out.append(f"- {group}: {_md_change(c)}")
        if e.checks is not None:
            verdict = "all pass" if e.checks.ok else f"{len(e.checks.failed)} failed"
            out += ["", f"**Checks**: {verdict}, checked {when(e.checks.at)}", ""]
            for r in e.checks.results:
                mark = "pass" if r.ok else "**FAIL**"
                out.append(f"- {mark} {_code(r.rule)}: {_md(r.message)}")
        if e.problems:
            out += ["", *[f"- **problem**: {_md(p)}" for p in e.problems]]
    return "\n".join(out) + "\n"


def _md_change(c: Change) -> str:
    if c.kind == "added":
        return f"{_code(c.key)} added: {_code(_value(c.new))}"
    if c.kind == "removed":
        return f"{_code(c.key)} removed (was {_code(_value(c.old))})"
    return f"{_code(c.key)}: {_code(_value(c.old))} → {_code(_value(c.new))}"
