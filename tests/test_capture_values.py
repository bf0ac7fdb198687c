"""Python values as stored bytes and back: formats, determinism, the pickle policy."""

from __future__ import annotations

import dataclasses
import math
import pickle
import threading
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import pytest
from helpers.runs import run_python
from hypothesis import given
from hypothesis import strategies as st

from mlledger import PolicyError, UsageError
from mlledger.capture.redact import REDACTED
from mlledger.capture.values import (
    Encoded,
    describe,
    encode_redacted,
    encode_value,
    is_json_native,
    is_scalar,
    jsonable_scalar,
    load_value,
    sniff_format,
)


@attrs.frozen
class Point:
    x: int
    y: int = 0


@dataclasses.dataclass
class Settings:
    name: str
    sizes: list[int]


@dataclasses.dataclass
class WithPath:
    path: Path


class Box:
    def __init__(self, v: int) -> None:
        self.v = v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Box) and other.v == self.v

    def __hash__(self) -> int:
        return self.v


def test_json_native_values_are_json() -> None:
    """JSON-native values encode as canonical JSON and load back equal."""
    for v in (None, True, 3, 1.5, "s", [1, "a"], {"b": [None, {"c": 1.0}]}):
        enc = encode_value(v)
        assert enc is not None
        assert enc.format == "json"
        assert load_value(enc.data) == v
        assert load_value(enc.data, "json") == v


def test_json_encoding_is_canonical() -> None:
    """Equal dicts in any key order encode to the same bytes."""
    a = encode_value({"b": 1, "a": {"y": 2, "x": 1}})
    b = encode_value({"a": {"x": 1, "y": 2}, "b": 1})
    assert a is not None
    assert b is not None
    assert a.data == b.data == b'{"a":{"x":1,"y":2},"b":1}'


def test_tuples_are_lists_in_json() -> None:
    """A tuple is JSON-native and encodes like the equal list (so values link across calls)."""
    t = encode_value((1, 2))
    lst = encode_value([1, 2])
    assert t is not None
    assert lst is not None
    assert t.data == lst.data


def test_is_json_native() -> None:
    """Only None/bool/int/float/str and lists, tuples and str-keyed dicts of them are native."""
    assert is_json_native({"a": [1, (2, None)]})
    assert not is_json_native({1: "a"})
    assert not is_json_native({"a": {1, 2}})
    assert not is_json_native(b"bytes")
    assert not is_json_native(Path("x"))
    deep: Any = 1
    for _ in range(60):
        deep = [deep]
    assert not is_json_native(deep)  # too deep: stored another way, never a RecursionError
    assert encode_value(deep) is not None


def test_is_scalar() -> None:
    """Scalars are exactly None, bool, int, float and str (not subclasses, not containers)."""
    assert all(is_scalar(v) for v in (None, True, 1, 1.0, "x"))
    assert not any(is_scalar(v) for v in ([], {}, b"", Path("x")))


def test_attrs_and_dataclasses_are_structured_json() -> None:
    """attrs and dataclass instances are stored as their structured JSON form."""
    p = encode_value(Point(1))
    assert p is not None
    assert p.format == "json"
    assert load_value(p.data) == {"x": 1, "y": 0}
    s = encode_value(Settings("a", [1, 2]))
    assert s is not None
    assert s.format == "json"
    assert load_value(s.data) == {"name": "a", "sizes": [1, 2]}
    assert p.summary["type"].endswith("Point")


class Cfg(NamedTuple):
    lr: float
    api_key: str


def test_namedtuples_are_mappings_of_their_fields() -> None:
    """A namedtuple is stored as JSON keyed by its fields, so its secrets are redacted by
    name and never reach the store."""
    enc = encode_redacted(Cfg(0.1, "sk-live-1234567890"))
    assert enc is not None
    assert enc.format == "json"
    assert load_value(enc.data) == {"api_key": REDACTED, "lr": 0.1}
    assert b"sk-live" not in enc.data
    assert enc.summary["type"].endswith("Cfg")


