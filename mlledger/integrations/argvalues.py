"""A parsed command-line value as a param: what counts as simple (scriptargs, hydra)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["NOT_SIMPLE", "simple_value"]

_SCALARS = (bool, int, float, str, type(None))
#: what simple_value returns for a value that is not simple
NOT_SIMPLE = object()


def simple_value(v: Any) -> Any:
    """``v`` as a param if it is simple, else NOT_SIMPLE: numbers, text, bools, None, a
    path-like as its text, and lists (or tuples) of those."""
    if isinstance(v, _SCALARS) and type(v) in _SCALARS:
        return v
    if isinstance(v, os.PathLike):
        try:
            return os.fspath(v)
        except (TypeError, ValueError):
            return NOT_SIMPLE
    if isinstance(v, (list, tuple)):
        out = [simple_value(x) for x in v]
        return NOT_SIMPLE if any(x is NOT_SIMPLE for x in out) else out
    return NOT_SIMPLE
