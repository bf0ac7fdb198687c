"""Plain text helpers shared by every part that shows something to a person."""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Any

__all__ = [
    "SHORT_DIGEST",
    "age",
    "counted",
    "display_path",
    "human_seconds",
    "human_size",
    "num",
    "one_line",
    "short_digest",
    "short_value",
    "when",
]


def counted(n: int, noun: str) -> str:
    """``"1 run"``, ``"2 runs"``, ``"0 runs"``: a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

#: hex characters of a digest shown in listings (a pasteable ``algo:prefix``)
SHORT_DIGEST = 12


def display_path(path: str, cwd: str | None = None) -> str:
    """A path as a person would write it: relative to ``cwd`` (the working directory by
    default) when it lies inside it, else as given; a relative path normalised."""
    if not os.path.isabs(path):
        return os.path.normpath(path)
    try:
        rel = os.path.relpath(path, cwd)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


def one_line(message: str) -> str:
    """An error message as one line (a query error's caret lines become ``: text``)."""
    lines = [ln.strip() for ln in str(message).splitlines()]
    lines = [ln for ln in lines if ln and set(ln) != {"^"}]
    return ": ".join(lines) if lines else "unknown error"


def human_size(n: float | None) -> str:
    """``512 B``, ``1.5 KiB``, ... ``2.0 TiB``; ``?`` when unknown."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def human_seconds(s: float | None) -> str:
    """``4.2s``, ``3m 5s``, ``2h 10m``, ``3d 4h``; ``?`` when unknown."""
    if s is None:
        return "?"
    if s < 60:
        return f"{s:.3g}s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m}m {sec}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m}m"
    d, h = divmod(h, 24)
    return f"{d}d {h}h"


def age(t: _dt.datetime | None, now: _dt.datetime | None = None) -> str:
    """``3m ago``; dates older than two months as the date."""
    if t is None:
        return "?"
    now = now or _dt.datetime.now(_dt.timezone.utc)
    s = (now - t).total_seconds()
    if s < 0:
        return "just now" if s > -60 else "in the future"
    if s < 60:
        return f"{int(s)}s ago"
    if s < 3600:
        return f"{int(s // 60)}m ago"
    if s < 48 * 3600:
        return f"{int(s // 3600)}h ago"
    if s < 60 * 86400:
        return f"{int(s // 86400)}d ago"
    return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d")


def when(t: _dt.datetime | None) -> str:
    """``2025-01-02 03:04:05 UTC (3m ago)``; ``-`` when there is no time."""
    if t is None:
        return "-"
    utc = t.astimezone(_dt.timezone.utc)
    return f"{utc.strftime('%Y-%m-%d %H:%M:%S')} UTC ({age(t)})"


def num(v: Any) -> str:
    """A number as people read it: floats to 6 significant digits."""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def money(amount: float, currency: str | None = None) -> str:
    """An amount of money: cents from 1 up (``12.30 USD``), 3 significant digits below
    (``0.00412 USD``), the currency after it when known."""
    text = f"{amount:,.2f}" if abs(amount) >= 1 or amount == 0 else f"{amount:.3g}"
    return f"{text} {currency}" if currency else text


def short_value(v: Any, limit: int = 100) -> str:
    """A param or returned value on one line, cut to ``limit`` characters."""
    if isinstance(v, float):
        s = num(v)
    elif isinstance(v, str):
        s = v
    else:
        s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def short_digest(digest: str) -> str:
    """``xxh128:0123456789ab``: a digest's algorithm and first hex characters."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:SHORT_DIGEST]}" if hexpart else digest[:SHORT_DIGEST]
