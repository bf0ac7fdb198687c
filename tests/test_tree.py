"""Tree manifests: folders stored as trees, restored byte-identical, and checked on read."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.servers import StoreSpec
from helpers.stores import (
    LARGE,
    count_objects,
    make_sample_tree,
    memory_store,
    open_store,
    snapshot,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlledger import canonical
from mlledger.errors import (
    DigestError,
    IntegrityError,
    LedgerError,
    SymlinkLoopError,
    UnsafePathError,
    UsageError,
)
from mlledger.hashing import digest_bytes
from mlledger.store import Store, Tree, TreeEntry
from mlledger.store.tree import MAGIC, check_relpath, is_manifest, is_tree_bytes

FAST = ["memory", "local"]
HYPOTHESIS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(params=FAST, ids=FAST)
def fast_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on memory or local disk (for property tests that run many examples)."""
    if request.param == "memory":
        with memory_store() as store:
            yield store
    else:
        yield Store(tmp_path / "store")


def manifest(*entries: dict[str, Any]) -> bytes:
    """Raw manifest bytes, written the way mlledger writes them, with no checks."""
    return MAGIC + canonical.dumps({"entries": list(entries)})


# -- the manifest format (pure) ----------------------------------------------------------

segment = st.text(
    alphabet=st.sampled_from("abcXYZ019_-. é名:\\"), min_size=1, max_size=6
).filter(lambda s: s not in (".", ".."))


@st.composite
def tree_layouts(draw: st.DrawFn) -> dict[str, tuple[bytes, bool] | None]:
    """A consistent folder layout: relpath -> (content, executable), or None for an empty dir."""
    layout: dict[str, tuple[bytes, bool] | None] = {}
    files = draw(st.lists(st.tuples(st.lists(segment, min_size=1, max_size=3),
                                    st.binary(max_size=64), st.booleans()), max_size=8))
    dirs = draw(st.lists(st.lists(segment, min_size=1, max_size=3), max_size=3))

    def conflicts(path: str) -> bool:
        return any(
            path == other or path.startswith(other + "/") or other.startswith(path + "/")
            for other in layout
        )

    for segs, content, executable in files:
        path = "/".join(segs)
        if not conflicts(path):
            layout[path] = (content, executable)
    for segs in dirs:
        path = "/".join(segs)
        if not conflicts(path):
            layout[path] = None
    return layout


def write_layout(root: Path, layout: dict[str, tuple[bytes, bool] | None],
                 order: list[str] | None = None) -> None:
    """Create ``layout`` under ``root``, its entries in ``order``."""
    root.mkdir(parents=True, exist_ok=True)
    for path in order if order is not None else sorted(layout):
        spec = layout[path]
        full = root / path
        if spec is None:
            full.mkdir(parents=True, exist_ok=True)
            continue
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(spec[0])
        full.chmod(0o755 if spec[1] else 0o644)


def entries_of(layout: dict[str, tuple[bytes, bool] | None]) -> list[TreeEntry]:
    out = []
    for path, spec in layout.items():
        if spec is None:
            out.append(TreeEntry(path, "dir"))
        else:
            out.append(TreeEntry(path, "file", digest_bytes(spec[0]), len(spec[0]), spec[1]))
    return out


@settings(max_examples=50, deadline=None)
@given(layout=tree_layouts(), seed=st.integers(0, 2**32 - 1))
def test_manifest_bytes_do_not_depend_on_entry_order(
    layout: dict[str, tuple[bytes, bool] | None], seed: int
) -> None:
    """A tree's manifest bytes (so its digest) are the same whatever order its entries come in."""
    entries = entries_of(layout)
    shuffled = entries[:]
    random.Random(seed).shuffle(shuffled)
    assert Tree(tuple(entries)).to_bytes() == Tree(tuple(shuffled)).to_bytes()


@settings(max_examples=50, deadline=None)
@given(layout=tree_layouts())
def test_manifest_round_trips(layout: dict[str, tuple[bytes, bool] | None]) -> None:
    """Parsing a manifest gives back its entries, sorted by path; the header marks it a tree."""
    tree = Tree(tuple(entries_of(layout)))
    data = tree.to_bytes()
    assert is_tree_bytes(data)
    parsed = Tree.from_bytes(data, "xxh128")
    assert parsed.entries == tuple(sorted(tree.entries, key=lambda e: e.path))
    assert parsed.size == sum(spec[0].__len__() for spec in layout.values() if spec is not None)


