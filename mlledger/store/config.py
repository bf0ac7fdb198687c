"""A store's config (``mlledger.json``): its format, hash algorithm and policy.

Its presence is what makes a folder or bucket a store: :func:`store_exists`
asks for it without creating anything; opening a :class:`~mlledger.store.Store`
reads it, or creates it create-only (so openers racing on a new root agree).
"""

from __future__ import annotations

import os

from .. import canonical
from .._version import __version__
from ..errors import ConflictError, FormatError, NotFoundError
from ..hashing import ALGORITHMS, DEFAULT_ALGORITHM, check_algorithm
from .backends import Backend, open_backend
from .layout import CONFIG_KEY

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is never imported at run time: Ledger() stays cheap
    from typing import Any

__all__ = ["FORMAT", "load_or_create_config", "store_exists"]

#: the newest store format this version writes and reads
FORMAT = 1


def store_exists(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> bool:
    """Whether there is a store at ``url`` (its config key exists), creating nothing.

    Ask before opening a store that must already be there: ``Store(url)``
    creates one where there is none (``Store(url, create=False)`` refuses,
    after it has read the config).
    """
    url = os.fspath(url)
    if "://" not in url or url.startswith(("file://", "local://")):
        path = os.path.abspath(os.path.expanduser(url.split("://", 1)[1] if "://" in url else url))
        return os.path.isfile(os.path.join(path, CONFIG_KEY))
    return open_backend(url, dict(storage_options or {})).exists(CONFIG_KEY)


def load_or_create_config(
    backend: Backend, algorithm: str | None, create: bool = True
) -> dict[str, Any]:
    """The config of the store ``backend`` holds, checked; created (create-only, with
    ``algorithm``) when there is none and ``create`` is true, else NotFoundError."""
    url = backend.url
    try:
        raw = backend.read(CONFIG_KEY)
    except NotFoundError:
        raw = None
    if raw is None and not create:
        raise NotFoundError(
            f"no mlledger store at {url}: create one with 'mlledger init' "
            "(or open it with create=True)"
        )
    if raw is None:
        from ..records import to_iso, utcnow  # attrs and cattrs: only to create a store

        doc: dict[str, Any] = {
            "format": FORMAT,
            "hash": check_algorithm(algorithm or DEFAULT_ALGORITHM),
            "created": to_iso(utcnow()),
            "created_by": f"mlledger {__version__}",
            "policy": {},
        }
        if not backend.create(CONFIG_KEY, canonical.dumps(doc) + b"\n"):
            raw = backend.read(CONFIG_KEY)  # another process won the race
    if raw is not None:
        try:
            doc = canonical.loads(raw)
            fmt = int(doc["format"])
            algo = str(doc["hash"])
        except (ValueError, KeyError, TypeError) as e:
            raise FormatError(
                f"{url}/{CONFIG_KEY} is not a valid mlledger store config ({e}); "
                "point mlledger at a store folder it created"
            ) from e
        if fmt > FORMAT:
            raise FormatError(
                f"the store at {url} has format {fmt}, newer than this mlledger "
                f"({__version__}) reads (up to {FORMAT}): upgrade with "
                '"pip install -U mlledger"'
            )
        if algo not in ALGORITHMS:
            raise FormatError(
                f"the store at {url} hashes with {algo!r}, which this mlledger "
                'does not know: upgrade with "pip install -U mlledger"'
            )
        if algorithm is not None and algorithm != algo:
            raise ConflictError(
                f"the store at {url} already hashes with {algo}; a store's "
                f"algorithm is fixed when it is created (asked for {algorithm})"
            )
    return dict(doc)
