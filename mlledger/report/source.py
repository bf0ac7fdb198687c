"""What a report reads a ledger through: the facade's reading side, as a protocol, so
the report sits below the ledger that offers it (``Ledger.report``) and imports no
``Ledger``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..catalog import Catalog, RunList
    from ..changelog import Changelog
    from ..resolve import LedgerRefs
    from ..store import Store

__all__ = ["ReportSource"]


class ReportSource(Protocol):
    """A ledger as the report reads it (``mlledger.Ledger`` is one)."""

    @property
    def url(self) -> str: ...

    @property
    def store(self) -> Store: ...

    @property
    def catalog(self) -> Catalog: ...

    @property
    def refs(self) -> LedgerRefs: ...

    def runs(
        self,
        name: str | None = None,
        status: Any = None,
        where: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> RunList: ...

    def changelog(self, ref: str, *, limit: int | None = None) -> Changelog: ...
