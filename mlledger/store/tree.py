"""Tree manifests: the recorded form of a folder.

A manifest lists, sorted by path, every file (digest, size, executable bit),
every symlink that stays inside the folder, and every empty folder.  Its bytes
are a fixed header line and canonical JSON, so the same folder always gives
the same digest whatever order its files were created in.  Paths are checked
when a manifest is read, so a manifest cannot write outside its destination.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any

import attrs

from .. import canonical
from ..errors import IntegrityError, UnsafePathError
from ..hashing import parse_digest

__all__ = [
    "MAGIC",
    "Tree",
    "TreeEntry",
    "check_relpath",
    "is_manifest",
    "is_tree_bytes",
]

MAGIC = b"mlledger-tree 1\n"

#: :func:`canonical.dumps`'s encoder, but for objects whose keys are already sorted
_PRESORTED = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True)


@attrs.frozen
class TreeEntry:
    """One entry of a tree: a file (``digest``), a symlink (``link``) or an empty folder."""

    path: str
    kind: str  # "file" | "link" | "dir"
    digest: str | None = None
    size: int = 0
    executable: bool = False
    link: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as a manifest holds it; keys in sorted order (see :meth:`Tree.to_bytes`)."""
        if self.kind == "file":
            return {
                "digest": self.digest,
                "exec": self.executable,
                "path": self.path,
                "size": self.size,
            }
        if self.kind == "link":
            return {"link": self.link, "path": self.path}
        return {"dir": True, "path": self.path}


#: restoring on Windows, where ``\\`` separates and ``C:`` names a drive
_WINDOWS = os.name == "nt"


def check_relpath(path: str, *, windows: bool = _WINDOWS) -> str:
    """Refuse a manifest path that is absolute, empty or climbs out with ``..``.

    With ``windows`` (the default on Windows), backslashes and colons are
    refused too: there they separate folders or name a drive.  Elsewhere they
    are ordinary characters of a name, so a folder holding ``a:b`` restores.
    """
    if not isinstance(path, str) or not path:
        raise UnsafePathError("empty path in a tree manifest: the manifest is damaged")
    if path.startswith("/"):
        raise UnsafePathError(
            f"tree manifest holds the absolute path {path!r}; refusing to restore it "
            "(a manifest may only hold paths relative to its folder)"
        )
    if windows and ("\\" in path or ":" in path):
        raise UnsafePathError(
            f"tree manifest holds the path {path!r}, whose '\\' or ':' Windows reads as a "
            "folder separator or a drive; refusing to restore it here (restore it on Linux "
            "or macOS, where it is an ordinary name)"
        )
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\0" in path:
        raise UnsafePathError(
            f"tree manifest holds the path {path!r}, which could escape the destination; "
            "refusing to restore it"
        )
    return path


def _check_link(path: str, target: str) -> str:
    """Refuse an empty or absolute link target; where it leads is checked with the whole tree."""
    if (
        not isinstance(target, str)
        or not target
        or target.startswith("/")
        or "\0" in target
        or (_WINDOWS and ("\\" in target or ":" in target))
    ):
        raise UnsafePathError(
            f"tree manifest holds a link {path!r} -> {target!r} that points outside its "
            "folder; refusing to restore it"
        )
    return target


#: links followed at most while resolving one link target (the kernel's MAXSYMLINKS)
MAX_LINK_HOPS = 40


def _check_links_stay_inside(links: dict[str, str]) -> None:
    """Resolve every link target the way the kernel will, through the tree's own links.

    Resolving on paper (``normpath``) is wrong both ways: with ``s -> .``, the
    target ``s/..`` is ``.`` on paper but the destination's parent on disk;
    with ``s -> a/b``, the target ``s/../..`` is ``..`` on paper but the
    destination itself on disk.  A name that is not a link of the tree is
    taken literally (on disk it is a folder or missing, and ``..`` after a
    missing name does not resolve at all).
    """
    for path, target in links.items():
        here = posixpath.dirname(path)
        parts: list[str] = here.split("/") if here else []
        todo = list(reversed(target.split("/")))
        hops = 0
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise UnsafePathError(
                        f"tree manifest holds a link {path!r} -> {target!r} that escapes "
                        "the destination; refusing to restore it"
                    )
                parts.pop()
                continue
            parts.append(part)
            inner = links.get("/".join(parts))
            if inner is not None:
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise UnsafePathError(
                        f"tree manifest holds links that point at each other in a loop "
                        f"(starting at {path!r}); refusing to restore it"
                    )
                parts.pop()
                todo.extend(reversed(inner.split("/")))


