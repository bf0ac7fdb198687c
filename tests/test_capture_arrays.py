"""An array's digest worked out over its buffer is the digest of the bytes it is stored as."""

from __future__ import annotations

import numpy as np
import pytest

from mlledger.capture import arrays
from mlledger.capture.values import encode_value
from mlledger.hashing import digest_bytes

LAYOUTS = {
    "float64": np.arange(12.0),
    "int matrix": np.arange(12).reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "empty": np.zeros((0, 3)),
    "strings": np.array(["ab", "c"]),
    "complex": np.array([1 + 2j, 3j]),
    "big-endian": np.arange(6, dtype=">i4"),
    "structured": np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
    "datetime": np.datetime64("2020-01-01") + np.arange(3),
    "0-d": np.array(3.5),
    "bool 3-d": np.ones((2, 3, 4), dtype=bool),
}


@pytest.mark.parametrize("algorithm", ["xxh128", "sha256"])
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_digest_matches_the_stored_bytes(name: str, algorithm: str) -> None:
    """``array_digest`` gives the digest and size of the .npy bytes ``encode_value`` stores."""
    a = LAYOUTS[name]
    enc = encode_value(a)
    assert enc is not None
    assert enc.format == "npy"
    assert arrays.array_digest(a, algorithm) == (digest_bytes(enc.data, algorithm), len(enc.data))


def test_other_values_go_the_general_way() -> None:
    """A strided view, an object array, a subclass or a non-array gives None."""
    view = np.arange(12).reshape(3, 4)[:, ::2]
    for value in (view, np.array([object()]), np.ma.masked_array([1, 2]), [1, 2], np.float64(1)):
        assert arrays.array_digest(value, "xxh128") is None


def test_remembered_digest_only_for_that_object_inside_the_block() -> None:
    """A remembered digest is recalled for the very object, inside the block only."""
    a = np.arange(4.0)
    b = a.copy()
    with arrays.remembered({id(a): (a, "xxh128:" + "0" * 32, 10)}):
        assert arrays.recall(a) == ("xxh128:" + "0" * 32, 10)
        assert arrays.recall(b) is None
    assert arrays.recall(a) is None
