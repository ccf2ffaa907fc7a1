"""``pxe``: the network-boot export (``pxe.export``) of every built node with a MAC, written
inside the inventory through the command's transaction, or to a folder outside it that an
earlier export made (swapped in whole)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from isobuilder import keyscan, pxe
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.files import File, changes
from isobuilder.inventory import STATE_DIR, read_file, read_tree
from isobuilder.model import Media
from isobuilder.nodefolder import CLOUD_DIR
from isobuilder.ops import load_cluster, transaction
from isobuilder.outside import replace_tree_outside
from isobuilder.plan import USERS_DIR

PXE_MARKER = ".isobuild-pxe"  # marks a folder `isobuild pxe` made, which it may replace


@dataclasses.dataclass(frozen=True)
class PxeResult:
    """What ``isobuild pxe`` exported, and where."""

    out: Path
    export: pxe.Export
    changed: bool

    @property
    def serves_secrets(self) -> bool:
        """Whether matchbox would hand out private keys (to anything that asks with the right MAC)."""
        return any(
            rel.startswith("matchbox/") and keyscan.holds_private_key(f.content) for rel, f in self.export.tree.items()
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "changed": self.changed,
            "serves_secrets": self.serves_secrets,
            "nodes": [
                {
                    "name": e.node.name,
                    "mac": e.node.mac,
                    "ip": e.node.ip,
                    "format": e.format.value,
                    "matchbox_id": e.matchbox_id,
                    "withheld": list(e.withheld),
                }
                for e in self.export.exported
            ],
            "skipped": [{"name": name, "reason": why} for name, why in self.export.skipped],
            "notes": self.export.notes,
            "files": sorted(self.export.tree),
        }


def pxe_export(ctx: Context, options: pxe.PxeOptions, out: Path | None) -> PxeResult:
    """Write the network-boot export (``pxe.export``) to ``out``, by default ``INVENTORY/pxe``.
    ``options.os_version`` empty: the cluster's Flatcar version."""
    inv = ctx.inventory
    target = out if out is not None else inv.root / "pxe"
    with transaction(ctx) as tx:
        cluster = load_cluster(inv)
        options = dataclasses.replace(options, os_version=options.os_version or cluster.flatcar_version).checked()
        user_data = {
            node.name: _built_user_data(inv.node_dir(node.folder), cluster.media_of(node)) for node in cluster.nodes
        }
        result = pxe.export(cluster, user_data, options)
        tree = {**result.tree, PXE_MARKER: File(f"cluster_id: {cluster.cluster_id}\n".encode())}
        _check_pxe_target(target, inv.root)
        inside = _relative_to(target, inv.root)
        if inside is None:
            changed = replace_tree_outside(target, tree)
        else:
            changed = bool(changes(read_tree(target), tree))
            if changed:
                tx.put_tree(inside, tree)
    return PxeResult(target, dataclasses.replace(result, tree=tree), changed)


def _built_user_data(folder: Path, media: Media) -> bytes | None:
    """The user data a node's drive carries (its medium's path first), None when not built."""
    mediums: list[Media] = [media, *Media]
    for m in mediums:
        data = read_file(folder / CLOUD_DIR / m.user_data_path)
        if data is not None:
            return data
    return None


def _relative_to(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _check_pxe_target(target: Path, root: Path) -> None:
    """Replace only a folder an earlier `isobuild pxe` made (never e.g. /var/lib/matchbox itself)."""
    hint = "give a new folder with --out; then copy OUT/matchbox/ into matchbox's data path"
    if target.is_symlink():
        raise IsobuildError(f"--out {target} is a symbolic link", hint="give the folder itself, not a link to it")
    inside = _relative_to(target, root)
    lexically = os.path.abspath(target).startswith(os.path.abspath(root) + os.sep)
    if inside is not None and not lexically:
        raise IsobuildError(f"--out {target} leads into the inventory {root} through a link", hint=hint)
    if inside == ".":
        raise IsobuildError(f"--out {target} is the inventory itself", hint=hint)
    top = (inside or "").split("/")[0]
    if top in ("ssl", STATE_DIR, "cluster.yaml", "kubeconfig", USERS_DIR) or top.startswith("node-"):
        raise IsobuildError(f"--out {target} is inside the inventory's {top}", hint=hint)
    if target.exists() and not target.is_dir():
        raise IsobuildError(f"--out {target} is a file", hint=hint)
    if target.is_dir() and any(target.iterdir()) and not (target / PXE_MARKER).is_file():
        raise IsobuildError(f"{target} exists and was not made by `isobuild pxe`; refusing to replace it", hint=hint)
