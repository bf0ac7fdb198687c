"""The report as one HTML file: the page's assets with the data embedded, written whole.

The data goes into a ``<script type="application/json">`` element; ``<``, ``>``,
``&`` and the line separators U+2028/U+2029 are written as ``\\uXXXX`` escapes, so
no value (a message holding ``</script>``) can end that element or be read as
markup.  The page inserts every value as text.
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["embed_json", "render_html", "write_atomic"]

_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_TABLE = str.maketrans(_ESCAPES)


def embed_json(data: Any) -> str:
    """``data`` as JSON text safe inside a ``<script>`` element (NaN is not allowed: see
    ``data.number``)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(_TABLE)


def _asset(name: str) -> str:
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


def render_html(data: dict[str, Any]) -> str:
    """The whole page for ``data`` (from ``data.collect``)."""
    page = _asset("report.html")
    head, rest = page.split("/*STYLE*/", 1)
    middle, rest = rest.split("/*DATA*/", 1)
    between, tail = rest.split("/*SCRIPT*/", 1)
    return "".join(
        (head, _asset("report.css"), middle, embed_json(data), between, _asset("report.js"), tail)
    )


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder, then rename: a
    reader sees the old file or the whole new one, never half of it."""
    dest = Path(path)
    folder = dest.parent
    if not folder.is_dir():
        raise UsageError(
            f"cannot write the report to {dest}: the folder {folder} does not exist; "
            "create it or pass another path (-o)"
        )
    if dest.is_dir():
        raise UsageError(f"cannot write the report to {dest}: it is a folder; pass a file path")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary new file, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
