"""Config-drive ISO images (OpenStack ``config-2``, cloud-init NoCloud ``cidata``), in memory.

Pure: a mapping of paths to bytes and a timestamp in, ISO bytes out. ISO9660 + Rock Ridge
(the names and modes Linux shows when it mounts the drive) + Joliet (what Windows-based
hypervisor tooling shows).
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from collections.abc import Iterator, Mapping
from time import gmtime, struct_time
from typing import Any

FILE_MODE = 0o100400  # the drive carries private keys: readable by root only once mounted
DIR_MODE = 0o040500

_clock_lock = threading.Lock()


class _FrozenClock:
    """Stands in for the ``time`` module inside pycdlib while an image is built.

    pycdlib stamps every directory record and volume descriptor with ``time.time()``
    (and the local timezone); with a fixed epoch rendered in UTC, the same files give
    the same bytes (https://reproducible-builds.org/specs/source-date-epoch/).
    """

    def __init__(self, epoch: float) -> None:
        self._epoch = epoch

    def time(self) -> float:
        return self._epoch

    def localtime(self, secs: float | None = None) -> struct_time:
        return gmtime(self._epoch if secs is None else secs)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def _frozen_time(epoch: float) -> Iterator[None]:
    import pycdlib.dates
    import pycdlib.headervd
    import pycdlib.pycdlib
    import pycdlib.udf
    import pycdlib.utils

    modules = [pycdlib.dates, pycdlib.headervd, pycdlib.pycdlib, pycdlib.udf, pycdlib.utils]
    with _clock_lock:
        saved = [m.time for m in modules]
        try:
            for m in modules:
                m.time = _FrozenClock(epoch)  # type: ignore[attr-defined]
            yield
        finally:
            for m, original in zip(modules, saved, strict=True):
                m.time = original  # type: ignore[attr-defined]


def _d_chars(text: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", text.upper())


def _iso_component(name: str, *, is_dir: bool, taken: set[str]) -> str:
    """An ISO9660 level-3 name (d-characters, <= 30 chars) for ``name``; Rock Ridge keeps the real one."""
    stem, dot, ext = name.rpartition(".") if not is_dir and "." in name.strip(".") else (name, "", "")
    stem, ext = _d_chars(stem)[: 30 - min(len(ext), 3) - 1], _d_chars(ext)[:3]
    for n in range(1000):
        base = stem if n == 0 else f"{stem[: 30 - 8]}_{n}"
        candidate = base if is_dir or not dot else f"{base}.{ext}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate
    raise ValueError(f"too many names alike {name!r}")  # pragma: no cover - 1000 clashes in one folder


def build_iso(files: Mapping[str, bytes], label: str, epoch: float) -> bytes:
    """An ISO holding ``files`` (relative POSIX paths), stamped with ``epoch``, in memory."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso_names: dict[str, str] = {"": ""}
    taken: dict[str, set[str]] = {}
    with _frozen_time(epoch):
        iso.new(interchange_level=3, vol_ident=label, rock_ridge="1.09", joliet=3, sys_ident="LINUX")
        for path in sorted(files):
            parts = path.split("/")
            for depth in range(1, len(parts) + 1):
                sub = "/".join(parts[:depth])
                if sub in iso_names:
                    continue
                parent = "/".join(parts[: depth - 1])
                is_dir = depth < len(parts)
                name = _iso_component(parts[depth - 1], is_dir=is_dir, taken=taken.setdefault(parent, set()))
                iso_path = f"{iso_names[parent]}/{name}"
                iso_names[sub] = iso_path
                joliet = "/" + sub
                if is_dir:
                    iso.add_directory(iso_path, rr_name=parts[depth - 1], joliet_path=joliet, file_mode=DIR_MODE)
                else:
                    data = files[path]
                    iso.add_fp(
                        io.BytesIO(data), len(data), iso_path + ";1",
                        rr_name=parts[-1], joliet_path=joliet, file_mode=FILE_MODE,
                    )  # fmt: skip
        out = io.BytesIO()
        iso.write_fp(out)
        iso.close()
    return out.getvalue()


def read_iso(data: bytes) -> tuple[str, dict[str, bytes]]:
    """The volume label and the files (Rock Ridge names) of an ISO built by :func:`build_iso`."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        label = iso.pvd.volume_identifier.decode().rstrip()
        files: dict[str, bytes] = {}
        for root, _dirs, names in iso.walk(rr_path="/"):
            for name in names:
                path = f"{root.rstrip('/')}/{name}"
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, rr_path=path)
                files[path.lstrip("/")] = out.getvalue()
    finally:
        iso.close()
    return label, files


def declared_size(data: bytes) -> int:
    """The size an ISO 9660 image says it has: its primary volume descriptor's volume space size
    (both-endian, little first, at byte 80) times its logical block size (at 128), ECMA-119 8.4."""
    pvd = data[16 * 2048 : 17 * 2048]
    if len(pvd) < 2048 or pvd[1:6] != b"CD001":
        return -1
    return int.from_bytes(pvd[80:84], "little") * int.from_bytes(pvd[128:130], "little")


def image_problem(data: bytes, label: str) -> str | None:
    """What is wrong with a config drive image beside its files: its volume label (cloud-init
    and Ignition find the drive by it), or bytes after the last block its volume declares."""
    read = read_drive(data)
    return "unreadable" if read is None else label_problem(data, read[0], label)


def label_problem(data: bytes, found: str, label: str) -> str | None:
    """:func:`image_problem` for an image already read (``found``: its label)."""
    if found != label:
        return f"labelled {found!r}, not {label}"
    size = declared_size(data)
    return None if size == len(data) else f"{len(data)} bytes, where its volume declares {size}"


def read_drive(data: bytes | None) -> tuple[str, dict[str, bytes]] | None:
    """The label and files of a config drive image; None when there is none or it is not one we
    can read."""
    from pycdlib.pycdlibexception import PyCdlibException

    if not data:
        return None
    try:
        return read_iso(data)
    except (PyCdlibException, UnicodeDecodeError, ValueError, OSError):
        return None


def drive_files(data: bytes | None) -> dict[str, bytes] | None:
    """The files on a config drive image; None when there is none or it is not one we can read
    (then: rebuild it)."""
    read = read_drive(data)
    return read[1] if read else None
