"""Several controllers: the files that make them one control plane, a real three-member etcd
formed with their certificates, and kubectl reaching the endpoint by name and each controller by IP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from isobuilder.cli import main
from tests.fake_apiserver import serving
from tests.helpers import (
    SSH_KEY,
    Etcd,
    Run,
    _fixed_epoch,
    etcd_command,
    free_port,
    kubectl,
    require_tool,
    stop,
    tool_env,
)

ENDPOINT, VIP = "api.example.test", "10.10.10.10"
CONTROLLERS = {"ctrl1": "10.10.10.11", "ctrl2": "10.10.10.12", "ctrl3": "10.10.10.13"}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The README's HA walkthrough: three controllers behind a name and a kube-vip VIP, a worker."""
    root = tmp_path_factory.mktemp("ha")
    key = root / "id.pub"
    key.write_text(SSH_KEY + "\n")
    inventory = root / "inventory"
    (ctrl1, ip1), *others = CONTROLLERS.items()
    with _fixed_epoch():
        commands = [
            ["node", ctrl1, ip1, "--endpoint", ENDPOINT, "--vip", VIP, "--ssh-key", str(key)],
            *(["node", name, ip, "--role", "controller"] for name, ip in others),
            ["node", "worker1", "10.10.10.21", "--master", ip1],
            ["kubeconfig"],
        ]
        for args in commands:
            assert main(["-q", "--inventory", str(inventory), *args]) == 0, args
    yield inventory


def drive_files(inventory: Path, node: str) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((inventory / f"node-{node}/cloud-config/openstack/latest/user_data").read_text())
    return {f["path"]: f for f in data["write_files"]}


def documents(text: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(text)}


def extra_args(args: list[dict[str, str]]) -> dict[str, str]:
    return {a["name"]: a["value"] for a in args}


