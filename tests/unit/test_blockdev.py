"""What may be written to a device (blockdev.refusal): pure, on Device values. The devices
themselves are read from the kernel in tests/integration/test_usb.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from isobuilder import blockdev

STICK = blockdev.Device(Path("/dev/sdb"), "sdb", 16 * 10**9, True, "usb", "SanDisk Ultra", (), (), False)


def _why(device: blockdev.Device, size: int = 1 << 20, *, force: bool = False) -> str | None:
    refused = blockdev.refusal(device, size, force=force)
    return refused.message if refused else None


def test_a_removable_stick_large_enough_is_written() -> None:
    assert _why(STICK) is None
    assert _why(STICK, STICK.size) is None


def test_force_overrides_the_removable_check_alone() -> None:
    disk = dataclasses.replace(STICK, removable=False, transport="", model="")
    assert _why(disk) == "/dev/sdb (16.0 GB) is not a removable device"
    assert _why(disk, force=True) is None
    for other in (
        dataclasses.replace(disk, system=True),
        dataclasses.replace(disk, mounted=("/media/stick",)),
        dataclasses.replace(disk, holders=("dm-0",)),
        dataclasses.replace(disk, size=1000),
    ):
        assert _why(other, force=True) is not None, other


def test_the_first_reason_is_the_gravest() -> None:
    everything = dataclasses.replace(STICK, system=True, mounted=("/",), holders=("dm-0",), size=10, removable=False)
    assert _why(everything) == "/dev/sdb (10 bytes, SanDisk Ultra) holds the running system"
    assert _why(dataclasses.replace(everything, system=False)) == (
        "/dev/sdb (10 bytes, SanDisk Ultra) is in use: mounted at /"
    )
    assert _why(dataclasses.replace(STICK, holders=("md0", "dm-1"))) == (
        "/dev/sdb (16.0 GB, SanDisk Ultra) is in use by md0, dm-1 (device-mapper, LVM, RAID or a loop device)"
    )
    assert _why(dataclasses.replace(STICK, size=4096), 8192) == (
        "/dev/sdb (4.1 kB, SanDisk Ultra) is smaller than the image (8.2 kB)"
    )


def test_swap_is_named_but_not_offered_to_umount() -> None:
    refused = blockdev.refusal(dataclasses.replace(STICK, mounted=("[swap]",)), 1, force=False)
    assert refused is not None and refused.hint == "unmount it first (swapoff its swap)"


def test_human_sizes() -> None:
    assert [blockdev.human(n) for n in (512, 90112, 64 << 20, 16 * 10**9, 2 * 10**12)] == [
        "512 bytes", "90.1 kB", "67.1 MB", "16.0 GB", "2.0 TB",
    ]  # fmt: skip
