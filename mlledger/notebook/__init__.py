"""The IPython extension: notebook cells as runs.

``%load_ext mlledger`` registers:

- ``%%track [NAME] [-m MESSAGE] [--tag K=V ...]`` (cell magic): the cell
  runs in the user's namespace as one run of kind ``cell``.  Its output,
  its exceptions and their tracebacks are those of the same cell without the
  magic; the cell is only watched.
- ``%track_all on|off [-m MESSAGE] [--tag K=V ...]``: track every following
  cell without the magic (cells made only of magics, shell escapes and cell
  magics are not tracked).
- ``%ledger log [-n N]``, ``%ledger show [RUN]``: the record, inline as text;
  ``%ledger use [URL | --reset]``: send runs to another store (by default
  :func:`mlledger.default_ledger`, which honours ``$MLLEDGER_URL``).

What a cell run records:

- **code**: the digest of the cell's source (trailing whitespace aside; not
  the text, which may hold a secret), the execution count, and the cell id
  and notebook when the frontend gives them;
- **inputs**: the names the cell reads (found by parsing it: names loaded
  before the cell binds them) that existed before it ran, except modules,
  functions, classes, files, mlledger's own objects, IPython's names and
  ``_``-prefixed names.  They take the path of a tracked function's
  arguments: scalars and strings are params (a string naming an existing
  file is also that file as an input); every other value is a param and an
  input artifact by value digest under the variable's name;
- **outputs**: the names the cell binds or rebinds (new names, and names
  whose object changed), and inputs it changed in place (hashed again after
  the cell), each an artifact by value digest under the variable's name, so
  a value one cell produces and a later cell reads links the two runs;
- files opened, environment, git state, metrics logged with
  ``mlledger.current_run().log(...)``: as for any run.

Only this package imports IPython, and only when the extension is loaded.
"""

from __future__ import annotations

from typing import Any

from .extension import Extension

__all__ = ["load_ipython_extension", "unload_ipython_extension"]


#: the attribute of the shell that holds its Extension (a reload replaces it)
ATTRIBUTE = "mlledger_extension"


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext mlledger``: register ``%%track``, ``%track_all`` and ``%ledger``."""
    old = getattr(ipython, ATTRIBUTE, None)
    if isinstance(old, Extension):
        old.unregister()
    ext = Extension(ipython)
    ext.register()
    setattr(ipython, ATTRIBUTE, ext)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and the cell hooks again."""
    ext = getattr(ipython, ATTRIBUTE, None)
    if isinstance(ext, Extension):
        ext.unregister()
        setattr(ipython, ATTRIBUTE, None)
