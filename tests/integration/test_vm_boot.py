"""Real boots (slow): a Debian 12 guest under QEMU's TCG, no network, provisions itself from what
isobuild wrote, and its disk is read after it powers off. A config-2 ISO and a NoCloud ISO as
CD-ROMs, a static worker with two NICs, a controller, and USB sticks written by `isobuild usb`
with the kernel command lines the README gives; two at a time."""

from __future__ import annotations

import hashlib
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
NOCLOUD_MAC, NOCLOUD_OTHER = "52:54:00:12:34:57", "52:54:00:65:43:22"


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Booted]]]:
    """Workers of one cluster (one per medium, one with a static address and two NICs), its
    controller and an edge router, each booted once from its ISO."""
    from isobuilder.cli import main

    tmp = tmp_path_factory.mktemp("vm")
    inv = tmp / "inventory"
    for args in (
        ("node", "ctrl", "10.20.0.1"),
        ("node", "w-config2", "10.20.0.2", "--master", "ctrl"),
        ("node", "w-nocloud", "10.20.0.3/24", "--master", "ctrl", "--media", "nocloud", "--mac", NOCLOUD_MAC,
         "--gateway", "10.20.0.254", "--dns", "10.20.0.53", "--mtu", "1400"),
        ("node", "w-static", "10.20.0.4/24", "--master", "ctrl", "--mac", STATIC_MAC, "--gateway", "10.20.0.254",
         "--dns", "10.20.0.53", "--mtu", "1400"),
        ("node", "edge", "10.20.0.5", "--public-ip", "203.0.113.5", "--master", "ctrl", "--role", "edge"),
    ):  # fmt: skip
        assert main(["-q", "--inventory", str(inv), *args]) == 0
    image = guest_image()
    names = ("w-config2", "w-nocloud", "w-static", "ctrl", "edge")
    # The node's NIC second: found by its MAC, not its place; from network_data.json (config-2)
    # and from network-config (NoCloud).
    nics = {"w-static": (OTHER_MAC, STATIC_MAC), "w-nocloud": (NOCLOUD_OTHER, NOCLOUD_MAC)}

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
    folder, vm = booted["w-config2"]
    assert vm.listing("/etc/kubernetes/pki") == ["ca.crt"]
    assert vm.stat("/var/lib/kubelet/pki/kubelet.key") == (0o600, 0, 0)
    # Anywhere on its disk, deleted files and free blocks included: no line of any CA key, and
    # its own key is found the same way (the scan works).
    ssl = folder.parent / "ssl"
    ca_keys = [ssl / n for n in ("ca.key", "front-proxy-ca.key", "sa.key", "etcd/ca.key")]
    needles = {p.name: p.read_bytes().splitlines()[1] for p in ca_keys}
    own = (folder / "ssl" / "kubelet.key").read_bytes().splitlines()[1]
    found = _scan(vm.disk, [own, *needles.values()])
    assert found[own] and not any(found[n] for n in needles.values()), found


def _scan(disk: Path, needles: list[bytes], chunk: int = 64 << 20) -> dict[bytes, bool]:
    found = dict.fromkeys(needles, False)
    overlap = max(len(n) for n in needles)
    tail = b""
    with disk.open("rb") as f:
        while block := f.read(chunk):
            window = tail + block
            for needle in needles:
                found[needle] = found[needle] or needle in window
            tail = window[-overlap:]
    return found


@pytest.mark.parametrize(
    ("name", "mac", "other", "ip"),
    [("w-static", STATIC_MAC, OTHER_MAC, "10.20.0.4"), ("w-nocloud", NOCLOUD_MAC, NOCLOUD_OTHER, "10.20.0.3")],
)
def test_a_static_address_goes_to_the_nic_with_the_node_s_mac_and_nothing_to_the_other(
    booted: dict[str, tuple[Path, Booted]], name: str, mac: str, other: str, ip: str
) -> None:
    _, vm = booted[name]
    links = {link["address"]: link for link in json.loads(vm.read("/var/log/isobuild-test-ip-addr.json") or b"[]")}
    assert mac in links and other in links, vm.console[-3000:]
    ours = links[mac]
    assert [(a["local"], a["prefixlen"]) for a in ours["addr_info"] if a["family"] == "inet"] == [(ip, 24)]
    assert ours["mtu"] == 1400
    assert not [a for a in links[other]["addr_info"] if a["family"] == "inet"]  # the other NIC: nothing
    rendered = (vm.read("/etc/network/interfaces.d/50-cloud-init") or b"").decode()
    assert "10.20.0.53" in rendered and "10.20.0.254" in rendered, rendered  # DNS and gateway, for ifupdown