@attrs.frozen
class Tree:
    """A parsed, checked manifest."""

    entries: tuple[TreeEntry, ...]

    @property
    def size(self) -> int:
        """Total bytes of the files in the tree."""
        return sum(e.size for e in self.entries)

    @property
    def files(self) -> tuple[TreeEntry, ...]:
        return tuple(e for e in self.entries if e.kind == "file")

    def to_bytes(self) -> bytes:
        """The manifest's bytes: :func:`canonical.dumps` of the entries sorted by path.

        Written without sorting each entry's keys again: :meth:`TreeEntry.to_json` builds
        them in sorted order, so the bytes are the same (a folder of 10,000 files is
        written in half the time).
        """
        entries = sorted(self.entries, key=lambda e: e.path)
        return MAGIC + _PRESORTED.encode({"entries": [e.to_json() for e in entries]}).encode()

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str | None = None) -> Tree:
        if not data.startswith(MAGIC):
            raise IntegrityError("object is not a tree manifest (no header line)")
        try:
            doc = canonical.loads(data[len(MAGIC) :])
            raw = doc["entries"]
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise IntegrityError(f"tree manifest does not parse: {e}") from e
        if not isinstance(raw, list):
            raise IntegrityError("tree manifest does not parse: its entries are not a list")
        entries: list[TreeEntry] = []
        seen: set[str] = set()
        for item in raw:
            if not isinstance(item, dict):
                raise IntegrityError("tree manifest entry is not an object")
            path = check_relpath(item.get("path"))  # type: ignore[arg-type]
            if path in seen:
                raise IntegrityError(f"tree manifest lists {path!r} twice")
            seen.add(path)
            if "digest" in item:
                parse_digest(item["digest"], algorithm)
                size = item.get("size")
                if not isinstance(size, int) or size < 0:
                    raise IntegrityError(f"tree manifest entry {path!r} has a bad size")
                entries.append(
                    TreeEntry(path, "file", item["digest"], size, bool(item.get("exec", False)))
                )
            elif "link" in item:
                entries.append(TreeEntry(path, "link", link=_check_link(path, item["link"])))
            elif item.get("dir"):
                entries.append(TreeEntry(path, "dir"))
            else:
                raise IntegrityError(f"tree manifest entry {path!r} is neither file, link nor dir")
        # a path may not sit below a file or link of the same tree
        leaves = {e.path for e in entries if e.kind != "dir"}
        for entry in entries:
            parent = posixpath.dirname(entry.path)
            while parent:
                if parent in leaves:
                    raise UnsafePathError(
                        f"tree manifest puts {entry.path!r} below the file or link {parent!r}"
                    )
                parent = posixpath.dirname(parent)
        _check_links_stay_inside(
            {e.path: e.link for e in entries if e.kind == "link" and e.link is not None}
        )
        return cls(tuple(entries))


def is_tree_bytes(head: bytes) -> bool:
    """True when ``head`` (the first bytes of an object) may start a tree manifest.

    Only a hint: a user's file may begin with the same line.  Use
    :func:`is_manifest` on the whole object to decide.
    """
    return head.startswith(MAGIC)


def is_manifest(data: bytes) -> bool:
    """True when ``data`` has the exact form :meth:`Tree.to_bytes` writes.

    That is the header line, then canonical JSON of an object holding an
    ``entries`` list.  A file that merely starts with the header line is a
    file: it is stored, verified and restored as the bytes it is.  Whether
    the entries are safe is checked later, by :meth:`Tree.from_bytes`.
    """
    if not data.startswith(MAGIC):
        return False
    body = data[len(MAGIC) :]
    try:
        doc = canonical.loads(body)
        return (
            isinstance(doc, dict)
            and isinstance(doc.get("entries"), list)
            and canonical.dumps(doc) == body
        )
    except (ValueError, TypeError, RecursionError):
        return False
