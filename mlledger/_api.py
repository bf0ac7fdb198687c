"""Module-level shortcuts on the default ledger: ``mlledger.tracked``, ``run``, ``current_run``."""

from __future__ import annotations

from typing import Any

from .runs import RunContext, current_run, make_tracked

__all__ = ["current_run", "run", "tracked"]


def _default() -> Any:
    from .ledger import default_ledger

    return default_ledger()


def tracked(fn: Any = None, **options: Any) -> Any:
    """``@mlledger.tracked``: like ``@ledger.tracked`` on the default ledger (made at call time)."""
    return make_tracked(_default, fn, **options)


def run(
    name: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    message: str | None = None,
    tags: dict[str, Any] | None = None,
    capture_files: bool | None = None,
    sample: float | None = None,
) -> RunContext:
    """``with mlledger.run("name") as run:`` on the default ledger."""
    return _default().run(  # type: ignore[no-any-return]
        name,
        params=params,
        message=message,
        tags=tags,
        capture_files=capture_files,
        sample=sample,
    )
