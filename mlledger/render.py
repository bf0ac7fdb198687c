"""One text view of runs, artifacts, refs and lineage, for people: the command line and
the notebook's ``%ledger`` print through it.

Times are UTC with their age (``2025-01-02 03:04:05 UTC (3m ago)``), run ids the
shortest unique prefix of at least 12 characters, digests whole or as a pasteable
``algo:prefix``.  Text is styled with click (a terminal shows colours; ``click.echo``
drops them elsewhere, ``click.unstyle`` removes them).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from ._fmt import (
    age,
    counted,
    human_seconds,
    human_size,
    money,
    num,
    short_digest,
    short_value,
    when,
)
from .errors import LedgerError
from .ids import short_ids
from .records import param_fields

if TYPE_CHECKING:
    from .ledger import Ledger
    from .lineage import Lineage
    from .records import Artifact, RefEntry
    from .runs import Run
    from .store.tree import TreeEntry

__all__ = [
    "STATUS_COLORS",
    "artifact_line",
    "artifact_text",
    "cost_text",
    "lineage_text",
    "metrics_text",
    "ref_current",
    "ref_line",
    "ref_list_lines",
    "run_lines",
    "run_text",
    "short_run_ids",
    "styled_status",
]

STATUS_COLORS = {
    "finished": "green",
    "failed": "red",
    "interrupted": "yellow",
    "incomplete": "magenta",
    "running": "cyan",
    "cached": "blue",
}


def short_run_ids(ledger: Ledger, ids: Iterable[str]) -> dict[str, str]:
    """The shortest unique prefix (12 characters or more) of each run id, per the catalog."""
    ids = list(ids)
    return short_ids(ids, ledger.catalog.all_run_ids()) if ids else {}


def styled_status(status: str) -> str:
    return click.style(status, fg=STATUS_COLORS.get(status))


def artifact_line(name: str, art: Artifact, width: int) -> str:
    extra = ""
    if art.kind == "tree" and art.files is not None:
        extra = f", {art.files} files"
    elif art.format:
        extra = f", {art.format}"
    return f"  {name:<{width}}  {art.digest}  {art.kind}, {human_size(art.size)}{extra}"


def cost_text(run: Run) -> str | None:
    """What a run cost (``0.0412 USD``), or None when it was not priced."""
    res = run.resources
    cost = res.get("cost")
    if not isinstance(cost, (int, float)) or isinstance(cost, bool):
        return None
    return money(float(cost), res.get("currency"))


def metrics_text(run: Run, limit: int = 4) -> str:
    items = list(run.metrics.items())
    text = " ".join(f"{k}={num(v)}" for k, v in items[:limit])
    if len(items) > limit:
        text += f" (+{len(items) - limit})"
    return text


def _env_lines(env: dict[str, Any], packages: bool) -> list[str]:
    lines: list[str] = []
    if "error" in env:
        lines.append(f"  not readable: {env['error']}")
    py = env.get("python") or {}
    if py:
        lines.append(
            f"  python     {py.get('version', '?')} ({py.get('implementation', '?')}) "
            f"{py.get('executable', '')}".rstrip()
        )
    plat = env.get("platform") or {}
    if plat:
        bits = [plat.get("system"), plat.get("release"), plat.get("machine"), plat.get("libc")]
        lines.append("  platform   " + " ".join(str(b) for b in bits if b))
    host = env.get("host") or {}
    if host:
        hw = [f"{host.get('cpu_count', '?')} CPUs"]
        if host.get("cpu"):
            hw.insert(0, str(host["cpu"]))
        if host.get("memory"):
            hw.append(f"{human_size(host['memory'])} memory")
        gpus = host.get("gpus") or []
        if gpus:
            hw.append(
                f"{counted(len(gpus), 'GPU')} ({', '.join(str(g.get('name', '?')) for g in gpus)})"
            )
        lines.append(f"  host       {host.get('hostname', '?')}: {', '.join(hw)}")
    pkgs = env.get("packages") or {}
    lines.append(
        f"  packages   {len(pkgs)} installed"
        + ("" if packages or not pkgs else " (--packages lists them)")
    )
    if packages:
        width = max((len(k) for k in pkgs), default=0)
        lines.extend(f"    {k:<{width}}  {v}" for k, v in sorted(pkgs.items()))
    for k, v in sorted((env.get("env_vars") or {}).items()):
        lines.append(f"  env        {k}={v}")
    proc = env.get("process") or {}
    if proc.get("argv") is not None:
        lines.append(f"  argv       {' '.join(str(a) for a in proc['argv'])}")
    if proc.get("cwd"):
        lines.append(f"  cwd        {proc['cwd']}")
    if proc.get("pid"):
        lines.append(f"  pid        {proc['pid']}")
    return lines


def _code_lines(ledger: Ledger, code: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key in (
        "kind",
        "qualname",
        "module",
        "file",
        "line",
        "notebook",  # a notebook cell's: its notebook, cell id and In [N]
        "cell_id",
        "execution_count",
        "executable",
        "source_digest",
        "closure_digest",
        "module_digest",
    ):
        if code.get(key) is not None:
            lines.append(f"  {key:<14} {code[key]}")
    if code.get("source_from"):
        lines.append(f"  {'source_from':<14} {code['source_from']}")
    mods = code.get("modules")
    if mods:
        try:
            n = len(json.loads(ledger.store.get(mods)))
            lines.append(f"  {'user modules':<14} {n} ({mods})")
        except (LedgerError, ValueError):
            lines.append(f"  {'user modules':<14} {mods} (not readable)")
    return lines


def lineage_text(ledger: Ledger, lin: Lineage) -> str:
    """Runs with what each used and produced; ids and digests as pasteable prefixes."""
    shorts = short_run_ids(ledger, [r.id for r in lin.runs])
    runs = {r.id: r for r in lin.runs}
    root = lin.root
    root_label = shorts[root] if root in shorts else short_digest(root)
    n_runs, n_arts = len(lin.runs), len(lin.artifacts)
    lines = [
        f"lineage of {root_label} ({lin.direction}): {counted(n_runs, 'run')}, "
        f"{counted(n_arts, 'artifact')}"
    ]
    by_run: dict[str, list[tuple[int, str, str]]] = {}
    for e in lin.edges:
        if e.label == "child_of":
            by_run.setdefault(e.source, []).append((2, "child of", shorts.get(e.target, e.target)))
            continue
        r = runs.get(e.source)
        side = (r.inputs if e.label == "used" else r.outputs) if r is not None else {}
        # a run may use and produce the same bytes under different names: name each side
        names = sorted(k for k, a in side.items() if a.digest == e.target)
        if not names and lin.names.get((e.source, e.target)):
            names = [lin.names[(e.source, e.target)]]
        short = short_digest(e.target)
        label = f"{', '.join(names)}  {short}" if names else short
        by_run.setdefault(e.source, []).append((0 if e.label == "used" else 1, e.label, label))
    for r in lin.runs:
        lines.append(
            f"{click.style(shorts[r.id], fg='yellow')}  {r.name}  {styled_status(r.status)}  "
            f"{age(r.started_at)}"
        )
        for _, label, what in sorted(by_run.get(r.id, [])):
            lines.append(f"  {label:<8}  {what}")
    if not lin.runs:
        lines.append("  (no run used or produced it)")
    return "\n".join(lines)


def ref_line(e: RefEntry, *, with_name: bool = False) -> str:
    head = f"{e.name}  " if with_name else ""
    what = e.action if e.restores is None else f"{e.action} to #{e.restores}"
    if e.force:
        what += " (forced)"
    msg = f"  {e.message}" if e.message else ""
    run = f"  run {e.run}" if e.run and e.run != e.target else ""  # which run made it
    return f"{head}#{e.seq}  {e.target}  {what}{run}  {age(e.at)}  {e.user}@{e.host}{msg}"


def ref_current(entry: RefEntry) -> str:
    """A ref's current target (the first word) and its entry."""
    msg = f"  {entry.message}" if entry.message else ""
    run = f"  run {entry.run}" if entry.run and entry.run != entry.target else ""
    return f"{entry.target}  #{entry.seq}{run}  {age(entry.at)}  {entry.user}@{entry.host}{msg}"


