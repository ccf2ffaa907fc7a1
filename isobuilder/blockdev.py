"""Block devices and image files a node's medium is written to (``isobuild usb``).

What a device is, read from Linux's sysfs (``/sys/dev/block/MAJ:MIN``) and the kernel's own
tables (``/proc/self/mountinfo``, ``/proc/swaps``): its size, whether it is removable or on a
USB bus, its model, what of it is mounted or built upon (device-mapper, RAID), and whether it
holds the running system. :func:`refusal` is the one rule of what may be written. :func:`write`
opens a device exclusively (``O_EXCL``: the kernel refuses it while anything has it mounted or
claimed), writes, syncs, drops the page cache and reads back, so the SHA-256 compared is of what
the device holds, not of what the kernel still remembers writing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import shlex
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from isobuilder.errors import IsobuildError

SYS_BLOCK = Path("/sys/block")
CHUNK = 1 << 20  # written and read back a MiB at a time: progress, and bounded memory
TAIL = 1 << 20  # the device's last MiB is zeroed: a backup GPT or a RAID superblock left there
# would make blkid, udev or the kernel see another partition table or array on the stick
NOT_STICKS = ("loop", "ram", "zram", "sr", "dm-", "md", "nbd", "fd")  # never offered by --list
Progress = Callable[[int, int], None]  # bytes done, bytes in all


@dataclasses.dataclass(frozen=True)
class Device:
    """A whole disk (never a partition), as the kernel sees it."""

    path: Path
    name: str  # sdb, mmcblk0, loop3
    size: int  # bytes
    removable: bool  # the kernel's removable flag, or attached over USB
    transport: str  # "usb", "mmc", or "" (unknown)
    model: str
    mounted: tuple[str, ...]  # mount points of it and its partitions, and swap on it
    holders: tuple[str, ...]  # device-mapper, RAID or other devices built on it
    system: bool  # holds the running system's root filesystem

    def describe(self) -> str:
        return f"{self.path} ({human(self.size)}{', ' + self.model if self.model else ''})"


def human(size: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _dev_number(text: str) -> tuple[int, int] | None:
    major, _, minor = text.partition(":")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None


def _mounts() -> dict[tuple[int, int], list[str]]:
    """Mount points by the device number they are mounted from, swap included."""
    found: dict[tuple[int, int], list[str]] = {}
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        fields = line.split()
        number = _dev_number(fields[2]) if len(fields) > 4 else None
        if number is not None:
            found.setdefault(number, []).append(fields[4].replace("\\040", " "))
    for line in _read(Path("/proc/swaps")).splitlines()[1:]:
        with contextlib.suppress(OSError, IndexError):
            st = os.stat(line.split()[0])
            if stat.S_ISBLK(st.st_mode):
                found.setdefault((os.major(st.st_rdev), os.minor(st.st_rdev)), []).append("[swap]")
    return found


def _loop_backings() -> list[tuple[str, tuple[int, int]]]:
    """Loop devices whose backing file is a block device, with its number: the kernel lists a
    loop device on top of a disk in neither holders nor an exclusive claim."""
    found = []
    with contextlib.suppress(OSError):
        for loop in sorted(SYS_BLOCK.glob("loop*")):
            backing = _read(loop / "loop" / "backing_file")
            with contextlib.suppress(OSError):
                st = os.stat(backing) if backing else None
                if st is not None and stat.S_ISBLK(st.st_mode):
                    found.append((loop.name, (os.major(st.st_rdev), os.minor(st.st_rdev))))
    return found


def _root_number() -> tuple[int, int] | None:
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/":
            return _dev_number(fields[2])
    return None


def _parts(sysdir: Path) -> Iterator[Path]:
    """The disk's own sysfs folder, then its partitions'."""
    yield sysdir
    for child in sorted(sysdir.iterdir()):
        if (child / "partition").is_file():
            yield child


def _of_sysdir(sysdir: Path, path: Path) -> Device:
    mounts = _mounts()
    root = _root_number()
    mounted: list[str] = []
    holders: list[str] = []
    system = False
    loops = _loop_backings()
    for part in _parts(sysdir):
        number = _dev_number(_read(part / "dev"))
        mounted += mounts.get(number, []) if number else []
        system = system or (number is not None and number == root)
        with contextlib.suppress(OSError):
            holders += sorted(h.name for h in (part / "holders").iterdir())
        holders += [loop for loop, backing in loops if number is not None and backing == number]
    device_link = _resolved(sysdir / "device")
    transport = "usb" if "/usb" in device_link else "mmc" if "/mmc" in device_link else ""
    model = " ".join(w for w in (_read(sysdir / "device/vendor"), _read(sysdir / "device/model")) if w)
    sectors = _read(sysdir / "size")
    return Device(
        path,
        sysdir.name,
        int(sectors) * 512 if sectors.isdigit() else 0,  # sysfs counts 512-byte sectors, whatever the device's
        _read(sysdir / "removable") == "1" or transport == "usb",
        transport,
        model,
        tuple(mounted),
        tuple(holders),
        system or _holds_root_through(sysdir, root),
    )


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return ""


def _holds_root_through(sysdir: Path, root: tuple[int, int] | None) -> bool:
    """The root filesystem on a device built on this one (LVM, dm-crypt, RAID), at any depth."""
    if root is None:
        return False
    seen: set[str] = set()
    todo = [h for part in _parts(sysdir) for h in _children(part / "holders")]
    while todo:
        holder = todo.pop()
        if holder.name in seen:
            continue
        seen.add(holder.name)
        if _dev_number(_read(holder / "dev")) == root:
            return True
        todo += _children(holder / "holders")
    return False


def _children(folder: Path) -> list[Path]:
    try:
        return [p.resolve() for p in folder.iterdir()]
    except OSError:
        return []


def inspect(path: Path) -> Device:
    """The whole disk at ``path`` (a block device node); a partition is refused."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise IsobuildError(f"cannot read {path}: {exc.strerror}", hint="give a device, e.g. /dev/sdb") from None
    sysdir = Path(f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")
    real = Path(_resolved(sysdir))
    if not real.name or not real.is_dir():
        raise IsobuildError(f"{path}: the kernel does not list this device", hint="see isobuild usb --list")
    if (real / "partition").is_file():
        disk = real.parent.name
        raise IsobuildError(
            f"{path} is a partition of {disk}",
            hint=f"give the whole device (/dev/{disk}): the config drive is the stick's whole content",
        )
    return _of_sysdir(real, path)


def candidates() -> list[Device]:
    """Disks a node's medium may go to: removable or on USB, with a size, not the system's."""
    found = []
    with contextlib.suppress(OSError):
        for sysdir in sorted(SYS_BLOCK.iterdir()):
            if sysdir.name.startswith(NOT_STICKS):
                continue
            device = _of_sysdir(sysdir.resolve(), Path("/dev") / sysdir.name)
            if device.removable and device.size > 0 and not device.system:
                found.append(device)
    return found


def refusal(device: Device, size: int, *, force: bool) -> IsobuildError | None:
    """Why ``device`` must not take an image of ``size`` bytes, or None. ``force`` overrides the
    removable check only: nothing overrides the running system, a mount, or a short device."""
    where = device.describe()
    if device.system:
        return IsobuildError(f"{where} holds the running system", hint="give the stick's device: isobuild usb --list")
    if device.mounted:
        mounts = [m for m in device.mounted if m != "[swap]"]
        steps = [f"umount {shlex.join(mounts)}"] * bool(mounts) + ["swapoff its swap"] * (
            len(mounts) < len(device.mounted)
        )
        return IsobuildError(
            f"{where} is in use: mounted at {', '.join(device.mounted)}", hint=f"unmount it first ({'; '.join(steps)})"
        )
    if device.holders:
        return IsobuildError(
            f"{where} is in use by {', '.join(device.holders)} (device-mapper, LVM, RAID or a loop device)",
            hint="stop what uses it first (dmsetup ls, lsblk)",
        )
    if device.size < size:
        return IsobuildError(f"{where} is smaller than the image ({human(size)})", hint="use a larger stick")
    if not device.removable and not force:
        return IsobuildError(
            f"{where} is not a removable device",
            hint="check it is the stick (isobuild usb --list); a disk you mean to overwrite takes --force",
        )
    return None


def is_block_device(path: Path) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def write(path: Path, data: bytes, *, size: int, progress: Progress = lambda done, total: None) -> str:
    """Write ``data`` at the start of block device ``path`` (``size`` bytes; its last MiB is
    zeroed), sync, drop the cached pages and read back; returns the SHA-256 read back. Raises
    when the device holds something else than what was written."""
    tail = min(TAIL, size - len(data)) if size > len(data) else 0
    total = len(data) + tail
    try:
        fd = os.open(path, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        hint = "it is in use (mounted, or claimed by another program)" if exc.errno == errno.EBUSY else "run as root"
        raise IsobuildError(f"cannot open {path} for writing: {exc.strerror}", hint=hint) from None
    try:
        done = 0
        for start in range(0, len(data), CHUNK):
            done += _write_at(fd, data[start : start + CHUNK], start)
            progress(done, total)
        if tail:
            done += _write_at(fd, bytes(tail), size - tail)
        os.fsync(fd)
        progress(total, total)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # the read-back comes from the device
    except OSError as exc:
        raise IsobuildError(f"writing {path} failed: {exc.strerror}", hint="check the stick, then run again") from None
    finally:
        os.close(fd)
    return read_back(path, len(data), expected=hashlib.sha256(data).hexdigest())


def _write_at(fd: int, chunk: bytes, offset: int) -> int:
    view = memoryview(chunk)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
    return len(chunk)


def read_back(path: Path, length: int, *, expected: str) -> str:
    """The SHA-256 of the first ``length`` bytes of ``path``; raises unless it is ``expected``."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            left = length
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
    except OSError as exc:
        raise IsobuildError(f"reading {path} back failed: {exc.strerror}", hint="check the stick") from None
    if digest.hexdigest() != expected:
        raise IsobuildError(
            f"{path} does not hold what was written (SHA-256 {digest.hexdigest()[:16]}…, expected {expected[:16]}…)",
            hint="the stick may be failing or fake-sized: try another",
        )
    return expected
