"""The plain text helpers (mlledger._fmt): sizes, durations, ages, numbers, digests, paths."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from mlledger._fmt import (
    age,
    counted,
    display_path,
    human_seconds,
    human_size,
    num,
    one_line,
    short_digest,
    short_value,
    when,
)

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("n", "text"),
    [(None, "?"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 1024**3, "3.0 GiB"),
     (2 * 1024**4, "2.0 TiB")],
)
def test_human_size(n: int | None, text: str) -> None:
    """Sizes are bytes below 1 KiB, then one decimal in binary units; unknown is ``?``."""
    assert human_size(n) == text


@pytest.mark.parametrize(
    ("s", "text"),
    [(None, "?"), (4.25, "4.25s"), (185, "3m 5s"), (2 * 3600 + 600, "2h 10m"),
     (3 * 86400 + 4 * 3600, "3d 4h")],
)
def test_human_seconds(s: float | None, text: str) -> None:
    """Durations read as seconds, minutes, hours or days with the next unit down."""
    assert human_seconds(s) == text


def test_age_and_when() -> None:
    """Ages count back from now; old dates show as the date; ``when`` is UTC with the age."""
    assert age(None) == "?"
    assert age(NOW - dt.timedelta(seconds=5), NOW) == "5s ago"
    assert age(NOW - dt.timedelta(minutes=3), NOW) == "3m ago"
    assert age(NOW - dt.timedelta(hours=30), NOW) == "30h ago"
    assert age(NOW - dt.timedelta(days=10), NOW) == "10d ago"
    assert age(NOW - dt.timedelta(days=90), NOW) == "2024-12-01"
    assert age(NOW + dt.timedelta(seconds=30), NOW) == "just now"
    assert age(NOW + dt.timedelta(hours=1), NOW) == "in the future"
    assert when(None) == "-"
    assert when(NOW - dt.timedelta(days=400)).startswith("2024-01-26 12:00:00 UTC (")


def test_numbers_values_digests_and_counts() -> None:
    """Floats to 6 significant digits, long values cut, digests as ``algo:prefix``."""
    assert num(0.123456789) == "0.123457"
    assert num(3) == "3"
    assert short_value({"b": 1, "a": [1, 2]}) == '{"a": [1, 2], "b": 1}'
    assert short_value("x" * 200, limit=10) == "xxxxxxx..."
    assert short_digest("xxh128:" + "0123456789abcdef" * 2) == "xxh128:0123456789ab"
    assert short_digest("0123456789abcdef") == "0123456789ab"
    assert [counted(n, "run") for n in (1, 2, 0)] == ["1 run", "2 runs", "0 runs"]


def test_one_line() -> None:
    """A multi-line error becomes one line; a query error's caret line is dropped."""
    assert one_line("bad query\n  a >\n    ^\n") == "bad query: a >"
    assert one_line("") == "unknown error"


def test_display_path(tmp_path: Path) -> None:
    """A path inside the working directory is shown relative to it, others as given."""
    inside = os.path.join(str(tmp_path), "sub", "f.txt")
    assert display_path(inside, str(tmp_path)) == os.path.join("sub", "f.txt")
    assert display_path("/elsewhere/f.txt", str(tmp_path)) == "/elsewhere/f.txt"
    assert display_path("a/./b/../c") == os.path.join("a", "c")
