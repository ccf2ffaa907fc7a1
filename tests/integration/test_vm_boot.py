"""Real boots (slow): a Debian 12 guest under QEMU's TCG, no network, provisions itself from what
isobuild wrote, and its disk is read after it powers off. A config-2 ISO and a NoCloud ISO as
CD-ROMs, booted two at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from isobuilder import configdrive
from tests.guest import Booted, boot, guest_image
from tests.helpers import CONFIG_2_USER_DATA, NOCLOUD_USER_DATA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Booted]]]:
    """Two workers of one cluster, one per medium, each booted once from its ISO."""
    from isobuilder.cli import main

    tmp = tmp_path_factory.mktemp("vm")
    inv = tmp / "inventory"
    for args in (
        ("node", "ctrl", "10.20.0.1"),
        ("node", "w-config2", "10.20.0.2", "--master", "ctrl"),
        ("node", "w-nocloud", "10.20.0.3", "--master", "ctrl", "--media", "nocloud"),
    ):
        assert main(["-q", "--inventory", str(inv), *args]) == 0
    image = guest_image()
    names = ("w-config2", "w-nocloud")
    with ThreadPoolExecutor(max_workers=2) as pool:
        boots = list(pool.map(lambda n: boot(image, tmp / n, cdrom=inv / f"node-{n}" / "config.iso"), names))
    yield {n: (inv / f"node-{n}", b) for n, b in zip(names, boots, strict=True)}


def _write_files(folder: Path, user_data: str) -> list[dict[str, str]]:
    config = yaml.safe_load((folder / user_data).read_text())
    return [f for f in config["write_files"] if not f.get("append")]


@pytest.mark.parametrize(
    ("name", "user_data", "datasource"),
    [("w-config2", CONFIG_2_USER_DATA, "DataSourceConfigDrive"), ("w-nocloud", NOCLOUD_USER_DATA, "DataSourceNoCloud")],
)
def test_a_worker_provisions_itself_from_its_iso(
    booted: dict[str, tuple[Path, Booted]], name: str, user_data: str, datasource: str
) -> None:
    folder, vm = booted[name]
    meta = configdrive.drive_files((folder / "config.iso").read_bytes())
    assert meta is not None
    assert (vm.read("/etc/hostname") or b"").strip() == name.encode(), vm.console[-3000:]
    status = json.loads(vm.read("/var/lib/cloud/data/status.json") or b"{}")
    assert datasource in json.dumps(status), status
    assert not status["v1"]["modules-final"]["errors"], status
    for entry in _write_files(folder, user_data):  # every file, with its content, mode and owner
        path = entry["path"]
        assert vm.read(path) == entry["content"].encode(), path
        assert vm.stat(path) == (int(entry["permissions"], 8), 0, 0), path
    log = (vm.read("/var/log/isobuild-install.log") or b"").decode()
    assert f"setting up worker {name} " in log and ": try 1" in log, log  # the install unit ran
    assert "download.docker.com" in log, log  # it got through swap, modules and sysctls to the packages
    assert "ERROR:" in log and "failed with status" in log, log  # no network: the try fails, and says why
    assert vm.read("/var/lib/isobuild/install.done") is None  # not done: the unit tries again in 30 s


def test_a_worker_s_disk_holds_no_ca_key(booted: dict[str, tuple[Path, Booted]]) -> None:
    _, vm = booted["w-config2"]
    assert vm.listing("/etc/kubernetes/pki") == ["ca.crt"]
    assert vm.stat("/var/lib/kubelet/pki/kubelet.key") == (0o600, 0, 0)
