"""`isobuild pxe` as its consumers see it: dnsmasq and ISC dhcpd handing out the mappings for real
(in network namespaces, to dhclient), matchbox's documented schema and group selection, cloud-init's
kernel-command-line fetcher, ignition-validate, shellcheck and ansible-inventory."""

from __future__ import annotations

import base64
import contextlib
import csv
import gzip
import http.server
import io
import json
import os
import shlex
import signal
import subprocess
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isobuilder import keyscan, pxe
from isobuilder.cli import main
from tests.helpers import SSH_KEY, SYSTEM_PYTHON, Run, _fixed_epoch, files_of, require_tool

ENDPOINT = "http://10.10.10.254:8080"
NEXT_SERVER = "10.10.10.254"
# The README's example cluster with MACs, plus a Flatcar worker; worker2 has no MAC.
PXE_CLUSTER = (
    ["node", "controller", "10.10.10.1", "--mac", "52:54:00:00:00:01"],
    ["node", "worker1", "10.10.10.2", "--master", "10.10.10.1", "--mac", "52-54-00-00-00-02"],
    ["node", "worker2", "10.10.10.3", "--master", "10.10.10.1"],
    ["node", "example.com", "123.234.234.123", "--master", "10.10.10.1", "--role", "edge",
     "--mac", "52:54:00:00:00:04"],
    ["node", "flatcar1", "10.10.10.5", "--master", "10.10.10.1", "--format", "ignition",
     "--mac", "52:54:00:00:00:05"],
)  # fmt: skip
PXE_ARGS = ["pxe", "--http-endpoint", ENDPOINT, "--next-server", NEXT_SERVER]


def run_json(inventory: Path, *args: str) -> Any:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["-q", "--inventory", str(inventory), *args, "--json"]) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="session")
def pxe_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """The example cluster with MACs, and its `isobuild pxe` export (and the --json report)."""
    root = tmp_path_factory.mktemp("pxe")
    inventory = root / "inventory"
    key = root / "id.pub"
    key.write_text(SSH_KEY + "\n")
    with _fixed_epoch():
        assert main(["-q", "--inventory", str(inventory), "init", "--name", "lab", "--ssh-key", str(key)]) == 0
        for args in PXE_CLUSTER:
            assert main(["-q", "--inventory", str(inventory), *args]) == 0, args
        report = run_json(inventory, *PXE_ARGS)
    yield inventory, report


def user_data(inventory: Path, node: str) -> bytes:
    return (inventory / f"node-{node}" / "cloud-config/openstack/latest/user_data").read_bytes()


# -- matchbox: schema and selection, from its docs and storagepb ------------------------------
_STR = {"type": "string"}
GROUP_SCHEMA = {  # storage.proto's Group; AssertValid wants id and profile
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "profile"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "name": _STR,
        "profile": {"type": "string", "minLength": 1},
        "selector": {
            "type": "object",
            "additionalProperties": _STR,
            "properties": {"mac": {"type": "string", "pattern": "^([0-9a-f]{2}:){5}[0-9a-f]{2}$"}},  # normalised
        },
        "metadata": {"type": "object"},
    },
}
PROFILE_SCHEMA = {  # storage.proto's Profile and NetBoot; AssertValid wants id
    "type": "object",
    "additionalProperties": False,
    "required": ["id"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "name": _STR,
        "ignition_id": {"type": "string", "pattern": r"\.(ign|ignition)$"},  # served as is, not as Butane
        "cloud_id": _STR,
        "generic_id": _STR,
        "boot": {
            "type": "object",
            "additionalProperties": False,
            "required": ["kernel", "initrd", "args"],
            "properties": {
                "kernel": _STR,
                "initrd": {"type": "array", "items": _STR, "minItems": 1},
                "args": {"type": "array", "items": _STR},
            },
        },
    },
}


def load_dir(folder: Path) -> dict[str, Any]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def normal_mac(value: str) -> str:
    return value.replace("-", ":").lower()


