"""What kubeadm, the kubelet, Flatcar's containerd and flannel check of the files we generate,
each rule encoded as a property of a generated inventory (docs/KUBEADM.md lists them with their
upstream source). A function that restates an upstream rule says so and cites the file."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Run, files_of, require_tool, set_settings, shell_function

USER_DATA = "cloud-config/openstack/latest/user_data"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "flatcar"
ENDPOINT, VIP = "api.lab.test", "10.0.0.10"


def write_files(inv: Path, node: str) -> dict[str, str]:
    data = yaml.safe_load((inv / f"node-{node}" / USER_DATA).read_text())
    return {f["path"]: f["content"] for f in data["write_files"] if not f.get("append")}


def documents(text: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(text)}


def controllers(count: int, run: Run, *, first: int = 1) -> list[tuple[str, str]]:
    made = []
    for i in range(first, first + count):
        name, ip = f"ctrl{i}", f"10.0.0.{10 + i}"
        extra = ["--endpoint", ENDPOINT, "--vip", VIP] if i == 1 else ["--role", "controller"]
        assert run("node", name, ip, *extra).code == 0
        made.append((name, ip))
    return made


# -- the names kubeadm requires of a pre-placed certificate --------------------------------------
def kubeadm_apiserver_names(cluster_config: dict[str, Any], node: str, advertise: str) -> list[str]:
    """Restates kubeadm's ``GetAPIServerAltNames`` (cmd/kubeadm/app/util/pkiutil/pki_helpers.go),
    which ``kubeadm join --control-plane`` checks a pre-placed apiserver.crt against
    (phases/certs/certs.go, validateCertificateWithConfig), for the *uploaded* ClusterConfiguration
    and the joining node's own name and advertise address."""
    service = next(ipaddress.ip_network(cluster_config["networking"]["serviceSubnet"]).hosts())
    domain = cluster_config["networking"]["dnsDomain"]
    host = cluster_config["controlPlaneEndpoint"].rsplit(":", 1)[0].strip("[]")
    fixed = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", f"kubernetes.default.svc.{domain}"]
    return [node, *fixed, str(service), advertise, host, *cluster_config["apiServer"].get("certSANs", [])]


def kubeadm_etcd_names(node: str, advertise: str) -> list[str]:
    """Restates ``GetEtcdAltNames``/``GetEtcdPeerAltNames`` (same file) with no extra etcd SANs."""
    return [node, "localhost", advertise, "127.0.0.1", "::1"]