@settings(max_examples=50, deadline=None)
@given(layout=tree_layouts(), tail=st.binary(max_size=8))
def test_only_the_exact_manifest_form_is_a_manifest(
    layout: dict[str, tuple[bytes, bool] | None], tail: bytes
) -> None:
    """is_manifest accepts what Tree.to_bytes writes, and not those bytes with anything added."""
    data = Tree(tuple(entries_of(layout))).to_bytes()
    assert is_manifest(data)
    assert not is_manifest(data[len(MAGIC):])
    if tail:
        assert not is_manifest(data + tail)


def test_manifest_bytes_are_pinned() -> None:
    """A manifest written today has the bytes (so the digest) earlier versions wrote:
    the same folder keeps its tree digest across versions (quotes, tabs, backslashes and
    non-ASCII names included)."""
    tree = Tree((
        TreeEntry('b/"quoted" \\ é名\t.txt', "file", digest_bytes(b"x"), 1, True),
        TreeEntry("a-link", "link", link="b/x"),
        TreeEntry("c/empty", "dir"),
        TreeEntry("0.bin", "file", digest_bytes(b""), 0, False),
    ))
    assert digest_bytes(tree.to_bytes()) == "xxh128:a7595b79267ed8621bfdc783130db2a4"


any_name = st.lists(st.text(min_size=1, max_size=8).filter(lambda s: "/" not in s
                                                          and s not in (".", "..")),
                    min_size=1, max_size=3).map("/".join)


@settings(max_examples=100, deadline=None)
@given(files=st.dictionaries(any_name, st.tuples(st.binary(max_size=8), st.booleans()),
                             max_size=6),
       links=st.dictionaries(any_name, any_name, max_size=3),
       dirs=st.sets(any_name, max_size=3))
def test_manifest_bytes_are_canonical_json(files: dict[str, tuple[bytes, bool]],
                                           links: dict[str, str], dirs: set[str]) -> None:
    """Tree.to_bytes is the header and canonical.dumps of the entries sorted by path, for
    any names (escapes, surrogate-free unicode, control characters)."""
    entries = [TreeEntry(p, "file", digest_bytes(d), len(d), x) for p, (d, x) in files.items()]
    entries += [TreeEntry(p, "link", link=t) for p, t in links.items() if p not in files]
    entries += [TreeEntry(p, "dir") for p in dirs if p not in files and p not in links]
    docs = []
    for e in sorted(entries, key=lambda e: e.path):
        if e.kind == "file":
            docs.append({"path": e.path, "digest": e.digest, "size": e.size,
                         "exec": e.executable})
        elif e.kind == "link":
            docs.append({"path": e.path, "link": e.link})
        else:
            docs.append({"path": e.path, "dir": True})
    assert Tree(tuple(entries)).to_bytes() == MAGIC + canonical.dumps({"entries": docs})


def test_bytes_without_the_header_are_not_a_tree() -> None:
    """Bytes that do not start with the manifest header raise IntegrityError when read as a tree."""
    with pytest.raises(IntegrityError, match="not a tree manifest"):
        Tree.from_bytes(b'{"entries": []}')
    with pytest.raises(IntegrityError, match="does not parse"):
        Tree.from_bytes(MAGIC + b"{not json")
    for body in (b'{"entries": 5}', b'{"entries": null}', b"[]", b"[" * 100_000):
        with pytest.raises(IntegrityError, match="does not parse"):
            Tree.from_bytes(MAGIC + body)


def test_damaged_manifests_raise_integrity_error() -> None:
    """Duplicate paths, bad sizes and entries of no kind are IntegrityErrors."""
    d = digest_bytes(b"x")
    with pytest.raises(IntegrityError, match="twice"):
        Tree.from_bytes(manifest({"path": "a", "digest": d, "size": 1},
                                 {"path": "a", "digest": d, "size": 1}))
    with pytest.raises(IntegrityError, match="bad size"):
        Tree.from_bytes(manifest({"path": "a", "digest": d, "size": -1}))
    with pytest.raises(IntegrityError, match="neither file, link nor dir"):
        Tree.from_bytes(manifest({"path": "a"}))


def test_manifest_with_a_malformed_or_foreign_digest_is_refused() -> None:
    """A manifest entry's digest must be well formed and of the store's algorithm."""
    with pytest.raises(DigestError):
        Tree.from_bytes(manifest({"path": "a", "digest": "xxh128:zz", "size": 1}))
    with pytest.raises(DigestError, match="sha256"):
        Tree.from_bytes(manifest({"path": "a", "digest": digest_bytes(b"x"), "size": 1}), "sha256")


