"""Edge routers on the internet, as the real tools see them: the firewall checked by nft and
enforced by the kernel in network namespaces, the pod network's and the ingress's
kustomizations built by kubectl's kustomize, the scripts by shellcheck, the Ignition config by
ignition-validate. The upstream rules they rely on are cited in isobuilder/firewall.py,
isobuilder/manifests.py and docs/KUBEADM.md."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from isobuilder.firewall import RULESET_PATH, UNIT, UNIT_PATH
from isobuilder.firstboot import files_written
from tests.helpers import CONFIG_2_USER_DATA, Run, decode, require_tool

ADDONS = "/etc/kubernetes/isobuild"
EDGES = {  # name: (its flags, what its firewall must admit besides the nodes)
    "edge-lan": ["10.0.0.3", "--public-ip", "203.0.113.5"],  # a private address and a public one
    "edge-wan": ["198.51.100.7"],  # a public address alone
    "edge-flatcar": ["10.0.0.4", "--public-ip", "203.0.113.6", "--format", "ignition"],
}


@pytest.fixture
def edges(run: Run, inv: Path) -> Path:
    assert run("init").code == 0
    for args in (["c1", "10.0.0.1"], ["w1", "10.0.0.2", "--master", "c1"]):
        assert run("node", *args).code == 0
    for name, flags in EDGES.items():
        result = run("node", name, *flags, "--master", "c1", "--role", "edge")
        assert result.code == 0, result.err
    return inv


def _host_files(inv: Path, node: str) -> dict[str, bytes]:
    """What the node's first boot writes, read as cloud-init or Ignition reads it."""
    if (inv / f"node-{node}" / CONFIG_2_USER_DATA).exists():
        data = (inv / f"node-{node}" / CONFIG_2_USER_DATA).read_bytes()
        if not data.startswith(b"{"):
            files = files_written(data)
            assert files is not None
            return {path: f.content for path, f in files.items()}
    config = _ignition(inv, node)
    return {f["path"]: decode(f["contents"]) for f in config["storage"]["files"]}


def _ignition(inv: Path, node: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((inv / f"node-{node}" / CONFIG_2_USER_DATA).read_text())
    return config


def _nft_check(path: Path) -> subprocess.CompletedProcess[str]:
    """``nft -c -f`` as a minimal image runs it: without /etc/protocols and /etc/services
    (netbase, which Debian's minbase and some appliance images lack: a protocol or service
    name there fails to load; the slow suite's guest showed it)."""
    empty = path.with_name("empty")
    empty.write_text("")
    script = 'mount --bind "$1" /etc/protocols && mount --bind "$1" /etc/services && exec "$2" -c -f "$3"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(empty), require_tool("nft"), str(path)],
                          capture_output=True, text=True)  # fmt: skip


def test_every_edge_router_firewall_passes_nft_check(edges: Path, tmp_path: Path) -> None:
    for name in EDGES:
        ruleset = _host_files(edges, name)[RULESET_PATH]
        path = tmp_path / f"{name}.nft"
        path.write_bytes(ruleset)
        result = _nft_check(path)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        text = ruleset.decode()
        # The cluster's addresses: every node's, the public ones too, and the pod network.
        elements = re.search(r"set cluster_v4 \{[^}]*elements = \{ ([^}]*) \}", text)
        assert elements is not None
        admitted = [ipaddress.IPv4Network(e) for e in elements.group(1).split(", ")]
        nodes = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "198.51.100.7", "203.0.113.5", "203.0.113.6"]
        assert sum(n.num_addresses for n in admitted) == len(nodes) + 65536  # no more than these
        assert all(any(ipaddress.IPv4Network(a).subnet_of(n) for n in admitted) for a in [*nodes, "10.244.0.0/16"])
        # edge-wan's public address alone: the pod network runs encrypted, its port open to all.
        assert "udp dport { 51820, 51821 } accept" in text
    for name in ("c1", "w1"):
        assert RULESET_PATH not in _host_files(edges, name)


