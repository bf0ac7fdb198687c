"""Records: frozen value types and their one JSON form (record -> JSON -> record)."""

from __future__ import annotations

import datetime as _dt

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlledger import canonical
from mlledger.records import (
    Artifact,
    MetricStats,
    RefEntry,
    RunError,
    from_iso,
    now_iso,
    param_fields,
    to_iso,
    utcnow,
)

hexes = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
digests = hexes.map(lambda h: f"xxh128:{h}")
names = st.text(min_size=1, max_size=20)
aware_times = st.datetimes(
    min_value=_dt.datetime(1971, 1, 1), max_value=_dt.datetime(2200, 1, 1),
    timezones=st.sampled_from([_dt.timezone.utc, _dt.timezone(_dt.timedelta(hours=5, minutes=30)),
                               _dt.timezone(_dt.timedelta(hours=-8))]),
)

artifacts = st.builds(
    Artifact,
    digest=digests,
    size=st.integers(min_value=0, max_value=1 << 50),
    kind=st.sampled_from(["file", "tree", "value"]),
    format=st.none() | st.sampled_from(["json", "npy", "parquet", "torch", "pickle"]),
    path=st.none() | names,
    files=st.none() | st.integers(min_value=0, max_value=10**6),
)

ref_entries = st.builds(
    RefEntry,
    name=names,
    seq=st.integers(min_value=0, max_value=10**9),
    target=digests,
    at=aware_times,
    user=names,
    host=names,
    message=st.none() | st.text(max_size=50),
    action=st.sampled_from(["set", "rollback"]),
    restores=st.none() | st.integers(min_value=0, max_value=10**9),
    run=st.none() | st.text(min_size=26, max_size=26),
)


@given(artifacts)
def test_artifact_round_trips_through_json(art: Artifact) -> None:
    """Artifact -> canonical JSON bytes -> Artifact gives an equal artifact."""
    data = canonical.dumps(art.to_json())
    back = Artifact.from_json(canonical.loads(data))
    assert back == art
    assert canonical.dumps(back.to_json()) == data


@given(ref_entries)
def test_ref_entry_round_trips_through_json(entry: RefEntry) -> None:
    """RefEntry -> canonical JSON bytes -> RefEntry gives an equal entry (same instant)."""
    data = canonical.dumps(entry.to_json())
    back = RefEntry.from_json(canonical.loads(data))
    assert back == entry
    assert back.at.utcoffset() == _dt.timedelta(0)
    assert canonical.dumps(back.to_json()) == data


@given(aware_times)
def test_iso_times_round_trip(t: _dt.datetime) -> None:
    """to_iso writes UTC with a Z and microseconds; from_iso reads back the same instant."""
    s = to_iso(t)
    assert s.endswith("Z")
    assert len(s) == len("2024-01-01T00:00:00.000000Z")
    assert from_iso(s) == t


@given(st.integers(min_value=0, max_value=(1 << 40) * 1_000_000))
def test_now_iso_is_to_iso_of_the_same_instant(ns: int) -> None:
    """now_iso (the fast path runs use) writes exactly what to_iso writes for that instant,
    also when the cached second changes between calls."""
    import mlledger.records as records_mod

    times = iter([ns, ns + 1_000, ns + 1_000_000_000])
    real = records_mod.time.time_ns
    records_mod.time.time_ns = lambda: next(times)  # type: ignore[assignment]
    try:
        got = [now_iso() for _ in range(3)]
    finally:
        records_mod.time.time_ns = real  # type: ignore[assignment]
    for value, text in zip([ns, ns + 1_000, ns + 1_000_000_000], got):
        t = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(
            microseconds=value // 1000
        )
        assert text == to_iso(t)


def test_now_iso_is_now() -> None:
    """now_iso reads the clock: it falls between two utcnow() readings."""
    a = utcnow()
    s = now_iso()
    b = utcnow()
    assert a - _dt.timedelta(microseconds=1) <= from_iso(s) <= b


