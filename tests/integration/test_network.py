"""Static networking and NoCloud drives, read by their real consumers: cloud-init's OpenStack
converter, network-config v2 parser and NoCloud datasource, blkid, and systemd-networkd itself
configuring a NIC in a network namespace."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isobuilder import network
from isobuilder.cli import main
from isobuilder.model import Node, Role
from tests.helpers import SYSTEM_PYTHON, Run, config_of, files_of, require_tool

# Runs inside Debian's cloud-init (system Python): network_data.json -> cloud-init's network state.
CONVERT = """
import json, sys
from cloudinit.net import network_state
from cloudinit.sources.helpers import openstack
data = json.load(open(sys.argv[1]))
v1 = openstack.convert_net_json(data, known_macs={sys.argv[2]: "ens3"})
state = network_state.parse_net_config_data(v1)
interfaces = {i["name"]: i for i in state.iter_interfaces()}
json.dump({"v1": v1, "interfaces": interfaces, "dns": state.dns_nameservers}, sys.stdout, default=str)
"""

PARSE_V2 = """
import json, sys, yaml
from cloudinit.net import network_state
config = yaml.safe_load(open(sys.argv[1]))
state = network_state.parse_net_config_data(config)
json.dump({"interfaces": dict((i["name"], i) for i in state.iter_interfaces()),
    "dns": state.dns_nameservers}, sys.stdout, default=str)
"""

NOCLOUD = """
import json, sys
from cloudinit import distros, helpers, settings
from cloudinit.sources.DataSourceNoCloud import DataSourceNoCloud
paths = helpers.Paths({"cloud_dir": sys.argv[1], "run_dir": sys.argv[1] + "/run"})
distro = distros.fetch("debian")("debian", {}, paths)
ds = DataSourceNoCloud(settings.CFG_BUILTIN, distro, paths)
assert ds.get_data(), "NoCloud found no seed"
json.dump({"userdata": ds.userdata_raw.decode(), "metadata": ds.metadata,
    "network": ds.network_config, "instance_id": ds.get_instance_id()}, sys.stdout, default=str)