def test_a_node_on_the_internet_turns_the_pod_network_to_wireguard(run: Run, inv: Path) -> None:
    assert run("init").code == 0
    assert run("node", "c1", "10.0.0.1").code == 0
    assert run("node", "edge", "10.0.0.3", "--public-ip", "203.0.113.5", "--master", "c1", "--role", "edge").code == 0

    def backend() -> dict[str, Any]:
        kustomization = yaml.safe_load(_host_files(inv, "c1")[f"{ADDONS}/flannel/kustomization.yaml"])
        patch = yaml.safe_load(kustomization["patches"][0]["patch"])
        return dict(json.loads(patch[0]["value"])["Backend"])

    # A private address beside the public one: pod traffic stays on the private network.
    assert backend() == {"Type": "vxlan"}
    assert "51820" not in _host_files(inv, "edge")[RULESET_PATH].decode()
    before = (inv / "node-edge" / ".isobuild.json").read_bytes()
    # A second edge router on a public address alone: every node is rebuilt (the backend is one
    # for the cluster), and the first edge router's firewall opens WireGuard's ports.
    result = run("node", "edge2", "198.51.100.7", "--master", "c1", "--role", "edge")
    assert result.code == 0, result.err
    assert backend() == {"Type": "wireguard", "PersistentKeepaliveInterval": 25}
    assert (inv / "node-edge" / ".isobuild.json").read_bytes() != before
    assert "udp dport { 51820, 51821 } accept" in _host_files(inv, "edge")[RULESET_PATH].decode()
    assert "modprobe wireguard" in (inv / "node-c1" / "install.sh").read_text()


def test_a_new_worker_rebuilds_the_edge_routers_and_no_other_node(run: Run, inv: Path) -> None:
    assert run("init").code == 0
    for args in (["c1", "10.0.0.1"], ["w1", "10.0.0.2", "--master", "c1"],
                 ["edge", "10.0.0.3", "--master", "c1", "--role", "edge"]):  # fmt: skip
        assert run("node", *args).code == 0
    state = {n: (inv / f"node-{n}" / ".isobuild.json").read_bytes() for n in ("c1", "w1", "edge")}
    result = run("node", "w2", "10.0.0.9", "--master", "c1")
    assert result.code == 0, result.err
    after = {n: (inv / f"node-{n}" / ".isobuild.json").read_bytes() for n in state}
    assert [n for n in state if state[n] != after[n]] == ["edge"]
    assert "10.0.0.9" in _host_files(inv, "edge")[RULESET_PATH].decode()
    # and `build` finds nothing more to do; removing the worker rebuilds the edge router again
    assert run("build").err.startswith("build: 0 built, 4 unchanged, 0 failed")
    assert run("remove", "w2").code == 0
    assert "10.0.0.9" not in _host_files(inv, "edge")[RULESET_PATH].decode()
    assert (inv / "node-w1" / ".isobuild.json").read_bytes() == state["w1"]


def test_public_ip_is_refused_where_it_cannot_be(run: Run, inv: Path) -> None:
    assert run("init").code == 0
    assert run("node", "c1", "10.0.0.1").code == 0
    cases = {
        ("w1", "10.0.0.2", "--public-ip", "203.0.113.5"): "Error: --public-ip: only an edge router has a public address",
        ("e1", "10.0.0.2", "--public-ip", "10.0.0.9", "--role", "edge"): (
            "Error: --public-ip: 10.0.0.9 is not an address on the internet"
        ),
        ("e1", "10.0.0.2", "--public-ip", "240.0.0.1", "--role", "edge"): (
            "Error: --public-ip: 240.0.0.1 is not an address on the internet"
        ),
        ("e1", "10.0.0.2", "--public-ip", "::10.0.0.1", "--role", "edge"): (
            "Error: --public-ip: ::a00:1 is not an address on the internet"
        ),
        # one problem, one error: a private address that is also another node's
        ("e1", "10.0.0.2", "--public-ip", "10.0.0.1", "--role", "edge"): (
            "Error: --public-ip: 10.0.0.1 is already used by node 'c1'"
        ),
        ("e1", "10.0.0.2", "--public-ip", "10.0.0.2", "--role", "edge"): "Error: --public-ip: it is the node's own ip",
        ("e1", "198.51.100.7", "--public-ip", "203.0.113.5", "--role", "edge"): (
            "Error: --public-ip: the node's ip 198.51.100.7 is public too"
        ),
        ("e1", "10.0.0.2", "--public-ip", "10.0.0.1x", "--role", "edge"): "Error: --public-ip: ",
    }  # fmt: skip
    before = sorted(p.name for p in inv.iterdir())
    for args, first in cases.items():
        result = run("node", *args, "--master", "c1")
        assert result.code == 1 and result.err.startswith(first), (args, result.err)
        assert len(result.err.splitlines()) == 2, result.err  # the error and its hint
        assert sorted(p.name for p in inv.iterdir()) == before
    assert run("node", "e1", "10.0.0.2", "--public-ip", "203.0.113.5", "--master", "c1", "--role", "edge").code == 0
    result = run("node", "e2", "10.0.0.3", "--public-ip", "203.0.113.5", "--master", "c1", "--role", "edge")
    assert result.code == 1
    assert result.err.splitlines()[0] == "Error: --public-ip: 203.0.113.5 is already used by node 'e1'"
    assert "  public_ip: 203.0.113.5" in (inv / "cluster.yaml").read_text()
    # In cluster.yaml, inside the service CIDR: refused where it is written.
    cluster = inv / "cluster.yaml"
    text = cluster.read_text()
    cluster.write_text(text.replace("service_cidr: 10.96.0.0/12", "service_cidr: 203.0.113.0/24"))
    result = run("build")
    assert result.code == 1
    assert (
        result.err.splitlines()[0] == "Error: cluster.yaml: nodes[1].public_ip: 203.0.113.5 is inside the service CIDR"
    )
    cluster.write_text(text)


