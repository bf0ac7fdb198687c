"""Layers for drawing a lineage graph left to right: each node one step right of
everything that flows into it (longest path from the sources)."""

from __future__ import annotations

from collections import defaultdict

__all__ = ["layers"]


def layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: one more than the deepest node that flows into it; a node nothing
    flows into sits one left of the first node it flows into (0 when alone).  A cycle (a
    run that reads what it writes) is cut where the walk meets it, so every node gets one."""
    into: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        if a != b:
            into[b].append(a)
    layer: dict[str, int] = {}
    on_path: set[str] = set()
    for start in nodes:
        if start in layer:
            continue
        # iterative depth-first walk: (node, its sources not yet looked at)
        stack = [(start, iter(into.get(start, ())))]
        on_path.add(start)
        while stack:
            node, sources = stack[-1]
            src = next(sources, None)
            if src is None:
                stack.pop()
                on_path.discard(node)
                layer[node] = max(
                    (layer[s] + 1 for s in into.get(node, ()) if s in layer), default=0
                )
                continue
            if src in layer or src in on_path:
                continue
            on_path.add(src)
            stack.append((src, iter(into.get(src, ()))))
    # a source sits just left of the first node it flows into, not in column 0 far away
    out_of: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        if a != b:
            out_of[a].append(b)
    for node in nodes:
        if node not in into and out_of.get(node):
            layer[node] = max(0, min(layer[b] for b in out_of[node]) - 1)
    return layer
