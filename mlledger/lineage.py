"""Lineage: which data and code produced this, and what was built from it.

Traversal is a breadth-first walk over the catalog's edges (run used
artifact, run produced artifact, run is a child of run), one level of runs
at a time (a few indexed queries each), with a visited set, so it
terminates on any graph.  ``depth`` counts levels of runs, each with its
direct inputs (upstream) or outputs (downstream).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ._fmt import counted
from .errors import UsageError
from .ids import short_ids
from .records import Artifact

if TYPE_CHECKING:
    from .catalog import Catalog
    from .runs import Run

__all__ = ["Edge", "Lineage", "traverse", "upstream_of"]


@attrs.frozen
class Edge:
    """``source -label-> target``: label is ``used`` (run -> artifact), ``produced``
    (run -> artifact) or ``child_of`` (run -> parent run)."""

    source: str
    label: str
    target: str

    def __iter__(self) -> Any:
        return iter((self.source, self.label, self.target))


@attrs.define
class Lineage:
    """Runs, artifacts and labelled edges around a target."""

    root: str
    direction: str
    runs: list[Run]
    artifacts: list[Artifact]
    edges: list[Edge]
    names: dict[tuple[str, str], str] = attrs.field(factory=dict)
    #: every run id the catalog knows (``Catalog.all_run_ids``), for unique id prefixes;
    #: given as ``all_run_ids=``
    _all_run_ids: Callable[[], list[str]] | None = attrs.field(
        default=None, repr=False, eq=False, kw_only=True
    )

    def _labels(self) -> dict[str, str]:
        """A label per node: a run's name and shortest unique id prefix (12+ characters,
        unique in the whole catalog, so it can be pasted back as a target); an
        artifact's name and digest prefix."""
        ids = sorted(r.id for r in self.runs)
        known: list[str] = ids
        if self._all_run_ids is not None:
            with contextlib.suppress(Exception):  # the catalog, where the runs have one
                known = self._all_run_ids()
        shorts = short_ids(ids, known)
        labels = {r.id: f"{r.name} {shorts[r.id]}" for r in self.runs}
        for a in self.artifacts:
            node = a.digest
            name = a.path or next((n for (_, d), n in self.names.items() if d == node), None)
            short = node.split(":", 1)[-1][:10]
            labels[node] = f"{name} {short}" if name else short
        return labels

    def to_json(self) -> str:
        """The graph as a JSON string: runs, artifacts, edges."""
        return json.dumps(
            {
                "root": self.root,
                "direction": self.direction,
                "runs": [
                    {
                        "id": r.id,
                        "name": r.name,
                        "status": r.status,
                        "started_at": r.record.get("started_at"),
                    }
                    for r in self.runs
                ],
                "artifacts": [a.to_json() for a in self.artifacts],
                "edges": [
                    {"source": e.source, "label": e.label, "target": e.target} for e in self.edges
                ],
            },
            indent=2,
            sort_keys=True,
        )

    def to_dot(self) -> str:
        """Graphviz DOT text."""
        labels = self._labels()
        lines = ["digraph lineage {", "  rankdir=LR;"]
        for r in self.runs:
            lines.append(f'  "{r.id}" [shape=box, label={json.dumps(labels[r.id])}];')
        for a in self.artifacts:
            label = json.dumps(labels[a.digest])
            lines.append(f'  "{a.digest}" [shape=ellipse, label={label}];')
        for e in self.edges:
            lines.append(f'  "{e.source}" -> "{e.target}" [label="{e.label}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        """Mermaid flowchart text."""
        ids: dict[str, str] = {}

        def nid(node: str) -> str:
            if node not in ids:
                ids[node] = f"n{len(ids)}"
            return ids[node]

        labels = self._labels()
        lines = ["flowchart LR"]
        for r in self.runs:
            lines.append(f'  {nid(r.id)}["{_mm(labels[r.id])}"]')
        for a in self.artifacts:
            lines.append(f'  {nid(a.digest)}(["{_mm(labels[a.digest])}"])')
        for e in self.edges:
            lines.append(f"  {nid(e.source)} -->|{e.label}| {nid(e.target)}")
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """An indented listing for people."""
        lines = [
            f"lineage of {self.root} ({self.direction}): "
            f"{counted(len(self.runs), 'run')}, {counted(len(self.artifacts), 'artifact')}"
        ]
        labels = self._labels()
        for e in self.edges:
            source, target = labels.get(e.source, e.source), labels.get(e.target, e.target)
            lines.append(f"  {source} --{e.label}--> {target}")
        return "\n".join(lines) + "\n"


def _mm(s: str) -> str:
    return s.replace('"', "'")


def traverse(
    catalog: Catalog,
    *,
    runs: Iterable[str] = (),
    digests: Iterable[str] = (),
    direction: str = "upstream",
    depth: int | None = None,
) -> tuple[set[str], set[str], list[Edge], dict[tuple[str, str], str]]:
    """Walk from runs and/or artifacts; returns run ids, digests, edges and edge names.

    ``depth`` counts runs: 1 is the target run with its direct inputs (upstream)
    or outputs (downstream), or for an artifact target the runs that produced
    (used) it with theirs; each more adds the runs one step further (the
    producers of those inputs, a parent or child run) with theirs; 0 is the
    target alone, None no limit.  So a run's own inputs are never cut off.
    ``both`` is what lies upstream plus what lies downstream: a walk that
    turned around midway would wander into siblings (other runs that used
    the same data), which are neither.
    """
    if direction not in ("upstream", "downstream", "both"):
        raise UsageError(f"direction must be 'upstream', 'downstream' or 'both', not {direction!r}")
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 0):
        raise UsageError(f"depth must be a non-negative integer or None, not {depth!r}")
    if direction == "both":
        runs, digests = list(runs), list(digests)
        r_up, a_up, e_up, n_up = traverse(
            catalog, runs=runs, digests=digests, direction="upstream", depth=depth
        )
        r_dn, a_dn, e_dn, n_dn = traverse(
            catalog, runs=runs, digests=digests, direction="downstream", depth=depth
        )
        both = sorted(set(e_up) | set(e_dn), key=lambda e: (e.source, e.label, e.target))
        return r_up | r_dn, a_up | a_dn, both, {**n_up, **n_dn}
    seen_runs: set[str] = set(runs)
    seen_arts: set[str] = set(digests)
    edges: set[Edge] = set()
    names: dict[tuple[str, str], str] = {}
    # (edges of runs to follow, their label, edges of artifacts to follow, their label,
    #  parent/child lookup, whether the child is the new node)
    if direction == "upstream":
        step = ("in", "used", "out", "produced", catalog.parents, False)
    else:
        step = ("out", "produced", "in", "used", catalog.children, True)
    run_dir, run_label, art_dir, art_label, family, child_is_new = step
    # one pass per level of runs: the artifacts of the level before lead to this
    # level's runs (given runs are level 1, given artifacts level 0); this level's
    # runs bring their own artifacts, and their parents or children are the next level
    level_arts = set(seen_arts)
    expand = set(seen_runs)
    level = 0
    while (level_arts or expand) and (depth is None or level < depth):
        level += 1
        for rid, d, name in catalog.runs_touching(sorted(level_arts), art_dir):
            edges.add(Edge(rid, art_label, d))
            names[(rid, d)] = name
            if rid not in seen_runs:
                expand.add(rid)
        seen_runs |= expand
        rl = sorted(expand)
        level_arts = set()
        for rid, d, name in catalog.edges_of_runs(rl, run_dir):  # what these runs touched
            edges.add(Edge(rid, run_label, d))
            names[(rid, d)] = name
            if d not in seen_arts:
                level_arts.add(d)
        seen_arts |= level_arts
        expand = set()
        for child, parent in family(rl):
            edges.add(Edge(child, "child_of", parent))
            new = child if child_is_new else parent
            if new not in seen_runs:
                expand.add(new)
    kept = [
        e
        for e in edges
        if _node_in(e.source, seen_runs, seen_arts) and _node_in(e.target, seen_runs, seen_arts)
    ]
    return seen_runs, seen_arts, sorted(kept, key=lambda e: (e.source, e.label, e.target)), names


def _node_in(node: str, runs: set[str], arts: set[str]) -> bool:
    return node in runs or node in arts


def upstream_of(catalog: Catalog, target: Run | Artifact) -> tuple[set[str], set[str]]:
    """``(run ids, digests)`` of everything ``target`` (a run, or an artifact with a
    ``digest``) was made from, itself included: what a ref pointing at it keeps."""
    if isinstance(target, Artifact):
        runs, digests, _, _ = traverse(catalog, digests=[target.digest], direction="upstream")
    else:
        runs, digests, _, _ = traverse(catalog, runs=[target.id], direction="upstream")
    return set(runs), set(digests)
