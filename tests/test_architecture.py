"""The shape of the package: imports point down the layers, no cycles, small modules.

The import graph is read with ``ast`` from every module of ``mlledger/`` (nothing
is imported): every ``import`` and ``from ... import`` counts, at module level,
inside functions and classes, under ``if TYPE_CHECKING:`` and inside ``try``.
``from mlledger.x import y`` is an arrow to ``mlledger.x.y`` when that is a module,
else to ``mlledger.x``.  See "How the code is laid out" in the README.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlledger

PACKAGE = Path(mlledger.__file__).resolve().parent
LINE_LIMIT = 550  # "about 500 lines": a module over this holds more than one concept

#: the layers, lowest first: a module may import its own layer or a lower one.
#: The first pattern that matches a module's name (a prefix, or the exact name) wins.
LAYERS: list[tuple[str, ...]] = [
    # leaves: values, names and settings; the active-run variable capture reads
    (
        "mlledger._version",
        "mlledger._settings",
        "mlledger._fmt",
        "mlledger.errors",
        "mlledger.canonical",
        "mlledger.ids",
        "mlledger.records",
        "mlledger.runs.active",
    ),
    # a rule, a sink and the rates are checked where the policy is set
    (
        "mlledger.hashing",
        "mlledger.query",
        "mlledger.rules",
        "mlledger.cost",
        "mlledger.alerts.sinks",
    ),
    # bytes by digest; knows nothing above it (the late-run markers, the run entries'
    # parser and the audit trail checker read and write store keys only)
    (
        "mlledger.store",
        "mlledger.late",
        "mlledger.run_entries",
        "mlledger.audit",
        "mlledger.policy",
    ),
    ("mlledger.capture",),  # facts about a run
    # a run's life; knows the Store, never the Ledger
    ("mlledger.runs",),
    (
        "mlledger.catalog",
        "mlledger.resolve",
        "mlledger.lineage",
        "mlledger.diff",
        "mlledger.gc",
        "mlledger.alerts",
        "mlledger.changelog",  # a ref's moves with their diffs (reads refs, catalog, diff)
        "mlledger.checks",
        "mlledger.usage",  # cost and disk usage reports over the catalog
        "mlledger.soundness",  # verify: the store, the runs' references, the refs
        "mlledger.report",  # the HTML report, reading a ledger through a protocol
    ),
    ("mlledger.ledger",),  # the facade users hold
    # bridges to other tools: script parsers, MLflow import, OpenLineage events
    ("mlledger.integrations",),
    ("mlledger._api", "mlledger.render"),
    ("mlledger.cli", "mlledger.notebook"),  # front ends
    ("mlledger",),  # the package's public face re-exports everything
]


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _layer(module: str) -> int:
    for i, patterns in enumerate(LAYERS):
        for p in patterns:
            if module == p or (p != "mlledger" and module.startswith(p + ".")):
                return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def _imports(module: str) -> Iterator[tuple[str, int]]:
    """(imported mlledger module, line) for every import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mlledger"):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("mlledger"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), node.lineno


def _graph() -> dict[str, set[str]]:
    return {
        m: {t for t, _ in _imports(m) if t in MODULES and t != m}
        for m in MODULES
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    """Each module of the package is placed in exactly one layer of the architecture."""
    for module in MODULES:
        _layer(module)


def test_the_import_graph_has_no_cycle() -> None:
    """No two modules import each other, directly or through others."""
    assert _cycles(_graph()) == []


def test_imports_point_down_the_layers() -> None:
    """A module imports only its own layer or lower ones (store never imports runs, ...)."""
    upward = [
        f"{m}:{line} imports {t}"
        for m in MODULES
        for t, line in _imports(m)
        if t in MODULES and _layer(t) > _layer(m)
    ]
    assert upward == []


def test_no_private_name_is_imported_from_another_module() -> None:
    """``from x import _name`` names only a private module of mlledger, never a private
    object of mlledger or of another package (what ruff's SLF001 sees as attributes)."""
    found = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if not alias.name.startswith("_") or alias.name.startswith("__"):
                        continue
                    targets = {t for t, line in _imports(module) if line == node.lineno}
                    if not any(t.endswith("." + alias.name) for t in targets):
                        found.append(f"{module}:{node.lineno} imports {alias.name}")
    assert found == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    """No module is over the line limit: one concept a module."""
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= LINE_LIMIT, f"{module} has {lines} lines"


def test_the_checker_sees_a_cycle_and_an_upward_arrow() -> None:
    """The graph code finds a planted cycle, so a green run means something."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("mlledger.store.store") < _layer("mlledger.runs.run")
