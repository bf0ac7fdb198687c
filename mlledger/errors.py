"""Every error mlledger raises.

Each one subclasses :class:`LedgerError` and the builtin it is most like, so
``except KeyError`` or ``except FileExistsError`` keeps working; each message
says what was wrong and what to do next.
"""

from __future__ import annotations

__all__ = [
    "AccessError",
    "AmbiguousError",
    "ConflictError",
    "DamagedEntryError",
    "DigestError",
    "ExistsError",
    "FormatError",
    "IntegrityError",
    "LedgerError",
    "LedgerWarning",
    "MissingExtraError",
    "NotAFileError",
    "NotAFolderError",
    "NotFoundError",
    "PolicyError",
    "QueryError",
    "StoreError",
    "SymlinkLoopError",
    "UnsafePathError",
    "UsageError",
]


class LedgerError(Exception):
    """Base class of every error mlledger raises."""

    def __str__(self) -> str:  # KeyError quotes its message; keep ours readable
        return str(self.args[0]) if self.args else self.__class__.__name__


class NotFoundError(LedgerError, KeyError):
    """A run, artifact, object, ref or path that does not exist."""


class AmbiguousError(LedgerError, LookupError):
    """A prefix or name that matches more than one thing."""

    def __init__(self, message: str, candidates: list[str] | None = None) -> None:
        super().__init__(message)
        self.candidates = list(candidates or [])


class IntegrityError(LedgerError, ValueError):
    """Stored bytes that do not hash to their name, or a damaged record."""


class DamagedEntryError(IntegrityError):
    """A run entry in the store that is not a run record mlledger can read (its run is
    skipped by queries; ``mlledger verify`` lists it).  ``key`` names the entry."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(
            f"the run entry {key} is damaged ({reason}); the run is skipped. "
            "'mlledger verify' lists every damaged entry; restore it from a copy of the "
            "store, or leave it: nothing else depends on it"
        )
        self.key = key
        self.reason = reason


class DigestError(LedgerError, ValueError):
    """A malformed digest string."""


class FormatError(LedgerError, ValueError):
    """A store or catalog written in a format this version cannot read."""


class ExistsError(LedgerError, FileExistsError):
    """A destination that already exists (pass ``overwrite=True`` to replace it)."""


class AccessError(LedgerError, PermissionError):
    """A path mlledger may not read or write (permission denied)."""


class NotAFileError(LedgerError, IsADirectoryError):
    """A folder where a file was expected."""


class NotAFolderError(LedgerError, NotADirectoryError):
    """A file where a folder was expected."""


class SymlinkLoopError(LedgerError, OSError):
    """A symbolic link that points back at itself, directly or through others."""


class UnsafePathError(LedgerError, ValueError):
    """A path in a manifest that would escape the destination."""


class MissingExtraError(LedgerError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class ConflictError(LedgerError, RuntimeError):
    """A concurrent change got in the way (for example a file changed while stored)."""


class PolicyError(LedgerError, PermissionError):
    """A policy the store asks for (for example "every run needs a message") refused."""


class QueryError(LedgerError, ValueError):
    """A ``where`` expression or ``order_by`` that does not parse."""


class StoreError(LedgerError, OSError):
    """The store cannot be read or written (permissions, a missing bucket, a bad URL)."""


class UsageError(LedgerError, ValueError):
    """An argument mlledger cannot use (a bad name, a bad option); the message says the form."""


class LedgerWarning(UserWarning):
    """Something could not be captured; the user's code ran as if untracked."""