def test_the_config_2_route_as_cloud_init_renders_it(booted: dict[str, tuple[Path, Booted]]) -> None:
    _, vm = booted["w-static"]
    ours = {link["address"]: link for link in json.loads(vm.read("/var/log/isobuild-test-ip-addr.json") or b"[]")}[
        STATIC_MAC
    ]
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


def test_an_edge_router_loads_its_firewall_on_first_boot(booted: dict[str, tuple[Path, Booted]]) -> None:
    """install.sh's first step: the unit cloud-init wrote, enabled and started by systemd, the
    ruleset in the guest's kernel (listed by nft before poweroff), and enabled for every boot."""
    _, vm = booted["edge"]
    assert (vm.read("/var/log/isobuild-test-firewall.txt") or b"").decode().strip() == "active"
    ruleset = (vm.read("/var/log/isobuild-test-nft.txt") or b"").decode()
    assert "table inet isobuild {" in ruleset, ruleset
    assert "10.20.0.1" in ruleset and "203.0.113.5" in ruleset and "tcp dport { 22, 80, 443 } accept" in ruleset
    assert "isobuild-firewall.service" in vm.listing("/etc/systemd/system/sysinit.target.wants")
    _, worker = booted["w-config2"]
    assert "table inet isobuild" not in (worker.read("/var/log/isobuild-test-nft.txt") or b"").decode()


# The USB cases: a stick alone, written by `isobuild usb`; plugged in before boot, or once systemd
# has run cloud-init's generator (a stick the kernel finds late), with the README's kernel
# argument or none; and an editable FAT stick (--fat) whose address was changed on another
# machine with GNU mtools. cloud-init 22.4.2 in the guest.
USB_CASES: dict[str, tuple[bool, tuple[str, ...]]] = {
    "u-early": (False, ()),
    "u-late": (True, ()),
    "u-late-ds": (True, ("ci.ds=ConfigDrive",)),
    "u-fat": (False, ()),
}
FAT_MAC = "52:54:00:fa:70:01"
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}


def _fat_stick_edited_elsewhere(stick: Path, work: Path) -> None:
    """network_data.json's address 10.20.0.30 changed to .31 with mtools, as on a laptop."""
    import subprocess

    from tests.helpers import require_tool

    path = "::/openstack/latest/network_data.json"
    local = work / "network_data.json"
    subprocess.run([require_tool("mcopy"), "-i", str(stick), "-n", path, str(local)], env=MTOOLS_ENV, check=True)
    local.write_text(local.read_text().replace("10.20.0.30", "10.20.0.31"))
    subprocess.run([require_tool("mcopy"), "-i", str(stick), "-o", str(local), path], env=MTOOLS_ENV, check=True)


@pytest.fixture(scope="module")
def usb_booted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Booted]]]:
    from isobuilder.cli import main

    tmp = tmp_path_factory.mktemp("vm-usb")
    inv = tmp / "inventory"
    assert main(["-q", "--inventory", str(inv), "node", "ctrl", "10.20.0.1"]) == 0
    for i, name in enumerate(USB_CASES, start=10):
        ip = ["10.20.0.30/24", "--mac", FAT_MAC] if name == "u-fat" else [f"10.20.0.{i}"]
        assert main(["-q", "--inventory", str(inv), "node", name, *ip, "--master", "ctrl"]) == 0
        stick = tmp / f"{name}.img"
        assert (
            main(["-q", "--inventory", str(inv), "usb", name, str(stick), *(["--fat"] if name == "u-fat" else [])]) == 0
        )
        with stick.open("r+b") as f:
            f.truncate(max(64 << 20, stick.stat().st_size))  # a stick's size: the drive at its start
    _fat_stick_edited_elsewhere(tmp / "u-fat.img", tmp)
    image = guest_image()

    def one(name: str) -> Booted:
        late, args = USB_CASES[name]
        nics = (FAT_MAC,) if name == "u-fat" else ()
        return boot(image, tmp / name, usb=tmp / f"{name}.img", usb_late=late, kernel_args=args, nics=nics)

    with ThreadPoolExecutor(max_workers=2) as pool:
        boots = list(pool.map(one, USB_CASES))
    yield {n: (inv / f"node-{n}", b) for n, b in zip(USB_CASES, boots, strict=True)}


