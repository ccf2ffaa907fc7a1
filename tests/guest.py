"""The slow suite's VMs: a Debian 12 guest (scripts/guest-image.sh, cached outside the clone),
booted under QEMU's TCG (no KVM: nested KVM hangs the guest kernel here) with a node's medium
attached and no network; its disk read after it powers itself off, with e2fsprogs' debugfs (no
mount, no root needed for reading)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import socket
import subprocess
import time
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


# systemd prints this once its generators (cloud-init's, which runs ds-identify) have run.
AFTER_GENERATORS = "Queued start job for default target"
STICK = "usb-storage,id=stickdev,drive=stick,removable=on"


def boot(
    image: Path,
    work: Path,
    *,
    cdrom: Path | None = None,
    usb: Path | None = None,
    usb_late: bool = False,
    nics: Sequence[str] = (),
    kernel_args: Sequence[str] = (),
    disks: Sequence[Path] = (),
) -> Booted:
    """A fresh copy of the guest, booted once with the medium attached (a CD-ROM, or a USB stick);
    ``usb_late``: the stick is plugged in once systemd has run its generators, as a stick the
    kernel enumerates after them; ``nics``: the MACs of virtio NICs, each on a QEMU hub of its
    own with nothing else on it (no traffic leaves the VM); ``kernel_args``: added to the kernel
    command line; ``disks``: more virtio disks, read-only (vdb, ...). Returns when the guest has
    powered itself off."""
    qemu = require_tool("qemu-system-x86_64")
    work.mkdir(parents=True, exist_ok=True)
    disk = work / "disk.img"
    shutil.copyfile(image / "rootfs.img", disk)
    console = work / "console.log"
    monitor = work / "monitor.sock"
    append = " ".join(("root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=false", *kernel_args))
    command = [
        qemu, "-machine", "q35", "-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none",
        "-monitor", f"unix:{monitor},server=on,wait=off" if usb_late else "none",
        "-serial", f"file:{console}", "-no-reboot", "-nic", "none",
        "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"), "-append", append,
        "-drive", f"file={disk},if=virtio,format=raw",
    ]  # fmt: skip
    for extra in disks:
        command += ["-drive", f"file={extra},if=virtio,format=raw,readonly=on"]
    for i, mac in enumerate(nics):
        command += ["-netdev", f"hubport,id=nic{i},hubid={i}", "-device", f"virtio-net-pci,netdev=nic{i},mac={mac}"]
    if cdrom is not None:
        command += ["-drive", f"file={cdrom},media=cdrom,readonly=on"]
    if usb is not None:
        command += ["-device", "qemu-xhci", "-drive", f"if=none,id=stick,file={usb},format=raw"]
        command += [] if usb_late else ["-device", STICK]
    deadline = time.monotonic() + BOOT_TIMEOUT
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        try:
            if usb_late:
                _plug_when(console, monitor, proc, deadline)
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the guest did not power off within {BOOT_TIMEOUT} s; console:\n{_tail(console)}")
    assert proc.returncode == 0, err.decode(errors="replace")
    return Booted(disk, console.read_text(errors="replace"))


def _tail(console: Path) -> str:
    return console.read_text(errors="replace")[-4000:] if console.exists() else ""


def _plug_when(console: Path, monitor: Path, proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Plug the stick in (QEMU's monitor: device_add) once the console shows AFTER_GENERATORS."""
    while AFTER_GENERATORS not in (console.read_text(errors="replace") if console.exists() else ""):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the guest never reached systemd's generators; console:\n{_tail(console)}")
        time.sleep(0.2)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(monitor))
        sock.sendall(f"device_add {STICK}\n".encode())
        time.sleep(1)  # the monitor answers with its prompt; nothing to read from it


# What `python3 -m isobuilder` imports, copied from this venv onto a disk the guest mounts
# (Debian 12's Python is 3.11 too, and these wheels are manylinux for glibc <= 2.36).
RUNTIME = ("_cffi_backend", "annotated_doc", "cryptography", "jinja2", "markupsafe", "netaddr", "pycdlib",
           "shellingham", "typer", "yaml")  # fmt: skip


def tools_disk(work: Path, inventory: Path) -> Path:
    """An ext4 image with isobuild and its runtime (``site/``) and a copy of ``inventory``
    (``inventory/``), for the guest to run `isobuild` on (mkfs.ext4 -d: no root, no mount)."""
    import sysconfig

    root = work / "tools"
    (root / "site").mkdir(parents=True)
    packages = Path(sysconfig.get_paths()["purelib"])
    for name in RUNTIME:
        for found in (*packages.glob(name), *packages.glob(f"{name}.*.so")):
            copy = shutil.copytree if found.is_dir() else shutil.copy2
            copy(found, root / "site" / found.name)
    shutil.copytree(ROOT / "isobuilder", root / "site" / "isobuilder", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(inventory, root / "inventory", symlinks=True)
    image = work / "tools.img"
    subprocess.run(
        [require_tool("mkfs.ext4"), "-q", "-F", "-d", str(root), str(image), "512M"], check=True, timeout=300
    )
    return image
