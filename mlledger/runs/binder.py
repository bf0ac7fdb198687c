"""A tracked function's arguments as params: ``Binder`` and the ``SelfType`` stand-in."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["Binder", "SelfType"]


class Binder:
    """A tracked function's arguments as params: bound with defaults applied (``f(1)`` and
    ``f(a=1)`` record the same), ``**kwargs`` spread out, ``self``/``cls`` by type only.

    A signature of plain parameters (the usual training function) is bound by hand,
    several times faster than ``Signature.bind``; anything else, and every call the fast
    path cannot place, goes through ``Signature.bind``, which also raises a bad call's
    ``TypeError``.
    """

    def __init__(self, sig: inspect.Signature, ignore: frozenset[str]) -> None:
        self.sig = sig
        self.ignore = ignore
        ps = list(sig.parameters.values())
        self.names = tuple(p.name for p in ps)
        self.kinds = {p.name: p.kind for p in ps}
        self.self_name = ps[0].name if ps and ps[0].name in ("self", "cls") else None
        plain = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in ps)
        self.fast = plain and self.self_name is None and not (ignore & set(self.names))
        self.defaults = {p.name: p.default for p in ps if p.default is not inspect.Parameter.empty}

    def params(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self.names
        if self.fast and len(args) <= len(names):
            out = dict(zip(names, args, strict=False))  # fewer args than names: the rest below
            ok = True
            for k, v in kwargs.items():
                if k in out or k not in self.kinds:
                    ok = False  # given twice, or unknown: Signature.bind raises the TypeError
                    break
                out[k] = v
            if ok and len(out) < len(names):
                defaults = self.defaults
                for k in names[len(args) :]:
                    if k not in out:
                        if k not in defaults:
                            ok = False  # a required argument is missing: bind raises
                            break
                        out[k] = defaults[k]
            if ok:
                # in signature order, as Signature.bind gives them
                return {k: out[k] for k in names} if kwargs else out
        return self._slow(args, kwargs)

    def _slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = self.sig.bind(*args, **kwargs)
        bound.apply_defaults()
        ignore = self.ignore
        params: dict[str, Any] = {}
        for k, v in bound.arguments.items():
            if k in ignore:
                continue
            if self.kinds[k] is inspect.Parameter.VAR_KEYWORD and isinstance(v, dict):
                for kk, vv in v.items():
                    if kk not in ignore:
                        params[kk] = vv
            elif k == self.self_name:
                params[k] = SelfType(v)
            else:
                params[k] = v
        return params


class SelfType:
    """Stands for ``self``/``cls`` in params: recorded by type only."""

    __slots__ = ("name",)

    def __init__(self, value: Any) -> None:
        t = value if isinstance(value, type) else type(value)
        self.name = f"{t.__module__}.{t.__qualname__}"
