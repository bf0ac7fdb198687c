"""Largest-Triangle-Three-Buckets: a long metric history cut to a few points for drawing.

The first and last points stay; the points between are split into equal buckets
and each bucket keeps the point that spans the largest triangle with the point
kept before it and the mean of the next bucket, so peaks and dips survive where
plain striding would drop them.  Pure Python on lists: the report draws a few
hundred points per curve, and the base install has no numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["lttb"]


def lttb(xs: Sequence[float], ys: Sequence[float], n: int) -> list[int]:
    """Indexes of at most ``n`` points of ``(xs, ys)`` that keep its shape (``n >= 3``).

    ``xs`` increase; all of both are finite.  Fewer than ``n`` points come back whole.
    """
    size = len(xs)
    if n < 3:
        raise ValueError(f"lttb keeps at least 3 points, not {n}")
    if size <= n:
        return list(range(size))
    kept = [0]
    every = (size - 2) / (n - 2)
    a = 0
    for i in range(n - 2):
        lo = int(i * every) + 1
        hi = int((i + 1) * every) + 1
        # the mean of the next bucket (the last point for the last bucket)
        nlo, nhi = hi, min(int((i + 2) * every) + 1, size)
        if nlo >= nhi:
            nlo, nhi = size - 1, size
        cnt = nhi - nlo
        mx = sum(xs[nlo:nhi]) / cnt
        my = sum(ys[nlo:nhi]) / cnt
        ax, ay = xs[a], ys[a]
        best, best_area = lo, -1.0
        for j in range(lo, hi):
            area = abs((ax - mx) * (ys[j] - ay) - (ax - xs[j]) * (my - ay))
            if area > best_area:
                best, best_area = j, area
        kept.append(best)
        a = best
    kept.append(size - 1)
    return kept
