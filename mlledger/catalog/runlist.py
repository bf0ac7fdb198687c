"""``RunList``: the runs a query matched, each read when first touched."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, overload

from ..records import param_fields

if TYPE_CHECKING:
    from ..runs import Run

__all__ = ["RunList"]


class RunList(Sequence["Run"]):
    """The runs a query matched, newest first; each Run is built when first touched."""

    def __init__(self, load: Callable[[str], Run], ids: list[str]) -> None:
        #: a run by full id (``Catalog.run``)
        self._load = load
        self.ids = ids
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
            got = self._load(self.ids[i])
            self._cache[i] = got
        return got

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
        rows = []
        for run in self:
            row: dict[str, Any] = {
                "id": run.id,
                "name": run.name,
                "status": run.status,
                "started_at": run.started_at,
                "ended_at": run.ended_at,
            }
            for k, v in param_fields(run.params).items():
                row[f"params.{k}"] = v
            for k, m in run.metrics.items():
                row[f"metrics.{k}"] = m
            for k, t in run.tags.items():
                row[f"tags.{k}"] = t
            res = run.resources
            for k, r in res.items():
                row[f"resources.{k}"] = r
            if "cost" in res:
                row["cost"] = res["cost"]
            rows.append(row)
        return pd.DataFrame(rows)