def test_structured_values_inside_containers_are_json() -> None:
    """attrs classes, dataclasses and namedtuples inside lists, tuples and dicts (and inside
    each other) are JSON too, not a pickle holding every field as it was."""
    value = {"runs": [Settings("a", [1]), Point(2, 3)], "cfg": (Cfg(0.2, "sk-abcdefghijkl"),)}
    enc = encode_redacted(value)
    assert enc is not None
    assert enc.format == "json"
    assert load_value(enc.data) == {
        "runs": [{"name": "a", "sizes": [1]}, {"x": 2, "y": 3}],
        "cfg": [{"api_key": REDACTED, "lr": 0.2}],
    }
    assert encode_value([Settings("a", [1])]) == encode_value([{"name": "a", "sizes": [1]}])


def test_other_mappings_and_sequences_are_plain_data() -> None:
    """dict subclasses (OrderedDict, defaultdict), read-only mappings and list/tuple
    subclasses are JSON like the built-in ones."""
    import collections
    import types

    value = {
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "default": collections.defaultdict(list, {"x": [1]}),
        "proxy": types.MappingProxyType({"k": "v"}),
        "size": type("Size", (tuple,), {})((3, 4)),
    }
    enc = encode_value(value)
    assert enc is not None
    assert enc.format == "json"
    assert load_value(enc.data) == {
        "ordered": {"a": 2, "b": 1}, "default": {"x": [1]}, "proxy": {"k": "v"}, "size": [3, 4]}


def test_structured_values_with_other_leaves_are_pickled() -> None:
    """One field that is not plain data (a Path, a non-str key) anywhere: the whole value
    is a pickle, as before, and loads back as itself."""
    for value in ([WithPath(Path("x"))], {"c": Cfg(0.1, "k")._replace(lr=Path("p"))},
                  Settings("a", {1: 2})):  # type: ignore[arg-type]
        enc = encode_value(value)
        assert enc is not None
        assert enc.format == "pickle", value
        assert load_value(enc.data, "pickle", allow_pickle=True) == value


def test_dataclass_with_non_json_fields_is_pickled() -> None:
    """A dataclass whose fields are not JSON-native falls back to pickle."""
    enc = encode_value(WithPath(Path("x")))
    assert enc is not None
    assert enc.format == "pickle"
    assert load_value(enc.data, "pickle", allow_pickle=True) == WithPath(Path("x"))


def _encoded_as(value: Any, fmt: str, summary: dict[str, Any]) -> Encoded:
    """``encode_value(value)``, checked: format ``fmt`` (also as sniffed), and ``summary``."""
    enc = encode_value(value)
    assert enc is not None
    assert enc.format == fmt
    assert enc.summary == summary
    assert sniff_format(enc.data) == fmt
    return enc


def test_numpy_arrays_are_npy_and_load_without_pickle() -> None:
    """A numpy array is .npy bytes; it loads back equal without allowing pickle."""
    np = pytest.importorskip("numpy")
    arr = np.linspace(0, 1, 7).reshape(7, 1)
    enc = _encoded_as(arr, "npy", {"type": "numpy.ndarray", "shape": [7, 1], "dtype": "float64"})
    back = load_value(enc.data)
    assert (back == arr).all()
    again = encode_value(arr.copy())
    assert again is not None
    assert again.data == enc.data


def test_torch_tensors_are_torch_files_and_load_without_pickle() -> None:
    """A tensor is a torch.save file; it loads back equal (weights_only, no pickle), and
    equal values give equal bytes whatever their storage: a view, a transpose, a gradient."""
    torch = pytest.importorskip("torch")
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    summary = {"type": "torch.Tensor", "shape": [3, 4], "dtype": "torch.float32"}
    enc = _encoded_as(t, "torch", summary)
    back = load_value(enc.data)
    assert isinstance(back, torch.Tensor)
    assert torch.equal(back, t)
    row = encode_value(t[1])
    fresh = encode_value(torch.tensor([4.0, 5.0, 6.0, 7.0]))
    assert row is not None
    assert fresh is not None
    assert row.data == fresh.data
    big = torch.zeros(200, 200)
    big_row = encode_value(big[7])
    assert big_row is not None
    assert len(big_row.data) < 10_000  # a view does not drag its 160 kB storage along
    transposed = encode_value(t.t())
    assert transposed is not None
    assert torch.equal(load_value(transposed.data), t.t())
    from mlledger.capture.values import _compact_tensor

    assert _compact_tensor(torch, t) is t  # a tensor owning its storage is not copied again
    assert _compact_tensor(torch, t[1]) is not t[1]
    broadcast = encode_value(torch.zeros(1).expand(1_000_000))
    assert broadcast is not None
    assert len(broadcast.data) < 10_000  # a zero stride is saved as it is, not blown up
    assert torch.equal(load_value(broadcast.data), torch.zeros(1_000_000))
    grad = encode_value(torch.ones(3, requires_grad=True))
    assert grad is not None
    assert grad.data == encode_value(torch.ones(3)).data  # type: ignore[union-attr]


