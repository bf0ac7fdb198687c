"""What the work cost and what the store holds: ``ledger.cost()`` / ``mlledger cost`` and
``ledger.du()`` / ``mlledger du``.

Cost sums what runs recorded when they ended (``resources.cost``, priced at
the rates in force then).  A run recorded before rates were set has no cost:
it is counted apart as *not priced*, never priced after the fact, so a total
is always what was recorded.  A nested run runs inside its parent's time (the
same process, the same hours), so a run whose parent is counted is not
counted again.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .catalog import usage as sql
from .errors import LedgerError, UsageError
from .gc import object_sizes
from .lineage import upstream_of
from .records import Artifact, to_iso
from .rules import parse_duration
from .runs import Run
from .store.refs import Refs

if TYPE_CHECKING:
    from .catalog import Catalog
    from .store import Store

__all__ = ["GIB", "CostGroup", "CostReport", "DiskUsage", "UsageGroup", "cost_report", "du"]

#: the bytes of one GB of ``rates.storage_gb_month`` (clouds bill storage in GiB)
GIB = 2**30
#: what ``--by`` takes besides ``tags.X``
COST_BY = tuple(sql.GROUPS)


def check_by(by: str, allowed: tuple[str, ...], *, tags: bool = False) -> str:
    """``by`` if it is one of ``allowed`` (or ``tags.X`` with ``tags``); UsageError
    otherwise."""
    if isinstance(by, str) and (
        by in allowed or (tags and by.startswith("tags.") and len(by) > len("tags."))
    ):
        return by
    extra = ", tags.X" if tags else ""
    raise UsageError(f"cannot group by {by!r}: use one of {', '.join(allowed)}{extra}")


def since_time(since: str | float | _dt.datetime | None) -> str | None:
    """The ISO time ``since`` stands for: a duration back from now (``30d``, ``12h``), a
    date or time (``2026-11-01``), or None for all time."""
    if since is None:
        return None
    if isinstance(since, _dt.datetime):
        t = since if since.tzinfo else since.replace(tzinfo=_dt.timezone.utc)
        return to_iso(t.astimezone(_dt.timezone.utc))
    if isinstance(since, str) and since[:1].isdigit() and "-" in since:
        try:
            return since_time(_dt.datetime.fromisoformat(since))
        except ValueError:
            pass
    try:
        seconds = parse_duration(since, "--since")
    except UsageError:
        raise UsageError(
            f"--since is a duration back from now (30d, 12h, 2w) or a date (2026-11-01), "
            f"not {since!r}"
        ) from None
    return since_time(_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=seconds))


# -- cost -----------------------------------------------------------------------------


@attrs.frozen
class CostGroup:
    """The runs of one group: how many, their wall hours, and what the priced ones cost
    (``costs`` by currency; ``cost``/``currency`` when there is one currency)."""

    group: str | None
    runs: int
    hours: float
    priced: int
    costs: dict[str, float]

    @property
    def not_priced(self) -> int:
        """Runs without a recorded cost (ended before rates were set, or still going)."""
        return self.runs - self.priced

    @property
    def cost(self) -> float:
        return round(sum(self.costs.values()), 6)

    @property
    def currency(self) -> str | None:
        if len(self.costs) != 1:
            return None if not self.costs else "mixed"
        cur = next(iter(self.costs))
        return cur or None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "runs": self.runs,
            "hours": round(self.hours, 6),
            "cost": self.cost,
            "currency": self.currency,
            "costs": {k or "": round(v, 6) for k, v in self.costs.items()},
            "priced": self.priced,
            "not_priced": self.not_priced,
        }


@attrs.frozen
class CostReport:
    """``ledger.cost()``: cost by group, most expensive first, and the total."""

    by: str
    since: str | None
    where: str | None
    groups: tuple[CostGroup, ...]
    total: CostGroup
    nested: int

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": self.since,
            "where": self.where,
            "groups": [g.to_json() for g in self.groups],
            "total": self.total.to_json(),
            "nested": self.nested,
        }


def cost_report(
    cat: Catalog, by: str = "name", since: Any = None, where: str | None = None
) -> CostReport:
    """Recorded cost of the runs ``where`` selects since ``since``, grouped ``by``."""
    by = check_by(by, COST_BY, tags=True)
    cutoff = since_time(since)
    cat.ensure_synced()
    rows, nested = sql.cost_rows(cat, by, where, cutoff)
    groups: dict[str | None, list[Any]] = {}
    for g, cur, runs, wall, priced, cost in rows:
        acc = groups.setdefault(g, [0, 0.0, 0, {}])
        acc[0] += runs
        acc[1] += wall / 3600
        acc[2] += priced
        if priced:
            acc[3][cur or ""] = acc[3].get(cur or "", 0.0) + cost
    made = [CostGroup(g, a[0], a[1], a[2], a[3]) for g, a in groups.items()]
    made.sort(key=lambda c: (-c.cost, -c.hours, str(c.group)))
    costs: dict[str, float] = {}
    for c in made:
        for k, v in c.costs.items():
            costs[k] = costs.get(k, 0.0) + v
    total = CostGroup(
        "total",
        sum(c.runs for c in made),
        sum(c.hours for c in made),
        sum(c.priced for c in made),
        costs,
    )
    return CostReport(by, cutoff, where, tuple(made), total, nested)


# -- disk usage -----------------------------------------------------------------------


@attrs.frozen
class UsageGroup:
    """The bytes one run name (or one ref's lineage) references.

    ``referenced``: summed run by run; ``distinct``: of the distinct artifacts;
    ``exclusive``: of those no other group references (what removing the
    group's runs could free).
    """

    group: str
    runs: int
    referenced: int
    distinct: int
    exclusive: int

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class DiskUsage:
    """``ledger.du()``: what the store holds and what deduplication saves."""

    objects: int
    stored_bytes: int
    logical_bytes: int
    distinct_bytes: int
    artifacts: int
    runs: int
    storage_gb_month: float | None
    currency: str | None
    by: str | None = None
    groups: tuple[UsageGroup, ...] = ()

    @property
    def saved_bytes(self) -> int:
        """Bytes deduplication saves: what the runs reference less what is stored."""
        return max(0, self.logical_bytes - self.stored_bytes)

    @property
    def monthly_cost(self) -> float | None:
        """Storage cost per month at ``rates.storage_gb_month``, or None when unset."""
        if self.storage_gb_month is None:
            return None
        return round(self.stored_bytes / GIB * self.storage_gb_month, 6)

    def to_json(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in (
                "objects",
                "stored_bytes",
                "logical_bytes",
                "distinct_bytes",
                "saved_bytes",
                "artifacts",
                "runs",
                "storage_gb_month",
                "monthly_cost",
                "currency",
                "by",
            )
        }
        out["groups"] = [g.to_json() for g in self.groups]
        return out


def du(
    store: Store,
    cat: Catalog,
    *,
    by: str | None = None,
    rates: dict[str, Any] | None = None,
    resolve: Callable[[str], Run | Artifact] | None = None,
) -> DiskUsage:
    """What ``store`` holds (one listing of its objects) against what its runs reference
    (the catalog), with the groups ``by`` asks for: ``name`` or ``ref``."""
    if by is not None:
        by = check_by(by, ("name", "ref"))
    cat.ensure_synced()
    count, stored = 0, 0
    for _digest, size in object_sizes(store):
        count += 1
        stored += size
    runs, logical, distinct, n_arts = sql.reference_totals(cat)
    groups: tuple[UsageGroup, ...] = ()
    if by == "name":
        rows = sorted(sql.name_usage(cat), key=lambda r: (-r[3], r[0]))
        groups = tuple(UsageGroup(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows)
    elif by == "ref":
        groups = _ref_usage(store, cat, resolve)
    rate = (rates or {}).get("storage_gb_month")
    return DiskUsage(
        objects=count,
        stored_bytes=stored,
        logical_bytes=int(logical),
        distinct_bytes=int(distinct),
        artifacts=n_arts,
        runs=runs,
        storage_gb_month=None if rate is None else float(rate),
        currency=(rates or {}).get("currency"),
        by=by,
        groups=groups,
    )


def _ref_usage(
    store: Store, cat: Catalog, resolve: Callable[[str], Run | Artifact] | None
) -> tuple[UsageGroup, ...]:
    """Per ref: the runs and artifacts its current target's upstream lineage keeps."""
    if resolve is None:
        raise UsageError("du(by='ref') needs a resolver of ref targets (use Ledger.du)")
    kept: dict[str, tuple[set[str], set[str]]] = {}
    refs = Refs(store)
    for name in refs.names():
        try:
            got = resolve(refs.get(name).target)
        except LedgerError:
            continue
        kept[name] = upstream_of(cat, got)
    every = sorted({d for _, ds in kept.values() for d in ds})
    sizes = sql.artifact_sizes(cat, every) if every else {}
    holders: dict[str, int] = {}
    for _, ds in kept.values():
        for d in ds:
            holders[d] = holders.get(d, 0) + 1
    out = []
    for name, (runs, ds) in kept.items():
        total = sum(sizes.get(d, 0) for d in ds)
        only = sum(sizes.get(d, 0) for d in ds if holders[d] == 1)
        out.append(UsageGroup(name, len(runs), total, total, only))
    out.sort(key=lambda g: (-g.distinct, g.group))
    return tuple(out)
