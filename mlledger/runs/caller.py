"""The code identity of a ``with ledger.run()`` block: the calling file and function."""

from __future__ import annotations

import inspect
import os
import time
from typing import Any

from .._fmt import display_path
from ..capture import code as _code
from ..store import Store

__all__ = ["CallerCode"]

#: this package's folder: frames of its own code are skipped when looking for the caller
_PKG = os.path.dirname(os.path.dirname(__file__)) + os.sep


class CallerCode:
    """Finds the user's frame that opened a run block, with its file's display path and
    digest (cached for a second)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._file_cache: dict[tuple[str, str], tuple[float, str, str | None]] = {}

    def caller_code(self) -> tuple[dict[str, Any] | None, list[str]]:
        """Code identity of a ``with ledger.run()`` block: the calling file and function."""
        try:
            # the caller of this method's caller (Ledger.run); frames of this package are skipped
            here = inspect.currentframe()
            frame = here.f_back.f_back  # type: ignore[union-attr]
            while frame is not None and frame.f_code.co_filename.startswith(_PKG):
                frame = frame.f_back
            if frame is None:
                return None, []
            fc = frame.f_code
            filename = fc.co_filename
            display, digest = self.file_facts(filename)
            record: dict[str, Any] = {
                "kind": "block",
                "qualname": getattr(fc, "co_qualname", fc.co_name),
                "module": frame.f_globals.get("__name__", "__main__"),
                "line": frame.f_lineno,
                "file": display,
            }
            if digest is not None:
                record["module_digest"] = digest
            return record, []
        except Exception as e:
            return None, [f"code identity not recorded: {e}"]

    def file_facts(self, filename: str) -> tuple[str, str | None]:
        """``(display path, digest)`` of a calling file, cached for a second: a tight
        loop of ``with ledger.run()`` blocks stats and hashes its file once a second."""
        now = time.monotonic()
        key = (filename, os.getcwd())
        got = self._file_cache.get(key)
        if got is not None and now - got[0] < 1.0:
            return got[1], got[2]
        digest = (
            _code.file_digest(filename, self.store.algorithm) if os.path.isfile(filename) else None
        )
        display = display_path(filename)
        if len(self._file_cache) > 256:
            self._file_cache.clear()
        self._file_cache[key] = (now, display, digest)
        return display, digest