def test_values_holding_sets_have_one_digest_in_every_process() -> None:
    """A set's order follows the per-process hash seed; stored values holding sets (at any
    depth, frozensets too) get the same bytes under any seed, and load back as sets."""
    code = (
        "import hashlib\n"
        "from mlledger.capture.values import encode_value, load_value\n"
        "v = {'classes': {'cat', 'dog', 'bird', 'fish', 'ant'}, 'fs': frozenset({'x', 'y'}),\n"
        "     'nested': [{'a', 'b', 'c'}], 'mixed': {1, 'a', (2, 3)}}\n"
        "e = encode_value(v)\n"
        "assert load_value(e.data, allow_pickle=True) == v\n"
        "print(e.format, hashlib.sha256(e.data).hexdigest())\n"
    )
    got = {run_python(code, PYTHONHASHSEED=str(seed)).strip() for seed in (1, 2, 3, 4)}
    assert len(got) == 1
    assert next(iter(got)).startswith("pickle ")
    no_sets = [1.5, "x", {"k": (1, 2)}, b"\x8f\x91" * 100]  # set opcode bytes as data only
    plain = encode_value(no_sets)
    assert plain is not None
    assert plain.data == pickle.dumps(no_sets, protocol=5)  # the plain C pickle


def test_numpy_object_arrays_are_pickled() -> None:
    """An object-dtype array is not .npy-safe: it is stored as a pickle."""
    np = pytest.importorskip("numpy")
    enc = encode_value(np.array([{"a": 1}, None], dtype=object))
    assert enc is not None
    assert enc.format == "pickle"


def test_numpy_scalars_are_stored() -> None:
    """A numpy scalar is the number it holds (JSON), also inside a config, whose secrets are
    then redacted; a numpy scalar that is no plain number (a datetime64) stays a pickle."""
    np = pytest.importorskip("numpy")
    enc = encode_value(np.float32(1.5))
    assert enc is not None
    assert enc.format == "json"
    assert load_value(enc.data) == np.float32(1.5)
    cfg = encode_redacted({"c": Cfg(np.float64(0.25), "sk-abcdefghijklmnop")})  # type: ignore[arg-type]
    assert cfg is not None
    assert load_value(cfg.data) == {"c": {"lr": 0.25, "api_key": REDACTED}}
    when = encode_value([np.datetime64("2026-01-01")])
    assert when is not None
    assert when.format == "pickle"


def test_pickle_needs_allow_pickle() -> None:
    """A pickled value loads only with allow_pickle=True; the error says how."""
    enc = encode_value(Box(3))
    assert enc is not None
    assert enc.format == "pickle"
    assert sniff_format(enc.data) == "pickle"
    with pytest.raises(PolicyError, match="allow_pickle=True"):
        load_value(enc.data)
    with pytest.raises(PermissionError):
        load_value(enc.data, "pickle")
    assert load_value(enc.data, allow_pickle=True) == Box(3)


def test_unpicklable_values_cannot_be_encoded() -> None:
    """Locks, generators and local classes' instances give None (the caller records type+repr)."""

    class Local:
        pass

    assert encode_value(threading.Lock()) is None
    assert encode_value(i for i in range(2)) is None
    assert encode_value(Local()) is None


def test_a_reduce_that_raises_anything_gives_none() -> None:
    """A value whose pickling raises any Exception is simply not storable."""

    class Weird:
        def __reduce__(self) -> Any:
            raise ZeroDivisionError("boom")

    assert encode_value(Weird()) is None


@dataclasses.dataclass
class HoldsLock:
    lr: float
    lock: Any


def test_values_whose_copy_fails_are_not_storable_and_never_raise() -> None:
    """A dataclass holding a lock (not plain data, not picklable) gives None, not an
    exception."""
    assert encode_value(HoldsLock(0.1, threading.Lock())) is None