def openssl_verifies(ca: Path, cert: Path, name: str) -> bool:
    """``openssl verify`` of ``cert`` against ``ca`` as a TLS server named ``name`` (DNS or IP)."""
    try:
        ipaddress.ip_address(name)
        check = ["-verify_ip", name]
    except ValueError:
        check = ["-verify_hostname", name]
    result = subprocess.run(
        [require_tool("openssl"), "verify", "-purpose", "sslserver", "-CAfile", str(ca), *check, str(cert)],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0


def assert_certificates_pass_kubeadm(inv: Path, uploaded: dict[str, Any], names: list[tuple[str, str]]) -> None:
    for node, ip in names:
        join = documents(write_files(inv, node)["/etc/kubernetes/isobuild/kubeadm-join.yaml"])["JoinConfiguration"]
        advertise = join["controlPlane"]["localAPIEndpoint"]["advertiseAddress"]
        assert (join["nodeRegistration"]["name"], advertise) == (node, ip)
        ssl = inv / f"node-{node}" / "ssl"
        for name in kubeadm_apiserver_names(uploaded, node, advertise):
            assert openssl_verifies(ssl / "ca.crt", ssl / "apiserver.crt", name), (node, name)
        for stem in ("etcd/server", "etcd/peer"):
            for name in kubeadm_etcd_names(node, advertise):
                assert openssl_verifies(ssl / "etcd/ca.crt", ssl / f"{stem}.crt", name), (node, stem, name)


def uploaded_configuration(inv: Path) -> dict[str, Any]:
    """The ClusterConfiguration ``kubeadm init`` uploads to kube-system/kubeadm-config
    (phases/uploadconfig/uploadconfig.go): the bootstrap controller's, the only one there is."""
    configs = [p for p in inv.glob("node-*") if "/etc/kubernetes/isobuild/kubeadm.yaml" in write_files(inv, p.name[5:])]
    assert len(configs) == 1, configs
    return documents(write_files(inv, configs[0].name[5:])["/etc/kubernetes/isobuild/kubeadm.yaml"])[
        "ClusterConfiguration"
    ]


@pytest.mark.parametrize("count", [1, 3, 5])
def test_every_controller_certificate_passes_kubeadm_join(run: Run, inv: Path, count: int) -> None:
    made = controllers(count, run)
    uploaded = uploaded_configuration(inv)
    # certSANs: cluster-wide names only, whichever controller the config came from
    assert uploaded["apiServer"]["certSANs"] == [ENDPOINT, VIP]
    assert not {n for pair in made for n in pair} & set(uploaded["apiServer"]["certSANs"])
    assert_certificates_pass_kubeadm(inv, uploaded, made)


def test_a_controller_added_later_passes_against_the_config_uploaded_before(run: Run, inv: Path) -> None:
    made = controllers(3, run)
    uploaded = uploaded_configuration(inv)  # what ctrl1's kubeadm init uploaded at first boot
    later = controllers(1, run, first=4)
    assert uploaded_configuration(inv) == uploaded  # the bootstrap controller's config is unchanged
    assert_certificates_pass_kubeadm(inv, uploaded, made + later)


def test_a_node_san_stays_in_its_own_certificate(run: Run, inv: Path) -> None:
    """A --san of one controller would make every other one fail kubeadm's check: it is not uploaded."""
    assert run("node", "ctrl1", "10.0.0.11", "--endpoint", ENDPOINT, "--vip", VIP, "--san", "c1.example").code == 0
    assert run("node", "ctrl2", "10.0.0.12", "--role", "controller", "--san", "c2.example").code == 0
    uploaded = uploaded_configuration(inv)
    assert "c1.example" not in uploaded["apiServer"]["certSANs"]
    ssl = inv / "node-ctrl1" / "ssl"
    assert openssl_verifies(ssl / "ca.crt", ssl / "apiserver.crt", "c1.example")
    assert_certificates_pass_kubeadm(inv, uploaded, [("ctrl1", "10.0.0.11"), ("ctrl2", "10.0.0.12")])


def test_etcd_membership_is_left_to_kubeadm(run: Run, inv: Path) -> None:
    """kubeadm's getEtcdCommand (phases/etcd/local.go) lets etcd.local.extraArgs replace its own
    initial-cluster and initial-cluster-state (util/arguments.go, ArgumentsToCommand): we set none."""
    controllers(3, run)
    for node in ("ctrl1", "ctrl2", "ctrl3"):
        text = json.dumps(write_files(inv, node))
        assert "initial-cluster" not in text and "extraArgs" not in text


def test_join_files_hold_only_what_kubeadm_join_reads(run: Run, inv: Path) -> None:
    """``kubeadm join --config`` decodes the JoinConfiguration document alone
    (cmd/kubeadm/app/util/config/joinconfiguration.go, documentMapToJoinConfiguration)."""
    controllers(2, run)
    for node in ("ctrl1", "ctrl2"):
        join = documents(write_files(inv, node)["/etc/kubernetes/isobuild/kubeadm-join.yaml"])
        assert list(join) == ["JoinConfiguration"]
        # v1beta4's waits: longer than the 4-minute defaults (constants/constants.go)
        assert join["JoinConfiguration"]["timeouts"]["controlPlaneComponentHealthCheck"] == "15m0s"


# -- one endpoint for all --------------------------------------------------------------------------
def servers(inv: Path, node: str) -> set[str]:
    files = write_files(inv, node)
    return {
        yaml.safe_load(content)["clusters"][0]["cluster"]["server"]
        for path, content in files.items()
        if path in ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf")
    }


@pytest.mark.parametrize(
    ("flags", "server"),
    [
        (["--endpoint", ENDPOINT, "--vip", VIP], f"https://{ENDPOINT}:6443"),
        (["--vip", VIP], f"https://{VIP}:6443"),
        ([], "https://10.0.0.11:6443"),
    ],
)
def test_workers_and_edges_use_the_one_endpoint(run: Run, inv: Path, flags: list[str], server: str) -> None:
    """The endpoint, else the VIP, else the first controller: what kubeadm gives kubelet.conf,
    admin.conf (phases/kubeconfig/kubeconfig.go, getKubeConfigSpecsBase) and kube-proxy
    (phases/addons/proxy/proxy.go: controlPlaneEndpoint)."""
    assert run("node", "ctrl1", "10.0.0.11", *flags).code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0
    assert run("node", "edge1", "10.0.0.31", "--master", "10.0.0.11", "--role", "edge").code == 0
    for node in ("w1", "edge1"):
        assert servers(inv, node) == {server}
    control_plane_endpoint = uploaded_configuration(inv)["controlPlaneEndpoint"]
    assert f"https://{control_plane_endpoint}" == server


def test_a_vip_given_later_moves_every_node_to_it(run: Run, inv: Path) -> None:
    assert run("node", "ctrl1", "10.0.0.11").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0
    result = run("node", "ctrl2", "10.0.0.12", "--role", "controller", "--vip", VIP, "--json")
    assert result.code == 0, result.err
    rebuilt = {o["name"]: o["certs_changed"] for o in json.loads(result.out)["rebuilt_others"]}
    assert rebuilt == {"ctrl1": True, "w1": True}  # both need apply.sh: their kubeconfigs name the VIP
    assert "apply.sh" in result.err
    assert f"the API endpoint is now {VIP}:6443 (certSANs {VIP}): on a running cluster" in result.err
    assert servers(inv, "w1") == {f"https://{VIP}:6443"}
    admin = yaml.safe_load(write_files(inv, "ctrl1")["/etc/kubernetes/admin.conf"])  # its kubelet: the local apiserver
    assert admin["clusters"][0]["cluster"]["server"] == f"https://{VIP}:6443"


def hosts_lines(inv: Path, node: str) -> list[str]:
    data = yaml.safe_load((inv / f"node-{node}" / USER_DATA).read_text())
    return [f["content"] for f in data["write_files"] if f["path"] == "/etc/hosts"]


@pytest.mark.parametrize(
    ("flags", "setting", "line"),
    [
        (["--endpoint", ENDPOINT, "--vip", VIP], None, f"{VIP} {ENDPOINT}"),  # on with a VIP
        (["--endpoint", ENDPOINT, "--vip", VIP], "false", None),
        (["--endpoint", ENDPOINT], None, None),  # off without: DNS resolves it
        (["--endpoint", ENDPOINT], "true", f"10.0.0.11 {ENDPOINT}"),  # to the first controller
        (["--endpoint", VIP, "--vip", VIP], None, None),  # an address needs no name
    ],
)
def test_the_endpoint_name_resolves_on_every_node(
    run: Run, inv: Path, flags: list[str], setting: str | None, line: str | None
) -> None:
    assert run("node", "ctrl1", "10.0.0.11", *flags).code == 0
    if setting is not None:
        text = (inv / "cluster.yaml").read_text().replace("hosts_entry: null", f"hosts_entry: {setting}")
        (inv / "cluster.yaml").write_text(text)
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0
    assert run("build").code == 0
    for node in ("ctrl1", "w1"):
        data = yaml.safe_load((inv / f"node-{node}" / USER_DATA).read_text())
        if line is None:
            assert hosts_lines(inv, node) == [] and data["manage_etc_hosts"] is True
        else:
            assert hosts_lines(inv, node) == [f"# isobuild: the cluster's API endpoint\n{line}\n"]
            # cloud-init's "localhost" mode edits only the 127.0.1.1 line at each boot (Distro.update_etc_hosts)
            assert data["manage_etc_hosts"] == "localhost"


def test_cloud_init_keeps_the_endpoint_line_at_every_boot(run: Run, inv: Path, tmp_path: Path) -> None:
    """cloud-init's own code, on a copy of /etc/hosts: write_files appends our line once, then
    update_etc_hosts in "localhost" mode rewrites the hostname line and keeps ours."""
    assert run("node", "ctrl1", "10.0.0.11", "--endpoint", ENDPOINT, "--vip", VIP).code == 0
    data = yaml.safe_load((inv / "node-ctrl1" / USER_DATA).read_text())
    entry = next(f for f in data["write_files"] if f["path"] == "/etc/hosts")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    script = f"""
import sys
from cloudinit.config.cc_write_files import write_files
from cloudinit.distros import fetch
from cloudinit import helpers
entry = { ({**entry, "path": str(hosts)})!r}
write_files("isobuild-test", [entry], "root:root")
distro = fetch("debian")("debian", {{}}, helpers.Paths({{}}))
distro.hosts_fn = {str(hosts)!r}
for boot in range(2):
    distro.update_etc_hosts("ctrl1", "ctrl1")
"""
    result = subprocess.run(["/usr/bin/python3", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = hosts.read_text().splitlines()
    assert "# isobuild: the cluster's API endpoint" in lines
    assert f"{VIP}\t{ENDPOINT}" in lines  # re-rendered by cloud-init's HostsConf, tab-separated
    assert any(line.split()[:2] == ["127.0.1.1", "ctrl1"] for line in lines), lines


# -- workers as kubeadm leaves them ---------------------------------------------------------------
@pytest.mark.parametrize("version", ["1.37.1", "1.33.4"])
def test_workers_carry_what_kubeadm_upgrade_node_reads(run: Run, inv: Path, version: str) -> None:
    """kubeadm join on a worker (phases/join/kubelet.go, runKubeletStartJoinPhase) leaves the CRI
    socket where ``kubeadm upgrade node`` finds it (phases/upgrade/postupgrade.go,
    WriteKubeletConfigFiles): instance-config.yaml with NodeLocalCRISocket (on from 1.34),
    before it kubeadm-flags.env and the node annotation (phases/patchnode/patchnode.go)."""
    assert run("node", "ctrl1", "10.0.0.11", "--k8s-version", version).code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0
    files = write_files(inv, "w1")
    flags = files["/var/lib/kubelet/kubeadm-flags.env"]
    script = files["/opt/isobuild/install.sh"]
    socket = "unix:///run/containerd/containerd.sock"
    if version.startswith("1.37"):
        instance = yaml.safe_load(files["/var/lib/kubelet/instance-config.yaml"])
        assert instance == {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": socket,
        }
        assert "--container-runtime-endpoint" not in flags
        assert "kubeadm.alpha.kubernetes.io/cri-socket" not in script
    else:
        assert "/var/lib/kubelet/instance-config.yaml" not in files
        assert f"--container-runtime-endpoint={socket}" in flags
        assert (
            f'annotate --overwrite \\\n    node "$NODE_NAME" kubeadm.alpha.kubernetes.io/cri-socket={socket}' in script
        )
    assert "/etc/kubernetes/manifests/kube-apiserver.yaml" not in files  # or upgrade node takes it for a controller


# -- the install runs until it succeeds, and says why a try failed ----------------------------------
def test_a_failed_try_is_logged_with_its_reason(run: Run, inv: Path, tmp_path: Path) -> None:
    """install.sh's prelude (logging, the ERR trap, the try counter) run by bash, with the log and
    state folders on a private tmpfs (a mount namespace): a failing command names itself."""
    if os.geteuid() != 0:
        pytest.fail("a mount namespace needs root: run ./scripts/test.sh as root, as CI does")
    assert run("node", "ctrl1", "10.0.0.11").code == 0
    script = (inv / "node-ctrl1" / "install.sh").read_text()
    prelude = script[: script.index("require_files() {")] + "false\nfinish\n"
    (tmp_path / "prelude.sh").write_text(prelude)
    inner = "mount -t tmpfs none /var/log && mount -t tmpfs none /var/lib && "
    inner += f"for i in 1 2; do bash {tmp_path}/prelude.sh; done; cat /var/log/isobuild-install.log"
    result = subprocess.run(
        [require_tool("unshare"), "--mount", "--propagation", "private", "sh", "-c", inner],
        capture_output=True,
        text=True,
    )
    log = result.stdout
    assert 'ERROR: "false" failed with status 1 (line' in log, result.stderr
    assert "Kubernetes 1.37.1: try 1" in log and "Kubernetes 1.37.1: try 2" in log
    assert " done" not in log  # the unit's ConditionPathExists: install.done is never written


def test_apt_waits_for_the_dpkg_lock(run: Run, inv: Path) -> None:
    assert run("node", "ctrl1", "10.0.0.11").code == 0
    script = (inv / "node-ctrl1" / "install.sh").read_text()
    assert "APT=(apt-get -q -o DPkg::Lock::Timeout=600)" in script
    assert not re.search(r"^\s*apt-get\b", script, re.MULTILINE)  # every call goes through APT or apt_update
    assert script.count("apt_update\n") == 2 and '"${APT[@]}" install' in script


# -- Flatcar: the containerd configuration its unit runs with ---------------------------------------
def flatcar_function(run: Run, inv: Path, name: str) -> str:
    assert run("node", "f1", "10.0.0.11", "--format", "ignition").code == 0
    config = json.loads((inv / "node-f1" / USER_DATA).read_text())
    return shell_function(files_of(config)["/opt/isobuild/setup.sh"][1].decode(), name)


@pytest.mark.parametrize(
    ("dropin", "config"),
    [
        (None, "/usr/share/containerd/config.toml"),
        ("10-use-cgroupfs.conf", "/usr/share/containerd/config-cgroupfs.toml"),
        ("10-use-custom-config.conf", "/etc/containerd/config.toml"),
    ],
)
def test_flatcar_setup_finds_the_config_containerd_runs_with(
    run: Run, inv: Path, tmp_path: Path, dropin: str | None, config: str
) -> None:
    """The function of setup.sh, under bash, on `systemctl cat` of Flatcar's unit (a fixture copy,
    upstream path in it) and of the drop-ins Flatcar documents."""
    (tmp_path / "fn.sh").write_text(flatcar_function(run, inv, "containerd_config_file"))
    units = [FIXTURES / "containerd.service", *([FIXTURES / dropin] if dropin else [])]
    result = subprocess.run(
        ["bash", "-c", f'source {tmp_path}/fn.sh; cat "$@" | containerd_config_file', "_", *map(str, units)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{config}\n"


@pytest.mark.parametrize(("config", "systemd"), [("config.toml", True), ("config-cgroupfs.toml", False)])
def test_containerd_config_dump_of_that_file_tells_the_cgroup_driver(config: str, systemd: bool) -> None:
    """Real containerd (Debian's) dumping Flatcar's configurations, as setup.sh asks it:
    ``containerd --config FILE config dump`` (cmd/containerd/command/config.go reads only that file)."""
    dump = subprocess.run(
        [require_tool("containerd"), "--config", str(FIXTURES / config), "config", "dump"],
        capture_output=True,
        text=True,
    )
    assert dump.returncode == 0, dump.stderr
    assert ("SystemdCgroup = true" in dump.stdout) is systemd
    bare = subprocess.run([require_tool("containerd"), "config", "default"], capture_output=True, text=True)
    assert "SystemdCgroup = true" not in bare.stdout  # what the old check saw without --config


def test_flatcar_setup_runs_containerd_with_the_registry_hosts_folder(run: Run, inv: Path, tmp_path: Path) -> None:
    """registry_mirrors on a Flatcar node. Flatcar's config.toml sets no registry config_path
    (the fixture, from flatcar/scripts): setup.sh's registry_config_path on real containerd's
    dump of it, read back by containerd: config_path set, Flatcar's own settings kept."""
    assert run("init").code == 0
    set_settings(inv, "registry_mirrors:\n  docker.io: [https://mirror.example.test]\n")
    function = flatcar_function(run, inv, "registry_config_path")
    config = json.loads((inv / "node-f1" / USER_DATA).read_text())
    files = files_of(config)
    assert b"https://mirror.example.test" in files["/etc/containerd/certs.d/docker.io/hosts.toml"][1]
    setup = files["/opt/isobuild/setup.sh"][1].decode()
    assert "\ncheck_containerd\nuse_registry_hosts\n" in setup  # before any image is pulled
    script = tmp_path / "setup.sh"
    script.write_bytes(setup.encode())
    lint = subprocess.run([require_tool("shellcheck"), "-x", str(script)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    functions = shell_function(setup, "containerd_config_file") + shell_function(setup, "without_our_dropin")
    ours = "# /etc/systemd/system/containerd.service.d/50-isobuild-config.conf\n[Service]\n" \
           "Environment=CONTAINERD_CONFIG=/etc/containerd/isobuild.toml\n"  # fmt: skip
    unit = (FIXTURES / "containerd.service").read_text()
    base = subprocess.run(
        ["bash", "-c", "CONTAINERD_DROPIN=/etc/systemd/system/containerd.service.d/50-isobuild-config.conf\n"
         + functions + "without_our_dropin | containerd_config_file"],
        input="# /usr/lib/systemd/system/containerd.service\n" + unit + ours, capture_output=True, text=True,
    )  # fmt: skip
    assert base.stdout == "/usr/share/containerd/config.toml\n", base.stderr  # Flatcar's, not ours
    containerd = require_tool("containerd")
    dump = subprocess.run([containerd, "--config", str(FIXTURES / "config.toml"), "config", "dump"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert 'config_path = ""' in dump.stdout and "imports = [" in dump.stdout  # Flatcar's: no registry hosts
    edited = subprocess.run(
        ["bash", "-c", 'die() { echo "die: $*" >&2; exit 1; }\n' + function + "sed '/^imports = /d' | registry_config_path"],
        input=dump.stdout, capture_output=True, text=True,
    )  # fmt: skip
    assert edited.returncode == 0, edited.stderr
    (tmp_path / "isobuild.toml").write_text(edited.stdout)
    again = subprocess.run([containerd, "--config", str(tmp_path / "isobuild.toml"), "config", "dump"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert 'config_path = "/etc/containerd/certs.d"' in again
    assert "SystemdCgroup = true" in again and "enable_selinux = true" in again


# -- IPv6 pod networks ---------------------------------------------------------------------------
def test_an_ipv6_cluster_renders_flannels_ipv6_config(run: Run, inv: Path) -> None:
    """flannel-io/flannel pkg/subnet/config.go, ParseConfig: EnableIPv4 defaults to true and then
    needs Network; IPv6 alone is EnableIPv4 false, EnableIPv6 true, IPv6Network."""
    args = ["--pod-cidr", "fd00:10:244::/56", "--service-cidr", "fd00:10:96::/112"]
    assert run("node", "ctrl1", "fd00::11", *args).code == 0
    files = write_files(inv, "ctrl1")
    kustomization = yaml.safe_load(files["/etc/kubernetes/isobuild/flannel/kustomization.yaml"])
    patch = yaml.safe_load(kustomization["patches"][0]["patch"])[0]
    net_conf = json.loads(patch["value"])
    assert net_conf["EnableIPv4"] is False and net_conf["EnableIPv6"] is True
    assert net_conf["IPv6Network"] == "fd00:10:244::/56" and "Network" not in net_conf
    assert "'net.ipv6.conf.all.forwarding = 1'" in files["/opt/isobuild/install.sh"]


def test_an_ipv4_cluster_leaves_ipv6_forwarding_alone(run: Run, inv: Path) -> None:
    assert run("node", "ctrl1", "10.0.0.11").code == 0
    files = write_files(inv, "ctrl1")
    assert "ipv6.conf.all.forwarding" not in files["/opt/isobuild/install.sh"]  # it would stop accepting RAs
    kustomization = yaml.safe_load(files["/etc/kubernetes/isobuild/flannel/kustomization.yaml"])
    net_conf = json.loads(yaml.safe_load(kustomization["patches"][0]["patch"])[0]["value"])
    assert net_conf == {"Network": "10.244.0.0/16", "EnableNFTables": False, "Backend": {"Type": "vxlan"}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["10.0.0.11", "--pod-cidr", "10.244.0.0/16,fd00:10:244::/56"], "single-stack"),
        (["10.0.0.11", "--pod-cidr", "fd00:10:244::/56"], "of different IP families"),
        (["fd00::11"], "is IPv6, the pod network 10.244.0.0/16 IPv4"),
    ],
)
def test_dual_stack_and_mixed_families_are_refused(run: Run, inv: Path, args: list[str], message: str) -> None:
    result = run("node", "ctrl1", *args)
    assert result.code == 1 and message in result.err and result.err.startswith("Error: ")
    assert not inv.exists()


def test_shellcheck_passes_on_every_variant_of_the_scripts(run: Run, tmp_path: Path) -> None:
    """The branches the examples do not take: a joining controller, a worker that annotates its
    CRI socket (before 1.34), an IPv6 cluster, Flatcar's setup with a VIP."""
    variants = {
        "ha": [["ctrl1", "10.0.0.11", "--endpoint", ENDPOINT, "--vip", VIP, "--k8s-version", "1.33.4"],
               ["ctrl2", "10.0.0.12", "--role", "controller"], ["w1", "10.0.0.21", "--master", "10.0.0.11"]],
        "v6": [["ctrl1", "fd00::11", "--pod-cidr", "fd00:10:244::/56", "--service-cidr", "fd00:10:96::/112"]],
        "flatcar": [["ctrl1", "10.0.0.11", "--format", "ignition", "--vip", VIP],
                    ["ctrl2", "10.0.0.12", "--role", "controller", "--format", "ignition"]],
    }  # fmt: skip
    scripts = []
    for name, nodes in variants.items():
        inventory = tmp_path / name
        for args in nodes:
            assert run("node", *args, inventory=inventory).code == 0, args
        for folder in sorted(inventory.glob("node-*")):
            if name == "flatcar":
                config = json.loads((folder / USER_DATA).read_text())
                target = tmp_path / f"{name}-{folder.name}-setup.sh"
                target.write_bytes(files_of(config)["/opt/isobuild/setup.sh"][1])
                scripts.append(str(target))
            scripts += [str(folder / "install.sh"), str(folder / "apply.sh")]
    result = subprocess.run([require_tool("shellcheck"), "--shell=bash", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# -- one cluster, whatever command builds which nodes ----------------------------------------------
def edit(inv: Path, old: str, new: str) -> None:
    text = (inv / "cluster.yaml").read_text()
    assert old in text
    (inv / "cluster.yaml").write_text(text.replace(old, new))


def bootstraps(inv: Path) -> list[str]:
    return sorted(p.name[5:] for p in inv.glob("node-*") if "BOOTSTRAP=1 " in (p / "install.sh").read_text())


@pytest.mark.parametrize("command", [["node", "c3", "10.0.0.13"], ["build", "c3"], ["certs", "renew", "c3"]])
def test_a_hand_edit_then_one_node_rebuilds_every_node_made_from_the_old_file(
    run: Run, inv: Path, command: list[str]
) -> None:
    """Moving kubeadm init to c3 by hand, then building c3 alone: c1 must stop being a bootstrap
    controller in the same command, or two controllers would each run kubeadm init."""
    for name, ip in (("c1", "10.0.0.11"), ("c2", "10.0.0.12"), ("c3", "10.0.0.13")):
        assert run("node", name, ip, "--role", "controller", "--vip", VIP).code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0
    assert bootstraps(inv) == ["c1"]
    edit(inv, "bootstrap_controller: ''", "bootstrap_controller: c3")
    result = run(*command)
    assert result.code == 0, result.err
    assert bootstraps(inv) == ["c3"]
    assert ("/etc/kubernetes/isobuild/kubeadm.yaml" in write_files(inv, "c1")) is False
    assert run("list").out.count("up to date") == 4  # w1 too: every folder made from cluster.yaml as it is
    assert "c1" in result.err and "c2" in result.err  # said, whichever command it was


def test_an_endpoint_edited_by_hand_reaches_every_node_and_is_warned_about(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11", "--endpoint", "api.old.test").code == 0
    assert run("node", "c2", "10.0.0.12", "--role", "controller").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0
    edit(inv, "endpoint: api.old.test:6443", "endpoint: api.new.test:6443")
    result = run("node", "c2", "10.0.0.12")
    assert result.code == 0, result.err
    assert "controller certificates re-issued from an edited cluster.yaml (c1)" in result.err
    assert "kube-system/kubeadm-config" in result.err
    for node in ("c1", "c2", "w1"):
        assert servers(inv, node) - {"https://10.0.0.11:6443", "https://10.0.0.12:6443"} == {
            "https://api.new.test:6443"
        }
    assert uploaded_configuration(inv)["controlPlaneEndpoint"] == "api.new.test:6443"
    assert_certificates_pass_kubeadm(inv, uploaded_configuration(inv), [("c1", "10.0.0.11"), ("c2", "10.0.0.12")])


def test_without_a_vip_the_endpoint_name_points_at_the_bootstrap_controller(run: Run, inv: Path) -> None:
    """Else the bootstrap controller would wait for an API at another controller, which waits for it."""
    assert run("node", "c1", "10.0.0.11", "--endpoint", ENDPOINT).code == 0
    assert run("node", "c2", "10.0.0.12", "--role", "controller").code == 0
    edit(inv, "hosts_entry: null", "hosts_entry: true")
    edit(inv, "bootstrap_controller: ''", "bootstrap_controller: c2")
    assert run("build").code == 0
    for node in ("c1", "c2"):
        assert hosts_lines(inv, node) == [f"# isobuild: the cluster's API endpoint\n10.0.0.12 {ENDPOINT}\n"]


@pytest.mark.parametrize(
    "endpoint", ["localhost", "api.localhost", "010.010.010.010", "1.2.3", "0x0a.0.0.1", "10.0.0.1x.5"]
)
def test_an_endpoint_a_resolver_would_not_look_up_is_refused(run: Run, inv: Path, endpoint: str) -> None:
    result = run("node", "c1", "10.0.0.11", "--endpoint", endpoint)
    assert result.code == 1 and result.err.startswith("Error: --endpoint: invalid endpoint"), result.err
    assert not inv.exists()


@pytest.mark.parametrize("version", ["\u0661.34.0", "01.34.0", "1.034.0"])
def test_a_kubernetes_version_must_be_a_release_tag(run: Run, inv: Path, version: str) -> None:
    result = run("node", "c1", "10.0.0.11", "--k8s-version", version)
    assert result.code == 1 and "Kubernetes version" in result.err and not inv.exists()