def test_edge_scripts_pass_shellcheck_and_the_units_pass_systemd(edges: Path, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    for name in ("edge-lan", "edge-wan"):
        for script in ("install.sh", "apply.sh"):
            path = edges / f"node-{name}" / script
            result = subprocess.run([shellcheck, "--shell=bash", str(path)], capture_output=True, text=True)
            assert result.returncode == 0, f"{name}/{script}: {result.stdout}"
        install = (edges / f"node-{name}" / "install.sh").read_text()
        assert install.index("\nstart_firewall\n") < install.index("\ndisable_swap\n")
        apply = (edges / f"node-{name}" / "apply.sh").read_text()
        assert f"changed {RULESET_PATH} {UNIT_PATH} && restart {UNIT}" in apply
    analyze = require_tool("systemd-analyze")
    root = tmp_path / "root"
    unit = root / UNIT_PATH.lstrip("/")
    unit.parent.mkdir(parents=True)
    unit.write_bytes(_host_files(edges, "edge-lan")[UNIT_PATH])
    (root / "usr/sbin").mkdir(parents=True)
    shutil.copy(require_tool("nft"), root / "usr/sbin/nft")
    result = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={root}", UNIT_PATH], capture_output=True, text=True
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_flatcar_edge_router_enables_its_firewall_in_ignition(edges: Path, tmp_path: Path) -> None:
    config = _ignition(edges, "edge-flatcar")
    units = {u["name"]: u for u in config["systemd"]["units"]}
    assert units[UNIT]["enabled"] is True
    assert RULESET_PATH in {f["path"] for f in config["storage"]["files"]}
    path = tmp_path / "config.ign"
    path.write_text(json.dumps(config))
    result = subprocess.run([require_tool("ignition-validate"), str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the kernel enforcing it ---------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Hosts:
    edge: str  # the edge router: 192.168.77.1, and 10.244.1.1 towards its pod
    peer: str  # a cluster node's address (192.168.77.2) and a stranger's (192.168.77.3)
    pod: str  # a pod on the edge router: 10.244.1.2


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Three network namespaces: an edge router routing between the others (a peer network and a
    pod), its peer holding a cluster node's address and a stranger's. No traffic leaves them."""
    require_tool("ip")
    tag = uuid.uuid4().hex[:6]
    found = Hosts(f"isobuild-edge-{tag}", f"isobuild-peer-{tag}", f"isobuild-pod-{tag}")
    for ns in (found.edge, found.peer, found.pod):
        _ip("netns", "add", ns)
    try:
        for ours, theirs, ns in ((f"ve{tag}", f"vp{tag}", found.peer), (f"vc{tag}", f"vq{tag}", found.pod)):
            _ip("link", "add", ours, "netns", found.edge, "type", "veth", "peer", "name", theirs, "netns", ns)
        for ns, dev, addresses in (
            (found.edge, f"ve{tag}", ["192.168.77.1/24"]),
            (found.peer, f"vp{tag}", ["192.168.77.2/24", "192.168.77.3/24"]),
            (found.edge, f"vc{tag}", ["10.244.1.1/24"]),
            (found.pod, f"vq{tag}", ["10.244.1.2/24"]),
        ):
            for address in addresses:
                _ip("-n", ns, "addr", "add", address, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", found.peer, "route", "add", "10.244.0.0/16", "via", "192.168.77.1")  # a neighbour routing pods
        _ip("-n", found.pod, "route", "add", "default", "via", "10.244.1.1")
        subprocess.run(["ip", "netns", "exec", found.edge, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        yield found
    finally:
        for ns in (found.edge, found.peer, found.pod):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


LISTEN = """
import socket, sys, time
socks = []
for port in (int(p) for p in sys.argv[1:]):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(); socks.append(s)
print("ready", flush=True)
time.sleep(60)
"""
CONNECT = """
import socket, sys
source, target, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(); s.settimeout(1.5); s.bind((source, 0))
try:
    s.connect((target, port)); print("open")
except socket.timeout:
    print("dropped")
except ConnectionRefusedError:
    print("refused")
"""
# What kube-proxy (a NodePort) and the portmap CNI plugin (a hostPort) do to traffic for the
# edge router, standing in for them: DNAT to its pod.
DNAT = """
table ip standin {
    chain prerouting {
        type nat hook prerouting priority dstnat;
        ip daddr 192.168.77.1 tcp dport 80 dnat to 10.244.1.2:8080
        ip daddr 192.168.77.1 tcp dport 30080 dnat to 10.244.1.2:9000
    }
}
"""


@contextlib.contextmanager
def _listening(ns: str, *ports: int) -> Iterator[None]:
    server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", LISTEN, *map(str, ports)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


def test_the_kernel_admits_the_ingress_from_anyone_and_the_rest_from_the_cluster(
    run: Run, inv: Path, tmp_path: Path, hosts: Hosts
) -> None:
    assert run("init").code == 0
    assert run("node", "c1", "192.168.77.2").code == 0
    assert run("node", "edge", "192.168.77.1", "--master", "c1", "--role", "edge").code == 0
    ruleset = tmp_path / "firewall.nft"
    ruleset.write_bytes(_host_files(inv, "edge")[RULESET_PATH])
    nft = ["ip", "netns", "exec", hosts.edge, require_tool("nft")]
    subprocess.run([*nft, "-f", str(ruleset)], check=True)
    (tmp_path / "dnat.nft").write_text(DNAT)
    subprocess.run([*nft, "-f", str(tmp_path / "dnat.nft")], check=True)

    def connect(source: str, target: str, port: int) -> str:
        result = subprocess.run(["ip", "netns", "exec", hosts.peer, "python3", "-c", CONNECT, source, target, str(port)],
                                capture_output=True, text=True, check=True)  # fmt: skip
        return result.stdout.strip()

    node, stranger, edge, pod = "192.168.77.2", "192.168.77.3", "192.168.77.1", "10.244.1.2"
    with _listening(hosts.edge, 443, 10250, 8472), _listening(hosts.pod, 8080, 9000):
        assert connect(stranger, edge, 443) == "open"  # the ingress: anyone
        assert connect(stranger, edge, 10250) == "dropped"  # the kubelet: not a stranger
        assert connect(node, edge, 10250) == "open"  # ... but the controller
        assert connect(stranger, edge, 22) == "refused"  # SSH: open (nothing listens here)
        assert connect(stranger, edge, 6443) == "dropped"
        assert connect(stranger, edge, 80) == "open"  # a hostPort ingress, DNAT to its pod
        assert connect(stranger, edge, 30080) == "dropped"  # a NodePort: the cluster's
        assert connect(node, edge, 30080) == "open"
        assert connect(stranger, pod, 9000) == "dropped"  # a pod routed through the edge router
        assert connect(node, pod, 9000) == "open"
    # apply.sh reloads it as a whole: loading it twice leaves one table.
    subprocess.run([*nft, "-f", str(ruleset)], check=True)
    tables = subprocess.run([*nft, "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert tables.split("\n").count("table inet isobuild") == 1


# -- kubectl's kustomize on the kustomizations --------------------------------------------------
# Stand-ins for the upstream manifests the kustomizations fetch (no network in tests): the
# objects and fields the patches touch, as upstream has them (flannel's kube-flannel.yml;
# Contour's examples/contour/03-envoy.yaml and 02-service-envoy.yaml).
UPSTREAM = {
    "flannel": """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: kube-flannel-cfg, namespace: kube-flannel}
        data:
          net-conf.json: '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}'
        ---
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: kube-flannel-ds, namespace: kube-flannel}
        spec:
          selector: {matchLabels: {app: flannel}}
          template:
            metadata: {labels: {app: flannel}}
            spec:
              containers:
              - name: kube-flannel
                image: ghcr.io/flannel-io/flannel:v0.28.9
                command: [/opt/bin/flanneld]
                args: [--ip-masq, --kube-subnet-mgr]
                env:
                - name: POD_NAME
                  valueFrom: {fieldRef: {fieldPath: metadata.name}}
        """,
    "contour": """
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: envoy, namespace: projectcontour, labels: {app: envoy}}
        spec:
          selector: {matchLabels: {app: envoy}}
          template:
            metadata: {labels: {app: envoy}}
            spec:
              containers:
              - name: envoy
                image: docker.io/envoyproxy/envoy:distroless-v1.35.8
                ports:
                - {containerPort: 8080, hostPort: 80, name: http, protocol: TCP}
                - {containerPort: 8443, hostPort: 443, name: https, protocol: TCP}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: envoy, namespace: projectcontour}
        spec:
          externalTrafficPolicy: Local
          ports:
          - {port: 80, name: http, protocol: TCP}
          - {port: 443, name: https, protocol: TCP}
          selector: {app: envoy}
          type: LoadBalancer
        """,
}


def _kustomize(inv: Path, addon: str, tmp_path: Path) -> dict[tuple[str, str], Any]:
    kubectl = require_tool("kubectl")
    version = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True)
    kustomize = json.loads(version.stdout or "{}").get("kustomizeVersion", "")
    if not re.match(r"v([4-9]|\d\d)\.", kustomize):
        pytest.skip(f"kubectl's kustomize is {kustomize or 'absent'}: patches with targets need v4 or newer")
    folder = tmp_path / addon
    folder.mkdir()
    kustomization = yaml.safe_load(_host_files(inv, "c1")[f"{ADDONS}/{addon}/kustomization.yaml"])
    assert len(kustomization["resources"]) == 1 and kustomization["resources"][0].startswith("https://")
    kustomization["resources"] = ["upstream.yaml"]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    (folder / "upstream.yaml").write_text(textwrap.dedent(UPSTREAM[addon]))
    result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout)}


def test_kustomize_builds_flannel_on_each_node_s_own_address(edges: Path, tmp_path: Path) -> None:
    built = _kustomize(edges, "flannel", tmp_path)
    container = built[("DaemonSet", "kube-flannel-ds")]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--ip-masq", "--kube-subnet-mgr", "--iface=$(NODE_IP)"]
    assert {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}} in container["env"]
    net_conf = json.loads(built[("ConfigMap", "kube-flannel-cfg")]["data"]["net-conf.json"])
    assert net_conf["Backend"] == {"Type": "wireguard", "PersistentKeepaliveInterval": 25}  # edge-wan


def test_kustomize_builds_contour_s_envoy_on_edge_routers_only(edges: Path, tmp_path: Path) -> None:
    built = _kustomize(edges, "contour", tmp_path)
    pod = built[("DaemonSet", "envoy")]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "role": "edge-router"}
    assert pod["tolerations"] == [{"key": "node-role.kubernetes.io/edge", "effect": "NoSchedule", "operator": "Exists"}]
    assert [p["hostPort"] for p in pod["containers"][0]["ports"]] == [80, 443]  # upstream's, kept
    service = built[("Service", "envoy")]["spec"]
    assert service["type"] == "ClusterIP" and "externalTrafficPolicy" not in service


def test_the_readme_edge_router_commands_run_as_written(run: Run, inv: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## Edge routers\n", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert run("node", "controller", "10.10.10.1").code == 0
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == "isobuild", line
        result = run(*words[1:])
        assert result.code == 0, (line, result.err)
    nodes = {n["name"]: n for n in yaml.safe_load((inv / "cluster.yaml").read_text())["nodes"]}
    assert nodes["edge1"]["public_ip"] == "203.0.113.5" and "public_ip" not in nodes["edge2"]
    for name in ("edge1", "edge2"):
        assert "tcp dport { 22, 80, 443 } accept" in _host_files(inv, name)[RULESET_PATH].decode()


def test_an_ipv6_cluster_s_edge_router_firewall_passes_nft_check(run: Run, inv: Path, tmp_path: Path) -> None:
    assert run("init", "--pod-cidr", "fd00:10:244::/56", "--service-cidr", "fd00:10:96::/112").code == 0
    assert run("node", "c1", "fd00:1::1").code == 0
    result = run("node", "e1", "fd00:1::5", "--public-ip", "203.0.113.5", "--master", "c1", "--role", "edge")
    assert result.code == 0, result.err
    ruleset = _host_files(inv, "e1")[RULESET_PATH]
    path = tmp_path / "e1.nft"
    path.write_bytes(ruleset)
    check = _nft_check(path)
    assert check.returncode == 0, check.stderr
    text = ruleset.decode()
    assert "elements = { fd00:1::1, fd00:1::5, fd00:10:244::/56 }" in text  # the nodes and the pods
    assert "elements = { 203.0.113.5 }" in text  # a public address of the other family
