"""Record fields that JSON and UTF-8 cannot hold become stand-ins, never a lost run.

A run's entries are canonical JSON in UTF-8.  A few Python values cannot be
written so: a string holding a lone surrogate (text decoded from bytes that are
not UTF-8 with ``surrogateescape``: a file name, an environment value, an
argument), an int longer than Python's int-to-str limit (4,300 digits), a
mapping key that is not a string.  Rather than failing the whole entry, the
field that cannot be encoded is replaced and a warning names it:

- text becomes its readable escape: the undecodable bytes as ``\\xff``, a lone
  surrogate as ``\\ud800`` (mapping keys, names, paths, tags, messages, argv);
- a param value becomes ``{"type": "str" | "int" | ..., "repr": <safe text>}``,
  as any other value that cannot be stored is recorded.

Only the failure path walks a record: the usual entry is encoded once, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import canonical
from ..records import Artifact

if TYPE_CHECKING:
    from .state import RunState

__all__ = ["dumps_storable", "make_run_storable", "safe_text", "storable"]

#: nesting deeper than this is recorded as a stand-in (JSON encoders recurse)
_MAX_DEPTH = 100


def safe_text(s: str) -> str:
    """``s`` itself when UTF-8 can hold it, else its escape (``bad\\xff.txt``, ``a\\ud800``)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        try:  # text decoded with surrogateescape: show the bytes it came from
            return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a lone surrogate of another origin
            return s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s


def _int_text(v: int) -> str | None:
    try:
        return str(v)
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        return None


def storable(value: Any, where: str, problems: list[str], *, stand_in: bool = False) -> Any:
    """``value`` with every part canonical JSON cannot encode replaced; one line per
    replacement goes to ``problems``, naming the field (``params.name``, ``tags.team``).

    ``stand_in``: a replaced value becomes ``{"type": ..., "repr": ...}`` (params);
    otherwise text (names, paths, messages, tags).
    """
    return _walk(value, where, problems, stand_in, 0)


def _walk(v: Any, where: str, problems: list[str], stand_in: bool, depth: int) -> Any:
    if v is None or isinstance(v, (bool, float)):
        return v
    if isinstance(v, str):
        safe = safe_text(v)
        if safe is v:
            return v
        problems.append(
            f"{where}: text that is not valid Unicode (undecodable bytes or a lone "
            f"surrogate) recorded as '{safe}'"
        )
        return {"type": "str", "repr": safe} if stand_in else safe
    if isinstance(v, int):
        if _int_text(v) is not None:
            return v
        digits = int(v.bit_length() * 0.30103) + 1
        shown = f"<int of about {digits} digits>"
        problems.append(f"{where}: an int of about {digits} digits is too long to write as text")
        return {"type": "int", "repr": shown} if stand_in else shown
    if depth > _MAX_DEPTH:
        problems.append(f"{where}: nested too deep to record")
        shown = f"<{type(v).__qualname__} nested too deep>"
        return {"type": type(v).__qualname__, "repr": shown} if stand_in else shown
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        for k, x in v.items():
            key = k if isinstance(k, str) else str(_walk(k, where, problems, False, depth + 1))
            safe = safe_text(key)
            if safe is not key:
                problems.append(
                    f"{where}: the name '{safe}' is not valid Unicode; recorded as shown"
                )
            out[safe] = _walk(x, f"{where}.{safe}", problems, stand_in, depth + 1)
        return out
    if isinstance(v, (list, tuple)):
        return [_walk(x, f"{where}[{i}]", problems, stand_in, depth + 1) for i, x in enumerate(v)]
    try:
        shown = safe_text(repr(v))[:200]
    except Exception:
        shown = f"<{type(v).__qualname__}>"
    problems.append(f"{where}: a {type(v).__qualname__} is not JSON; recorded as its repr")
    return {"type": type(v).__qualname__, "repr": shown} if stand_in else shown


def dumps_storable(value: Any, where: str) -> tuple[bytes, list[str]]:
    """Canonical JSON of ``value``; what it cannot encode is replaced (see :func:`storable`)
    and named in the returned problems."""
    try:
        return canonical.dumps(value), []
    except (ValueError, TypeError, RecursionError):
        problems: list[str] = []
        return canonical.dumps(storable(value, where, problems)), problems


def make_run_storable(state: RunState) -> None:
    """Replace, in place, every field of an active run that canonical JSON cannot encode:
    its record, its input and output names and paths, its metric names, its warnings;
    each replacement becomes a warning of the run."""
    problems: list[str] = []
    rec = state.record
    for k in list(rec):
        rec[k] = storable(rec[k], k, problems, stand_in=k == "params")
    for field, arts in (("inputs", state.inputs), ("outputs", state.outputs)):
        fixed = storable({n: a.to_json() for n, a in arts.items()}, field, problems)
        arts.clear()
        arts.update((n, Artifact.from_json(v)) for n, v in fixed.items())
    for k in [k for k in state.stats if safe_text(k) is not k]:
        problems.append(f"metrics: the name '{safe_text(k)}' is not valid Unicode")
        state.stats[safe_text(k)] = state.stats.pop(k)
    state.warnings[:] = [safe_text(w) for w in state.warnings]
    for p in problems:
        state.warn(p)
