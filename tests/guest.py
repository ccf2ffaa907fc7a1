"""The slow suite's VMs: a Debian 12 guest (scripts/guest-image.sh, cached outside the clone),
booted under QEMU's TCG (no KVM: nested KVM hangs the guest kernel here) with a node's medium
attached and no network; its disk read after it powers itself off, with e2fsprogs' debugfs (no
mount, no root needed for reading)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parent.parent
BOOT_TIMEOUT = 600  # seconds; a boot takes about 60-90 s on 2 cores under TCG


def cache_dir() -> Path:
    return Path(os.environ.get("ISOBUILD_TEST_CACHE") or Path.home() / ".cache" / "isobuild-test")


def guest_image() -> Path:
    """The folder with rootfs.img, vmlinuz and initrd.img (built on first use: about a minute)."""
    for tool in ("debootstrap", "mkfs.ext4", "debugfs"):
        require_tool(tool)
    if os.geteuid() != 0:
        pytest.fail("building the guest image needs root (debootstrap): run ./scripts/test-slow.sh as root")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/guest-image.sh"), str(cache_dir())], capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


@dataclasses.dataclass(frozen=True)
class Booted:
    disk: Path
    console: str

    def read(self, path: str) -> bytes | None:
        """A file of the guest's disk (symbolic links followed by debugfs), None when absent."""
        result = subprocess.run(
            [require_tool("debugfs"), "-R", f"cat {path}", str(self.disk)], capture_output=True, timeout=60
        )
        if result.returncode != 0 or b"File not found" in result.stderr:
            return None
        return result.stdout

    def stat(self, path: str) -> tuple[int, int, int] | None:
        """(mode bits, uid, gid) of a path on the guest's disk."""
        result = subprocess.run(
            [require_tool("debugfs"), "-R", f"stat {path}", str(self.disk)], capture_output=True, text=True, timeout=60
        )
        mode = re.search(r"Mode:\s+(\d+)", result.stdout)
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", result.stdout)
        if not mode or not owner:
            return None
        return int(mode.group(1), 8) & 0o7777, int(owner.group(1)), int(owner.group(2))

    def listing(self, folder: str) -> list[str]:
        result = subprocess.run(
            [require_tool("debugfs"), "-R", f"ls -p {folder}", str(self.disk)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return [
            f.split("/")[5]
            for f in result.stdout.splitlines()
            if f.count("/") >= 6 and f.split("/")[5] not in (".", "..")
        ]


def boot(
    image: Path, work: Path, *, cdrom: Path | None = None, usb: Path | None = None, nics: Sequence[str] = ()
) -> Booted:
    """A fresh copy of the guest, booted once with the medium attached (a CD-ROM, or a USB stick);
    ``nics``: the MACs of virtio NICs, each on a QEMU hub of its own with nothing else on it (no
    traffic leaves the VM); returns when the guest has powered itself off."""
    qemu = require_tool("qemu-system-x86_64")
    work.mkdir(parents=True, exist_ok=True)
    disk = work / "disk.img"
    shutil.copyfile(image / "rootfs.img", disk)
    console = work / "console.log"
    append = "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=false"
    command = [
        qemu, "-machine", "q35", "-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none",
        "-monitor", "none", "-serial", f"file:{console}", "-no-reboot", "-nic", "none",
        "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"), "-append", append,
        "-drive", f"file={disk},if=virtio,format=raw",
    ]  # fmt: skip
    for i, mac in enumerate(nics):
        command += ["-netdev", f"hubport,id=nic{i},hubid={i}", "-device", f"virtio-net-pci,netdev=nic{i},mac={mac}"]
    if cdrom is not None:
        command += ["-drive", f"file={cdrom},media=cdrom,readonly=on"]
    if usb is not None:
        command += ["-device", "qemu-xhci", "-drive", f"if=none,id=stick,file={usb},format=raw",
                    "-device", "usb-storage,drive=stick,removable=on"]  # fmt: skip
    try:
        subprocess.run(command, check=True, timeout=BOOT_TIMEOUT, capture_output=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the guest did not power off within {BOOT_TIMEOUT} s; console:\n{console.read_text()[-4000:]}")
    return Booted(disk, console.read_text(errors="replace"))