def ref_list_lines(entries: Sequence[RefEntry]) -> list[str]:
    """Refs one a line, names aligned: name, current target, entry number, age."""
    width = max((len(e.name) for e in entries), default=0)
    lines = []
    for e in entries:
        run = f"  run {e.run}" if e.run and e.run != e.target else ""
        lines.append(f"{e.name:<{width}}  {e.target}  #{e.seq}{run}  {age(e.at)}")
    return lines


def run_lines(ledger: Ledger, runs: Sequence[Run]) -> list[str]:
    """Runs one a line: the short id, age, name, status and up to four metrics (last values)."""
    now = _dt.datetime.now(_dt.timezone.utc)
    shorts = short_run_ids(ledger, [r.id for r in runs])
    rows = [
        (shorts[r.id], age(r.started_at, now), r.name, r.status, _cost_and_metrics(r))
        for r in runs
    ]
    w_id = max(len(r[0]) for r in rows)
    w_age = max(len(r[1]) for r in rows)
    w_name = max(len(r[2]) for r in rows)
    w_status = max(len(r[3]) for r in rows)
    lines = []
    for rid, ago, rname, status, metrics in rows:
        line = (
            f"{click.style(rid.ljust(w_id), fg='yellow')}  {ago.ljust(w_age)}  "
            f"{rname.ljust(w_name)}  {styled_status(status)}{' ' * (w_status - len(status))}"
        )
        lines.append(f"{line}  {metrics}".rstrip())
    return lines


