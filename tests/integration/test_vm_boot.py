"""Real boots (slow): a Debian 12 guest under QEMU's TCG, no network, provisions itself from what
isobuild wrote, and its disk is read after it powers off. A config-2 ISO and a NoCloud ISO as
CD-ROMs, a static worker with two NICs, and a controller; two at a time."""

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
STATIC_MAC, OTHER_MAC = "52:54:00:12:34:56", "52:54:00:65:43:21"


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Booted]]]:
    """Workers of one cluster (one per medium, one with a static address and two NICs) and its
    controller, each booted once from its ISO."""
    from isobuilder.cli import main

    tmp = tmp_path_factory.mktemp("vm")
    inv = tmp / "inventory"
    for args in (
        ("node", "ctrl", "10.20.0.1"),
        ("node", "w-config2", "10.20.0.2", "--master", "ctrl"),
        ("node", "w-nocloud", "10.20.0.3", "--master", "ctrl", "--media", "nocloud"),
        ("node", "w-static", "10.20.0.4/24", "--master", "ctrl", "--mac", STATIC_MAC, "--gateway", "10.20.0.254",
         "--dns", "10.20.0.53", "--mtu", "1400"),
    ):  # fmt: skip
        assert main(["-q", "--inventory", str(inv), *args]) == 0
    image = guest_image()
    names = ("w-config2", "w-nocloud", "w-static", "ctrl")
    nics = {"w-static": (OTHER_MAC, STATIC_MAC)}  # the node's NIC second: found by its MAC, not its place

    def one(name: str) -> Booted:
        return boot(image, tmp / name, cdrom=inv / f"node-{name}" / "config.iso", nics=nics.get(name, ()))

    with ThreadPoolExecutor(max_workers=2) as pool:
        boots = list(pool.map(one, names))
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


def test_the_static_address_goes_to_the_nic_with_the_node_s_mac_and_no_other(
    booted: dict[str, tuple[Path, Booted]],
) -> None:
    _, vm = booted["w-static"]
    links = {link["address"]: link for link in json.loads(vm.read("/var/log/isobuild-test-ip-addr.json") or b"[]")}
    assert STATIC_MAC in links and OTHER_MAC in links, vm.console[-3000:]
    ours = links[STATIC_MAC]
    assert [(a["local"], a["prefixlen"]) for a in ours["addr_info"] if a["family"] == "inet"] == [("10.20.0.4", 24)]
    assert ours["mtu"] == 1400
    assert not [a for a in links[OTHER_MAC]["addr_info"] if a["family"] == "inet"]  # the other NIC: nothing
    # The gateway reaches the node as cloud-init 22.4's eni renderer writes an OpenStack default
    # route: `post-up route add default gw ... || true`, net-tools' route, which a minimal image
    # lacks; seen here, the README tells users (install net-tools in such images).
    routes = json.loads(vm.read("/var/log/isobuild-test-ip-route.json") or b"[]")
    assert {"dst": "10.20.0.0/24", "dev": ours["ifname"], "prefsrc": "10.20.0.4"}.items() <= routes[0].items()
    rendered = (vm.read("/etc/network/interfaces.d/50-cloud-init") or b"").decode()
    assert "10.20.0.53" in rendered, rendered  # the DNS server, as cloud-init rendered it for ifupdown
    assert f"iface {ours['ifname']} inet static" in rendered and "post-up route add default gw 10.20.0.254" in rendered


def test_a_controller_s_ca_files_land_0600(booted: dict[str, tuple[Path, Booted]]) -> None:
    _, vm = booted["ctrl"]
    for name in ("ca.key", "front-proxy-ca.key", "sa.key", "etcd/ca.key"):
        assert vm.stat(f"/etc/kubernetes/pki/{name}") == (0o600, 0, 0), name
    assert vm.stat("/etc/kubernetes/pki/ca.crt") == (0o644, 0, 0)
    log = (vm.read("/var/log/isobuild-install.log") or b"").decode()
    assert "setting up controller ctrl " in log, log
