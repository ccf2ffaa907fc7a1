"""Ignition spec 3.3.0 configs, translated from a small Butane-like description. Pure.

``render`` describes a node the way a Butane config would (files with their bytes and
integer modes, systemd units, the ``core`` user's keys); :func:`translate` turns that
into Ignition JSON the way Butane does: contents as data URLs (gzip + base64 when shorter),
owners as numeric ids, every file overwriting what the image ships.
"""

from __future__ import annotations

import base64
import gzip
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from isobuilder import serialize
from isobuilder.files import File

SPEC_VERSION = "3.3.0"  # accepted by Flatcar (>= 3185) and Fedora CoreOS, and by Debian 12's ignition-validate
ROOT = {"id": 0}
HOSTNAME = "/etc/hostname"


class Unit(NamedTuple):
    """A systemd unit in an Ignition config: its contents, or a drop-in for one the OS ships."""

    name: str
    contents: str | None = None  # None: a unit the OS ships (e.g. containerd.service)
    enabled: bool | None = None
    dropins: tuple[tuple[str, str], ...] = ()  # (name, contents)


class Butane(NamedTuple):
    """What a node gets, in Butane's terms (variant flatcar)."""

    hostname: str
    ssh_keys: Sequence[str]
    files: Mapping[str, File]  # path on the node -> file
    units: Sequence[Unit]
    user: str = "core"  # Flatcar's and Fedora CoreOS' login user


def data_url(content: bytes) -> dict[str, Any]:
    """Ignition ``contents``: a data URL, gzip-compressed when that is shorter (as Butane does)."""
    plain = "data:," + urllib.parse.quote(content, safe="")
    packed = "data:;base64," + base64.b64encode(gzip.compress(content, compresslevel=9, mtime=0)).decode()
    if len(packed) < len(plain):
        return {"compression": "gzip", "source": packed}
    return {"source": plain}


def read_contents(contents: dict[str, Any]) -> bytes | None:
    """The bytes behind a ``contents`` (or ``append``) entry: the inverse of :func:`data_url`.
    None for a remote source, which Ignition fetches at boot and we cannot see."""
    source = contents.get("source") or ""
    if not source.startswith("data:"):
        return None
    header, _, payload = source[5:].partition(",")
    raw = base64.b64decode(payload) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
    return gzip.decompress(raw) if contents.get("compression") == "gzip" else raw


def translate(spec: Butane) -> dict[str, Any]:
    if HOSTNAME in spec.files:
        raise ValueError(f"{HOSTNAME} comes from the hostname")  # a programming error, not a user one
    files = {**spec.files, HOSTNAME: File(spec.hostname.encode() + b"\n", 0o644)}
    config: dict[str, Any] = {
        "ignition": {"version": SPEC_VERSION},
        "passwd": {"users": [{"name": spec.user, "sshAuthorizedKeys": list(spec.ssh_keys)}]},
        "storage": {
            "files": [
                {
                    "path": path,
                    "mode": f.mode,  # an integer: Ignition's JSON has no octal
                    "overwrite": True,
                    "user": ROOT,
                    "group": ROOT,
                    "contents": data_url(f.content),
                }
                for path, f in sorted(files.items())
            ]
        },
        "systemd": {"units": [_unit(u) for u in sorted(spec.units, key=lambda u: u.name)]},
    }
    if not spec.ssh_keys:
        del config["passwd"]
    return config


def _unit(unit: Unit) -> dict[str, Any]:
    out: dict[str, Any] = {"name": unit.name}
    if unit.enabled is not None:
        out["enabled"] = unit.enabled
    if unit.contents is not None:
        out["contents"] = unit.contents
    if unit.dropins:
        out["dropins"] = [{"name": name, "contents": contents} for name, contents in unit.dropins]
    return out


def dumps(config: dict[str, Any]) -> bytes:
    """Stable, readable JSON (sorted keys): same node, same bytes."""
    return serialize.json_bytes(config)
