"""Digests: their string form, streaming hashing, and refusal of malformed digests."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from mlledger.errors import DigestError, LedgerError
from mlledger.hashing import (
    ALGORITHMS,
    CHUNK,
    DEFAULT_ALGORITHM,
    check_algorithm,
    digest_bytes,
    digest_chunks,
    digest_file,
    new_hasher,
    parse_digest,
)

HEX_LEN = {"xxh128": 32, "sha256": 64}


def is_valid_digest(s: object) -> bool:
    """An oracle written independently of mlledger.hashing."""
    if not isinstance(s, str) or s.count(":") != 1:
        return False
    algo, hexpart = s.split(":")
    return (
        algo in HEX_LEN
        and len(hexpart) == HEX_LEN[algo]
        and all(c in "0123456789abcdef" for c in hexpart)
    )


def test_default_algorithm_is_xxh128() -> None:
    """A store hashes with XXH3-128 unless told otherwise."""
    assert DEFAULT_ALGORITHM == "xxh128"
    assert set(ALGORITHMS) == {"xxh128", "sha256"}


def test_xxh128_digest_form() -> None:
    """An xxh128 digest is 'xxh128:' and the 32 lowercase hex digits of XXH3-128."""
    d = digest_bytes(b"hello")
    assert re.fullmatch(r"xxh128:[0-9a-f]{32}", d)
    assert d == "xxh128:" + xxhash.xxh3_128(b"hello").hexdigest()


def test_sha256_digest_form() -> None:
    """A sha256 digest is 'sha256:' and the 64 lowercase hex digits of SHA-256."""
    d = digest_bytes(b"hello", "sha256")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", d)
    assert d == "sha256:" + hashlib.sha256(b"hello").hexdigest()


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=4096), cuts=st.lists(st.integers(0, 4096), max_size=6),
       algorithm=st.sampled_from(sorted(ALGORITHMS)))
def test_chunked_digest_equals_whole_digest(data: bytes, cuts: list[int], algorithm: str) -> None:
    """Hashing bytes in any split gives the digest of the whole."""
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert digest_chunks(chunks, algorithm) == digest_bytes(data, algorithm)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_digest_file_streams_a_file_larger_than_a_chunk(tmp_path: Path, algorithm: str) -> None:
    """digest_file gives the digest and size of a file spanning several read chunks."""
    data = bytes(range(256)) * (CHUNK // 256) * 2 + b"tail"
    p = tmp_path / "big.bin"
    p.write_bytes(data)
    assert digest_file(p, algorithm) == (digest_bytes(data, algorithm), len(data))


def test_digest_file_of_empty_file(tmp_path: Path) -> None:
    """An empty file has the digest of no bytes and size 0."""
    p = tmp_path / "empty"
    p.write_bytes(b"")
    assert digest_file(p) == (digest_bytes(b""), 0)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_parse_digest_splits_a_valid_digest(algorithm: str) -> None:
    """parse_digest returns (algorithm, hex) for a well-formed digest."""
    d = digest_bytes(b"x", algorithm)
    assert parse_digest(d) == (algorithm, d.split(":")[1])
    assert parse_digest(d, algorithm) == (algorithm, d.split(":")[1])


GOOD = "xxh128:" + "0123456789abcdef" * 2


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "xxh128",
        "xxh128:",
        GOOD[:-1],
        GOOD + "0",
        GOOD.upper(),
        "XXH128:" + GOOD.split(":")[1],
        GOOD.replace("0", "g"),
        " " + GOOD,
        GOOD + " ",
        GOOD + "\n",
        "\n" + GOOD,
        "md5:" + "0" * 32,
        "sha256:" + "0" * 32,
        "xxh128:" + "0" * 64,
        "xxh128::" + "0" * 32,
        "9f2c" * 8,
    ],
)
def test_malformed_digest_is_refused_with_the_expected_form(bad: str) -> None:
    """A malformed digest raises DigestError (a ValueError) that shows the expected form."""
    with pytest.raises(DigestError) as info:
        parse_digest(bad)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LedgerError)
    msg = str(info.value)
    assert "expected" in msg
    assert re.search(r"(xxh128|sha256):<(32|64) lowercase hex digits>", msg)


@pytest.mark.parametrize("bad", [None, 42, b"xxh128:" + b"0" * 32, ["xxh128"]])
def test_non_string_digest_is_refused(bad: object) -> None:
    """A digest that is not a string raises DigestError naming the expected form."""
    with pytest.raises(DigestError, match=r"xxh128:<32 hex>"):
        parse_digest(bad)  # type: ignore[arg-type]


def test_digest_of_another_algorithm_is_refused_when_one_is_required() -> None:
    """parse_digest(d, algorithm) refuses a valid digest of another algorithm, naming both."""
    d = digest_bytes(b"x", "xxh128")
    with pytest.raises(DigestError) as info:
        parse_digest(d, "sha256")
    assert "sha256:<64 lowercase hex digits>" in str(info.value)
    assert "xxh128" in str(info.value)


def test_unknown_algorithm_is_refused_naming_the_known_ones() -> None:
    """An unknown hash algorithm raises DigestError listing the algorithms mlledger knows."""
    with pytest.raises(DigestError) as info:
        new_hasher("md5")
    assert "sha256" in str(info.value)
    assert "xxh128" in str(info.value)
    with pytest.raises(DigestError):
        check_algorithm("XXH128")
    with pytest.raises(DigestError):
        digest_bytes(b"", "md5")


near_digests = st.builds(
    lambda algo, sep, hexpart: f"{algo}{sep}{hexpart}",
    st.sampled_from(["xxh128", "sha256", "md5", "XXH128", "", "xxh"]),
    st.sampled_from([":", "::", "", " :", "-"]),
    st.text(alphabet="0123456789abcdefABCDEFg \n", min_size=0, max_size=70),
)


valid_with_noise = st.builds(
    lambda pre, d, post: pre + d + post,
    st.sampled_from(["", "", " ", "\n", "x"]),
    st.builds(digest_bytes, st.binary(max_size=8), st.sampled_from(sorted(ALGORITHMS))),
    st.sampled_from(["", "", "\n", " ", "0", "\x00"]),
)


@settings(max_examples=300, deadline=None)
@given(s=st.one_of(st.text(), near_digests, valid_with_noise))
def test_random_strings_are_parsed_or_refused_with_digest_error(s: str) -> None:
    """parse_digest accepts exactly the well-formed digests; anything else is a DigestError."""
    try:
        algo, hexpart = parse_digest(s)
    except DigestError:
        assert not is_valid_digest(s)
    else:
        assert is_valid_digest(s)
        assert f"{algo}:{hexpart}" == s
