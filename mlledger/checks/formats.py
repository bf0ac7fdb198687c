"""Check reports as text for people, JSON for scripts, Markdown for a CI step summary or
a pull request comment, and JUnit XML for a CI's test view."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from .result import CheckReport, CheckResult

__all__ = ["FORMATS", "format_reports", "junit_xml", "markdown", "result_lines", "text"]

FORMATS = ("text", "json", "markdown", "junit")


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if math.isnan(v):
        return "nan"
    return f"{v:.6g}"


def _change(r: CheckResult) -> str:
    if r.change is None:
        return "-"
    pct = ""
    if r.baseline and math.isfinite(r.change):
        pct = f" ({r.change / abs(r.baseline) * 100:+.3g} %)"
    return f"{r.change:+.6g}{pct}"


def result_lines(report: CheckReport, indent: str = "  ") -> list[str]:
    """One line per result: ``ok``/``FAIL``, the rule, the message."""
    width = max((len(r.rule) for r in report.results), default=0)
    return [
        f"{indent}{'ok  ' if r.ok else 'FAIL'}  {r.rule:<{width}}  {r.message}"
        for r in report.results
    ]


def text(reports: Sequence[CheckReport]) -> str:
    """Each report: a line naming the run and the tally, then one line per rule."""
    out: list[str] = []
    for rep in reports:
        failed = len(rep.failed)
        tally = (
            f"{len(rep.results)} rule{'s' if len(rep.results) != 1 else ''} passed"
            if not failed
            else f"{failed} of {len(rep.results)} rules failed"
        )
        out.append(f"run {rep.run_id}: {tally}")
        out += result_lines(rep)
    return "\n".join(out)


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def markdown(reports: Sequence[CheckReport]) -> str:
    """A heading with the verdict and a table: ✅/❌, rule, run, value, baseline, change."""
    results = [(rep, r) for rep in reports for r in rep.results]
    failed = sum(not r.ok for _rep, r in results)
    if failed:
        head = f"### ❌ mlledger check: {failed} of {len(results)} rules failed"
    else:
        head = f"### ✅ mlledger check: all {len(results)} rules passed"
    out = [
        head,
        "",
        "| | rule | run | value | baseline | change | details |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for rep, r in results:
        base = _num(r.baseline)
        if r.spec and r.baseline is not None:
            base = f"{base} ({r.spec})"
        out.append(
            f"| {'✅' if r.ok else '❌'} | {_cell(r.rule)} | `{rep.run_id}` | {_num(r.value)} | "
            f"{_cell(base)} | {_change(r)} | {_cell(r.message)} |"
        )
    return "\n".join(out) + "\n"


def junit_xml(reports: Sequence[CheckReport]) -> str:
    """JUnit XML: one testsuite, a testcase per rule and run, ``<failure>`` for failed ones."""
    import xml.etree.ElementTree as ET

    results = [(rep, r) for rep in reports for r in rep.results]
    at = max((rep.at for rep in reports), default=None)
    suite = ET.Element(
        "testsuite",
        {
            "name": "mlledger check",
            "tests": str(len(results)),
            "failures": str(sum(not r.ok for _rep, r in results)),
            "errors": "0",
            "skipped": "0",
            "time": "0",
            **({"timestamp": at.strftime("%Y-%m-%dT%H:%M:%S")} if at else {}),
        },
    )
    for rep, r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"mlledger.check.{rep.run_id}", "name": r.rule, "time": "0"},
        )
        if not r.ok:
            fail = ET.SubElement(case, "failure", {"message": r.message, "type": "CheckFailed"})
            fail.text = r.message
        else:
            ET.SubElement(case, "system-out").text = r.message
    root = ET.Element("testsuites", {"name": "mlledger"})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_json(reports: Sequence[CheckReport]) -> dict[str, Any]:
    return {"ok": all(rep.ok for rep in reports), "reports": [rep.to_json() for rep in reports]}


def format_reports(reports: Sequence[CheckReport], fmt: str) -> str:
    """``reports`` in one of :data:`FORMATS`."""
    if fmt == "json":
        return json.dumps(to_json(reports), indent=2, sort_keys=True)
    if fmt == "markdown":
        return markdown(reports).rstrip("\n")
    if fmt == "junit":
        return junit_xml(reports).rstrip("\n")
    return text(reports)