"""


def cloud_init_python(script: str, *args: str) -> Any:
    require_tool("cloud-init")
    result = subprocess.run([SYSTEM_PYTHON, "-c", script, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _node(ip: str, prefix: int, **kw: Any) -> Node:
    return Node(name="n1", ip=ip, role=Role.WORKER, master="10.0.0.1", mac="52:54:00:aa:bb:cc", prefix=prefix, **kw)


def test_openstack_network_data_converts_in_cloud_init(mixed_example: Path) -> None:
    path = mixed_example / "node-ctrl/cloud-config/openstack/latest/network_data.json"
    state = cloud_init_python(CONVERT, str(path), "52:54:00:00:00:01")
    nic = state["interfaces"]["ens3"]
    assert nic["mac_address"] == "52:54:00:00:00:01" and nic["mtu"] == 9000
    (subnet,) = nic["subnets"]
    assert (subnet["type"], subnet["address"], subnet["prefix"]) == ("static", "10.10.10.1", 24)
    assert [(r["network"], r["prefix"], r["gateway"]) for r in subnet["routes"]] == [("0.0.0.0", 0, "10.10.10.254")]
    assert state["dns"] == ["1.1.1.1", "9.9.9.9"]


def test_ipv6_network_data_converts_in_cloud_init(tmp_path: Path) -> None:
    node = _node("2001:db8::10", 64, gateway="2001:db8::1", dns=("2001:db8::53",))
    path = tmp_path / "network_data.json"
    path.write_bytes(network.openstack_network_data(node))
    state = cloud_init_python(CONVERT, str(path), "52:54:00:aa:bb:cc")
    (subnet,) = state["interfaces"]["ens3"]["subnets"]
    assert (subnet["type"], subnet["address"], subnet["prefix"]) == ("static6", "2001:db8::10", 64)
    assert state["dns"] == ["2001:db8::53"]


def test_unknown_mac_is_refused_by_cloud_init(mixed_example: Path) -> None:
    """cloud-init matches our link by MAC only: on a machine without that NIC it says so."""
    path = mixed_example / "node-ctrl/cloud-config/openstack/latest/network_data.json"
    require_tool("cloud-init")
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", CONVERT, str(path), "52:54:00:ff:ff:ff"], capture_output=True, text=True
    )
    assert result.returncode != 0 and "Unable to find a system nic" in result.stderr


@pytest.mark.parametrize("node", ["worker3", "edge"])
def test_network_config_v2_parses_in_cloud_init(mixed_example: Path, node: str) -> None:
    path = mixed_example / f"node-{node}/cloud-config/network-config"
    state = cloud_init_python(PARSE_V2, str(path))
    (nic,) = state["interfaces"].values()
    expected = {"worker3": ("10.10.10.4", "10.10.10.254"), "edge": ("192.0.2.10", "192.0.2.1")}[node]
    assert nic["mac_address"] == yaml.safe_load(path.read_text())["ethernets"]["isobuild0"]["match"]["macaddress"]
    (subnet,) = nic["subnets"]
    assert subnet["address"].split("/")[0] == expected[0]
    assert any(r.get("gateway") == expected[1] for r in subnet.get("routes", []))


def test_nocloud_drive_is_read_by_cloud_init(mixed_example: Path, tmp_path: Path) -> None:
    """blkid sees the label; cloud-init's NoCloud datasource, seeded with the ISO's files, returns our data."""
    blkid = require_tool("blkid")
    xorriso = require_tool("xorriso")
    for node in ("worker2", "edge"):
        iso = mixed_example / f"node-{node}/config.iso"
        probe = subprocess.run([blkid, "-p", "-o", "export", str(iso)], capture_output=True, text=True, check=True)
        assert "LABEL=cidata" in probe.stdout.split() and "TYPE=iso9660" in probe.stdout.split()
        cloud = tmp_path / node
        seed = cloud / "seed/nocloud"
        subprocess.run(
            [xorriso, "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(seed)], capture_output=True, check=True
        )
        assert sorted(p.name for p in seed.iterdir()) == (
            ["meta-data", "network-config", "user-data"] if node == "edge" else ["meta-data", "user-data"]
        )
        data = cloud_init_python(NOCLOUD, str(cloud))
        assert data["userdata"] == (mixed_example / f"node-{node}/cloud-config/user-data").read_text()
        assert data["metadata"]["local-hostname"] == node
        assert uuid.UUID(data["instance_id"].removeprefix("iid-"))
        if node == "edge":
            assert data["network"]["ethernets"]["isobuild0"]["addresses"] == ["192.0.2.10/28"]


def test_cloud_init_schema_accepts_nocloud_user_data(mixed_example: Path) -> None:
    cloud_init = require_tool("cloud-init")
    for node in ("worker1", "worker2", "edge"):
        folder = mixed_example / f"node-{node}/cloud-config"
        path = folder / "user-data" if (folder / "user-data").exists() else folder / "openstack/latest/user_data"
        result = subprocess.run([cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_instance_ids_are_stable_and_unique(mixed_example: Path) -> None:
    """instance-id derives from the cluster id and the node name: a rebuild keeps it, so
    cloud-init does not run first-boot modules again."""
    cluster_id = uuid.UUID(yaml.safe_load((mixed_example / "cluster.yaml").read_text())["cluster_id"])
    ids = {}
    for node in ("worker2", "worker3", "edge"):
        ids[node] = yaml.safe_load((mixed_example / f"node-{node}/cloud-config/meta-data").read_text())["instance-id"]
        assert ids[node] == f"iid-{uuid.uuid5(cluster_id, node)}"
    assert len(set(ids.values())) == 3


# -- systemd-networkd applies our file -------------------------------------------------------
NETWORKD_RUN = """
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mount -o remount,bind,ro /sys
mkdir -p /run/systemd/netif /etc/systemd/network
echo isobuild-test >/run/systemd/container  # no udev here: networkd must not wait for it
mount --bind "$CONF" /etc/systemd/network
chown -R systemd-network:systemd-network /run/systemd/netif
/lib/systemd/systemd-networkd >"$OUT/networkd.log" 2>&1 &
pid=$!
for _ in $(seq 50); do  # until our NIC is routable, at most 5 s
  grep -qs '^OPER_STATE=routable' /run/systemd/netif/links/* && break
  sleep 0.1
done
cat /run/systemd/netif/links/* >"$OUT/links" 2>/dev/null || true
kill "$pid"
wait "$pid" || true
"""


@pytest.fixture
def netns() -> Any:
    require_tool("ip")
    name = f"isobuild-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_systemd_networkd_configures_the_nic_with_our_mac(mixed_example: Path, tmp_path: Path, netns: str) -> None:
    """The .network file from the controller's Ignition config, run by the real systemd-networkd in a
    namespace with two NICs: the one with our MAC gets the address, route and MTU; the other nothing."""
    networkd = Path("/lib/systemd/systemd-networkd")
    if not networkd.exists():
        pytest.fail("systemd-networkd is missing (Debian's systemd package)")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "00-isobuild.network").write_bytes(files_of(config_of(mixed_example, "ctrl"))[network.NETWORKD_PATH][1])

    def ip(*args: str) -> str:
        return subprocess.run(["ip", "netns", "exec", netns, "ip", *args], capture_output=True, text=True).stdout

    for nic, mac in (("nic0", "52:54:00:00:00:01"), ("nic1", "52:54:00:00:00:99")):
        ip("link", "add", nic, "address", mac, "type", "veth", "peer", "name", f"peer-{nic}")
        ip("link", "set", nic, "up")
        ip("link", "set", f"peer-{nic}", "up")
    script = tmp_path / "run.sh"
    script.write_text(textwrap.dedent(NETWORKD_RUN))
    subprocess.run(
        ["ip", "netns", "exec", netns, "unshare", "-m", "env", f"CONF={conf}", f"OUT={tmp_path}", "sh", str(script)],
        check=True,
        capture_output=True,
    )
    log = (tmp_path / "networkd.log").read_text()
    assert "nic0: Configuring with /etc/systemd/network/00-isobuild.network" in log, log[-2000:]
    assert "inet 10.10.10.1/24" in ip("addr", "show", "nic0")
    assert "mtu 9000" in ip("link", "show", "nic0")
    assert "default via 10.10.10.254 dev nic0" in ip("route")
    assert "inet " not in ip("addr", "show", "nic1")
    assert "DNS=1.1.1.1 9.9.9.9" in (tmp_path / "links").read_text()


# -- the command line ----------------------------------------------------------------------------
@pytest.fixture
def cluster(run: Run) -> Run:
    assert run("node", "c1", "10.0.0.1/24", "--mac", "52:54:00:00:00:01", "--gateway", "10.0.0.254").code == 0
    return run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["10.0.0.2", "--gateway", "10.0.0.254"], "--gateway needs a static address with its prefix length"),
        (["10.0.0.2/24"], "static networking needs the MAC of the NIC"),
        (["10.0.0.2/24", "--mac", "52:54:00:00:00:01"], "MAC 52:54:00:00:00:01 of node 'w1' is already used"),
        (["10.0.0.2/24", "--mac", "01:00:5e:00:00:01"], "invalid MAC address"),
        (
            ["10.0.0.2/24", "--mac", "52:54:00:00:00:02", "--gateway", "10.0.1.1"],
            "--gateway: 10.0.1.1 is outside the node's network 10.0.0.0/24",
        ),
        (["10.0.0.2/24", "--mac", "52:54:00:00:00:02", "--gateway", "10.0.0.2"], "--gateway: it is the node's own IP"),
        (["10.0.0.2/24", "--mac", "52:54:00:00:00:02", "--prefix", "16"], "disagree"),
        (["10.0.0.2/40", "--mac", "52:54:00:00:00:02"], "invalid prefix length"),
        (["10.0.0.0/24", "--mac", "52:54:00:00:00:02"], "network or broadcast address"),
        (["10.0.0.2/24", "--mac", "52:54:00:00:00:02", "--mtu", "100"], "invalid MTU"),
        (["10.0.0.2/24", "--mac", "52:54:00:00:00:02", "--dns", "not-an-ip"], "invalid DNS server"),
        (["10.0.0.2/8", "--mac", "52:54:00:00:00:02"], "overlaps the service CIDR 10.96.0.0/12"),
    ],
)
def test_bad_static_networking_is_refused_and_nothing_written(
    cluster: Run, inv: Path, args: list[str], message: str
) -> None:
    from tests.helpers import snapshot

    before = snapshot(inv)
    result = cluster("node", "w1", *args, "--master", "10.0.0.1")
    assert result.code == 1, result.err
    assert message in result.err, result.err
    assert result.err.count("Hint: ") == 1 and "Traceback" not in result.err  # error lines, one hint
    assert snapshot(inv) == before


def test_static_settings_are_kept_on_update_and_land_in_cluster_yaml(cluster: Run, inv: Path) -> None:
    assert cluster("node", "w1", "10.0.0.2/24", "--master", "10.0.0.1", "--mac", "52-54-00-AA-BB-02",
                   "--gateway", "10.0.0.254", "--dns", "10.0.0.53", "--mtu", "1450").code == 0  # fmt: skip
    assert cluster("node", "w1", "10.0.0.3").code == 0  # a move keeps MAC, prefix, gateway, DNS, MTU
    (entry,) = [n for n in yaml.safe_load((inv / "cluster.yaml").read_text())["nodes"] if n["name"] == "w1"]
    assert entry == {
        "name": "w1", "ip": "10.0.0.3", "role": "worker", "master": "c1", "mac": "52:54:00:aa:bb:02",
        "prefix": 24, "gateway": "10.0.0.254", "dns": ["10.0.0.53"], "mtu": 1450,
    }  # fmt: skip
    data = json.loads((inv / "node-w1/cloud-config/openstack/latest/network_data.json").read_text())
    assert data["networks"][0]["ip_address"] == "10.0.0.3" and data["links"][0]["mtu"] == 1450


def test_switching_media_replaces_the_drive_layout(cluster: Run, inv: Path) -> None:
    blkid = require_tool("blkid")
    drive = inv / "node-c1/cloud-config"
    assert (drive / "openstack/latest/network_data.json").exists()
    assert cluster("node", "c1", "10.0.0.1", "--media", "nocloud").code == 0
    assert sorted(p.relative_to(drive).as_posix() for p in drive.rglob("*") if p.is_file()) == [
        "meta-data", "network-config", "user-data",
    ]  # fmt: skip
    probe = subprocess.run([blkid, "-p", "-o", "value", "-s", "LABEL", str(inv / "node-c1/config.iso")],
                           capture_output=True, text=True)  # fmt: skip
    assert probe.stdout.strip() == "cidata"
    assert cluster("node", "c1", "10.0.0.1", "--format", "ignition", "--media", "config-2").code == 0
    assert json.loads((drive / "openstack/latest/user_data").read_text())["ignition"]["version"] == "3.3.0"
    assert (drive / "install.sh").exists() and not (drive / "user-data").exists()


def test_a_hand_edit_survives_a_media_switch_when_our_output_is_the_same(cluster: Run, inv: Path) -> None:
    user_data = inv / "node-c1/cloud-config/openstack/latest/user_data"
    user_data.write_text(user_data.read_text() + "\n# my edit\n")
    result = cluster("node", "c1", "10.0.0.1", "--media", "nocloud")
    assert result.code == 0, result.err
    assert (inv / "node-c1/cloud-config/user-data").read_text().endswith("# my edit\n")
    refused = cluster("node", "c1", "10.0.0.1", "--format", "ignition")
    assert refused.code == 1 and "edited by hand" in refused.err


def test_image_repackages_a_nocloud_folder_and_checks_ignition(run: Run, inv: Path) -> None:
    blkid = require_tool("blkid")
    assert run("node", "c1", "10.0.0.1", "--format", "ignition", "--media", "nocloud").code == 0
    folder = inv / "node-c1"
    user_data = folder / "cloud-config/user-data"
    config = json.loads(user_data.read_text())
    config["storage"]["files"].append({"path": "/etc/motd", "mode": 420, "contents": {"source": "data:,hello"}})
    user_data.write_text(json.dumps(config))
    assert run("image", str(folder)).code == 0
    probe = subprocess.run([blkid, "-p", "-o", "value", "-s", "LABEL", str(folder / "config.iso")],
                           capture_output=True, text=True)  # fmt: skip
    assert probe.stdout.strip() == "cidata"
    user_data.write_text('{"storage": {}')
    broken = run("image", str(folder))
    assert broken.code == 1 and "is not valid JSON at line 1" in broken.err
    user_data.write_text('{"storage": {}}')
    no_version = run("image", str(folder))
    assert no_version.code == 1 and "not an Ignition config" in no_version.err


def test_cluster_yaml_format_and_media_apply_to_nodes_without_their_own(run: Run, inv: Path) -> None:
    assert run("init", "--format", "ignition", "--media", "nocloud").code == 0
    assert run("node", "c1", "10.0.0.1").code == 0
    assert json.loads((inv / "node-c1/cloud-config/user-data").read_text())["ignition"]["version"] == "3.3.0"
    assert run("node", "w1", "10.0.0.2", "--master", "10.0.0.1", "--format", "cloud-config").code == 0
    assert (inv / "node-w1/cloud-config/user-data").read_text().startswith("#cloud-config")
    text = (inv / "cluster.yaml").read_text()
    assert "format: ignition" in text and "media: nocloud" in text
    bad = (inv / "cluster.yaml").read_text().replace("media: nocloud", "media: floppy")
    (inv / "cluster.yaml").write_text(bad)
    result = run("node", "w2", "10.0.0.3", "--master", "10.0.0.1")
    assert result.code == 1 and "Error: cluster.yaml: media: 'floppy' is not one of config-2, nocloud" in result.err


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ip=st.one_of(st.text(max_size=24), st.ip_addresses().map(str), st.ip_addresses().map(lambda a: f"{a}/24")),
    mac=st.one_of(st.text(max_size=20), st.from_regex(r"[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}", fullmatch=True)),
    gateway=st.one_of(st.text(max_size=20), st.ip_addresses().map(str)),
    dns=st.lists(st.one_of(st.text(max_size=16), st.ip_addresses().map(str)), max_size=3),
)
def test_hostile_network_options_never_crash(
    tmp_path_factory: pytest.TempPathFactory, ip: str, mac: str, gateway: str, dns: list[str]
) -> None:
    """Any text for the address, MAC, gateway and DNS: a node folder, or one Error line and nothing on disk."""
    if any(v.startswith("-") for v in (ip, mac, gateway, *dns)):
        return  # parsed as options: the parser's usage error, exit 2
    root = tmp_path_factory.mktemp("hostile-net") / "inv"
    args = ["--inventory", str(root), "node", "n1", ip, "--mac", mac, "--gateway", gateway]
    for server in dns:
        args += ["--dns", server]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    assert code in (0, 1), err.getvalue()
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue(), err.getvalue()
    if code == 1:
        assert err.getvalue().startswith("Error: ") and not root.exists()
    else:
        assert (root / "node-n1/cloud-config/openstack/latest/network_data.json").exists() == ("/" in ip)


def test_a_nul_in_cluster_yaml_is_a_clean_error(cluster: Run, inv: Path) -> None:
    """argv cannot carry a NUL, but cluster.yaml can ("\\0" in YAML); found by hypothesis."""
    text = (inv / "cluster.yaml").read_text().replace("gateway: 10.0.0.254", 'gateway: "10.0.0.254\\0"')
    (inv / "cluster.yaml").write_text(text)
    result = cluster("node", "c1", "10.0.0.1")
    assert result.code == 1 and "invalid gateway" in result.err and "internal error" not in result.err