def test_an_editable_fat_stick_edited_on_another_machine_provisions_the_node(
    usb_booted: dict[str, tuple[Path, Booted]],
) -> None:
    _, vm = usb_booted["u-fat"]
    status = json.loads(vm.read("/var/lib/cloud/data/status.json") or b"{}")
    assert status["v1"]["datasource"].startswith("DataSourceConfigDrive"), vm.console[-3000:]
    assert (vm.read("/etc/hostname") or b"").strip() == b"u-fat"
    links = {link["address"]: link for link in json.loads(vm.read("/var/log/isobuild-test-ip-addr.json") or b"[]")}
    inet = [(a["local"], a["prefixlen"]) for a in links[FAT_MAC]["addr_info"] if a["family"] == "inet"]
    assert inet == [("10.20.0.31", 24)]  # the address as edited on the stick, not as built
    lsblk = json.loads(vm.read("/var/log/isobuild-test-lsblk.json") or b"{}")
    sticks = [d for d in lsblk["blockdevices"] if d["tran"] == "usb"]
    assert [(d["label"], d["fstype"]) for d in sticks] == [("CONFIG-2", "vfat")], lsblk


def _ds_identify(vm: Booted) -> str:
    return (vm.read("/var/log/isobuild-test-run/ds-identify.log") or b"").decode()


@pytest.mark.parametrize("name", ["u-early", "u-late-ds"])
def test_a_usb_stick_provisions_the_node(usb_booted: dict[str, tuple[Path, Booted]], name: str) -> None:
    folder, vm = usb_booted[name]
    assert (vm.read("/etc/hostname") or b"").strip() == name.encode(), vm.console[-3000:]
    status = json.loads(vm.read("/var/lib/cloud/data/status.json") or b"{}")
    assert status["v1"]["datasource"].startswith("DataSourceConfigDrive"), status
    assert "[source=/dev/sd" in status["v1"]["datasource"]  # the stick: a SCSI disk over USB, no CD-ROM
    for entry in _write_files(folder, CONFIG_2_USER_DATA):
        assert vm.read(entry["path"]) == entry["content"].encode(), entry["path"]
    log = (vm.read("/var/log/isobuild-install.log") or b"").decode()
    assert f"setting up worker {name} " in log, log
    lsblk = json.loads(vm.read("/var/log/isobuild-test-lsblk.json") or b"{}")
    sticks = [d for d in lsblk["blockdevices"] if d["tran"] == "usb"]
    assert [(d["rm"], d["label"], d["fstype"]) for d in sticks] == [(True, "config-2", "iso9660")], lsblk


def test_a_stick_found_after_ds_identify_looked_leaves_the_node_unprovisioned(
    usb_booted: dict[str, tuple[Path, Booted]],
) -> None:
    early, late, late_ds = (usb_booted[n][1] for n in ("u-early", "u-late", "u-late-ds"))
    assert "check for 'ConfigDrive' returned found" in _ds_identify(early)
    # Plugged in after the generator ran: ds-identify saw no config-2 label and, with x86's
    # policy notfound=disabled, cloud-init disabled itself for this boot.
    assert "No ds found [mode=search, notfound=disabled]. Disabled cloud-init" in _ds_identify(late), _ds_identify(late)
    assert "disabled" in (late.read("/var/log/isobuild-test-run/listing") or b"").decode().split()
    assert late.read("/var/lib/cloud/data/status.json") is None
    assert (late.read("/etc/hostname") or b"").strip() == b"isobuild-guest"  # not provisioned
    # ci.ds=ConfigDrive: ds-identify takes the datasource named, without looking (read_config).
    assert "DSNAME=ConfigDrive" in _ds_identify(late_ds) and "No ds found" not in _ds_identify(late_ds)