@pytest.mark.parametrize(
    "path",
    ["", "/abs", "/", "../up", "a/../../up", "a/..", "./a", "a/./b", "a//b", "a/", "nul\0byte"],
)
def test_unsafe_relative_paths_are_refused(path: str) -> None:
    """An empty, absolute, climbing or non-normal manifest path raises UnsafePathError."""
    for windows in (False, True):
        with pytest.raises(UnsafePathError):
            check_relpath(path, windows=windows)


@pytest.mark.parametrize("path", ["C:/x", "C:", "a\\..\\b", "..\\evil", "a:b", "f:stream"])
def test_drive_and_backslash_paths_are_refused_for_windows(path: str) -> None:
    """Restoring on Windows, a manifest path with a drive or a backslash raises UnsafePathError."""
    with pytest.raises(UnsafePathError, match="Windows"):
        check_relpath(path, windows=True)
    assert check_relpath(path, windows=False) == path, "elsewhere it is an ordinary name"


@pytest.mark.parametrize("path", ["a", "a/b/c", "..a", "a..", "a/.hidden", "名前/x y"])
def test_ordinary_relative_paths_are_accepted(path: str) -> None:
    """Plain relative paths, including names that merely contain dots, are accepted."""
    assert check_relpath(path, windows=False) == path
    assert check_relpath(path, windows=True) == path


# -- storing and restoring folders ------------------------------------------------------


def test_folder_round_trips_on_every_backend(store_spec: StoreSpec, tmp_path: Path) -> None:
    """A folder stored as a tree restores byte-identical: files, exec bits, links, dirs."""
    src = make_sample_tree(tmp_path / "src")
    store = open_store(store_spec)
    stored = store.put(src)
    assert stored.kind == "tree"
    assert stored.digest.startswith("xxh128:")
    assert stored.files == 7
    assert stored.size == sum(f.stat().st_size for f in src.rglob("*")
                              if f.is_file() and not f.is_symlink())
    assert store.kind(stored.digest) == "tree"
    dest = store.restore(stored.digest, tmp_path / "out" / "restored")
    assert dest == tmp_path / "out" / "restored"
    before, after = snapshot(src), snapshot(dest)
    assert after == before
    assert after["bin/run.sh"][2] is True
    assert after["a.txt"][2] is False
    assert after["dirlink"] == ("link", "data/nested")
    assert after["data/link-up"] == ("link", "../a.txt")
    assert after["empty"] == ("dir",)
    assert after["data/empty-inner"] == ("dir",)
    assert os.listdir(tmp_path / "out") == ["restored"], "no temp files are left behind"


def test_tree_lists_every_kind_of_entry(tmp_path: Path) -> None:
    """read_tree lists files with digest/size/exec, inside links with their target, empty dirs."""
    with memory_store() as store:
        src = make_sample_tree(tmp_path / "src")
        tree = store.read_tree(store.put_tree(src).digest)
        by_path = {e.path: e for e in tree.entries}
        assert by_path["bin/run.sh"].executable
        assert not by_path["a.txt"].executable
        assert by_path["a.txt"].digest == digest_bytes(b"hello\n")
        assert by_path["a.txt"].size == 6
        assert by_path["link-to-a"] == TreeEntry("link-to-a", "link", link="a.txt")
        assert by_path["empty"] == TreeEntry("empty", "dir")
        assert by_path["data/nested/deep/large.bin"].size == LARGE
        assert [e.path for e in tree.entries] == sorted(by_path)


def test_link_leading_outside_the_folder_is_stored_as_its_content(tmp_path: Path) -> None:
    """A link that points outside the folder is followed: the restored tree holds a plain file."""
    outside = tmp_path / "outside.txt"
    outside.write_text("from outside\n")
    src = tmp_path / "src"
    src.mkdir()
    os.symlink(outside, src / "abs-link")
    os.symlink("../outside.txt", src / "rel-link")
    with memory_store() as store:
        d = store.put_tree(src).digest
        out = store.restore(d, tmp_path / "out")
    assert snapshot(out) == {
        "abs-link": ("file", b"from outside\n", False),
        "rel-link": ("file", b"from outside\n", False),
    }


