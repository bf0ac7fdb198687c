"""Plain text helpers shared by every part that shows something to a person."""

from __future__ import annotations

import os

__all__ = ["display_path"]


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
