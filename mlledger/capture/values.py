"""Python values as stored bytes, and back.

Each value gets the format its library owns: JSON for JSON-native data and
attrs/dataclass instances, ``.npy`` for numpy arrays, parquet for pandas
frames (when pyarrow is there), ``torch.save`` for tensors, pickle for any
other picklable value.  The same value always gives the same bytes, so a
value returned by one tracked call and passed to the next is one artifact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import pickle
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from .. import canonical
from ..errors import PolicyError, UsageError

__all__ = [
    "Encoded",
    "describe",
    "encode_redacted",
    "encode_value",
    "is_json_native",
    "is_scalar",
    "load_value",
    "plain_number",
    "sniff_format",
    "why_not_stored",
]

_SCALARS = (type(None), bool, int, float, str)


@attrs.frozen
class Encoded:
    """A value as bytes: ``format`` says how to read it back."""

    data: bytes
    format: str  # json | npy | parquet | torch | pickle
    summary: dict[str, Any]
    jsonable: Any = None  # the JSON form, for json values


def is_scalar(value: Any) -> bool:
    return type(value) in _SCALARS


def is_json_native(value: Any, depth: int = 0) -> bool:
    """True for None, bool, int, float, str and lists/tuples/str-keyed dicts of them."""
    if depth > 50:
        return False
    t = type(value)
    if t in _SCALARS:
        return True
    if t in (list, tuple):
        return all(is_json_native(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and is_json_native(v, depth + 1) for k, v in value.items())
    return False


def _module_of(value: Any) -> str:
    return type(value).__module__.split(".", 1)[0]


def _type_name(value: Any) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def plain_number(v: Any) -> bool | int | float | None:
    """A numpy scalar (``np.float64``, ``np.int64``, ``np.bool_``...) as the Python number it
    holds; None for anything else (a datetime64 or a complex number stays a value)."""
    t = type(v)
    if t.__module__ != "numpy" or t.__name__ == "ndarray" or getattr(v, "ndim", None) != 0:
        return None
    try:
        got = v.item()
        if type(got) is float and t.__name__ in ("float16", "float32"):
            got = float(str(v))  # np.float32(0.1) is the 0.1 the user wrote, not 0.100000001
    except Exception:
        return None
    return got if type(got) in (bool, int, float) else None


def _structured(value: Any) -> Any:
    """``value`` as plain JSON data when it is made of attrs classes, dataclasses,
    namedtuples, str-keyed mappings (an OmegaConf/Hydra config too) and sequences (at any
    depth, inside one another) over JSON scalars and numpy scalars; else a sentinel.
    A namedtuple becomes a mapping of its fields, so a config such as
    ``Cfg(lr=0.1, api_key=...)`` is readable by field and redacted by name."""
    try:
        return _plain(value, 0)
    except Exception:  # a field that cannot be read or unstructured: stored another way
        return _MISSING


def _plain(value: Any, depth: int) -> Any:
    if depth > 50:
        return _MISSING
    t = type(value)
    if t in _SCALARS:
        return value
    if t is list or t is tuple:
        return _plain_items(value, depth, t is list)
    if t is dict:
        return _plain_mapping(value, depth)
    if t.__module__ == "numpy":  # a numpy scalar in a config is the number it holds
        num = plain_number(value)
        return _MISSING if num is None else num
    if isinstance(value, tuple) and isinstance(getattr(t, "_fields", None), tuple):
        return _plain(dict(zip(t._fields, value, strict=True)), depth + 1)  # a namedtuple
    if attrs.has(t):
        from ..records import converter

        return _plain(converter.unstructure(value), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _plain(fields, depth + 1)
    if isinstance(value, Mapping):  # OrderedDict, defaultdict, an OmegaConf/Hydra DictConfig
        return _plain_mapping(value, depth)
    if isinstance(value, (list, tuple)) or (
        t.__module__.startswith("omegaconf.") and isinstance(value, Sequence)  # a ListConfig
    ):
        return _plain_items(value, depth, True)
    return _MISSING


def _plain_items(value: Iterable[Any], depth: int, as_list: bool) -> Any:
    items = []
    for v in value:
        p = _plain(v, depth + 1)
        if p is _MISSING:
            return _MISSING
        items.append(p)
    return items if as_list else tuple(items)


def _plain_mapping(value: Mapping[Any, Any], depth: int) -> Any:
    out: dict[str, Any] = {}
    for k, v in value.items():
        p = _plain(v, depth + 1)
        if type(k) is not str or p is _MISSING:
            return _MISSING
        out[k] = p
    return out


_MISSING = object()


def describe(value: Any) -> dict[str, Any]:
    """A short JSON description of a value that is not stored inline."""
    out: dict[str, Any] = {"type": _type_name(value)}
    with contextlib.suppress(Exception):  # a "shape" that is not one, a raising __getattr__
        shape = getattr(value, "shape", None)
        if shape is not None:
            out["shape"] = [int(s) for s in shape]
    with contextlib.suppress(Exception):
        dtype = getattr(value, "dtype", None)
        if dtype is not None:
            out["dtype"] = str(dtype)
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        out["len"] = len(value)
    return out


def encode_value(value: Any) -> Encoded | None:
    """The stored form of ``value``, or None when it cannot be stored.

    None means: not picklable, or every way of storing it failed.  It never
    raises: capture must not break the user's code.
    """
    try:
        return _encode(value)
    except Exception:
        return None


def _encode(value: Any) -> Encoded | None:
    if is_json_native(value):
        return Encoded(canonical.dumps(value), "json", describe(value), value)
    structured = _structured(value)
    if structured is not _MISSING:
        return Encoded(canonical.dumps(structured), "json", describe(value), structured)
    mod = _module_of(value)
    if mod == "numpy" and "numpy" in sys.modules:
        np = sys.modules["numpy"]
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, value, allow_pickle=False)
            return Encoded(buf.getvalue(), "npy", describe(value))
    if mod == "pandas" and "pandas" in sys.modules:
        pd = sys.modules["pandas"]
        if isinstance(value, pd.DataFrame):
            try:
                import pyarrow  # noqa: F401

                buf = io.BytesIO()
                value.to_parquet(buf)
                return Encoded(buf.getvalue(), "parquet", describe(value))
            except Exception:
                pass  # no pyarrow or an unsupported column: pickle below
    if mod == "torch" and "torch" in sys.modules:
        torch = sys.modules["torch"]
        if isinstance(value, torch.Tensor):
            t = _compact_tensor(torch, value.detach().cpu())
            buf = io.BytesIO()
            torch.save(t, buf)
            return Encoded(buf.getvalue(), "torch", describe(value))
    try:
        data = pickle.dumps(value, protocol=5)
    except Exception:
        return None
    if _may_hold_sets(value):
        with contextlib.suppress(Exception):  # too deep for the Python pickler: as it is
            data = _pickle_sets_sorted(value)
    return Encoded(data, "pickle", describe(value))


#: how many objects :func:`_may_hold_sets` looks at before it gives up
_SET_SCAN_BUDGET = 10_000


def _may_hold_sets(value: Any) -> bool:
    """Whether ``value`` holds a set or frozenset, looking through dicts, lists, tuples and
    plain objects' attributes, at most ``_SET_SCAN_BUDGET`` of them (a larger value, a
    million-item Counter, is left to the fast pickle as it is)."""
    stack = [value]
    seen: set[int] = set()
    budget = _SET_SCAN_BUDGET
    while stack:
        budget -= 1
        if budget < 0:
            return False
        v = stack.pop()
        if isinstance(v, (set, frozenset)):
            return True
        if isinstance(v, (str, bytes, int, float, bool)) or v is None or id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        else:
            attrs_ = getattr(v, "__dict__", None)
            if isinstance(attrs_, dict):
                stack.extend(attrs_.values())
            slots = getattr(type(v), "__slots__", ())
            for name in (slots,) if isinstance(slots, str) else slots:
                with contextlib.suppress(Exception):
                    stack.append(getattr(v, name))
    return False


def _pickle_sets_sorted(value: Any) -> bytes:
    """A pickle with every set and frozenset written in a sorted order.

    A set's order follows the per-process string hash seed, so a plain pickle of
    ``{"cat", "dog"}`` has other bytes, and another digest, in every process: a
    diff would see a change that is not there.  The C pickler writes sets without
    asking any hook, so values holding sets (configs, mostly small) go through
    the Python one.  They load back as the same sets: the reduction calls the type.
    """
    buf = io.BytesIO()
    _SortedSetPickler(buf, protocol=5).dump(value)
    return buf.getvalue()


def _sorted_items(items: Any) -> list[Any]:
    """A set's items in an order that depends on their values only: numbers or strings
    sorted as they are, anything else by the bytes of its own (set-sorted) pickle."""
    kinds = {type(x) for x in items}
    if kinds <= {str} or kinds <= {int, float, bool}:
        return sorted(items)
    return sorted(items, key=_pickle_sets_sorted)


# the pure-Python pickler: the C one never asks reducer_override about exact sets
class _SortedSetPickler(pickle._Pickler):  # noqa: SLF001 - no public class offers this
    """Python's own pickler, with sets and frozensets (subclasses too) written sorted."""

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, (set, frozenset)):
            return NotImplemented
        items = _sorted_items(obj)
        t = type(obj)
        if t is set or t is frozenset:
            return t, (items,)
        rv = obj.__reduce_ex__(5)  # a subclass: (cls, (items,), state) by default
        if isinstance(rv, tuple) and len(rv) >= 2 and rv[1] and isinstance(rv[1][0], list):
            return (rv[0], (items, *rv[1][1:]), *rv[2:])
        return NotImplemented