# -- what the controllers are given ---------------------------------------------------------------
def test_only_the_bootstrap_controller_runs_kubeadm_init(ha: Path) -> None:
    """kubeadm's HA flow: the first controller inits, the others join. The ClusterConfiguration
    init uploads carries cluster-wide names only, and no etcd member list (kubeadm manages it)."""
    for name in CONTROLLERS:
        files = drive_files(ha, name)
        script = files["/opt/isobuild/install.sh"]["content"]
        assert f"BOOTSTRAP={int(name == 'ctrl1')} " in script and "INIT_CONTROLLER=ctrl1\n" in script
        assert ("/etc/kubernetes/isobuild/kubeadm.yaml" in files) == (name == "ctrl1")
    docs = documents(drive_files(ha, "ctrl1")["/etc/kubernetes/isobuild/kubeadm.yaml"]["content"])
    config = docs["ClusterConfiguration"]
    assert config["controlPlaneEndpoint"] == f"{ENDPOINT}:6443"
    assert config["apiServer"]["certSANs"] == [ENDPOINT, VIP]
    assert "etcd" not in config
    assert docs["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == CONTROLLERS["ctrl1"]


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_every_controller_can_join_with_admin_conf_as_discovery_and_no_token(ha: Path, name: str) -> None:
    files = drive_files(ha, name)
    join = documents(files["/etc/kubernetes/isobuild/kubeadm-join.yaml"]["content"])["JoinConfiguration"]
    assert join["discovery"] == {"file": {"kubeConfigPath": "/etc/kubernetes/admin.conf"}}
    assert "token" not in json.dumps(join).lower()
    assert join["controlPlane"]["localAPIEndpoint"]["advertiseAddress"] == CONTROLLERS[name]
    assert "certificateKey" not in join["controlPlane"]  # nothing to download: every cert is in place
    assert "FileAvailable--etc-kubernetes-kubelet.conf" in join["nodeRegistration"]["ignorePreflightErrors"]
    # discovery works through the endpoint, which admin.conf names, and every CA file kubeadm checks is there
    admin = yaml.safe_load(files["/etc/kubernetes/admin.conf"]["content"])
    assert admin["clusters"][0]["cluster"]["server"] == f"https://{ENDPOINT}:6443"
    for pki in ("ca.crt", "ca.key", "sa.key", "etcd/ca.crt", "etcd/ca.key", "front-proxy-ca.crt", "front-proxy-ca.key"):
        assert f"/etc/kubernetes/pki/{pki}" in files
    script = files["/opt/isobuild/install.sh"]["content"]
    assert "wait_for_api -n kube-system get configmap kubeadm-config" in script  # init's upload, then join
    assert 'kubeadm join --config "$config"' in script
    assert "--discovery-token" not in script and "--certificate-key" not in script


def test_kube_vip_static_pod_holds_the_vip_with_leader_election(ha: Path) -> None:
    assert "/etc/kubernetes/isobuild/kube-vip-init.yaml" not in drive_files(ha, "ctrl2")  # it joins
    files = drive_files(ha, "ctrl1")
    for name, conf in (("kube-vip.yaml", "admin.conf"), ("kube-vip-init.yaml", "super-admin.conf")):
        pod = yaml.safe_load(files[f"/etc/kubernetes/isobuild/{name}"]["content"])
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["address"] == VIP and env["vip_arp"] == "true" and env["cp_enable"] == "true"
        assert env["vip_leaderelection"] == "true"
        assert container["image"].startswith("ghcr.io/kube-vip/kube-vip:v")
        assert pod["spec"]["hostNetwork"] is True
        assert pod["spec"]["volumes"][0]["hostPath"] == {"path": f"/etc/kubernetes/{conf}", "type": "File"}
    script = files["/opt/isobuild/install.sh"]["content"]
    assert "install_manifest kube-vip-init.yaml kube-vip.yaml" in script  # for kubeadm init only
    assert script.index("install_manifest kube-vip-init.yaml") < script.index('kubeadm init --config "$config"')


def test_workers_use_the_endpoint_and_carry_no_etcd_member_list(ha: Path) -> None:
    files = drive_files(ha, "worker1")
    kubelet = yaml.safe_load(files["/etc/kubernetes/kubelet.conf"]["content"])
    assert kubelet["clusters"][0]["cluster"]["server"] == f"https://{ENDPOINT}:6443"
    assert not any(path.startswith("/etc/kubernetes/isobuild/") for path in files)
    assert "initial-cluster" not in json.dumps(files)


def test_shellcheck_passes_on_the_ha_controller_scripts(ha: Path, tmp_path: Path) -> None:
    files = drive_files(ha, "ctrl1")
    script = tmp_path / "install.sh"
    script.write_text(files["/opt/isobuild/install.sh"]["content"])
    renew = ha / "node-ctrl1" / "apply.sh"
    result = subprocess.run(
        [require_tool("shellcheck"), "--shell=bash", str(script), str(renew)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_adding_a_controller_leaves_the_others_alone(run: Run, inv: Path) -> None:
    """kubeadm adds the etcd member when the new controller joins: no other node is made from it."""
    assert run("node", "c1", "10.0.0.11", "--endpoint", "api.lab.test").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0
    before = {n: (inv / f"node-{n}/cloud-config/openstack/latest/user_data").read_bytes() for n in ("c1", "w1")}
    result = run("node", "c2", "10.0.0.12", "--role", "controller", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["rebuilt_others"] == []
    assert "2 controllers: etcd needs 2 of them up" in result.err
    for name, data in before.items():
        assert (inv / f"node-{name}/cloud-config/openstack/latest/user_data").read_bytes() == data
    assert "BOOTSTRAP=0 " in (inv / "node-c2/install.sh").read_text()
    assert run("list").out.count("up to date") == 3


def test_bootstrap_controller_moves_init_and_rebuilds_both(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11", "--endpoint", "api.lab.test").code == 0
    assert run("node", "c2", "10.0.0.12", "--role", "controller").code == 0
    text = (inv / "cluster.yaml").read_text().replace("bootstrap_controller: ''", "bootstrap_controller: c2")
    (inv / "cluster.yaml").write_text(text)
    result = run("build")
    assert result.code == 0, result.err
    assert "BOOTSTRAP=1 " in (inv / "node-c2/install.sh").read_text()
    assert "BOOTSTRAP=0 " in (inv / "node-c1/install.sh").read_text()
    assert "kubeadm.yaml" in (inv / "node-c2/cloud-config/openstack/latest/user_data").read_text()
    (inv / "cluster.yaml").write_text(text.replace("bootstrap_controller: c2", "bootstrap_controller: w9"))
    refused = run("build")
    assert refused.code == 1 and "bootstrap_controller: 'w9' is not a controller of this cluster" in refused.err


def test_setting_the_endpoint_later_reissues_what_names_it(run: Run, inv: Path) -> None:
    """A single-controller cluster gets an endpoint with its second controller: every certificate
    and kubeconfig naming the old address is re-issued, and the output says where to install them."""
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0
    refused = run("node", "c2", "10.0.0.12", "--role", "controller")
    assert refused.code == 1 and "no API endpoint" in refused.err and not (inv / "node-c2").exists()
    result = run("node", "c2", "10.0.0.12", "--role", "controller", "--endpoint", "api.lab.test", "--json")
    assert result.code == 0, result.err
    others = {o["name"]: o["certs_changed"] for o in json.loads(result.out)["rebuilt_others"]}
    assert others == {"c1": True, "w1": True}
    assert "apply.sh" in result.err
    sans = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(inv / "node-c1/ssl/apiserver.crt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:api.lab.test" in sans
    assert "server: https://api.lab.test:6443" in (inv / "node-w1/cloud-config/openstack/latest/user_data").read_text()
    assert run("verify").code == 0
    # changing an endpoint that is set is an edit of cluster.yaml, not a node option
    again = run("node", "c3", "10.0.0.13", "--role", "controller", "--endpoint", "other.lab.test")
    assert again.code == 1 and "--endpoint differs from cluster.yaml" in again.err


def test_vip_must_not_clash(run: Run) -> None:
    assert run("node", "c1", "10.0.0.11", "--vip", "10.0.0.11").code == 1
    result = run("node", "c1", "10.0.0.11", "--vip", "10.96.0.5")
    assert result.code == 1 and "inside the service CIDR" in result.err
    result = run("node", "c1", "10.0.0.11", "--vip", "10.0.0.10", "--endpoint", "10.0.0.9")
    assert result.code == 1 and "is an IP other than the VIP" in result.err


# -- a real etcd cluster of the three controllers, formed as kubeadm forms it -----------------------
def start_member(
    name: str, pki: Path, ports: dict[str, tuple[int, int]], root: Path, members: list[str], state: str = "new"
) -> subprocess.Popen[bytes]:
    """etcd as kubeadm's static pod runs it, on loopback ports instead of the controller's IP:
    ``members`` is its --initial-cluster (kubeadm's getEtcdCommand, phases/etcd/local.go)."""
    client, peer = ports[name]
    initial = ",".join(f"{n}=https://127.0.0.1:{ports[n][1]}" for n in members)
    command = etcd_command(name, pki, f"https://127.0.0.1:{client}", f"https://127.0.0.1:{peer}", initial, root / name)
    command[command.index("--initial-cluster-state=new")] = f"--initial-cluster-state={state}"
    with (root / f"{name}.log").open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=tool_env())


def wait_healthy(members: list[Etcd], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        results = [m.ctl_as("etcd/healthcheck-client", "endpoint", "health", timeout="2s") for m in members]
        if all(r.returncode == 0 for r in results):
            return
        if time.monotonic() > deadline:
            pytest.fail("etcd members not healthy: " + " | ".join(r.stderr.strip() for r in results))
        time.sleep(0.3)


def join_member(
    name: str, pki: Path, ports: dict[str, tuple[int, int]], root: Path, first: Etcd
) -> subprocess.Popen[bytes]:
    """What ``kubeadm join --control-plane`` does for etcd, restated (cmd/kubeadm/app/phases/etcd/
    local.go, CreateStackedEtcdStaticPodManifestFile): with the joining node's own
    healthcheck-client certificate (util/etcd/etcd.go, NewFromCluster), add it as a learner, start
    it with the member list that returns and state ``existing``, then promote it."""
    peer = f"https://127.0.0.1:{ports[name][1]}"
    joiner = Etcd(first.url, pki, first.log)
    deadline = time.monotonic() + 30
    # etcd refuses a member while the last one added is not yet active: kubeadm retries (util/etcd/etcd.go)
    while (
        added := joiner.ctl_as("etcd/healthcheck-client", "member", "add", name, f"--peer-urls={peer}", "--learner")
    ).returncode:
        if time.monotonic() > deadline:
            pytest.fail(f"{name} not added: {added.stderr}")
        time.sleep(1)
    initial = next(line for line in added.stdout.splitlines() if line.startswith("ETCD_INITIAL_CLUSTER="))
    members = [m.split("=")[0] for m in initial.split("=", 1)[1].strip('"').split(",")]
    proc = start_member(name, pki, ports, root, members, state="existing")
    member_id = added.stdout.split("Member ")[1].split()[0]
    deadline = time.monotonic() + 30
    while (promoted := joiner.ctl_as("etcd/healthcheck-client", "member", "promote", member_id)).returncode != 0:
        if time.monotonic() > deadline:  # a learner is promoted once it has caught up with the leader
            pytest.fail(f"{name} not promoted: {promoted.stderr}")
        time.sleep(0.5)
    return proc


def test_three_controllers_form_one_etcd_cluster_as_kubeadm_does(ha: Path, tmp_path: Path) -> None:
    """ctrl1 starts etcd alone (kubeadm init); ctrl2 and ctrl3 join as kubeadm join adds them,
    each with its own certificates: the peers accept each other's, the clients the servers'."""
    require_tool("etcdctl")
    names = list(CONTROLLERS)
    ports = {n: (free_port(), free_port()) for n in names}
    pki = {n: ha / f"node-{n}" / "ssl" for n in names}
    members = {n: Etcd(f"https://127.0.0.1:{ports[n][0]}", pki[n], tmp_path / f"{n}.log") for n in names}
    procs = [start_member("ctrl1", pki["ctrl1"], ports, tmp_path, ["ctrl1"])]
    try:
        wait_healthy([members["ctrl1"]])
        for i, name in enumerate(names[1:], start=2):
            procs.append(join_member(name, pki[name], ports, tmp_path, members["ctrl1"]))
            wait_healthy([members[n] for n in names[:i]])  # kubeadm: WaitForClusterAvailable
        wait_healthy(list(members.values()))
        # etcdctl with the healthcheck-client cert, against every member the cluster lists
        health = members["ctrl1"].ctl(
            "endpoint", "health", "--cluster",
            cert=pki["ctrl2"] / "etcd/healthcheck-client.crt", key=pki["ctrl2"] / "etcd/healthcheck-client.key",
        )  # fmt: skip
        assert health.returncode == 0, health.stderr
        healthy = {line.split()[0] for line in (health.stdout + health.stderr).splitlines() if " is healthy" in line}
        assert healthy == {m.url for m in members.values()}
        listed = members["ctrl3"].ctl_as("apiserver-etcd-client", "member", "list", "-w", "json")
        assert listed.returncode == 0, listed.stderr
        listing = json.loads(listed.stdout)["members"]
        assert sorted(m["name"] for m in listing) == names
        assert not any(m.get("isLearner") for m in listing)  # all promoted: voting members
        # a write through ctrl1 is read through ctrl3: one replicated store
        assert members["ctrl1"].ctl_as("apiserver-etcd-client", "put", "/isobuild/ha", "one-store").returncode == 0
        read = members["ctrl3"].ctl_as("apiserver-etcd-client", "get", "/isobuild/ha", "--print-value-only")
        assert read.stdout.strip() == "one-store", read.stderr
    finally:
        for proc in procs:
            stop(proc)


def test_a_member_with_another_clusters_certificates_is_refused(ha: Path, run: Run, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert run("node", "ctrl3", "10.0.0.13", inventory=other).code == 0
    impostor = tmp_path / "impostor-pki"
    shutil.copytree(other / "node-ctrl3" / "ssl", impostor)
    shutil.copy(ha / "ssl" / "etcd" / "ca.crt", impostor / "etcd" / "ca.crt")  # it knows our CA, not its key
    names = list(CONTROLLERS)  # a static three-member cluster: the impostor is named a member
    ports = {n: (free_port(), free_port()) for n in names}
    pkis = {"ctrl1": ha / "node-ctrl1/ssl", "ctrl2": ha / "node-ctrl2/ssl", "ctrl3": impostor}
    procs = [start_member(n, pkis[n], ports, tmp_path, names) for n in names]
    try:
        ours = [Etcd(f"https://127.0.0.1:{ports[n][0]}", pkis[n], tmp_path / f"{n}.log") for n in ("ctrl1", "ctrl2")]
        wait_healthy(ours)  # two of three: a quorum without the impostor
        deadline = time.monotonic() + 15
        refused = ""
        while time.monotonic() < deadline:
            refused = (tmp_path / "ctrl1.log").read_text() + (tmp_path / "ctrl2.log").read_text()
            if "rejected connection" in refused:
                break
            time.sleep(0.3)
        assert "rejected connection" in refused
        assert "certificate signed by unknown authority" in refused or "bad certificate" in refused
        third = Etcd(f"https://127.0.0.1:{ports['ctrl3'][0]}", ha / "node-ctrl1/ssl", tmp_path / "ctrl3.log")
        health = third.ctl_as("etcd/healthcheck-client", "endpoint", "health", timeout="2s")
        assert health.returncode != 0  # it never joined: no leader, and our client does not trust it
        status = ours[0].ctl_as("apiserver-etcd-client", "endpoint", "status", "--cluster", "-w", "json", timeout="3s")
        reachable = {s["Endpoint"] for s in json.loads(status.stdout or "[]")}
        assert third.url not in reachable
    finally:
        for proc in procs:
            stop(proc)


# -- kubectl by the endpoint's name and each controller's IP ------------------------------------------
@pytest.fixture
def site(ha: Path, tmp_path: Path) -> Iterator[str]:
    """A network namespace where the endpoint name resolves to the VIP (/etc/hosts, as `ip netns
    exec` mounts it) and each controller IP serves that controller's apiserver certificate; the
    VIP serves ctrl1's, as kube-vip would route it to the leader."""
    require_tool("ip")
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root: run ./scripts/test.sh as root, as CI does")
    ns = f"isobuild-{uuid.uuid4().hex[:8]}"
    etc = Path("/etc/netns") / ns
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    server = None
    try:
        etc.mkdir(parents=True)
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{VIP} {ENDPOINT}\n")
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True)
        for ip in (VIP, *CONTROLLERS.values()):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", "lo"], check=True, capture_output=True)
        listeners = [f"{VIP}:6443={ha}/node-ctrl1/ssl/apiserver.crt,{ha}/node-ctrl1/ssl/apiserver.key"]
        listeners += [
            f"{ip}:6443={ha}/node-{n}/ssl/apiserver.crt,{ha}/node-{n}/ssl/apiserver.key"
            for n, ip in CONTROLLERS.items()
        ]
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                "-m",
                "tests.fake_apiserver",
                str(ha / "ssl/ca.crt"),
                *listeners,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield ns
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
            if server.stdout is not None:
                server.stdout.close()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


def kubectl_in(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    home = Path(os.environ["HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        ["ip", "netns", "exec", ns, require_tool("kubectl"), "--request-timeout=10s", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=tool_env(HOME=str(home)),
    )


def test_kubectl_reaches_the_endpoint_by_name(ha: Path, site: str) -> None:
    """The admin kubeconfig as written: server https://api.example.test:6443, resolved to the VIP."""
    result = kubectl_in(site, "--kubeconfig", str(ha / "kubeconfig"), "get", "--raw", "/version")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["gitVersion"] == "v1.37.1"


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_kubectl_reaches_each_controller_by_ip(ha: Path, site: str, name: str) -> None:
    server = f"https://{CONTROLLERS[name]}:6443"
    result = kubectl_in(site, "--kubeconfig", str(ha / "kubeconfig"), "--server", server, "get", "--raw", "/version")
    assert result.returncode == 0, result.stderr
    # and a controller's certificate does not stand in for another's IP
    wrong = next(ip for n, ip in CONTROLLERS.items() if n != name)
    result = kubectl_in(
        site, "--kubeconfig", str(ha / "kubeconfig"), "--server", server, "--tls-server-name", wrong,
        "get", "--raw", "/version",
    )  # fmt: skip
    assert result.returncode != 0 and "x509: certificate is valid for" in result.stderr


def test_kubectl_in_process_by_name_and_vip(ha: Path) -> None:
    """Without namespaces: the endpoint name and the VIP as TLS server names, on loopback."""
    pki = ha / "node-ctrl2" / "ssl"
    with serving(pki / "apiserver.crt", pki / "apiserver.key", ha / "ssl" / "ca.crt") as server:
        for name in (ENDPOINT, VIP, "kubernetes"):
            result = kubectl(
                "--kubeconfig", str(ha / "kubeconfig"), "--server", server.url, "--tls-server-name", name,
                "get", "--raw", "/version",
            )  # fmt: skip
            assert result.returncode == 0, (name, result.stderr)
