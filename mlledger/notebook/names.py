"""Which names a notebook cell reads and binds, and which of them hold data.

The names a cell reads are found by parsing it (``ast``), not by running it:
names loaded at module level before the cell binds them.  A name holds data
unless it is a module, function or class, IPython's own, ``_``-prefixed, or
one of mlledger's objects or an open file.
"""

from __future__ import annotations

import ast
import inspect
import io
from typing import Any

from ..ledger import Ledger
from ..runs import Run, RunContext

__all__ = ["IPYTHON_NAMES", "MISSING", "NOT_DATA", "is_data", "names_read", "only_magics"]

#: names IPython puts in the user namespace: never inputs or outputs
IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
MISSING = object()
#: objects that are not data: mlledger's own, and open (or closed) files
NOT_DATA = (Run, RunContext, Ledger, io.IOBase)


_Comprehension = ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp


class _Reads(ast.NodeVisitor):
    """Names a piece of module-level code loads before binding them, in order.

    Statements are visited in evaluation order (an assignment's value before
    its targets); names bound inside functions, lambdas, comprehensions and
    class bodies are local to them.  Branches and loops are read in source
    order, so a name bound in one branch and read after it counts as bound:
    an approximation that errs on the side of fewer inputs only there.
    """

    def __init__(self) -> None:
        self.reads: dict[str, None] = {}
        self.bound: set[str] = set()
        self.scopes: list[set[str]] = []

    def load(self, name: str) -> None:
        if any(name in s for s in self.scopes) or name in self.bound:
            return
        self.reads.setdefault(name)

    def store(self, name: str) -> None:
        (self.scopes[-1] if self.scopes else self.bound).add(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.load(node.id)
        else:
            self.store(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for t in node.targets:
            self.visit(t)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.load(node.target.id)
            self.store(node.target.id)
        else:
            self.visit(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.annotation)
        self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def _for(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for stmt in (*node.body, *node.orelse):
            self.visit(stmt)

    visit_For = _for
    visit_AsyncFor = _for

    def _with(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_With = _with
    visit_AsyncWith = _with

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.store(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.store(alias.asname or alias.name.split(".", 1)[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.store(alias.asname or alias.name)

    def visit_Global(self, node: ast.Global) -> None:
        return None

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        return None

    def visit_MatchAs(self, node: Any) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.store(node.name)

    def visit_MatchStar(self, node: Any) -> None:
        if node.name:
            self.store(node.name)

    def visit_MatchMapping(self, node: Any) -> None:
        for k in node.keys:
            self.visit(k)
        for p in node.patterns:
            self.visit(p)
        if node.rest:
            self.store(node.rest)

    def _arguments(self, args: ast.arguments) -> set[str]:
        """Visit defaults and annotations (evaluated outside); return the parameter names."""
        for d in (*args.defaults, *(d for d in args.kw_defaults if d is not None)):
            self.visit(d)
        every = (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
        names: set[str] = set()
        for a in every:
            if a is None:
                continue
            names.add(a.arg)
            if a.annotation is not None:
                self.visit(a.annotation)
        return names

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        local = self._arguments(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self.store(node.name)
        declared = {
            n
            for sub in ast.walk(node)
            if isinstance(sub, (ast.Global, ast.Nonlocal))
            for n in sub.names
        }
        local |= {
            sub.id
            for stmt in node.body
            for sub in ast.walk(stmt)
            if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load)
        }
        self.scopes.append(local - declared)
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.scopes.append(self._arguments(node.args))
        self.visit(node.body)
        self.scopes.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in (*node.decorator_list, *node.bases, *node.keywords):
            self.visit(d)
        self.store(node.name)
        self.scopes.append(set())
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    def _comprehension(self, node: _Comprehension) -> None:
        gens = node.generators
        self.visit(gens[0].iter)  # evaluated in the enclosing scope
        self.scopes.append(set())
        for i, gen in enumerate(gens):
            if i:
                self.visit(gen.iter)
            self.visit(gen.target)
            for cond in gen.ifs:
                self.visit(cond)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self.scopes.pop()

    visit_ListComp = _comprehension
    visit_SetComp = _comprehension
    visit_GeneratorExp = _comprehension
    visit_DictComp = _comprehension


def names_read(source: str) -> list[str]:
    """The names Python ``source`` reads at module level before binding them, in first-read order.

    ``x = data + 1; y = x`` reads ``data`` only.  Raises SyntaxError on code
    that does not parse (run IPython's ``transform_cell`` on a cell first).
    """
    tree = ast.parse(source)
    v = _Reads()
    for stmt in tree.body:
        v.visit(stmt)
    return list(v.reads)


def is_data(name: str, value: Any, hidden: dict[str, Any]) -> bool:
    """True for a user variable holding data, not a module, function, class or IPython's own."""
    if name.startswith("_") or name in IPYTHON_NAMES:
        return False
    if hidden.get(name, MISSING) is value or isinstance(value, NOT_DATA):
        return False
    try:
        return not (inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value))
    except Exception:  # a proxy whose attribute lookup fails: not ours to judge
        return False


def only_magics(raw: str) -> bool:
    """True for an empty cell, a cell magic, or only line magics, shell escapes and comments."""
    text = raw.lstrip()
    if not text or text.startswith("%%"):
        return True
    for line in raw.splitlines():
        t = line.strip()
        if not t or t.startswith("#") or t[0] in "%!?" or t.endswith("?"):
            continue
        return False
    return True
