"""Unfinished multipart uploads a killed writer left in an S3 store.

S3 keeps the parts of an upload that was started and never completed or
aborted (they cost storage but are not objects: nothing reads them).  gc
aborts those under the store's root that are older than its grace period; a
younger one may belong to a writer still at work.  Other backends have no
such leftovers (local writes go through temp files gc removes; GCS drops an
unfinished resumable upload by itself after a week).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .backends import Backend, FsspecBackend, strip_protocol

__all__ = ["abandoned_uploads", "abort_uploads"]

_S3 = frozenset({"s3", "s3a"})


def abandoned_uploads(backend: Backend, *, older_than: float, now: float) -> list[dict[str, Any]]:
    """The unfinished uploads under the store root started more than ``older_than`` seconds
    before ``now`` (each a dict with ``Key``, ``UploadId``, ``Initiated``); [] off S3."""
    if not isinstance(backend, FsspecBackend) or backend.protocol not in _S3:
        return []
    bucket, prefix = _bucket_prefix(backend)
    out: list[dict[str, Any]] = []
    marker: dict[str, str] = {}
    while True:
        page = backend.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix, **marker)
        for u in page.get("Uploads", []):
            last = _seconds(u.get("Initiated"))
            if now - last < older_than:
                continue
            # a long upload started long ago may still be sending parts: its age is that
            # of its newest part
            last = max(last, _newest_part(backend, bucket, u))
            if now - last >= older_than:
                out.append(u)
        if not page.get("IsTruncated"):
            return out
        marker = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}


def abort_uploads(backend: Backend, uploads: list[dict[str, Any]]) -> None:
    """Abort ``uploads`` (from :func:`abandoned_uploads`); one already gone is no error."""
    if not uploads or not isinstance(backend, FsspecBackend):
        return
    bucket, _ = _bucket_prefix(backend)
    for u in uploads:
        try:
            backend.fs.call_s3(
                "abort_multipart_upload", Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]
            )
        except FileNotFoundError:  # completed or aborted meanwhile (NoSuchUpload)
            continue


def _seconds(t: Any) -> float:
    """A listing's datetime as epoch seconds; an unknown time counts as now (never stale)."""
    if not isinstance(t, _dt.datetime):
        return float("inf")
    return (t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)).timestamp()


def _newest_part(backend: FsspecBackend, bucket: str, upload: dict[str, Any]) -> float:
    """When the newest part of ``upload`` went up (its start when it has none)."""
    newest = float("-inf")
    marker: dict[str, Any] = {}
    while True:
        page = backend.fs.call_s3(
            "list_parts", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"], **marker
        )
        for part in page.get("Parts", []):
            newest = max(newest, _seconds(part.get("LastModified")))
        if not page.get("IsTruncated"):
            return newest
        marker = {"PartNumberMarker": page["NextPartNumberMarker"]}


def _bucket_prefix(backend: FsspecBackend) -> tuple[str, str]:
    root = strip_protocol(backend.fs, backend.root).strip("/")
    bucket, _, key = root.partition("/")
    return bucket, f"{key}/" if key else ""
