"""What putting something into the store gave back.

A module of its own so that opening a store does not build attrs classes: it
is imported by the first put (see ``tests/test_coldstart.py``).
"""

from __future__ import annotations

import attrs

__all__ = ["Stored"]


@attrs.frozen
class Stored:
    """What putting something into the store gave back."""

    digest: str
    size: int
    kind: str  # "file" | "tree" | "value"
    files: int = 1
