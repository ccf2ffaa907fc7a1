"""The one file value type: bytes and a mode. Pure.

Every stage speaks in trees, ``{path: File}``: a node folder (paths relative to it), the files
a node receives (absolute paths on the node), a drive, a PXE export. Only ``inventory`` turns a
tree into files on disk, each created with its mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class File(NamedTuple):
    """A file's content and mode, as isobuild writes it."""

    content: bytes
    mode: int = 0o644


Tree = Mapping[str, File]  # POSIX path -> file


def contents(tree: Tree) -> dict[str, bytes]:
    return {path: f.content for path, f in tree.items()}


def changes(old: Tree, new: Tree) -> list[str]:
    """Paths whose bytes or mode differ, then paths that are gone, each sorted."""
    differ = sorted(path for path, f in new.items() if old.get(path) != f)
    return differ + sorted(set(old) - set(new))