def test_empty_folder_round_trips(tmp_path: Path) -> None:
    """An empty folder is a tree with no entries and restores as an empty folder."""
    (tmp_path / "empty").mkdir()
    with memory_store() as store:
        stored = store.put(tmp_path / "empty")
        assert (stored.kind, stored.size, stored.files) == ("tree", 0, 0)
        out = store.restore(stored.digest, tmp_path / "out")
    assert out.is_dir()
    assert list(out.iterdir()) == []


def test_storing_a_tree_again_writes_nothing(fast_store: Store, tmp_path: Path) -> None:
    """Putting the same folder twice gives the same digest and adds no object."""
    src = make_sample_tree(tmp_path / "src")
    first = fast_store.put_tree(src)
    n = count_objects(fast_store)
    assert fast_store.put_tree(src) == first
    assert count_objects(fast_store) == n


def test_tree_digest_tracks_content_exec_bit_links_and_empty_dirs(tmp_path: Path) -> None:
    """Changing a file's bytes, its exec bit, a link target or an empty dir changes the digest."""
    src = make_sample_tree(tmp_path / "src")
    with memory_store() as store:
        seen = {store.put_tree(src).digest}
        (src / "a.txt").write_text("hellO\n")
        seen.add(store.put_tree(src).digest)
        (src / "a.txt").chmod(0o755)
        seen.add(store.put_tree(src).digest)
        os.unlink(src / "dirlink")
        os.symlink("data", src / "dirlink")
        seen.add(store.put_tree(src).digest)
        (src / "empty" / "more").mkdir()
        seen.add(store.put_tree(src).digest)
    assert len(seen) == 5


@HYPOTHESIS
@given(layout=tree_layouts())
def test_random_folders_round_trip(
    fast_store: Store, tmp_path: Path, layout: dict[str, tuple[bytes, bool] | None]
) -> None:
    """Any folder of files, exec bits and empty dirs restores byte-identical."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as work:
        src = Path(work) / "src"
        write_layout(src, layout)
        stored = fast_store.put(src)
        assert stored.files == sum(spec is not None for spec in layout.values())
        out = fast_store.restore(stored.digest, Path(work) / "out")
        assert snapshot(out) == snapshot(src)


@HYPOTHESIS
@given(layout=tree_layouts(), data=st.data())
def test_tree_digest_does_not_depend_on_creation_order(
    fast_store: Store, tmp_path: Path, layout: dict[str, tuple[bytes, bool] | None],
    data: st.DataObject,
) -> None:
    """The same folder built in two different orders has one digest."""
    order = data.draw(st.permutations(sorted(layout)))
    with tempfile.TemporaryDirectory(dir=tmp_path) as work:
        write_layout(Path(work) / "one", layout, sorted(layout))
        write_layout(Path(work) / "two", layout, list(order))
        one = fast_store.put_tree(Path(work) / "one")
        two = fast_store.put_tree(Path(work) / "two")
    assert one.digest == two.digest


# -- manifests that would escape the destination ------------------------------------------

D = digest_bytes(b"x")


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([{"path": "../evil", "digest": D, "size": 1}], id="dotdot"),
        pytest.param([{"path": "a/../../evil", "digest": D, "size": 1}], id="inner-dotdot"),
        pytest.param([{"path": "/tmp/evil", "digest": D, "size": 1}], id="absolute"),
        pytest.param([{"path": "ok", "link": "/etc/passwd"}], id="absolute-link"),
        pytest.param([{"path": "ok", "link": "../evil"}], id="link-up"),
        pytest.param([{"path": "sub/ok", "link": "../../evil"}], id="nested-link-up"),
        pytest.param([{"path": "ok", "link": "a/../../evil"}], id="link-inner-dotdot"),
        pytest.param([{"path": "s", "link": "."}, {"path": "t", "link": "s/.."}],
                     id="link-through-link"),
        pytest.param([{"path": "d/s", "link": ".."}, {"path": "t", "link": "d/s/.."}],
                     id="link-through-nested-link"),
        pytest.param([{"path": "a", "link": "b"}, {"path": "b", "link": "a"}], id="link-loop"),
        pytest.param([{"path": "s", "link": "sub"}, {"path": "s/x", "digest": D, "size": 1}],
                     id="file-below-link"),
        pytest.param([{"path": "f", "digest": D, "size": 1},
                      {"path": "f/x", "digest": D, "size": 1}], id="file-below-file"),
    ],
)
def test_unsafe_manifest_is_refused_and_nothing_is_written(
    fast_store: Store, tmp_path: Path, entries: list[dict[str, Any]]
) -> None:
    """Restoring a manifest that could write or point outside its destination: UnsafePathError."""
    assert fast_store.put_bytes(b"x") == D
    d = fast_store.put_bytes(manifest(*entries))
    parent = tmp_path / "restore-here"
    parent.mkdir()
    with pytest.raises(UnsafePathError) as info:
        fast_store.restore(d, parent / "dest")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LedgerError)
    assert "refusing to restore" in str(info.value) or "below the file or link" in str(info.value)
    assert list(parent.iterdir()) == []
    assert not (tmp_path / "evil").exists()


@pytest.mark.skipif(os.name == "nt", reason="on Windows these names are refused (tested above)")
def test_names_with_colons_and_backslashes_round_trip(fast_store: Store, tmp_path: Path) -> None:
    """On POSIX, names holding ':' or '\\' are ordinary: stored and restored, nothing escapes."""
    tmp_path = tmp_path / "work"
    src = tmp_path / "src"
    (src / "C:").mkdir(parents=True)
    for name in ("a:b", "C:/x", "..\\..\\evil", "back\\slash"):
        (src / name).write_text(name)
    os.symlink("..\\..\\evil", src / "odd-link")
    out = fast_store.restore(fast_store.put_tree(src).digest, tmp_path / "out")
    assert snapshot(out) == snapshot(src)
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]


def test_names_that_are_not_utf8_are_refused(fast_store: Store, tmp_path: Path) -> None:
    """A folder holding a name that is not valid UTF-8 raises UsageError saying to rename it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "fine.txt").write_text("fine")
    with open(os.fsencode(src) + b"/latin1-\xe9.txt", "wb") as f:
        f.write(b"x")
    with pytest.raises(UsageError) as info:
        fast_store.put_tree(src)
    assert isinstance(info.value, ValueError)
    assert "is not valid UTF-8" in str(info.value)
    assert "rename it" in str(info.value)