def _compact_tensor(torch: Any, t: Any) -> Any:
    """``t``, or a compact copy when it is a view into a larger storage.

    torch.save writes a view's whole storage (a row of a big matrix would store the
    matrix) and its offset, so equal values would get different bytes, and another
    digest, depending on where they sit.  A tensor that already owns exactly its
    storage is saved as it is (no second copy of a large tensor), and so is a
    broadcast one (a zero stride: its copy would be as large as its shape).
    """
    try:
        if 0 in t.stride():
            return t
        if (
            t.is_contiguous()
            and t.storage_offset() == 0
            and t.untyped_storage().nbytes() == t.numel() * t.element_size()
        ):
            return t
        return t.clone(memory_format=torch.contiguous_format)
    except Exception:  # a layout without strides or storage (sparse, quantized...)
        return t


def sniff_format(data: bytes) -> str:
    """Guess the format of stored value bytes from their first bytes."""
    if data.startswith(b"\x93NUMPY"):
        return "npy"
    if data.startswith(b"PAR1"):
        return "parquet"
    if data.startswith(b"PK\x03\x04"):
        return "torch"
    if data[:1] == b"\x80":
        return "pickle"
    return "json"


def load_value(data: bytes, fmt: str | None = None, *, allow_pickle: bool = False) -> Any:
    """A stored value back as a Python object.

    Pickled values (and torch files holding more than tensors) load only with
    ``allow_pickle=True``: unpickling runs code from the store.
    """
    fmt = fmt or sniff_format(data)
    if fmt == "json":
        try:
            return canonical.loads(data)
        except ValueError as e:
            raise UsageError(
                "this object is not a stored value (it does not parse as JSON); "
                "restore it to a file with restore() instead"
            ) from e
    if fmt == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=allow_pickle)
    if fmt == "parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data))
    if fmt == "torch":
        import torch

        return torch.load(io.BytesIO(data), weights_only=not allow_pickle)
    if fmt == "pickle":
        if not allow_pickle:
            raise PolicyError(
                "this value is stored as a pickle, and unpickling runs code from the store: "
                "pass allow_pickle=True if you trust the store's writers"
            )
        return pickle.loads(data)  # the caller opted in
    raise UsageError(f"unknown value format {fmt!r}")


