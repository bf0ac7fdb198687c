"""One small interface over every filesystem a store can live on.

A store is an fsspec filesystem plus a root.  What differs between backends
is only *how* a key is created exactly once (principle 3) and how many keys
move at once; that lives here, one backend a module (:mod:`.local` for local
disk, :mod:`.remote` for memory and the clouds), and the table of what each
protocol needs (its extra, its listing cache) in this one.

- local disk: plain ``os`` calls (a temp file in the same folder, then
  ``os.link``, which fails on an existing name); fsspec's own local
  ``mode="create"`` checks and then writes, which is not atomic.
- memory: a process-wide lock around check-and-write (the memory filesystem
  lives in one process).
- S3 / GCS / Azure: the server's own precondition (``If-None-Match: *``,
  ``ifGenerationMatch=0``, ``overwrite=False``) through ``mode="create"``.
"""

from __future__ import annotations

from ...errors import MissingExtraError, StoreError
from .base import Backend, NullBackend, store_error
from .local import LocalBackend

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on first use (asyncio and fsspec): a local store never needs it
    from typing import Any

    from .remote import BATCH, FsspecBackend, remote_error, strip_protocol

_REMOTE = ("BATCH", "FsspecBackend", "remote_error", "strip_protocol")


def __getattr__(name: str) -> Any:
    if name in _REMOTE:
        from . import remote

        return getattr(remote, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BATCH",
    "EXTRAS",
    "NO_LISTINGS_CACHE",
    "Backend",
    "FsspecBackend",
    "LocalBackend",
    "NullBackend",
    "open_backend",
    "remote_error",
    "store_error",
    "strip_protocol",
]

#: protocol -> the extra that installs it
EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}

#: protocols whose filesystems take ``use_listings_cache`` (their listing cache is turned
#: off by default; every listing is also refreshed, see ``FsspecBackend._fresh``)
NO_LISTINGS_CACHE = frozenset({"s3", "s3a", "gs", "gcs"})


def open_backend(url: str, storage_options: dict[str, Any], *, create: bool = True) -> Backend:
    """The backend for a store URL: a plain path, ``file://``, ``memory://``, ``s3://``..."""
    if "://" not in url or url.startswith(("file://", "local://")):
        path = url.split("://", 1)[1] if "://" in url else url
        return LocalBackend(path, create=create)
    protocol = url.split("://", 1)[0]
    import fsspec
    from fsspec.registry import known_implementations

    from .remote import FsspecBackend

    if protocol not in known_implementations and protocol not in fsspec.available_protocols():
        raise StoreError(
            f"unknown protocol {protocol!r} in store URL {url!r}: use a local path, "
            "memory://, s3://, gs:// or az:// (or any protocol fsspec knows)"
        )
    options = dict(storage_options)
    if protocol in NO_LISTINGS_CACHE:
        # a cached listing hides what other processes wrote (a stale ref number, new runs
        # unseen, a new key reported missing): off unless the caller asks for it
        options.setdefault("use_listings_cache", False)
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ImportError as e:
        extra = EXTRAS.get(protocol)
        if extra:
            raise MissingExtraError(
                f'the {protocol}:// store needs an extra package: pip install "mlledger[{extra}]"'
            ) from e
        raise MissingExtraError(
            f"the {protocol}:// store needs a package that is not installed ({e}); "
            "install the fsspec implementation for it"
        ) from e
    except (TypeError, ValueError) as e:
        raise StoreError(
            f"cannot open store {url!r}: {e}; check the URL and storage options"
        ) from e
    return FsspecBackend(fs, root, url)
