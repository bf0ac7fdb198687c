"""What a report shows, gathered from a ledger into one JSON-ready dict.

Everything the page needs is here, so the page asks nothing of anyone when it
is opened: the runs (a row each, with what a diff of two of them compares), the
metric curves of the first runs (each cut to at most ``points`` points by LTTB,
saying how many there were), the lineage of the first runs laid out in layers,
the refs' histories, and room for check results, alerts and changelogs.  Non-finite
numbers (NaN, inf) are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``, which JSON has no numbers for.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import canonical
from .._version import __version__
from ..checks import checks_of
from ..errors import LedgerError
from ..ids import id_time
from ..records import is_stand_in, param_fields, to_iso
from .graph import layers
from .lttb import lttb

if TYPE_CHECKING:
    from ..runs import Run
    from .source import ReportSource

__all__ = ["CURVE_RUNS", "GRAPH_RUNS", "POINTS", "collect", "number", "run_row"]

#: runs whose metric curves are embedded (the first ones in the table)
CURVE_RUNS = 200
#: points a curve keeps at most (LTTB): a chart is ~500 px wide
POINTS = 200
#: runs whose lineage is drawn (the first ones in the table)
GRAPH_RUNS = 80
#: refs whose changelog is embedded, and the moves of each
CHANGELOG_REFS = 50
CHANGELOG_MOVES = 20
#: distinct environments whose packages are embedded for diffs
ENVS = 200

_CODE_KEYS = ("qualname", "source_digest", "closure_digest", "module_digest", "file", "kind")
_GIT_KEYS = ("commit", "branch", "remote", "dirty", "diff")


def number(v: Any) -> Any:
    """A float as JSON can hold it: NaN and the infinities become strings."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def _display(v: Any) -> Any:
    """A param value for the table: a stand-in for a stored value becomes its description."""
    if is_stand_in(v):
        if "repr" in v:
            return f"<{v['type']}> {v['repr']}"
        shape = v.get("shape") or v.get("len")
        return f"<{v['type']}{f' {shape}' if shape is not None else ''}> {v.get('digest', '')}"
    if isinstance(v, float):
        return number(v)
    if isinstance(v, (dict, list)):
        return canonical.dumps(v).decode() if _finite(v) else repr(v)
    return v


def _finite(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    if isinstance(v, list):
        return all(_finite(x) for x in v)
    return True


def run_row(run: Run) -> dict[str, Any]:
    """One run as the page's table and diff read it."""
    rec = run.record
    res = rec.get("resources") or {}
    cost = res.get("cost")
    row: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "started": rec.get("started_at"),
        "ended": rec.get("ended_at"),
        "user": rec.get("user"),
        "host": rec.get("host"),
        "message": run.message,
        "tags": {k: str(v) for k, v in (rec.get("tags") or {}).items()},
        "params": {k: _display(v) for k, v in param_fields(rec.get("params") or {}).items()},
        "metrics": {k: number(s.get("last")) for k, s in (rec.get("metrics") or {}).items()},
        "in": {k: a.get("digest") for k, a in (rec.get("inputs") or {}).items()},
        "out": {k: a.get("digest") for k, a in (rec.get("outputs") or {}).items()},
        "code": {k: v for k, v in (rec.get("code") or {}).items() if k in _CODE_KEYS},
        "git": {k: v for k, v in (rec.get("git") or {}).items() if k in _GIT_KEYS},
        "env": rec.get("env"),
    }
    if isinstance(cost, (int, float)):
        row["cost"] = [number(float(cost)), str(res.get("currency") or "")]
    if rec.get("parent_id"):
        row["parent"] = rec["parent_id"]
    if run.error is not None:
        row["error"] = run.error.summary
    if run.status_reason:
        row["reason"] = run.status_reason
    return row


def _damaged_row(run_id: str) -> dict[str, Any]:
    return {
        "id": run_id,
        "name": "",
        "status": "damaged",
        "started": to_iso(id_time(run_id)),
        "damaged": True,
        "reason": "its record cannot be read; 'mlledger verify' says what is wrong",
        "tags": {},
        "params": {},
        "metrics": {},
        "in": {},
        "out": {},
        "code": {},
        "git": {},
    }


def _curves(run: Run, points: int) -> dict[str, Any]:
    """Each metric of a run as ``{"s": steps, "v": values, "n": points logged}``, cut by LTTB;
    ``"bad"`` counts NaN/inf values, which are not drawn."""
    out: dict[str, Any] = {}
    try:
        histories = run.metric_histories(sorted(run.record.get("metrics") or {}))
    except LedgerError:
        return out
    for key, hist in histories.items():
        good = [(s, v) for s, v, _t in hist if math.isfinite(v)]
        xs = [float(s) for s, _ in good]
        ys = [v for _, v in good]
        keep = lttb(xs, ys, points) if len(good) > points else range(len(good))
        curve: dict[str, Any] = {
            "s": [good[i][0] for i in keep],
            # 5 significant digits: a drawn curve needs no more, and the file stays small
            "v": [float(f"{ys[i]:.5g}") for i in keep],
            "n": len(hist),
        }
        if len(good) < len(hist):
            curve["bad"] = len(hist) - len(good)
        out[key] = curve
    return out


def _envs(ledger: ReportSource, digests: Iterable[str]) -> dict[str, Any]:
    """What a diff compares of each distinct environment: packages, env vars, python, platform."""
    out: dict[str, Any] = {}
    for d in digests:
        try:
            env = dict(canonical.loads(ledger.store.get(d)))
        except LedgerError:
            continue
        hw = {k: env[k] for k in ("cpu", "memory", "gpus") if k in env}
        out[d] = {
            "packages": env.get("packages") or {},
            "env_vars": env.get("env_vars") or {},
            "python": param_fields(env.get("python") or {}),
            "platform": param_fields({**(env.get("platform") or {}), **hw}),
        }
    return out