def jsonable_scalar(value: Any) -> Any:
    """A float NaN/inf as a string, so params stay valid JSON for every reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def encode_redacted(value: Any) -> Encoded | None:
    """:func:`encode_value`, with secret-looking keys of a JSON mapping redacted and URL
    credentials stripped from its strings.

    Every stored value goes through here (params, return values, notebook
    variables), so a value redacted in one run has the same digest in the next.
    """
    from .redact import redact_value, secret_attributes

    enc = encode_value(value)
    if enc is not None and enc.format == "pickle" and secret_attributes(value):
        # a pickle carries every attribute as it is: an object holding a password is
        # not stored at all (see why_not_stored); its type and a redacted repr are
        return None
    if enc is not None and enc.format == "json" and isinstance(
        enc.jsonable, (dict, list, tuple, str)
    ):
        redacted = redact_value(enc.jsonable)
        if redacted != enc.jsonable:
            enc = Encoded(canonical.dumps(redacted), "json", enc.summary, redacted)
    return enc


def why_not_stored(value: Any) -> str:
    """Why :func:`encode_redacted` gave None for ``value``, for the warning that says so."""
    from .redact import secret_attributes

    names = sorted(secret_attributes(value))
    if names:
        return (
            f"it holds secret-named attributes ({', '.join(names)}) and a pickle would carry "
            "them as they are, so it is not stored (nothing secret leaves the process)"
        )
    return "it is not picklable"