def _cost_and_metrics(run: Run) -> str:
    cost = cost_text(run)
    metrics = metrics_text(run)
    return f"{cost}  {metrics}" if cost else metrics


def run_text(ledger: Ledger, run: Run, *, packages: bool = False) -> str:
    """One run's whole record: params, metrics, inputs, outputs, code, git, environment,
    resources, error and warnings (``packages``: every installed package)."""
    out: list[str] = []
    out.append(click.style(f"run {run.id}", fg="yellow"))
    out.append(f"name       {run.name}")
    status = styled_status(run.status)
    out.append(f"status     {status}")
    if run.status_reason:  # incomplete: why, and what may be missing
        out.append(f"           {run.status_reason}; metrics of its last seconds may be missing")
    if run.record.get("kind"):
        against = run.record.get("baseline")
        vs = f", baseline {against}" if against else ""
        out.append(f"kind       {run.record['kind']}{vs}")
    out.append(f"started    {when(run.started_at)}")
    if run.ended_at is not None:
        wall = run.resources.get("wall_s")
        if wall is None:
            wall = (run.ended_at - run.started_at).total_seconds()
        out.append(f"ended      {when(run.ended_at)}, took {human_seconds(wall)}")
    if run.user or run.host:  # an imported run may know its user and not the host
        out.append(f"by         {run.user}@{run.host}" if run.host else f"by         {run.user}")
    if run.parent_id:
        out.append(f"parent     {run.parent_id}")
    if run.cached_from:
        out.append(f"cached     from {run.cached_from} (the call did not run)")
    if run.message:
        out.append(f"message    {run.message}")
    if run.tags:
        out.append("tags       " + ", ".join(f"{k}={v}" for k, v in sorted(run.tags.items())))
    if run.params:
        out += ["", click.style("params", bold=True)]
        fields = param_fields(run.params)  # a config field by field, as where and diff name it
        width = max(len(k) for k in fields)
        out += [f"  {k:<{width}} = {short_value(v)}" for k, v in sorted(fields.items())]
    stats = run.metric_stats
    if stats:
        width = max(len("metric"), *(len(k) for k in stats))
        out += ["", click.style("metrics", bold=True)]
        out.append(
            f"  {'':<{width}}  {'last':>12} {'min':>12} {'max':>12} {'step':>8} {'count':>7}"
        )
        for k, m in stats.items():
            step = "-" if m.step is None else str(m.step)
            out.append(
                f"  {k:<{width}}  {num(m.last):>12} {num(m.min):>12} {num(m.max):>12} "
                f"{step:>8} {m.count:>7}"
            )
    for title, arts in (("inputs", run.inputs), ("outputs", run.outputs)):
        if arts:
            width = max(len(k) for k in arts)
            out += ["", click.style(title, bold=True)]
            out += [artifact_line(k, a, width) for k, a in sorted(arts.items())]
    returned = run.record.get("returned")
    if returned:
        out += ["", click.style("returned", bold=True), f"  {short_value(returned)}"]
    code = run.code
    if code:
        out += ["", click.style("code", bold=True), *_code_lines(ledger, code)]
    git = run.git
    if git:
        out += ["", click.style("git", bold=True)]
        for key in ("commit", "branch", "remote", "dirty", "diff"):
            if git.get(key) is not None:
                out.append(f"  {key:<8} {git[key]}")
    out += ["", click.style("environment", bold=True), *_env_lines(run.env, packages)]
    res = run.resources
    if res:
        parts = []
        if "wall_s" in res:
            parts.append(f"wall {human_seconds(res['wall_s'])}")
        if "cpu_user_s" in res:
            parts.append(f"cpu user {human_seconds(res['cpu_user_s'])}")
        if "cpu_system_s" in res:
            parts.append(f"system {human_seconds(res['cpu_system_s'])}")
        if "peak_rss_bytes" in res:
            parts.append(f"peak RSS {human_size(res['peak_rss_bytes'])}")
        if "gpu_peak_memory_bytes" in res:
            parts.append(f"GPU peak {human_size(res['gpu_peak_memory_bytes'])}")
        if res.get("gpu_count"):
            parts.append(f"{counted(int(res['gpu_count']), 'GPU')} ({res.get('gpu_model', '?')})")
        out += ["", click.style("resources", bold=True), "  " + ", ".join(parts)]
        cost = cost_text(run)
        if cost:
            out.append(f"  cost {cost}")
    err = run.error
    if err is not None:
        out += ["", click.style("error", bold=True, fg="red"), f"  {err.summary}"]
        out += ["  " + ln for ln in err.traceback.rstrip().splitlines()]
    if run.warnings:
        out += ["", click.style("warnings", bold=True)]
        out += [f"  - {w}" for w in run.warnings]
    out += _check_lines(ledger, run)
    return "\n".join(out)