def _lineage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs and the artifacts they used and produced, in layers (left to right)."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[tuple[str, str, str]] = []
    ids = {r["id"] for r in rows}
    for r in rows:
        nodes[r["id"]] = {"id": r["id"], "kind": "run", "label": r["name"], "status": r["status"]}
        for section, label in (("in", "used"), ("out", "produced")):
            for name, digest in r[section].items():
                if not digest:
                    continue
                node = nodes.setdefault(digest, {"id": digest, "kind": "artifact", "label": name})
                if node["label"] != name and name not in node["label"].split(" · "):
                    node["label"] = f"{node['label']} · {name}"
                edge = (digest, "used", r["id"]) if label == "used" else (r["id"], label, digest)
                edges.append(edge)
        if r.get("parent") in ids:
            edges.append((r["id"], "child_of", r["parent"]))
    flow = [(a, b) for a, label, b in edges if label != "child_of"]
    layer = layers(list(nodes), flow)
    for node_id, node in nodes.items():
        node["layer"] = layer[node_id]
    return {"nodes": list(nodes.values()), "edges": [list(e) for e in dict.fromkeys(edges)]}


def _checks(ledger: ReportSource, run_ids: Iterable[str]) -> dict[str, Any]:
    """Each run's newest recorded check results (runs never checked are left out)."""
    out: dict[str, Any] = {}
    for rid in run_ids:
        try:
            reports = checks_of(ledger.store, rid)
        except LedgerError:
            continue
        if not reports or not reports[-1].results:
            continue
        newest = reports[-1]
        out[rid] = [
            {
                "rule": r.rule,
                "field": r.field,
                "value": number(r.value),
                "baseline": number(r.baseline),
                "change": number(r.change),
                "ok": r.ok,
                "message": r.message,
                "at": to_iso(newest.at),
            }
            for r in newest.results
        ]
    return out


def _changelogs(ledger: ReportSource, names: list[str]) -> list[dict[str, Any]]:
    """Each ref's changelog as text (its newest ``CHANGELOG_MOVES`` moves), for the first
    ``CHANGELOG_REFS`` refs; a ref whose changelog cannot be built says why."""
    out: list[dict[str, Any]] = []
    for name in names[:CHANGELOG_REFS]:
        try:
            text = ledger.changelog(name, limit=CHANGELOG_MOVES).to_text()
        except LedgerError as e:
            text = f"no changelog: {e}"
        out.append({"ref": name, "text": text})
    return out


def _refs(ledger: ReportSource) -> list[dict[str, Any]]:
    """Each ref's moves, newest first: who, when, what it pointed at, why."""
    out: list[dict[str, Any]] = []
    for name in ledger.refs.names():
        try:
            hist = ledger.refs.history(name)
        except LedgerError as e:
            out.append({"name": name, "error": str(e), "moves": []})
            continue
        moves = [
            {
                "seq": e.seq,
                "target": e.target,
                "run": e.run,
                "at": to_iso(e.at),
                "user": e.user,
                "message": e.message,
                "action": e.action,
            }
            for e in reversed(hist)
        ]
        out.append({"name": name, "moves": moves})
    return out


def collect(
    ledger: ReportSource,
    *,
    where: str | None = None,
    limit: int | None = None,
    curve_runs: int = CURVE_RUNS,
    points: int = POINTS,
    graph_runs: int = GRAPH_RUNS,
    extras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the report shows, newest run first.

    Check results are read for the first ``curve_runs`` rows too (the newest check of
    each).  ``extras`` fills the sections other parts provide (``checks`` to replace
    those, ``alerts``, ``changelogs`` to replace each ref's changelog); an empty one is
    not shown.
    """
    matched = ledger.runs(where=where)
    total = len(matched)
    runs = matched[: total if limit is None else limit]
    rows = [run_row(r) for r in runs]
    damaged: list[str] = []
    if where is None:
        damaged = ledger.catalog.damaged_runs()
        rows = sorted(
            rows + [_damaged_row(i) for i in damaged], key=lambda r: r["id"], reverse=True
        )
        rows = rows if limit is None else rows[:limit]
    first = {r["id"] for r in rows[:curve_runs]}  # the table's first rows, as the page says
    curves = {r.id: c for r in runs if r.id in first and (c := _curves(r, points))}
    env_digests = list(dict.fromkeys(r["env"] for r in rows if r.get("env")))
    extras = extras or {}
    refs = _refs(ledger)
    return {
        "title": "mlledger report",
        "store": ledger.url,
        "written": to_iso(_dt.datetime.now(_dt.timezone.utc)),
        "version": __version__,
        "where": where,
        "limit": limit,
        "total": total + len(damaged),
        "runs": rows,
        "envs": _envs(ledger, env_digests[:ENVS]),
        "envs_left_out": max(0, len(env_digests) - ENVS),
        "curves": curves,
        "curve_runs": curve_runs,
        "points": points,
        "lineage": _lineage([r for r in rows if not r.get("damaged")][:graph_runs]),
        "graph_runs": graph_runs,
        "refs": refs,
        "checks": extras.get("checks") or _checks(ledger, [r["id"] for r in rows[:curve_runs]]),
        "check_runs": curve_runs,
        "alerts": extras.get("alerts") or [],
        "changelogs": extras.get("changelogs") or _changelogs(ledger, [r["name"] for r in refs]),
    }
