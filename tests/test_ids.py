"""Run ids: time-sortable, unique without coordination, strictly increasing within a process."""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mlledger.ids as ids_mod
from mlledger.ids import day_path, id_time, is_run_id, new_run_id

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_id_form() -> None:
    """An id is 26 Crockford base32 characters."""
    run_id = new_run_id()
    assert len(run_id) == 26
    assert set(run_id) <= CROCKFORD
    assert is_run_id(run_id)


def test_is_run_id_rejects_other_strings() -> None:
    """Wrong length, lower case or letters outside the alphabet (I, L, O, U) are not ids."""
    good = new_run_id()
    assert not is_run_id(good[:-1])
    assert not is_run_id(good + "0")
    assert not is_run_id(good.lower())
    for bad in "ILOU":
        assert not is_run_id(bad + good[1:])
    assert not is_run_id("")


def test_ids_increase_strictly_in_a_tight_loop() -> None:
    """Many ids made as fast as possible are strictly increasing (and so all distinct)."""
    got = [new_run_id() for _ in range(20_000)]
    assert all(a < b for a, b in itertools.pairwise(got))


def test_ids_increase_across_threads() -> None:
    """Ids made by several threads at once are all distinct, and increasing per thread."""
    per_thread: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        for _ in range(2000):
            out.append(new_run_id())

    threads = [threading.Thread(target=make, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for out in per_thread for i in out]
    assert len(set(everything)) == len(everything)
    for out in per_thread:
        assert out == sorted(out)


def test_ids_keep_increasing_when_the_clock_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock stepping backwards (NTP) never makes a smaller id in this process."""
    first = new_run_id()
    now = time.time_ns()
    monkeypatch.setattr(ids_mod.time, "time_ns", lambda: now - 3_600 * 10**9)
    later = [new_run_id() for _ in range(100)]
    assert all(a < b for a, b in zip([first, *later], later))


def test_random_part_overflow_moves_to_the_next_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the random part of the same millisecond is exhausted, the next id is still greater."""
    new_run_id()
    ms = ids_mod._last[0]
    monkeypatch.setattr(ids_mod, "_last", (ms, (1 << 80) - 1))
    monkeypatch.setattr(ids_mod.time, "time_ns", lambda: ms * 1_000_000)
    before = ids_mod._encode(ms, (1 << 80) - 1)
    after = new_run_id()
    assert after > before
    assert id_time(after) > id_time(before)


def test_id_time_is_when_it_was_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The time encoded in an id is the time it was made, to the millisecond."""
    monkeypatch.setattr(ids_mod, "_last", (0, 0))  # no id from a faked clock before this one
    t0 = _dt.datetime.now(_dt.timezone.utc)
    run_id = new_run_id()
    t1 = _dt.datetime.now(_dt.timezone.utc)
    t = id_time(run_id)
    assert t.tzinfo is not None
    assert t0 - _dt.timedelta(milliseconds=2) <= t <= t1 + _dt.timedelta(milliseconds=2)


def test_ids_sort_by_time() -> None:
    """An id made later (a few ms) sorts after, also across processes' random parts."""
    a = new_run_id()
    time.sleep(0.003)
    b = new_run_id()
    assert a < b
    assert id_time(a) < id_time(b)


def test_day_path_layout() -> None:
    """A run lives under runs/<yyyy>/<mm>/<dd>/<id> of the UTC day in its id."""
    run_id = new_run_id()
    t = id_time(run_id)
    assert day_path(run_id) == f"runs/{t.year:04d}/{t.month:02d}/{t.day:02d}/{run_id}"


def test_day_path_of_a_known_id() -> None:
    """A hand-made id for 2024-02-29 23:59:59.999 UTC files under that day."""
    ms = int(_dt.datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=_dt.timezone.utc)
             .timestamp() * 1000)
    run_id = ids_mod._encode(ms, 0)
    assert day_path(run_id) == f"runs/2024/02/29/{run_id}"


@given(st.integers(min_value=0, max_value=(1 << 48) - 1),
       st.integers(min_value=0, max_value=(1 << 80) - 1))
def test_encoding_keeps_order(ms: int, rand: int) -> None:
    """Encoding is order-preserving: a greater (ms, random) pair gives a greater id."""
    a = ids_mod._encode(ms, rand)
    assert is_run_id(a)
    if rand < (1 << 80) - 1:
        b = ids_mod._encode(ms, rand + 1)
        assert a < b
    if ms < (1 << 48) - 1:
        c = ids_mod._encode(ms + 1, 0)
        assert a < c


@given(st.integers(min_value=0, max_value=(1 << 48) - 1),
       st.integers(min_value=0, max_value=(1 << 80) - 1))
def test_encoding_is_crockford_base32_of_the_128_bits(ms: int, rand: int) -> None:
    """An id is the ULID form: the 128-bit value (ms << 80 | random) in 26 Crockford digits."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    v = (ms << 80) | rand
    expected = "".join(alphabet[(v >> (5 * i)) & 31] for i in reversed(range(26)))
    got = ids_mod._encode(ms, rand)
    assert got == expected
    assert ids_mod.id_ms(got) == ms


@given(st.integers(min_value=0, max_value=253402300799999))  # to 9999-12-31T23:59:59.999Z
def test_day_path_is_the_utc_day_of_the_id(ms: int) -> None:
    """day_path (cached per day) names the UTC day of the id's time, across day changes."""
    run_id = ids_mod._encode(ms, 12345)
    t = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(milliseconds=ms)
    assert id_time(run_id) == t
    assert day_path(run_id) == f"runs/{t.year:04d}/{t.month:02d}/{t.day:02d}/{run_id}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_repeats_the_parents_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process forked right after making an id makes different ids from its parent's."""
    frozen = time.time_ns()
    monkeypatch.setattr(ids_mod.time, "time_ns", lambda: frozen)  # same millisecond throughout
    new_run_id()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.write(w, new_run_id().encode())
        finally:
            os._exit(0)
    os.close(w)
    child_id = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    parent_id = new_run_id()
    assert is_run_id(child_id)
    assert child_id != parent_id


def test_short_ids_are_unique_prefixes_of_twelve_or_more() -> None:
    """Ids of one millisecond get as many characters as it takes to tell them apart; ids of
    other milliseconds get 12; an id not among the known ones gets 12 or what sets it apart."""
    ms = 1_700_000_000_000
    same = [ids_mod._encode(ms, r) for r in (10**20, 10**20 + 1, 10**20 + 2)]
    other = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    known = sorted([*same, other])
    got = ids_mod.short_ids([*same, other], known)
    assert got[other] == other[:12]
    for rid in same:
        assert rid.startswith(got[rid])
        assert len(got[rid]) > 12
        assert [k for k in known if k.startswith(got[rid])] == [rid]


def test_ids_of_one_process_differ_in_their_first_twelve_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ids made in the same millisecond still differ within SHORT_ID_MIN characters, so a
    12-character prefix of any id a process made is unique among them, and they still sort."""
    frozen = time.time_ns()
    monkeypatch.setattr(ids_mod.time, "time_ns", lambda: frozen)
    monkeypatch.setattr(ids_mod, "_last", (0, 0))
    made = [new_run_id() for _ in range(3000)]  # more than one millisecond's room
    assert made == sorted(made)
    prefixes = [m[: ids_mod.SHORT_ID_MIN] for m in made]
    assert len(set(prefixes)) == len(made)
    assert id_time(made[-1]) > id_time(made[0])  # ran out of room, moved on a millisecond
