"""The changelog of a ref: each move, newest first, with who, when, why, what changed
against the move before (params, data, code, packages, environment) and the effect on
every metric both runs have, with cost and check results.

``Ledger.changelog(ref)`` and ``mlledger changelog REF`` build one.  ``log`` and
``entry`` hold the value types and their JSON form (its shape: ``log``'s docstring),
``build`` reads the ref and its runs, ``show`` renders text and markdown.
"""

from __future__ import annotations

from .build import build_changelog
from .entry import CAUSES, ChangelogEntry, MetricEffect
from .log import Changelog

__all__ = [
    "CAUSES",
    "Changelog",
    "ChangelogEntry",
    "MetricEffect",
    "build_changelog",
]
