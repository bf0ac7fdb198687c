"""Which names a notebook cell reads (mlledger.notebook.names): parsed, not run."""

from __future__ import annotations

import pytest

from mlledger.notebook.names import names_read, only_magics


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ("y = x + 1", ["x"]),
        ("x = 1\ny = x", []),
        ("x = x + 1", ["x"]),
        ("x += 1", ["x"]),
        ("data.append(1)\ndata[0] = 2", ["data"]),
        ("for i in items:\n    total = total + i", ["items", "total"]),
        ("[i * k for i in xs if i > lo]", ["xs", "lo", "k"]),
        ("def f(a, b=default):\n    c = a + b\n    return c + glob", ["default", "glob"]),
        ("lambda v: v + w", ["w"]),
        ("import numpy as np\nnp.array(a)", ["a"]),
        ("class C(Base):\n    n = size\n    m = n", ["Base", "size"]),
        ("with open(p) as f:\n    t = f.read()", ["open", "p"]),
        ("try:\n    pass\nexcept Err as e:\n    e", ["Err"]),
        ("(n := m) and n", ["m"]),
        ("f'{name}!'", ["name"]),
    ],
)
def test_names_read_finds_names_loaded_before_bound(source: str, reads: list[str]) -> None:
    """names_read lists module-level names a cell loads before binding them, in order."""
    assert names_read(source) == reads


def test_only_magics_spots_cells_that_are_not_python() -> None:
    """Empty cells, cell magics and cells of only magics or shell escapes are not Python."""
    assert only_magics("")
    assert only_magics("%%time\nx = 1")
    assert only_magics("%ledger log\n# a comment\n!ls\nlen?")
    assert not only_magics("%matplotlib inline\nx = 1")
