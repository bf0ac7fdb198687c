"""Layers for drawing a lineage graph left to right: each node one step right of
everything that flows into it (longest path from the sources)."""

from __future__ import annotations

from collections import defaultdict

__all__ = ["layers"]


def layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: 0 for a node nothing flows into, else one more than the
    deepest node that flows into it.  A cycle (a run that reads what it writes) is
    cut where the walk meets it, so every node gets a layer."""
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
    return layer