def _check_lines(ledger: Ledger, run: Run) -> list[str]:
    """The run's newest check report: when, the verdict, one line per rule."""
    from .checks import checks_of
    from .checks.formats import result_lines

    reports = checks_of(ledger.store, run.id)
    if not reports:
        return []
    rep = reports[-1]
    verdict = click.style("passed", fg="green") if rep.ok else click.style("failed", fg="red")
    more = f" ({len(reports)} checks recorded)" if len(reports) > 1 else ""
    title = click.style("checks", bold=True)
    return ["", f"{title} {verdict}, {when(rep.at)}{more}", *result_lines(rep)]


def artifact_text(
    ledger: Ledger,
    art: Artifact,
    *,
    path: str | None = None,
    entries: Sequence[TreeEntry] | None = None,
) -> str:
    """An artifact: digest, kind, size, where it was found, producers and consumers, and a
    folder's ``entries`` when given."""
    out = [click.style(f"artifact {art.digest}", fg="yellow")]
    out.append(f"kind       {art.kind}" + (f" ({art.format})" if art.format else ""))
    size = human_size(art.size)
    if art.kind == "tree" and art.files is not None:
        size += f" in {art.files} files"
    elif art.kind == "tree":
        size += " (manifest)"
    out.append(f"size       {size}")
    if path:
        out.append(f"path       {path}")
    cat = ledger.catalog
    all_ids = list(art.producers) + list(art.consumers)
    shorts = short_run_ids(ledger, all_ids)
    for title, ids in (("producers", art.producers), ("consumers", art.consumers)):
        if not ids:
            out.append(f"{title:<10} none")
            continue
        out.append(f"{title}")
        for rid in ids[:20]:
            r = cat.run(rid)
            out.append(f"  {shorts[rid]}  {r.name}  {styled_status(r.status)}  {age(r.started_at)}")
        if len(ids) > 20:
            out.append(f"  ... and {len(ids) - 20} more (--json lists all)")
    if entries is not None:
        out.append("entries")
        for e in entries:
            if e.kind == "file":
                x = "  (exec)" if e.executable else ""
                out.append(f"  {e.path}  {e.digest}  {human_size(e.size)}{x}")
            elif e.kind == "link":
                out.append(f"  {e.path} -> {e.link}")
            else:
                out.append(f"  {e.path}/")
    return "\n".join(out)
