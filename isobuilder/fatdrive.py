"""An editable config drive: the node's drive files on a FAT filesystem, built with GNU mtools.

cloud-init's ConfigDrive datasource reads vfat as well as iso9660 (``FS_TYPES = ("vfat",
"iso9660")`` in ``DataSourceConfigDrive.find_candidate_devs``; ds-identify accepts the labels
``config-2`` and ``CONFIG-2``), and NoCloud a vfat ``cidata``; a FAT stick opens on any laptop,
so a technician can fix an address in ``openstack/latest/network_data.json`` in the field.

Why mtools: it writes FAT images without mounting (no root, no loop device), it is what GRUB's
``grub-mkrescue`` builds its EFI images with, and Debian ships it. mformat honours
``SOURCE_DATE_EPOCH``, ``mcopy -m`` keeps the files' modification times (set to the epoch here),
and the volume serial is derived from the files, so the image is reproducible byte for byte. The
Python libraries considered (pyfatfs) need PyFilesystem2, whose last release is from 2022 and
which imports the deprecated ``pkg_resources``. The label is written upper-case (``CONFIG-2``,
``CIDATA``): FAT keeps it upper-cased in the root directory anyway, and a label that differs in
the boot sector is one fsck.vfat (and a laptop's chkdsk) would "repair". cloud-init takes both
cases; Ignition does not (its openstack provider opens ``/dev/disk/by-label/config-2``): the
caller refuses Ignition nodes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from isobuilder.errors import IsobuildError

MIN_SIZE = 8 << 20  # room for a field edit; small enough to write in a second
SLACK = 4 << 20
INSTALL_HINT = "install GNU mtools (apt-get install mtools), or write the ISO instead (without --fat)"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise IsobuildError(f"{name} not found: an editable FAT stick is made with GNU mtools", hint=INSTALL_HINT)
    return found


def size_for(files: Mapping[str, bytes]) -> int:
    """The image's size: the files twice over and some slack, at least MIN_SIZE, whole MiB."""
    wanted = max(MIN_SIZE, 2 * sum(len(c) for c in files.values()) + SLACK)
    return -(-wanted // (1 << 20)) << 20


def volume_serial(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return digest.hexdigest()[:8]


def build_fat(files: Mapping[str, bytes], label: str, epoch: float) -> bytes:
    """A FAT image holding ``files`` (drive paths), labelled ``label``; the same bytes for the
    same files, label and epoch."""
    mformat, mcopy = _tool("mformat"), _tool("mcopy")
    stamp = int(epoch)
    # mtools' own configuration files are the user's: none is read (MTOOLSRC), and the image
    # is a plain file, not a drive letter to check geometry against (MTOOLS_SKIP_CHECK).
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SOURCE_DATE_EPOCH": str(stamp),
        "MTOOLSRC": os.devnull,
        "MTOOLS_SKIP_CHECK": "1",
        "LC_ALL": "C",
        "TZ": "UTC",
    }
    with tempfile.TemporaryDirectory(prefix="isobuild-fat-") as tmp:
        root, image = Path(tmp) / "drive", Path(tmp) / "drive.img"
        for rel, content in files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        for path in (root, *root.rglob("*")):
            os.utime(path, (stamp, stamp))
        with image.open("wb") as f:
            f.truncate(size_for(files))
        top = sorted(str(p) for p in root.iterdir())
        for command in (
            [mformat, "-i", str(image), "-N", volume_serial(files), "-v", label.upper(), "::"],
            [mcopy, "-i", str(image), "-s", "-m", "-D", "o", *top, "::"],
        ):
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
                raise IsobuildError(f"{Path(command[0]).name} failed: {detail[0][:200]}", hint=INSTALL_HINT)
        return image.read_bytes()
