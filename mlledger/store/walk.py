"""Walking a local folder to store it as a tree: which files, empty folders and links it
holds, in a fixed order, with the names a manifest can record."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from ..errors import SymlinkLoopError, UsageError
from .localfiles import os_error
from .tree import TreeEntry

__all__ = ["check_utf8", "place_entry", "walk"]


def place_entry(rel: str, full: str) -> TreeEntry:
    """The tree entry of an empty folder or of a link that stays inside the tree."""
    if os.path.islink(full):
        link = os.readlink(full)
        check_utf8(link, full, "the target of the link")
        return TreeEntry(rel, "link", link=link)
    return TreeEntry(rel, "dir")


def walk(root: str) -> Iterator[tuple[str, str, os.stat_result | None]]:
    """Yield ``(relpath, fullpath, stat)`` for files; ``stat=None`` for empty dirs and inside links.

    Links that resolve inside ``root`` are kept as links; links that resolve
    outside are followed (their content is stored).  Loops raise.
    """
    real_root = os.path.realpath(root)
    seen: set[tuple[int, int]] = set()

    def inside(p: str) -> bool:
        real = os.path.realpath(p)
        return real == real_root or real.startswith(real_root + os.sep)

    def rec(dirpath: str, rel: str) -> Iterator[tuple[str, str, os.stat_result | None]]:
        try:
            dst = os.stat(dirpath)
        except OSError as e:
            raise os_error(dirpath, e) from e
        ident = (dst.st_dev, dst.st_ino)
        if ident in seen:
            raise SymlinkLoopError(
                f"{dirpath!r} links back to a folder already being stored (a symlink "
                "loop); fix or remove the link"
            )
        seen.add(ident)
        try:
            with os.scandir(dirpath) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise os_error(dirpath, e) from e
        if not items and rel:
            yield rel, dirpath, None
        for item in items:
            child_rel = f"{rel}/{item.name}" if rel else item.name
            if item.is_symlink():
                if not os.path.exists(item.path):
                    try:
                        os.stat(item.path)
                    except OSError as e:
                        raise os_error(item.path, e) from e
                if inside(item.path) and not os.path.isabs(os.readlink(item.path)):
                    yield child_rel, item.path, None
                    continue
            try:
                ist = os.stat(item.path)
            except OSError as e:
                raise os_error(item.path, e) from e
            if stat.S_ISDIR(ist.st_mode):
                yield from rec(item.path, child_rel)
            elif stat.S_ISREG(ist.st_mode):
                yield child_rel, item.path, ist
        seen.discard(ident)

    yield from rec(root, "")


def check_utf8(name: str, full: str, what: str = "the name of") -> None:
    """Refuse a name a manifest cannot hold: manifests are UTF-8 (on any system)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(
            f"{what} {full!r} is not valid UTF-8, and a tree records names as UTF-8: "
            "rename it (for example with 'convmv -f latin1 -t utf8') and store the folder again"
        ) from None