def test_links_that_climb_but_stay_inside_are_restored(fast_store: Store, tmp_path: Path) -> None:
    """A link that goes up with '..' but stays inside the destination is restored as written."""
    d = fast_store.put_bytes(manifest(
        {"path": "f", "digest": fast_store.put_bytes(b"x"), "size": 1},
        {"path": "sub/deeper/l", "link": "../../f"},
        {"path": "sub/here", "link": "."},
        {"path": "sub/top", "link": "here/.."},
    ))
    out = fast_store.restore(d, tmp_path / "out")
    assert os.readlink(out / "sub" / "deeper" / "l") == "../../f"
    assert (out / "sub" / "deeper" / "l").read_bytes() == b"x"
    assert os.path.realpath(out / "sub" / "top") == os.path.realpath(out)


def test_links_that_climb_through_other_links_round_trip(fast_store: Store,
                                                        tmp_path: Path) -> None:
    """A link climbing with '..' out of another link's target, staying inside, round-trips."""
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "sub" / "deeper" / "f").write_text("x")
    os.symlink("sub/deeper", src / "s")
    os.symlink("s/../..", src / "top")  # on paper '..'; on disk the folder itself
    os.symlink("s/../deeper/f", src / "f-link")
    stored = fast_store.put_tree(src)
    out = fast_store.restore(stored.digest, tmp_path / "out")
    assert snapshot(out) == snapshot(src)
    assert os.path.realpath(out / "top") == os.path.realpath(out)


def test_symlink_to_an_ancestor_that_is_followed_is_a_loop(tmp_path: Path) -> None:
    """A folder link that is followed and leads back to an ancestor raises SymlinkLoopError."""
    outer = tmp_path / "outer"
    src = outer / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("x")
    os.symlink(str(src), src / "sub" / "abs-to-root")  # absolute: followed, not kept
    with memory_store() as store:
        with pytest.raises(SymlinkLoopError) as info:
            store.put_tree(src)
        assert isinstance(info.value, OSError)
        assert "loop" in str(info.value)
        os.unlink(src / "sub" / "abs-to-root")
        os.symlink("../..", src / "sub" / "up-out")  # leaves the folder: followed
        with pytest.raises(SymlinkLoopError, match="loop"):
            store.put_tree(src)


def test_symlink_loop_inside_a_folder_is_refused(tmp_path: Path) -> None:
    """Two links pointing at each other inside a folder raise SymlinkLoopError."""
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("b", src / "a")
    os.symlink("a", src / "b")
    with memory_store() as store, pytest.raises(SymlinkLoopError) as info:
        store.put_tree(src)
    assert "symbolic link loop" in str(info.value)
    assert "fix or remove the link" in str(info.value)
