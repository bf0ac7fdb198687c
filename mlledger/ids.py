"""Run ids: time-sortable, unique without coordination, strictly increasing in a process.

26 Crockford base32 characters: 48 bits of milliseconds since the epoch and 80
random bits (a ULID).  Within one process a later id is always greater, and
two ids never share their first 12 characters (``SHORT_ID_MIN``: 10 of time,
2 of the random part's top 10 bits): in the same millisecond the next id moves
the top 10 random bits up by one and draws the bits below afresh, and when
those run out it moves on to the next millisecond.  So ``run.id[:12]`` of any
run a process made names that run among the process's own runs, and a forked
child starts with fresh random bits, so it never repeats its parent's ids.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import os
import threading
import time
from collections.abc import Iterable, Sequence

__all__ = [
    "day_path",
    "first_id_at",
    "fixed_run_id",
    "id_ms",
    "id_time",
    "is_run_id",
    "new_run_id",
    "run_id_of_entry",
    "short_ids",
    "whole_key",
]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_lock = threading.Lock()
#: the last id made in this process, as (milliseconds, random part)
_last = (0, 0)


#: every pair of characters, indexed by the 10 bits they encode
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = tuple(range(120, -1, -10))


def _encode(ms: int, rand: int) -> str:
    """26 characters for 48 bits of milliseconds and 80 random bits, two at a time."""
    v = (ms << 80) | rand
    pairs = _PAIRS
    return "".join([pairs[(v >> s) & 1023] for s in _SHIFTS])


#: the random part's top bits (2 characters: what a 12-character prefix holds) and the rest
_TOP_BITS = 10
_LOW_BITS = 80 - _TOP_BITS
_LOW_MASK = (1 << _LOW_BITS) - 1


def _fresh() -> int:
    """80 random bits, the top one clear: at least 512 ids fit in the same millisecond."""
    return int.from_bytes(os.urandom(10), "big") >> 1


def new_run_id() -> str:
    """A new id, greater than every id made before it in this process."""
    global _last
    ms = time.time_ns() // 1_000_000
    with _lock:
        last_ms, last_rand = _last
        if ms <= last_ms:
            # the same millisecond (or a clock that went back): the next bucket of the
            # top 10 random bits, so the 12-character prefix changes too
            ms, top = last_ms, (last_rand >> _LOW_BITS) + 1
            if top >= 1 << _TOP_BITS:
                ms, top = last_ms + 1, _fresh() >> _LOW_BITS
            rand = (top << _LOW_BITS) | (_fresh() & _LOW_MASK)
        else:
            rand = _fresh()
        _last = (ms, rand)
    return _encode(ms, rand)


def fixed_run_id(ms: int, seed: bytes) -> str:
    """The run id of something that happened at ``ms`` (milliseconds since the epoch) and
    is named by ``seed`` elsewhere: the same pair always gives the same id (an imported
    run's id comes from its origin, so a second import finds it); the random part is the
    seed's SHA-256, top bit clear as in :func:`new_run_id`."""
    import hashlib

    if not 0 <= ms < 1 << 48:
        raise ValueError(f"{ms} ms is outside the run id's time range")
    rand = int.from_bytes(hashlib.sha256(seed).digest()[:10], "big") >> 1
    return _encode(ms, rand)


def _after_fork_in_child() -> None:
    """A forked child starts afresh: else parent and child would both increment one state."""
    global _last, _lock
    _last = (0, 0)
    _lock = threading.Lock()  # another thread of the parent may have held it while forking


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


#: the characters of a run id, as a set (``issuperset`` checks a whole name in C)
_CHARS = frozenset(_ALPHABET)


def is_run_id(s: str) -> bool:
    return len(s) == 26 and _CHARS.issuperset(s)


#: Crockford digits to the digits ``int(s, 32)`` reads
_TO_BASE32 = str.maketrans(_ALPHABET, "0123456789abcdefghijklmnopqrstuv")
_MS_PER_DAY = 86_400_000
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
#: (day number, "runs/yyyy/mm/dd") of the last day asked for: runs of one day share it
_last_day: tuple[int, str] = (-1, "")


def id_ms(run_id: str) -> int:
    """The milliseconds since the epoch encoded in a run id."""
    return int(run_id[:10].translate(_TO_BASE32), 32)


def first_id_at(ms: int) -> str:
    """The smallest run id of the millisecond ``ms`` (since the epoch): every run started
    at or after it has an id at least this."""
    return _encode(max(0, ms), 0)


def id_time(run_id: str) -> _dt.datetime:
    """The UTC time encoded in a run id."""
    return _EPOCH + _dt.timedelta(milliseconds=id_ms(run_id))  # exact: no float seconds


def whole_key(run_id: str) -> str:
    """``runs/<yyyy>/<mm>/<dd>/<run id>.json``: the one entry of a run that ended before its
    start entry was due (no folder of its own: one file, as cheap as a run can be)."""
    return day_path(run_id) + ".json"


def run_id_of_entry(name: str) -> str | None:
    """The run id a name in a day folder stands for: a run's folder or its one-entry file."""
    if len(name) == 31 and name.endswith(".json"):
        name = name[:26]
    elif len(name) != 26:
        return None
    return name if _CHARS.issuperset(name) else None


def day_path(run_id: str) -> str:
    """``runs/<yyyy>/<mm>/<dd>/<run id>``: where a run's entries live."""
    global _last_day
    day = id_ms(run_id) // _MS_PER_DAY
    cached = _last_day
    if cached[0] != day:
        t = _EPOCH + _dt.timedelta(days=day)
        cached = _last_day = (day, f"runs/{t.year:04d}/{t.month:02d}/{t.day:02d}")
    return f"{cached[1]}/{run_id}"


#: the fewest characters of a run id shown to people: 10 carry the millisecond, 2 more
#: tell apart runs of other milliseconds that share it by chance
SHORT_ID_MIN = 12


def short_ids(
    ids: Iterable[str], known: Sequence[str], at_least: int = SHORT_ID_MIN
) -> dict[str, str]:
    """The shortest prefix of each of ``ids`` (``at_least`` characters or more) that no
    other id of ``known`` (sorted) starts with, so it can be pasted back as a target.

    Runs started in the same millisecond share all but their last few characters, so
    a fixed length is not enough.
    """
    out: dict[str, str] = {}
    for rid in ids:
        n = at_least
        i = bisect.bisect_left(known, rid)
        for j in (i - 1, i + 1 if i < len(known) and known[i] == rid else i):
            if 0 <= j < len(known) and known[j] != rid:
                n = max(n, _common_prefix_len(rid, known[j]) + 1)
        out[rid] = rid[:n]
    return out


def _common_prefix_len(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
