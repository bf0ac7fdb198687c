"""The changelog's value types and their JSON form.

``Changelog.to_json()`` gives (keys always present, in this order of meaning)::

    {"ref": "model/prod",
     "moves": 7,                        # entries in the ref's history (its highest number)
     "entries": [                       # newest first
       {"seq": 7,
        "action": "rollback",           # set | rollback | damaged | missing
        "restores": 5,                  # the entry a rollback brings back, else null
        "forced": false,                # true: the move overrode a protected ref's policy
        "at": "2026-12-06T05:40:12.000000Z", "user": "ana", "host": "gpu-1",
        "who": "ana@gpu-1", "message": "v6 overfits",
        "target": "01JD...",            # as the entry names it: a run id or a digest
        "run": {"id": "01JD...", "name": "train", "status": "finished"},   # or null
        "artifact": {"digest": ..., "size": ..., "kind": ..., "output": "model.pt"},  # or null
        "before": {"seq": 6, "target": ..., "run": "01JC..."},  # null on a first move
        "causes": [{"cause": "params", "section": "params", "key": "lr",
                    "old": 0.1, "new": 0.05, "kind": "changed"}, ...],
        "metrics": [{"key": "accuracy", "old": 0.91, "new": 0.93,
                     "change": 0.02, "percent": 2.2}, ...],
        "cost": {"value": 1.2, "currency": "USD", "before": 1.1},       # or null
        "checks": {"run_id": ..., "at": ..., "ok": false, "results": [  # the newest
                    {"rule": ..., "field": ..., "value": ..., "baseline": ...,  # report, or
                     "change": ..., "ok": ..., "message": ...}]},              # null
        "problems": ["..."]},           # damage found while reading; [] when none
       ...]}

``cause`` is one of :data:`CAUSES` (``params``, ``data``, ``code``, ``packages``,
``environment``); ``section`` is the diff's section it came from.  ``old`` is null
for a metric on a first move (nothing before it); ``change`` and ``percent`` are null
when a side is missing, and ``percent`` when the old value is 0.  A number that is
not finite (NaN, infinity) is written as null (in a check result: as text, as
:class:`~mlledger.checks.CheckResult` writes it): the text stays standard JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs

from .entry import ChangelogEntry
from .show import changelog_markdown, changelog_text

__all__ = ["Changelog"]


@attrs.frozen
class Changelog:
    """The moves of ref ``ref``, newest first (``entries``), with causes and effects.

    ``moves`` is how many entries the ref's history holds (more than ``entries`` when a
    limit was given).  ``to_text()`` for a terminal, ``to_markdown()`` for a pull
    request or a CI step summary, ``to_json()`` for scripts (shape in this module's doc).
    """

    ref: str
    entries: tuple[ChangelogEntry, ...]
    moves: int

    def __iter__(self) -> Iterator[ChangelogEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form as Python data."""
        return {
            "ref": self.ref,
            "moves": self.moves,
            "entries": [e.to_json() for e in self.entries],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The changelog as a JSON string (keys sorted, standard JSON: no NaN)."""
        return json.dumps(
            self.to_dict(), indent=indent, sort_keys=True, ensure_ascii=False, allow_nan=False
        )

    @classmethod
    def from_json(cls, data: str | bytes | dict[str, Any]) -> Changelog:
        """A changelog back from :meth:`to_json`'s text (or its parsed dict)."""
        doc = json.loads(data) if isinstance(data, (str, bytes)) else data
        return cls(
            ref=str(doc["ref"]),
            entries=tuple(ChangelogEntry.from_json(e) for e in doc.get("entries") or ()),
            moves=int(doc.get("moves", 0)),
        )

    def to_text(self, color: bool = False) -> str:
        """Aligned text for a terminal (ANSI colours when ``color``)."""
        return changelog_text(self.ref, self.moves, self.entries, color=color)

    def to_markdown(self) -> str:
        """Markdown: a heading per move, a metrics table, the causes as a list."""
        return changelog_markdown(self.ref, self.moves, self.entries)

    def __str__(self) -> str:
        return self.to_text()
