"""Secrets stay in the process: redaction of names, mappings, command lines and URLs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mlledger.capture.redact import (
    _URL_IN_TEXT,
    REDACTED,
    is_secret_name,
    redact_argv,
    redact_mapping,
    redact_text,
    strip_url_credentials,
)


@pytest.mark.parametrize(
    "name",
    ["TOKEN", "gh_token", "MY_API_TOKEN", "client_secret", "password", "db_passwd", "api_key",
     "AWS_SECRET_ACCESS_KEY", "credentials", "auth", "Authorization", "private", "PrivateKey",
     "sshKey"],
)
def test_secret_names_are_recognised_in_any_case(name: str) -> None:
    """Names with TOKEN, SECRET, PASSWORD, PASSWD, KEY, CREDENTIAL, AUTH, PRIVATE are secret."""
    assert is_secret_name(name)
    assert is_secret_name(name.lower())
    assert is_secret_name(name.upper())


@pytest.mark.parametrize(
    "name",
    ["lr", "batch_size", "epochs", "model", "data", "seed", "PATH", "tokenizer", "max_tokens",
     "num_keypoints", "author", "keyframe_rate", "tokenizer_name"],
)
def test_ordinary_names_are_not_secret(name: str) -> None:
    """Ordinary param names are left alone."""
    assert not is_secret_name(name)


def test_redact_mapping_nested() -> None:
    """Secret keys are redacted at any depth, in lists too; other values and the input are
    untouched."""
    values: dict[str, Any] = {"lr": 0.1,
                              "db": {"user": "u", "password": "p", "inner": {"token": "t"}},
                              "api_key": {"not": "inspected"}, "list": [{"secret": 1}]}
    out = redact_mapping(values)
    assert out == {"lr": 0.1, "db": {"user": "u", "password": REDACTED,
                                     "inner": {"token": REDACTED}},
                   "api_key": REDACTED, "list": [{"secret": REDACTED}]}
    assert values["db"]["password"] == "p"  # a copy, not in place
    assert values["list"] == [{"secret": 1}]


def test_records_in_lists_keep_their_data_fields() -> None:
    """In a list of records a bare key/token/auth field is data unless its value looks like a
    credential; compound and unambiguous names hide any value."""
    out = redact_mapping({"rows": [
        {"token": "Hello", "key": "lr", "auth": "basic", "n": 1},
        {"token": "ghp_0123456789", "key": "sk-live-abcdef", "api_key": "k", "password": "p"},
    ]})
    assert out == {"rows": [
        {"token": "Hello", "key": "lr", "auth": "basic", "n": 1},
        {"token": REDACTED, "key": REDACTED, "api_key": REDACTED, "password": REDACTED},
    ]}
    assert redact_mapping({"token": "t"}) == {"token": REDACTED}  # a config mapping: strict


def test_redact_argv_forms() -> None:
    """``--password=x``, ``--token x``, ``PASSWORD=x`` and URL credentials are redacted."""
    argv = ["train.py", "--password=hunter2", "--token", "abc", "--lr", "0.1",
            "-api-key=k", "DB_PASSWD=pw", "--data", "s3://AKIA:sec@bucket/x", "plain=1",
            "--verbose"]
    assert redact_argv(argv) == [
        "train.py", f"--password={REDACTED}", "--token", REDACTED, "--lr", "0.1",
        f"-api-key={REDACTED}", f"DB_PASSWD={REDACTED}", "--data", "s3://bucket/x", "plain=1",
        "--verbose",
    ]


def test_redact_argv_strips_credentials_from_urls_given_as_option_values() -> None:
    """A URL with credentials in ``--opt=URL`` or ``NAME=URL`` loses its credentials."""
    out = redact_argv(["prog", "--db-url=postgres://admin:pw123@db:5432/x",
                       "DATABASE_URL=https://u:pw456@h/x", "--mirror", "https://u:pw789@h/y"])
    assert out == ["prog", "--db-url=postgres://db:5432/x", "DATABASE_URL=https://h/x",
                   "--mirror", "https://h/y"]


def test_redact_argv_secret_flag_at_the_end() -> None:
    """A secret flag with no value after it is kept and nothing breaks."""
    assert redact_argv(["x", "--token"]) == ["x", "--token"]


def test_redact_argv_does_not_change_its_input() -> None:
    """redact_argv returns a new list."""
    argv = ["--token", "abc"]
    redact_argv(argv)
    assert argv == ["--token", "abc"]


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://user:secret@example.com/r.git", "https://example.com/r.git"),
        ("https://token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://u:p@host:8443/x?y=1#z", "https://host:8443/x?y=1#z"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("not a url", "not a url"),
        ("", ""),
        ("https://github.com/o/r.git?access_token=abc&ref=main",
         "https://github.com/o/r.git?access_token=<redacted>&ref=main"),
        ("postgres://app:pw@db:5432/ml?sslmode=require&password=x",
         "postgres://db:5432/ml?sslmode=require&password=<redacted>"),
        ("https://h/x?tokenizer=bpe", "https://h/x?tokenizer=bpe"),
        ("postgresql://app:pw@h1:5432,h2:5432/db", "postgresql://h1:5432,h2:5432/db"),
        ("https://u:p@[::1]:8080/x", "https://[::1]:8080/x"),
        ("https://h/x?q=a%20b&flag&t=1+2&token=z", "https://h/x?q=a%20b&flag&t=1+2&token=<redacted>"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Date=1&X-Amz-Signature=abc",
         "https://b.s3.amazonaws.com/k?X-Amz-Date=1&X-Amz-Signature=<redacted>"),
        ("https://a.blob.core.windows.net/c?sv=2020&sig=XYZ%3D",
         "https://a.blob.core.windows.net/c?sv=2020&sig=<redacted>"),
        ("https://app/cb#access_token=abc&state=1", "https://app/cb#access_token=<redacted>&state=1"),
    ],
)
def test_strip_url_credentials(url: str, clean: str) -> None:
    """Credentials in a URL's user-info, and values of secret-named query parameters, are
    dropped; everything else is kept."""
    assert strip_url_credentials(url) == clean


@given(st.text(min_size=1, max_size=20).filter(lambda s: "=" not in s and not s.startswith("-")),
       st.sampled_from(["token", "PASSWORD", "api_key", "Secret"]))
def test_secret_values_never_survive_in_argv(value: str, flag: str) -> None:
    """Whatever the value, ``--FLAG=value`` and ``--FLAG value`` never keep it."""
    for argv in (["prog", f"--{flag}={value}"], ["prog", f"--{flag}", value]):
        out = redact_argv(argv)
        assert value not in out[1:] or value == REDACTED
        assert REDACTED in " ".join(out)


@given(st.recursive(
    st.dictionaries(st.sampled_from(["a", "token", "Key", "b"]), st.integers(), max_size=4),
    lambda inner: st.dictionaries(st.sampled_from(["x", "password", "y"]), inner, max_size=3),
    max_leaves=10,
))
def test_redacted_mappings_hold_no_secret_keys_with_values(d: dict[str, Any]) -> None:
    """After redaction, every secret-named key maps to the redaction marker."""
    def check(m: dict[str, Any]) -> None:
        for k, v in m.items():
            if is_secret_name(k):
                assert v == REDACTED
            elif isinstance(v, dict):
                check(v)

    check(redact_mapping(d))


@pytest.mark.parametrize(
    ("text", "want"),
    [
        # text that mentions a URL is changed only inside the URL, never elsewhere
        ("# Results\nSee https://wandb.ai/me/proj#runs for plots.\nUse key=abc, then rerun.",
         "# Results\nSee https://wandb.ai/me/proj#runs for plots.\nUse key=abc, then rerun."),
        ("http://localhost:8888 (token in email to bob@corp.com)",
         "http://localhost:8888 (token in email to bob@corp.com)"),
        ("Note: see http://x.org/a?lr=0.1&api_key=zz", "Note: see http://x.org/a?lr=0.1&api_key="
         + REDACTED),
        ("db (postgres://u:pw@h/db) and\tmore", "db (postgres://h/db) and\tmore"),
        ("two: s3://k:s@b/x s3://b/y", "two: s3://b/x s3://b/y"),
        ("a://b", "a://b"),
        ("C:\\data\\x.csv", "C:\\data\\x.csv"),
    ],
)
def test_redact_text_strips_url_credentials_and_keeps_every_other_character(
    text: str, want: str
) -> None:
    """URL credentials go wherever a URL sits in a string; the rest of the text is kept."""
    assert redact_text(text) == want


_TEXT = st.lists(
    st.sampled_from([
        "a", "b", " ", ":", "/", "//", "://", "@", "?", "#", "=", "&", "-", ".", "\n", "\t",
        "(", ")", "'", "<", ">", "http", "u:pw@", "password", "token", "sig", REDACTED,
    ]),
    max_size=25,
).map("".join)


@given(_TEXT)
@example("see http://x/?password=abc&x=1 and s3://k:s@b/y#sig=z")
def test_redact_text_is_idempotent_and_keeps_text_without_urls(text: str) -> None:
    """Redacting twice is redacting once; a string with no "://" is never touched, and
    nothing outside a URL ever changes (the text before the first URL is kept)."""
    once = redact_text(text)
    assert redact_text(once) == once
    if "://" not in text:
        assert once == text
    first = _URL_IN_TEXT.search(text)
    head = text[: first.start()] if first else text
    assert once.startswith(head)
