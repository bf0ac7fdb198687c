"""``RunList``: the runs a query matched, each read when first touched.

The runs come from the catalog in bulk: touching one builds it and the next
few hundred from their indexed records in one query, and ``metrics`` and
``to_pandas()`` read the fields they need from the index's rows for all the
matched runs at once, building no ``Run`` at all (except for a run still
``running`` in the index, whose status only its Run can tell).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, overload

from ..records import from_iso, param_fields

if TYPE_CHECKING:
    from ..runs import Run

__all__ = ["RunList", "RunRows"]

#: runs built together when one is first touched
WINDOW = 256


class RunRows(Protocol):
    """Where a RunList reads many runs at once (the catalog)."""

    def runs_of(self, run_ids: list[str]) -> dict[str, Run]: ...
    def metrics_of(self, run_ids: list[str]) -> dict[str, dict[str, Any] | None]: ...
    def fields_of(self, run_ids: list[str]) -> dict[str, dict[str, Any]]: ...


class RunList(Sequence["Run"]):
    """The runs a query matched, newest first; each Run is built when first touched."""

    def __init__(
        self, load: Callable[[str], Run], ids: list[str], rows: RunRows | None = None
    ) -> None:
        #: a run by full id (``Catalog.run``)
        self._load = load
        self.ids = ids
        #: many runs at once (``Catalog``), or None: one at a time through ``load``
        self._rows = rows
        self._cache: dict[int, Run] = {}

    @overload
    def __getitem__(self, i: int) -> Run: ...
    @overload
    def __getitem__(self, i: slice) -> list[Run]: ...

    def __getitem__(self, i: int | slice) -> Run | list[Run]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self.ids)))]
        if i < 0:
            i += len(self.ids)
        got = self._cache.get(i)
        if got is None:
            if self._rows is not None and 0 <= i < len(self.ids):
                self._fill(i)
                got = self._cache.get(i)
            if got is None:
                got = self._load(self.ids[i])
                self._cache[i] = got
        return got

    def _fill(self, i: int) -> None:
        """Build the runs ``i`` to ``i + WINDOW`` not built yet, in one query."""
        assert self._rows is not None
        todo = [j for j in range(i, min(i + WINDOW, len(self.ids))) if j not in self._cache]
        built = self._rows.runs_of([self.ids[j] for j in todo])
        for j in todo:
            run = built.get(self.ids[j])
            if run is not None:
                self._cache[j] = run

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RunList):
            return self.ids == other.ids
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compares by content, like a list

    def __repr__(self) -> str:
        return f"<RunList of {len(self.ids)} runs>"

    @property
    def metrics(self) -> list[dict[str, float]]:
        """Each run's ``metrics`` (key -> last value), in the list's order: the same as
        ``[run.metrics for run in runs]``, read for all the runs at once."""
        if self._rows is None:
            return [run.metrics for run in self]
        got = self._rows.metrics_of(self.ids)
        out = []
        for i, rid in enumerate(self.ids):
            m = got.get(rid, {})
            if m is None or i in self._cache:  # odd values, or a Run already built
                m = self[i].metrics
            out.append(m)
        return out

    def to_pandas(self) -> Any:
        """A DataFrame, one row per run: id, name, status, times, params.*, metrics.*, tags.*,
        resources.* and cost (``resources.cost``, for a run priced at the policy's rates).

        Needs pandas.
        """
        try:
            import pandas as pd
        except ImportError as e:
            from ..errors import MissingExtraError

            raise MissingExtraError("to_pandas() needs pandas: pip install pandas") from e
        fields = self._rows.fields_of(self.ids) if self._rows is not None else {}
        metrics = self.metrics
        rows = []
        for i, rid in enumerate(self.ids):
            f = fields.get(rid)
            if f is None or f["status"] == "running" or i in self._cache:
                run = self[i]
                f = {
                    "id": run.id,
                    "name": run.name,
                    "status": run.status,
                    "started_at": run.started_at,
                    "ended_at": run.ended_at,
                    "params": run.params,
                    "tags": run.tags,
                    "resources": run.resources,
                }
            else:
                f["started_at"] = from_iso(f["started_at"])
                f["ended_at"] = from_iso(f["ended_at"]) if f["ended_at"] else None
            row: dict[str, Any] = {k: f[k] for k in ("id", "name", "status")}
            row["started_at"], row["ended_at"] = f["started_at"], f["ended_at"]
            for k, v in param_fields(f["params"]).items():
                row[f"params.{k}"] = v
            for k, m in metrics[i].items():
                row[f"metrics.{k}"] = m
            for k, t in f["tags"].items():
                row[f"tags.{k}"] = t
            res = f["resources"]
            for k, r in res.items():
                row[f"resources.{k}"] = r
            if "cost" in res:
                row["cost"] = res["cost"]
            rows.append(row)
        return pd.DataFrame(rows)
