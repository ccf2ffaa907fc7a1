"""``isobuild usb``: a node's medium (its config.iso) written to a USB stick or an image file.

The medium is read under the inventory's lock, and only when the folder is built from
cluster.yaml as it is now and its config.iso holds exactly its cloud-config/ (after a hand edit:
``isobuild image`` first). The write itself runs outside the lock: a stick takes seconds to
minutes. A device is checked by :func:`isobuilder.blockdev.refusal` first, then opened
exclusively, written, synced and read back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from isobuilder import blockdev, configdrive, fatdrive
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.files import contents
from isobuilder.inventory import read_file, read_tree, refuse_symlink
from isobuilder.model import Format, Media, Node, shown
from isobuilder.nodefolder import CLOUD_DIR, ISO
from isobuilder.ops import load_authority, load_cluster
from isobuilder.outside import write_outside
from isobuilder.staterecord import STATE, NodeState, inputs_digest


@dataclasses.dataclass(frozen=True)
class Medium:
    """What a node boots from, ready to write: the drive's bytes and the folder they came from."""

    node: Node
    media: Media
    image: bytes = dataclasses.field(repr=False)
    source: Path  # the node folder's config.iso
    fat: bool = False  # an editable FAT drive of the same files, instead of the ISO

    @property
    def kind(self) -> str:
        return f"{self.media.label} {'FAT' if self.fat else 'ISO 9660'} drive"


@dataclasses.dataclass(frozen=True)
class Written:
    """A medium written, where (a device, or an image file) and its SHA-256 as read back."""

    medium: Medium
    target: Path
    device: blockdev.Device | None  # None: an image file
    sha256: str


def medium(ctx: Context, name: str, *, fat: bool = False) -> Medium:
    """The node's config.iso, read under the lock, when it is what the node should boot from;
    ``fat``: its files on an editable FAT image instead (:mod:`isobuilder.fatdrive`)."""
    inv = ctx.inventory
    with inv.locked():
        cluster = load_cluster(inv)
        node = cluster.node(name)
        if node is None:
            known = ", ".join(n.name for n in cluster.nodes) or "none"
            raise IsobuildError(f"no node {name!r} in cluster.yaml", hint=f"known nodes: {known}")
        folder = inv.node_dir(node.folder)
        for path in (folder, folder / ISO, folder / CLOUD_DIR):
            refuse_symlink(path, "a node folder, its config.iso and cloud-config/")
        state = NodeState.parse(read_file(folder / STATE))
        iso = read_file(folder / ISO)
        if iso is None or state.inputs != inputs_digest(cluster, node, load_authority(ctx)):
            raise IsobuildError(
                f"{node.folder}/ is not built from cluster.yaml as it is now",
                hint=f"run isobuild build {node.name} first",
            )
        files = contents(read_tree(folder / CLOUD_DIR))
        media = cluster.media_of(node)
        if configdrive.drive_files(iso) != files or configdrive.image_problem(iso, media.label):
            raise IsobuildError(
                f"{node.folder}/{ISO} does not hold what {node.folder}/{CLOUD_DIR}/ does, labelled "
                f"{media.label} (a hand edit?)",
                hint=f"run isobuild image {folder} first",
            )
        if fat and cluster.format_of(node) is Format.IGNITION:
            # coreos/ignition internal/providers/openstack: configDevice = "/dev/disk/by-label/config-2"
            raise IsobuildError(
                f"--fat is for cloud-init nodes: Ignition opens the label {media.label} in lower case, "
                "and FAT stores labels upper-cased",
                hint=f"write {node.name}'s ISO instead (without --fat)",
            )
    if fat:
        return Medium(node, media, fatdrive.build_fat(files, media.label, ctx.iso_epoch), folder / ISO, fat=True)
    return Medium(node, media, iso, folder / ISO)


def write(
    ctx: Context, source: Medium, target: Path, *, force: bool = False, progress: blockdev.Progress = lambda d, t: None
) -> Written:
    """``source`` onto ``target``: a block device (checked, written, read back), or an image
    file (replaced atomically, 0600: the medium carries the node's private keys)."""
    if blockdev.is_block_device(target):
        device = blockdev.inspect(target.resolve())
        refused = blockdev.refusal(device, len(source.image), force=force)
        if refused is not None:
            raise refused
        digest = blockdev.write(device.path, source.image, size=device.size, progress=progress)
        return Written(source, target, device, digest)
    _refuse_odd_target(ctx, target)
    write_outside(target, source.image, 0o600)
    progress(len(source.image), len(source.image))
    digest = blockdev.read_back(target, len(source.image), expected=hashlib.sha256(source.image).hexdigest())
    return Written(source, target, None, digest)


def _refuse_odd_target(ctx: Context, target: Path) -> None:
    """An image file may go to a new or existing regular file in an existing folder outside the
    inventory, named as it is (no symlink), and never under /dev."""
    where = shown(str(target))
    try:
        resolved = target.resolve()
        if resolved.parts[:2] == ("/", "dev"):
            raise IsobuildError(
                f"{where} is not a block device", hint="see isobuild usb --list for the sticks plugged in"
            )
        if target.is_symlink():
            raise IsobuildError(f"{where} is a symbolic link", hint="give the device or the image file itself")
        if target.exists() and not target.is_file():
            raise IsobuildError(f"{where} is neither a block device nor a file", hint="give a device, e.g. /dev/sdb")
        if not resolved.parent.is_dir():
            raise IsobuildError(
                f"{shown(str(target.parent))} is not a folder", hint="create it first, or write elsewhere"
            )
        inventory = ctx.inventory.root
        inside = resolved.is_relative_to(inventory.resolve()) or (
            inventory.exists()
            and any(_same(folder, inventory) for folder in (resolved.parent, *resolved.parent.parents))
        )  # a bind mount of the inventory is the inventory too
    except OSError as exc:
        raise IsobuildError(f"cannot use {where}: {exc.strerror or exc}", hint="give another image file path") from None
    except RuntimeError:  # pathlib's "Symlink loop"
        raise IsobuildError(f"{where}: a symbolic link loop", hint="give another image file path") from None
    if inside:
        raise IsobuildError(f"{where} is inside the inventory", hint="write the image elsewhere, e.g. /tmp/w1.img")


def _same(folder: Path, other: Path) -> bool:
    try:
        return os.path.samefile(folder, other)
    except OSError:
        return False
