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


# FAT's dates run from 1980 to 2107; mtools wraps others around.
EARLIEST, LATEST = 315532800, 4354819199
FORBIDDEN = set('"*/:<>?\\|') | {chr(c) for c in range(32)}  # in a long file name (VFAT)
SCRATCH = "isobuild-fat-"


def refusal(files: Mapping[str, bytes], epoch: float) -> str | None:
    """Why these files cannot go on a FAT drive as they are, or None."""
    if not EARLIEST <= epoch <= LATEST:
        return f"SOURCE_DATE_EPOCH {int(epoch)} is outside FAT's dates (1980 to 2107)"
    seen: dict[str, str] = {}
    for path in sorted(files):
        for depth, part in enumerate(path.split("/"), start=1):
            if FORBIDDEN & set(part) or part.endswith((".", " ")):
                return f"{path!r}: FAT cannot hold the name {part!r}"
            key = "/".join(path.split("/")[:depth]).casefold()
            other = seen.setdefault(key, "/".join(path.split("/")[:depth]))
            if other != "/".join(path.split("/")[:depth]):
                return f"{path!r} and {other!r} differ only in case: FAT keeps one"
    return None


def _clean_scratch() -> None:
    """Scratch folders of runs that were killed (they hold a node's keys): ``isobuild-fat-PID-*``
    whose process is gone."""
    for stale in Path(tempfile.gettempdir()).glob(f"{SCRATCH}*"):
        pid = stale.name[len(SCRATCH) :].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            continue


def build_fat(files: Mapping[str, bytes], label: str, epoch: float) -> bytes:
    """A FAT image holding ``files`` (drive paths), labelled ``label``; the same bytes for the
    same files, label and epoch. Read back with mtools before it is returned."""
    refused = refusal(files, epoch)
    if refused:
        raise IsobuildError(refused, hint="write the ISO instead (without --fat)")
    mformat, mcopy = _tool("mformat"), _tool("mcopy")
    _clean_scratch()
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
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH}{os.getpid()}-") as tmp:  # 0700
        root, image = Path(tmp) / "drive", Path(tmp) / "drive.img"
        for rel, content in files.items():
            target = root / rel
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
        for path in (root, *root.rglob("*")):
            os.utime(path, (stamp, stamp))
        with image.open("wb") as f:
            f.truncate(size_for(files))
        top = sorted(str(p) for p in root.iterdir())
        back = Path(tmp) / "back"
        back.mkdir(mode=0o700)
        for command in (
            [mformat, "-i", str(image), "-N", volume_serial(files), "-v", label.upper(), "::"],
            [mcopy, "-i", str(image), "-s", "-m", "-D", "o", *top, "::"],
            [mcopy, "-i", str(image), "-s", "-n", "::/*", str(back)],  # as another machine reads it
        ):
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
                raise IsobuildError(f"{Path(command[0]).name} failed: {detail[0][:200]}", hint=INSTALL_HINT)
        read = {p.relative_to(back).as_posix(): p.read_bytes() for p in back.rglob("*") if p.is_file()}
        if read != dict(files):
            raise IsobuildError("the FAT drive does not hold the node's files", hint="write the ISO (without --fat)")
        return image.read_bytes()