# `isobuild usb` inside the guest, on the removable USB stick QEMU gives it (/dev/sda, with a FAT
# partition, as bought), run by cloud-init from a NoCloud CD-ROM; isobuild from a second disk.
IN_GUEST = r"""#!/bin/sh
exec >/var/log/usbtest.log 2>&1
set -x
mkdir -p /mnt/tools /mnt/part /root/inv
mount -o ro /dev/vdb /mnt/tools
cp -a /mnt/tools/inventory/. /root/inv/
export PYTHONPATH=/mnt/tools/site
run() {
  name=$1; shift
  python3 -m isobuilder --inventory /root/inv "$@" >"/var/log/usbtest-$name.out" 2>"/var/log/usbtest-$name.err"
  echo $? >"/var/log/usbtest-$name.rc"
}
udevadm settle
run list usb --list --json
mount /dev/sda1 /mnt/part
run mounted usb w1 /dev/sda
umount /mnt/part
run partition usb w1 /dev/sda1
run write usb w1 /dev/sda --json
blkid -p -o export /dev/sda >/var/log/usbtest-blkid 2>&1
"""


@pytest.fixture(scope="module")
def in_guest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Booted]:
    import subprocess

    from isobuilder.cli import main
    from tests.guest import tools_disk
    from tests.helpers import EPOCH, require_tool

    tmp = tmp_path_factory.mktemp("vm-usb-tool")
    inv = tmp / "inventory"
    for args in (("node", "c1", "10.20.0.1"), ("node", "w1", "10.20.0.2", "--master", "c1")):
        assert main(["-q", "--inventory", str(inv), *args]) == 0
    user_data = {"write_files": [{"path": "/usr/local/sbin/usbtest", "permissions": "0755", "content": IN_GUEST}],
                 "runcmd": [["/usr/local/sbin/usbtest"]]}  # fmt: skip
    seed = tmp / "seed.iso"
    files = {"user-data": b"#cloud-config\n" + yaml.safe_dump(user_data).encode(),
             "meta-data": b"instance-id: usbtest\nlocal-hostname: usb-tester\n"}  # fmt: skip
    seed.write_bytes(configdrive.build_iso(files, "cidata", float(EPOCH)))
    stick = tmp / "stick.img"
    with stick.open("wb") as f:
        f.truncate(64 << 20)
    subprocess.run([require_tool("sfdisk"), "-q", str(stick)], input="1M,,c\n", text=True, check=True)
    subprocess.run([require_tool("mformat"), "-i", f"{stick}@@1M", "-v", "OLD", "::"],
                   env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}, check=True)  # fmt: skip
    vm = boot(guest_image(), tmp / "guest", cdrom=seed, usb=stick, disks=[tools_disk(tmp, inv)])
    return inv, vm


def test_isobuild_usb_inside_the_guest_on_a_real_usb_stick(in_guest: tuple[Path, Booted]) -> None:
    inv, vm = in_guest

    def out(name: str, kind: str = "") -> str:
        return (vm.read(f"/var/log/usbtest-{name}{'.' + kind if kind else ''}") or b"").decode()

    listed = json.loads(out("list", "out") or "null")
    assert listed == [{"path": "/dev/sda", "size": 64 << 20, "model": "QEMU QEMU HARDDISK", "transport": "usb",
                       "mounted": []}], (vm.read("/var/log/usbtest.log"), out("list", "err"))  # fmt: skip
    assert out("mounted", "rc").strip() == "1"
    assert (
        out("mounted", "err").splitlines()[0]
        == "Error: /dev/sda (67.1 MB, QEMU QEMU HARDDISK) is in use: mounted at /mnt/part"
    )
    assert out("partition", "rc").strip() == "1"
    assert out("partition", "err").splitlines()[0] == "Error: /dev/sda1 is a partition of sda"
    assert out("write", "rc").strip() == "0", out("write", "err")
    written = json.loads(out("write", "out"))
    iso = (inv / "node-w1" / "config.iso").read_bytes()
    assert (written["device"], written["bytes"]) == (True, len(iso))
    assert written["sha256"] == hashlib.sha256(iso).hexdigest()  # read back from the stick in the guest
    blkid = dict(line.split("=", 1) for line in out("blkid").splitlines() if "=" in line)
    assert (blkid.get("LABEL"), blkid.get("TYPE"), blkid.get("PTTYPE")) == ("config-2", "iso9660", None), blkid