def select_profile(matchbox: Path, labels: dict[str, str]) -> dict[str, Any] | None:
    """matchbox's SelectGroup and SelectProfile: groups from most selectors to least, the first whose
    selectors all match the request's labels (MACs normalised), then its profile."""
    labels = {k: normal_mac(v) if k == "mac" else v for k, v in labels.items()}
    groups = sorted(
        load_dir(matchbox / "groups").values(),
        key=lambda g: (len(g.get("selector", {})), ",".join(f"{k}={v}" for k, v in sorted(g["selector"].items()))),
        reverse=True,
    )
    for group in groups:
        if all(labels.get(k) == v for k, v in group.get("selector", {}).items()):
            profile: dict[str, Any] = load_dir(matchbox / "profiles")[group["profile"]]
            return profile
    return None


def test_groups_and_profiles_follow_matchbox_schema_and_point_at_existing_files(pxe_site: tuple[Path, Any]) -> None:
    inventory, _ = pxe_site
    matchbox = inventory / "pxe" / "matchbox"
    groups, profiles = load_dir(matchbox / "groups"), load_dir(matchbox / "profiles")
    assert len(groups) == 5 and len(profiles) == 5  # the Flatcar node: 2 stages; 3 cloud-config nodes
    for name, group in groups.items():
        jsonschema.validate(group, GROUP_SCHEMA)
        assert group["id"] == name and group["profile"] in profiles
    for name, profile in profiles.items():
        jsonschema.validate(profile, PROFILE_SCHEMA)
        assert profile["id"] == name
        configs = [
            matchbox / "ignition" / profile.get("ignition_id", ""),
            matchbox / "cloud" / profile.get("cloud_id", ""),
        ]
        assert sum(p.is_file() for p in configs) == 1, name
    with pytest.raises(jsonschema.ValidationError):  # the schema bites
        jsonschema.validate({**groups["lab_worker1"], "selector": {"mac": "52-54-00-00-00-02"}}, GROUP_SCHEMA)


def test_matchbox_selects_the_install_stage_then_the_installed_config(pxe_site: tuple[Path, Any]) -> None:
    matchbox = pxe_site[0] / "pxe" / "matchbox"
    # iPXE asks with uuid and mac:hexhyp: the Flatcar node boots the PXE image with its install config.
    install = select_profile(matchbox, {"uuid": str(uuid.uuid4()), "mac": "52-54-00-00-00-05"})
    assert install is not None and install["id"] == "lab_flatcar1_install"
    assert install["boot"]["kernel"] == "/assets/flatcar/current/flatcar_production_pxe.vmlinuz"
    assert f"flatcar.config.url={ENDPOINT}/ignition?uuid=${{uuid}}&mac=${{mac:hexhyp}}" in install["boot"]["args"]
    # The installer then asks with os=installed: the node's own config.
    installed = select_profile(matchbox, {"mac": "52:54:00:00:00:05", "os": "installed"})
    assert installed is not None and installed["ignition_id"] == "lab_flatcar1.ign"
    cloud = select_profile(matchbox, {"mac": "52-54-00-00-00-02"})
    assert cloud is not None and cloud["cloud_id"] == "lab_worker1.yaml"
    assert select_profile(matchbox, {"mac": "52:54:00:00:00:99"}) is None  # strangers get nothing


