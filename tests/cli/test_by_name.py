"""Workers join a controller by name; a controller's new IP reaches everything that names it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from isobuilder import kubeconfig
from tests.helpers import Run


def entry(inv: Path, name: str) -> dict[str, object]:
    return next(n for n in yaml.safe_load((inv / "cluster.yaml").read_text())["nodes"] if n["name"] == name)


def server(path: Path) -> str | None:
    return kubeconfig.server_of(path.read_bytes(), str(path))


def test_master_by_name_or_ip_is_stored_by_name(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "c1").code == 0
    assert run("node", "w2", "10.0.0.22", "--master", "10.0.0.11").code == 0
    assert entry(inv, "w1")["master"] == "c1" and entry(inv, "w2")["master"] == "c1"
    result = run("node", "w3", "10.0.0.23", "--master", "c9")
    assert result.code == 1 and "--master: c9 is not a controller of this cluster" in result.err
    assert "known controllers: c1 (10.0.0.11)" in result.err


def test_an_older_cluster_yaml_with_controller_ips_still_loads(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "c1").code == 0
    text = (inv / "cluster.yaml").read_text()
    (inv / "cluster.yaml").write_text(text.replace("master: c1", "master: 10.0.0.11"))  # as isobuild wrote it before
    assert run("build").code == 0 and run("verify").code == 0
    assert run("node", "w2", "10.0.0.22", "--master", "c1").code == 0  # the next change writes names
    assert entry(inv, "w1")["master"] == "c1"


def test_a_controller_moved_to_a_new_ip_takes_every_node_and_kubeconfig_along(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "c1").code == 0
    assert run("kubeconfig").code == 0
    assert run("kubeconfig", "--user", "alice", "--group", "dev").code == 0
    assert run("kubeconfig", "--user", "bob", "--server", "https://lb.example.test:6443").code == 0
    admin_key = (inv / "ssl/admin.key").read_bytes()
    result = run("node", "c1", "10.0.0.111", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    (other,) = out["rebuilt_others"]
    assert (other["name"], other["folder"], other["certs_changed"]) == ("w1", "node-w1", True)
    assert other["to_apply"] == ["/etc/kubernetes/kubelet.conf"]  # the kubelet's server: what moved
    assert "a running node needs it: isobuild push w1 (its apply.sh; kubelet.conf)" in result.err
    assert sorted(Path(p).name for p in out["kubeconfigs"]) == ["alice.kubeconfig", "kubeconfig"]
    assert server(inv / "kubeconfig") == "https://10.0.0.111:6443"
    assert server(inv / "users/alice.kubeconfig") == "https://10.0.0.111:6443"
    assert server(inv / "users/bob.kubeconfig") == "https://lb.example.test:6443"  # its own --server: kept
    assert (inv / "ssl/admin.key").read_bytes() == admin_key  # the same identity, a new address
    kubelet = yaml.safe_load((inv / "node-w1/cloud-config/openstack/latest/user_data").read_text())
    files = {f["path"]: f["content"] for f in kubelet["write_files"]}
    assert server_of_text(files["/etc/kubernetes/kubelet.conf"]) == "https://10.0.0.111:6443"
    assert entry(inv, "w1")["master"] == "c1"
    assert run("list").out.count("up to date") == 2 and run("verify").code == 0


def server_of_text(text: str) -> str | None:
    return kubeconfig.server_of(text.encode(), "kubelet.conf")


def test_verify_tells_a_kubeconfig_left_on_an_old_address(run: Run, inv: Path) -> None:
    """A hand edit of cluster.yaml moves the controller, then build: verify says the admin
    kubeconfig names no address of this cluster, and `isobuild kubeconfig` mends it."""
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("kubeconfig").code == 0
    text = (inv / "cluster.yaml").read_text()
    (inv / "cluster.yaml").write_text(text.replace("ip: 10.0.0.11", "ip: 10.0.0.111"))
    assert run("build").code == 0
    result = run("verify")
    assert result.code == 1
    assert "kubeconfig: names https://10.0.0.11:6443, no address of this cluster (now https://10.0.0.111:6443)" in (
        result.out + result.err
    )
    assert run("kubeconfig").code == 0 and run("verify").code == 0