def test_structured_numpy_with_objects_is_pickled() -> None:
    """A structured array with an object field cannot be .npy without pickle: it is a pickle."""
    np = pytest.importorskip("numpy")
    arr = np.array([(1, None)], dtype=[("a", "i4"), ("b", object)])
    enc = encode_value(arr)
    assert enc is not None
    assert enc.format == "pickle"


def test_describe_survives_hostile_attributes() -> None:
    """describe() of an object whose attribute lookup raises still gives its type."""

    class Hostile:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(name)

    assert describe(Hostile()) == {"type": f"{__name__}.{Hostile.__qualname__}"}


def test_describe() -> None:
    """describe() gives type, shape, dtype and len where they exist."""
    assert describe([1, 2]) == {"type": "list", "len": 2}
    assert describe({"a": 1})["len"] == 1
    assert describe(Box(1))["type"] == f"{__name__}.Box"

    class BadShape:
        shape = ("a", "b")
        dtype = "int8"

    assert describe(BadShape()) == {"type": f"{__name__}.{BadShape.__qualname__}",
                                    "dtype": "int8"}


def test_sniff_format() -> None:
    """Stored bytes tell their format by their first bytes."""
    assert sniff_format(b"\x93NUMPY...") == "npy"
    assert sniff_format(b"PAR1...") == "parquet"
    assert sniff_format(b"PK\x03\x04...") == "torch"
    assert sniff_format(pickle.dumps(1, protocol=5)) == "pickle"
    assert sniff_format(b'{"a":1}') == "json"


def test_load_of_non_json_bytes_says_to_restore() -> None:
    """Loading bytes that are not a stored value raises UsageError pointing at restore()."""
    with pytest.raises(UsageError, match="restore"):
        load_value(b"\xff\xfenot json", "json")
    with pytest.raises(UsageError, match="unknown value format"):
        load_value(b"x", "nope")


def test_jsonable_scalar() -> None:
    """NaN and infinities become strings; every other value is unchanged."""
    assert jsonable_scalar(float("nan")) == "nan"
    assert jsonable_scalar(float("inf")) == "inf"
    assert jsonable_scalar(float("-inf")) == "-inf"
    assert jsonable_scalar(1.5) == 1.5
    assert jsonable_scalar("x") == "x"


def test_pandas_frames_are_parquet_when_pyarrow_is_there() -> None:
    """A pandas DataFrame is stored as parquet when pyarrow is importable, else pickle."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    enc = encode_value(df)
    assert enc is not None
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert enc.format == "pickle"
    else:
        assert enc.format == "parquet"
        assert load_value(enc.data).equals(df)


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@given(json_values)
def test_json_values_round_trip(value: Any) -> None:
    """Every JSON-native value encodes as JSON and loads back equal."""
    enc = encode_value(value)
    assert enc is not None
    assert enc.format == "json"
    assert load_value(enc.data) == value


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_dict_bytes_do_not_depend_on_key_order(d: dict[str, Any]) -> None:
    """A dict and the same dict with keys reversed encode to the same bytes."""
    a = encode_value(d)
    b = encode_value(dict(reversed(list(d.items()))))
    assert a is not None
    assert b is not None
    assert a.data == b.data


@given(st.floats(allow_nan=True))
def test_float_params_are_always_json_serializable(x: float) -> None:
    """jsonable_scalar of any float is a finite float or a string."""
    out = jsonable_scalar(x)
    assert isinstance(out, str) or math.isfinite(out)


_KEYS = st.sampled_from(["lr", "api_key", "token", "key", "host", "url", "password", "name"])
_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
    st.sampled_from(["adam", "postgres://u:pw@h/db?password=x&a=1", "hunter2x9", "<redacted>",
                     "see http://h/?token=t and more", "https://example.org/x#sig=1"]),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=15,
)


@given(_VALUES)
def test_stored_values_redact_to_the_same_bytes_when_stored_again(value: Any) -> None:
    """A value's stored (redacted) form, loaded and stored again, is the same bytes: a
    value read back from the ledger and passed on keeps its digest (lineage holds)."""
    enc = encode_redacted(value)
    assert enc is not None
    again = encode_redacted(load_value(enc.data, enc.format, allow_pickle=True))
    assert again is not None
    assert again.data == enc.data