@given(aware_times, aware_times)
def test_iso_strings_sort_like_times(a: _dt.datetime, b: _dt.datetime) -> None:
    """ISO strings of two times compare as the times do (so they sort in SQL and listings)."""
    if a < b:
        assert to_iso(a) < to_iso(b)
    elif a > b:
        assert to_iso(a) > to_iso(b)


def test_artifact_json_leaves_out_what_is_unset() -> None:
    """A file artifact's JSON has digest, size, kind and path only; producers never appear."""
    art = Artifact("xxh128:" + "0" * 32, 3, "file", path="a.txt", producers=("r1",))
    assert art.to_json() == {"digest": "xxh128:" + "0" * 32, "size": 3, "kind": "file",
                             "path": "a.txt"}


def test_artifact_equality_ignores_producers_and_consumers() -> None:
    """Two artifacts with one digest compare equal whoever made or used them."""
    a = Artifact("xxh128:" + "1" * 32, 1, "value", format="json", producers=("x",))
    b = Artifact("xxh128:" + "1" * 32, 1, "value", format="json", consumers=("y",))
    assert a == b
    assert hash(a) == hash(b)


def test_artifact_from_old_json_gets_defaults() -> None:
    """A minimal JSON artifact (digest only) loads with defaults for the rest."""
    art = Artifact.from_json({"digest": "xxh128:" + "2" * 32})
    assert art.size == 0
    assert art.kind == "file"
    assert art.format is None


def test_records_are_frozen() -> None:
    """Records cannot be changed once made."""
    art = Artifact("xxh128:" + "3" * 32, 1, "file")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        art.size = 2  # type: ignore[misc]
    err = RunError("ValueError", "m", "tb")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        err.message = "x"  # type: ignore[misc]
    stats = MetricStats(1.0, 0.0, 2.0, 3, 4)
    assert (stats.last, stats.min, stats.max, stats.step, stats.count) == (1.0, 0.0, 2.0, 3, 4)


def test_utcnow_is_aware_utc() -> None:
    """utcnow() is timezone-aware UTC."""
    assert utcnow().utcoffset() == _dt.timedelta(0)


def test_param_fields_name_the_fields_of_dict_params() -> None:
    """Dict params give dotted fields; lists, empty dicts and stand-ins for stored values stay
    values; a literal dotted param wins; nodes keeps the dicts too."""
    params = {
        "lr": 0.1,
        "cfg": {"optim": {"lr": 0.2, "betas": [0.9, 0.99]}, "extra": {}, "n": None},
        "cfg.n": "literal",
    }
    assert param_fields(params) == {
        "lr": 0.1,
        "cfg.optim.lr": 0.2,
        "cfg.optim.betas": [0.9, 0.99],
        "cfg.extra": {},
        "cfg.n": "literal",
    }
    assert param_fields(params, nodes=True) == {
        **param_fields(params),
        "cfg": params["cfg"],
        "cfg.optim": params["cfg"]["optim"],
    }
    assert param_fields({}) == {}
    stored = {"type": "dict", "len": 5000, "digest": "xxh128:" + "0" * 32}
    unstorable = {"type": "Socket", "repr": "<socket>"}
    assert param_fields({"big": stored, "s": unstorable}) == {"big": stored, "s": unstorable}
    assert param_fields({"opt": {"type": "adam", "lr": 0.1}}) == {
        "opt.type": "adam", "opt.lr": 0.1}  # a user's own "type" field is a field


@given(st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=3)),
    lambda inner: st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=20,
))
def test_param_fields_keep_every_leaf(value: object) -> None:
    """Every leaf of a nested param is reachable under its dotted path (keys without dots)."""
    got = param_fields({"p": value})

    def leaves(v: object, path: str) -> dict[str, object]:
        if isinstance(v, dict) and v:
            out: dict[str, object] = {}
            for k, x in v.items():
                out.update(leaves(x, f"{path}.{k}"))
            return out
        return {path: v}

    assert got == leaves(value, "p")
