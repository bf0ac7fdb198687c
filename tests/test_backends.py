"""The backends under a store: protocols, extras, cloud client errors, the store root."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from conftest import BUCKET, gcs_options, s3_options

from mlledger.errors import (
    AccessError,
    MissingExtraError,
    StoreError,
    UsageError,
)
from mlledger.store import Store


def test_unknown_protocol_is_a_store_error() -> None:
    """A URL with a protocol fsspec does not know raises StoreError naming the usable ones."""
    with pytest.raises(StoreError) as info:
        Store("nosuchproto://bucket/store")
    assert isinstance(info.value, OSError)
    assert "unknown protocol 'nosuchproto'" in str(info.value)
    assert "s3://" in str(info.value)


@pytest.mark.parametrize(("protocol", "module", "extra"),
                         [("s3", "s3fs", "s3"), ("gs", "gcsfs", "gcs")])
def test_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch, protocol: str,
                                             module: str, extra: str) -> None:
    """A store URL whose fsspec implementation cannot be imported names the extra to install."""
    registry = importlib.import_module("fsspec.registry")
    monkeypatch.setitem(sys.modules, module, None)  # "import s3fs" now fails
    monkeypatch.delitem(registry._registry, protocol, raising=False)  # forget the loaded class
    with pytest.raises(MissingExtraError) as info:
        Store(f"{protocol}://{BUCKET}/store")
    assert isinstance(info.value, ImportError)
    assert f'pip install "mlledger[{extra}]"' in str(info.value)


def test_missing_bucket_is_a_store_error(s3_endpoint: str, gcs_endpoint: str) -> None:
    """A store URL naming a bucket that does not exist raises StoreError saying to create it."""
    for url, options in (("s3://no-such-bucket/store", s3_options(s3_endpoint)),
                         ("gs://no-such-bucket/store", gcs_options(gcs_endpoint))):
        with pytest.raises(StoreError) as info:
            Store(url, **options)
        assert isinstance(info.value, OSError)
        assert "no-such-bucket" in str(info.value)
        assert "does not exist: create it, or check the store URL" in str(info.value)


def test_missing_credentials_are_an_access_error_naming_the_store(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No S3 credentials anywhere: AccessError (a PermissionError) naming the store and
    what to check, not the client library's own exception; the CLI exits 2 with it."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    options = {k: v for k, v in s3_options(s3_endpoint).items() if k not in ("key", "secret")}
    url = f"s3://{BUCKET}/no-credentials"
    with pytest.raises(AccessError) as info:
        Store(url, **options)
    assert isinstance(info.value, PermissionError)
    assert f"cannot reach the store at {url}: NoCredentialsError" in str(info.value)
    assert "check the credentials" in str(info.value)
    from click.testing import CliRunner

    from mlledger.cli import cli

    result = CliRunner().invoke(
        cli, ["--store", url, "--option", f"endpoint_url={s3_endpoint}", "log"]
    )
    assert result.exit_code == 2, result.output
    assert "cannot reach the store" in result.stderr
    assert "bug in mlledger" not in result.stderr


def test_cloud_client_errors_become_errors_that_name_the_store() -> None:
    """botocore's own exceptions, as s3fs lets them through: refused or missing
    credentials -> AccessError, an endpoint that does not answer -> StoreError naming
    endpoint_url, a malformed bucket -> UsageError, other client errors -> StoreError;
    anything not from a cloud client is left alone."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
    )

    from mlledger.store.backends import remote_error

    url = "s3://bucket/store"
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")
    other = ClientError({"Error": {"Code": "SlowDown", "Message": "later"}}, "GetObject")
    cases = [
        (NoCredentialsError(), AccessError, "check the credentials"),
        (denied, AccessError, "check the credentials"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), StoreError, "endpoint_url"),
        (ParamValidationError(report="Invalid bucket name"), UsageError, "not valid"),
        (other, StoreError, "failed: ClientError"),
    ]
    for error, kind, words in cases:
        got = remote_error(url, error)
        assert type(got) is kind, error
        assert url in str(got)
        assert words in str(got)
    assert remote_error(url, ValueError("ours")) is None


def test_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """A local store root that is a file raises StoreError asking for a folder."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        Store(tmp_path / "file")


def test_a_filesystems_permission_error_is_an_access_error() -> None:
    """A PermissionError a cloud filesystem raises itself (s3fs: AccessDenied) reaches the
    caller as AccessError naming the store, like a client library's refusal."""
    from mlledger.errors import AccessError
    from mlledger.store.backends.remote import FsspecBackend

    class Denied(FsspecBackend):
        def __init__(self) -> None:
            self.url = "s3://bucket/ml"

    from mlledger.store.backends.remote import _client_errors

    def read(self: FsspecBackend, key: str) -> bytes:
        raise PermissionError("Access Denied")

    Denied.read = _client_errors(read)  # type: ignore[method-assign]
    with pytest.raises(AccessError, match="s3://bucket/ml"):
        Denied().read("x")