class _Matchbox(http.server.BaseHTTPRequestHandler):
    """matchbox's /cloud and /ignition endpoints over the exported data folder."""

    root: Path

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        labels = dict(urllib.parse.parse_qsl(url.query))
        profile = select_profile(self.root, labels)
        key = {"/cloud": ("cloud", "cloud_id"), "/ignition": ("ignition", "ignition_id")}.get(url.path)
        if profile is None or key is None or key[1] not in profile:
            self.send_error(404)
            return
        body = (self.root / key[0] / profile[key[1]]).read_bytes()
        assert b"{{" not in body  # a Go template that renders to itself
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def matchbox_server(pxe_site: tuple[Path, Any]) -> Iterator[str]:
    handler = type("Handler", (_Matchbox,), {"root": pxe_site[0] / "pxe" / "matchbox"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_cloud_init_fetches_the_cloud_config_from_the_kernel_command_line(
    pxe_site: tuple[Path, Any], matchbox_server: str, tmp_path: Path
) -> None:
    """matchbox's docs: cloud-config nodes boot with cloud-config-url=<matchbox>/cloud?mac=...;
    cloud-init's own fetcher gets exactly the node's user data, which its schema checker accepts."""
    inventory, _ = pxe_site
    target = tmp_path / "91_kernel_cmdline_url.cfg"
    cmdline = f"ro cloud-config-url={matchbox_server}/cloud?mac=52-54-00-00-00-02"
    script = (
        "import sys\nfrom cloudinit.cmd.main import attempt_cmdline_url\n"
        "print(attempt_cmdline_url(sys.argv[1], network=True, cmdline=sys.argv[2]))"
    )
    result = subprocess.run([SYSTEM_PYTHON, "-c", script, str(target), cmdline], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    written = target.read_bytes()
    # cloud-init 22.4 writes the 13 bytes it sniffed for the header, then the whole body again: the
    # doubled "#cloud-config" is one comment line. Everything after it is our user data.
    assert written.removeprefix(b"#cloud-config") == user_data(inventory, "worker1"), result.stdout
    schema = subprocess.run(["cloud-init", "schema", "--config-file", str(target)], capture_output=True, text=True)
    assert schema.returncode == 0, schema.stdout + schema.stderr


def test_flatcar_stage_one_installs_the_config_matchbox_serves_for_stage_two(
    pxe_site: tuple[Path, Any], matchbox_server: str, tmp_path: Path
) -> None:
    inventory, _ = pxe_site
    matchbox = inventory / "pxe" / "matchbox"
    validate = require_tool("ignition-validate")
    for ign in sorted(matchbox.glob("ignition/*.ign")):
        result = subprocess.run([validate, str(ign)], capture_output=True, text=True)
        assert result.returncode == 0 and not result.stdout + result.stderr, (ign, result.stdout, result.stderr)
    install = json.loads((matchbox / "ignition/lab_flatcar1_install.ign").read_text())
    files = files_of(install)
    mode, script = files[pxe.INSTALL_SCRIPT]
    assert mode == 0o700
    assert [u["name"] for u in install["systemd"]["units"]] == [pxe.INSTALL_UNIT]
    assert not keyscan.holds_private_key(json.dumps(install).encode())  # data URLs decoded
    (tmp_path / "pxe-install.sh").write_bytes(script)
    shellcheck = subprocess.run([require_tool("shellcheck"), str(tmp_path / "pxe-install.sh")], capture_output=True)
    assert shellcheck.returncode == 0, shellcheck.stdout
    # The URL the installer fetches, asked of matchbox, returns the node's Ignition config byte for byte.
    url = next(
        shlex.split(line)[0].partition("=")[2]
        for line in script.decode().splitlines()
        if line.startswith("CONFIG_URL=")
    )
    assert url == f"{ENDPOINT}/ignition?mac=52:54:00:00:00:05&os=installed"
    served = subprocess.run(
        ["curl", "-fsS", url.replace(ENDPOINT, matchbox_server)], capture_output=True, check=True
    ).stdout
    assert served == user_data(inventory, "flatcar1")


# -- DHCP: the real servers, in network namespaces ---------------------------------------------
DHCPD_CONF = """\
authoritative;
default-lease-time 600;
subnet 10.10.10.0 netmask 255.255.255.0 {{ }}
include "{hosts}";
"""
DHCLIENT_IPXE = 'send user-class "iPXE";\n'
DHCLIENT_UEFI = "option pxe-arch code 93 = unsigned integer 16;\nsend pxe-arch 7;\n"


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A server and a client namespace joined by a veth pair; the client NIC has worker1's MAC."""
    require_tool("ip")
    server, client = (f"isobuild-{uuid.uuid4().hex[:8]}" for _ in range(2))

    def sh(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    try:
        sh("netns", "add", server)
        sh("netns", "add", client)
        sh("link", "add", "srv0", "netns", server, "type", "veth", "peer", "name", "eth0", "netns", client,
           "address", "52:54:00:00:00:02")  # fmt: skip
        sh("-n", server, "addr", "add", "10.10.10.254/24", "dev", "srv0")
        for ns, nic in ((server, "srv0"), (server, "lo"), (client, "eth0")):
            sh("-n", ns, "link", "set", nic, "up")
        yield server, client
    finally:
        subprocess.run(["ip", "netns", "del", server], capture_output=True)
        subprocess.run(["ip", "netns", "del", client], capture_output=True)


def dhcp_lease(client: str, tmp_path: Path, conf: str, tag: str) -> str:
    """One DHCP exchange by dhclient (no interface changes: -sf /bin/true); its lease file."""
    (tmp_path / f"{tag}.conf").write_text(conf)
    lease = tmp_path / f"{tag}.lease"
    result = subprocess.run(
        ["ip", "netns", "exec", client, require_tool("dhclient"), "-4", "-1", "-cf", str(tmp_path / f"{tag}.conf"),
         "-lf", str(lease), "-pf", str(tmp_path / f"{tag}.pid"), "-sf", "/bin/true", "eth0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    pid = tmp_path / f"{tag}.pid"
    if pid.exists():  # with its lease, dhclient stays on in the background to renew it: stop it
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid.read_text().split()[0]), signal.SIGTERM)
    assert result.returncode == 0, result.stderr[-2000:]
    return lease.read_text()


@contextlib.contextmanager
def serving(command: list[str], log: Path) -> Iterator[None]:
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("server_kind", ["dnsmasq", "dhcpd"])
def test_dhcp_servers_hand_out_the_fixed_address_and_chain_load_ipxe(
    pxe_site: tuple[Path, Any], lan: tuple[str, str], tmp_path: Path, server_kind: str
) -> None:
    inventory, _ = pxe_site
    server, client = lan
    hosts = inventory / "pxe" / f"{server_kind}-hosts.conf"
    if server_kind == "dnsmasq":
        check = [require_tool("dnsmasq"), "--test", f"--conf-file={hosts}"]
        command = [require_tool("dnsmasq"), "--keep-in-foreground", f"--conf-file={hosts}", "--port=0",
                   "--interface=srv0", "--bind-interfaces", "--dhcp-range=10.10.10.0,static",
                   f"--dhcp-leasefile={tmp_path / 'leases'}", f"--pid-file={tmp_path / 'pid'}", "--log-facility=-"]  # fmt: skip
    else:
        conf = tmp_path / "dhcpd.conf"
        conf.write_text(DHCPD_CONF.format(hosts=hosts))
        (tmp_path / "leases").touch()
        check = [require_tool("dhcpd"), "-t", "-cf", str(conf)]
        command = [require_tool("dhcpd"), "-4", "-f", "-cf", str(conf), "-lf", str(tmp_path / "leases"),
                   "-pf", str(tmp_path / "pid"), "srv0"]  # fmt: skip
    checked = subprocess.run(check, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with serving(["ip", "netns", "exec", server, *command], tmp_path / "server.log"):
        bios = dhcp_lease(client, tmp_path, "", "bios")
        ipxe = dhcp_lease(client, tmp_path, DHCLIENT_IPXE, "ipxe")
        uefi = dhcp_lease(client, tmp_path, DHCLIENT_UEFI, "uefi")
    for lease in (bios, ipxe, uefi):
        assert "fixed-address 10.10.10.2;" in lease and 'option host-name "worker1";' in lease, lease
    assert 'filename "undionly.kpxe";' in bios
    assert f'filename "{ENDPOINT}/boot.ipxe";' in ipxe
    assert 'filename "ipxe.efi";' in uefi


def test_dhcp_syntax_checkers_reject_a_broken_file(tmp_path: Path) -> None:
    """The syntax checks above can fail: a mangled host block is refused."""
    bad = tmp_path / "hosts.conf"
    bad.write_text("host lab_x {\n  hardware ethernet zz;\n}\n")
    (tmp_path / "dhcpd.conf").write_text(DHCPD_CONF.format(hosts=bad))
    assert subprocess.run(
        [require_tool("dhcpd"), "-t", "-cf", str(tmp_path / "dhcpd.conf")], capture_output=True
    ).returncode
    bad.write_text("dhcp-hots=52:54:00:00:00:01,10.0.0.1\n")
    assert subprocess.run([require_tool("dnsmasq"), "--test", f"--conf-file={bad}"], capture_output=True).returncode


# -- inventories -----------------------------------------------------------------------------------
def test_ansible_inventory_reads_the_groups_per_role(pxe_site: tuple[Path, Any]) -> None:
    inventory, _ = pxe_site
    tool = Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "ansible-inventory"
    tool = tool if tool.exists() else Path(require_tool("ansible-inventory"))
    env = {
        **os.environ,
        "ANSIBLE_LOCAL_TEMP": str(inventory.parent / "ansible-tmp"),
        "ANSIBLE_HOME": str(inventory.parent),
    }
    result = subprocess.run(
        [str(tool), "-i", str(inventory / "pxe" / "ansible-inventory.yaml"), "--list"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 0 and "WARNING" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    assert data["controllers"]["hosts"] == ["controller"]
    assert data["workers"]["hosts"] == ["worker1", "worker2", "flatcar1"]
    assert data["edge_routers"]["hosts"] == ["example.com"]
    hostvars = data["_meta"]["hostvars"]
    assert hostvars["flatcar1"]["ansible_host"] == "10.10.10.5" and hostvars["flatcar1"]["ansible_user"] == "core"
    assert hostvars["worker1"]["isobuild_mac"] == "52:54:00:00:00:02" and "isobuild_mac" not in hostvars["worker2"]


def test_csv_and_json_inventories_list_every_node(pxe_site: tuple[Path, Any]) -> None:
    out = pxe_site[0] / "pxe"
    rows = list(csv.DictReader(io.StringIO((out / "inventory.csv").read_text())))
    assert [r["name"] for r in rows] == ["controller", "worker1", "worker2", "example.com", "flatcar1"]
    assert rows[1] == {"name": "worker1", "role": "worker", "mac": "52:54:00:00:00:02", "ip": "10.10.10.2",
                       "format": "cloud-config", "media": "config-2"}  # fmt: skip
    data = json.loads((out / "inventory.json").read_text())
    assert data["cluster"]["api_server"] == "https://10.10.10.1:6443"
    booted = {n["name"]: n["network_boot"] for n in data["nodes"]}
    assert booted == {"controller": True, "worker1": True, "worker2": False, "example.com": True, "flatcar1": True}


# -- the command ---------------------------------------------------------------------------------
def test_report_names_skipped_nodes_and_the_secrets(pxe_site: tuple[Path, Any]) -> None:
    _, report = pxe_site
    assert [n["name"] for n in report["nodes"]] == ["controller", "worker1", "example.com", "flatcar1"]
    assert report["skipped"] == [
        {"name": "worker2", "reason": "no MAC in cluster.yaml (isobuild node NAME IP --mac MAC)"}
    ]
    assert report["serves_secrets"] is True and all(not n["withheld"] for n in report["nodes"])


def test_served_configs_are_the_drives_user_data_and_secret_ones_are_private(pxe_site: tuple[Path, Any]) -> None:
    inventory, _ = pxe_site
    matchbox = inventory / "pxe" / "matchbox"
    assert (matchbox / "cloud/lab_controller.yaml").read_bytes() == user_data(inventory, "controller")
    assert (matchbox / "ignition/lab_flatcar1.ign").read_bytes() == user_data(inventory, "flatcar1")
    assert (matchbox / "cloud/lab_controller.yaml").stat().st_mode & 0o777 == 0o600
    assert (matchbox / "profiles/lab_controller.json").stat().st_mode & 0o777 == 0o644


def test_no_secrets_leaves_every_private_key_out(pxe_site: tuple[Path, Any], tmp_path: Path) -> None:
    inventory, _ = pxe_site
    out = tmp_path / "public"
    report = run_json(inventory, *PXE_ARGS, "--no-secrets", "--out", str(out))
    assert report["serves_secrets"] is False
    withheld = {n["name"]: n["withheld"] for n in report["nodes"]}
    assert (
        "/etc/kubernetes/pki/ca.key" in withheld["controller"]
        and "/etc/kubernetes/admin.conf" in withheld["controller"]
    )
    assert withheld["worker1"] == ["/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/pki/kubelet.key"]
    flatcar = json.loads((out / "matchbox/ignition/lab_flatcar1.ign").read_text())
    decoded = b"".join(content for _, content in files_of(flatcar).values())
    for path in out.rglob("*"):
        if path.is_file():
            assert not keyscan.holds_private_key(path.read_bytes()), path
    assert not any(m in decoded for m in keyscan.MARKERS)
    assert "/var/lib/kubelet/pki/kubelet.crt" in files_of(flatcar)  # certificates stay
    validate = subprocess.run([require_tool("ignition-validate"), str(out / "matchbox/ignition/lab_flatcar1.ign")])
    assert validate.returncode == 0
    schema = subprocess.run(["cloud-init", "schema", "--config-file", str(out / "matchbox/cloud/lab_controller.yaml")],
                            capture_output=True, text=True)  # fmt: skip
    assert schema.returncode == 0, schema.stdout


def test_every_served_file_with_a_key_is_0600_ignition_included(pxe_site: tuple[Path, Any]) -> None:
    inventory, report = pxe_site
    assert report["serves_secrets"] is True
    served = [p for p in (inventory / "pxe" / "matchbox").rglob("*") if p.is_file()]
    secret = [p for p in served if keyscan.holds_private_key(p.read_bytes())]
    assert any(p.suffix == ".ign" for p in secret)  # gzip+base64 data URLs: a text search finds nothing there
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in secret), [(p.name, oct(p.stat().st_mode)) for p in secret]


@pytest.mark.parametrize("encoding", ["b64", "gz+b64", "gzip+base64", "binary"])
def test_no_secrets_withholds_keys_a_hand_edit_encodes(run: Run, inv: Path, tmp_path: Path, encoding: str) -> None:
    assert run("init", "--name", "lab").code == 0
    assert run("node", "c1", "10.0.0.1", "--mac", "52:54:00:00:00:01").code == 0
    user_data = inv / "node-c1/cloud-config/openstack/latest/user_data"
    pem = (inv / "ssl/ca.key").read_bytes()
    packed = gzip.compress(pem) if "gz" in encoding else pem
    body = base64.b64encode(packed).decode()
    entry = (
        f"  - path: /root/hidden\n    content: !!binary |\n      {body}\n"
        if encoding == "binary"
        else f"  - path: /root/hidden\n    encoding: {encoding}\n    content: {body}\n"
    )
    text = user_data.read_text()
    user_data.write_text(text.replace("write_files:\n", "write_files:\n" + entry, 1))
    report = run_json(inv, *PXE_ARGS, "--no-secrets", "--out", str(tmp_path / "out"))
    assert "/root/hidden" in report["nodes"][0]["withheld"]
    assert report["serves_secrets"] is False
    assert not any(keyscan.holds_private_key(p.read_bytes()) for p in (tmp_path / "out").rglob("*") if p.is_file())


def test_rerun_changes_nothing_and_foreign_folders_are_never_replaced(run: Run, inv: Path, tmp_path: Path) -> None:
    assert run("init", "--name", "lab").code == 0
    assert run("node", "c1", "10.0.0.1", "--mac", "52:54:00:00:00:01").code == 0
    (inv / "cluster.yaml").write_text(  # declared in cluster.yaml, folder not built yet
        (inv / "cluster.yaml").read_text() + "- {name: w1, ip: 10.0.0.2, role: worker, mac: '52:54:00:00:00:02'}\n"
    )
    first = run(*PXE_ARGS)
    assert first.code == 0 and "skipped w1: not built yet: no user data in node-w1/" in first.err
    stamp = {p: p.stat().st_mtime_ns for p in (inv / "pxe").rglob("*")}
    again = run(*PXE_ARGS)
    assert again.code == 0 and "up to date" in again.err
    assert stamp == {p: p.stat().st_mtime_ns for p in (inv / "pxe").rglob("*")}
    foreign = tmp_path / "matchbox-data"
    (foreign / "assets").mkdir(parents=True)
    (foreign / "assets" / "keep").write_text("mine")
    refused = run(*PXE_ARGS, "--out", str(foreign))
    assert refused.code == 1 and "was not made by `isobuild pxe`" in refused.err
    assert [p.name for p in foreign.rglob("*")] == ["assets", "keep"]
    for target in (inv, inv / "ssl" / "x", inv / "node-c1" / "pxe"):
        assert run(*PXE_ARGS, "--out", str(target)).code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http-endpoint", "ftp://10.0.0.1"], "invalid --http-endpoint 'ftp://10.0.0.1'"),
        (["--http-endpoint", "http://h:8080/?x=1"], "invalid --http-endpoint"),
        (["--http-endpoint", 'http://h/"; rm -rf /'], "invalid --http-endpoint"),
        (["--http-endpoint", ENDPOINT, "--install-disk", "sda"], "invalid --install-disk 'sda'"),
        (["--http-endpoint", ENDPOINT, "--install-disk", "/dev/sda; reboot"], "invalid --install-disk"),
        (["--http-endpoint", ENDPOINT, "--next-server", "tftp.lab"], "invalid --next-server IP 'tftp.lab'"),
        (["--http-endpoint", ENDPOINT, "--os-version", "latest"], "invalid Flatcar version 'latest'"),
    ],
)
def test_bad_options_are_one_line_errors_and_nothing_is_written(
    run: Run, inv: Path, args: list[str], message: str
) -> None:
    assert run("init", "--name", "lab").code == 0
    assert run("node", "c1", "10.0.0.1", "--mac", "52:54:00:00:00:01").code == 0
    result = run("pxe", *args)
    assert result.code == 1 and result.err.startswith(f"Error: {message}"), result.err
    assert "Hint:" in result.err and "Traceback" not in result.err
    assert not (inv / "pxe").exists()


def test_go_template_literal_escapes_only_the_action_opener() -> None:
    text = b"a: '{{ not a template }}' and }} stays"
    assert pxe.go_template_literal(text) == b"a: '{{\"{{\"}} not a template }}' and }} stays"
    assert pxe.go_template_literal(b"plain") == b"plain"


def test_an_outside_folder_is_replaced_whole(run: Run, inv: Path, tmp_path: Path) -> None:
    assert run("init", "--name", "lab").code == 0
    assert run("node", "c1", "10.0.0.1", "--format", "ignition", "--mac", "52:54:00:00:00:01").code == 0
    out = tmp_path / "site" / "pxe"
    assert run(*PXE_ARGS, "--out", str(out)).code == 0
    assert run(*PXE_ARGS, "--out", str(out), "--install-disk", "/dev/vda").code == 0
    profile = json.loads((out / "matchbox/profiles/lab_c1_install.json").read_text())
    assert profile["name"].endswith("install to /dev/vda: c1")
    assert sorted(p.name for p in out.parent.iterdir()) == ["pxe"]  # no staging or old copy left


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    endpoint=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40).map(lambda t: "http://" + t),
    disk=st.text(max_size=20).map(lambda t: "/dev/" + t),
)
def test_hostile_pxe_options_never_crash(run: Run, inv: Path, endpoint: str, disk: str) -> None:
    if not (inv / "cluster.yaml").exists():
        assert run("node", "c1", "10.0.0.1", "--format", "ignition", "--mac", "52:54:00:00:00:01").code == 0
    before = sorted(p.relative_to(inv) for p in inv.rglob("*") if ".isobuild" not in p.parts)
    result = run("pxe", "--http-endpoint", endpoint, "--install-disk", disk)
    if result.code == 0:
        script = files_of(json.loads(next((inv / "pxe/matchbox/ignition").glob("*_install.ign")).read_text()))
        assert shlex.quote(disk) in script[pxe.INSTALL_SCRIPT][1].decode()
    else:
        assert result.code == 1 and result.err.startswith("Error: ") and "Traceback" not in result.err
        assert sorted(p.relative_to(inv) for p in inv.rglob("*") if ".isobuild" not in p.parts) == before
