"""`isobuild remove`: nodes out of cluster.yaml, folders kept under removed/, what to run told."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.helpers import Run, snapshot

VIP = "10.0.0.10"


def names(inv: Path) -> list[str]:
    return [n["name"] for n in yaml.safe_load((inv / "cluster.yaml").read_text())["nodes"]]


def three_controllers(run: Run) -> None:
    for name, ip in (("c1", "10.0.0.11"), ("c2", "10.0.0.12"), ("c3", "10.0.0.13")):
        assert run("node", name, ip, "--role", "controller", "--vip", VIP).code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0


def test_a_worker_is_removed_and_its_folder_kept(run: Run, inv: Path) -> None:
    three_controllers(run)
    before = snapshot(inv / "node-w1")
    result = run("remove", "w1", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    (kept,) = out["removed"]
    assert kept["name"] == "w1" and kept["kept_in"].startswith("removed/w1-")
    moved = snapshot(inv / kept["kept_in"])
    assert {k: v[:2] for k, v in moved.items()} == {k: v[:2] for k, v in before.items()}  # bytes and modes
    assert not (inv / "node-w1").exists() and names(inv) == ["c1", "c2", "c3"]
    assert kept["steps"] == ["kubectl drain w1 --ignore-daemonsets --delete-emptydir-data", "kubectl delete node w1"]
    assert kept["cert_expiry"].startswith("2027-") and "they cannot be revoked" in result.err
    assert out["rebuilt_others"] == []  # nobody is made from a worker
    assert run("list").out.count("up to date") == 3


def test_removing_the_bootstrap_controller_moves_init_and_repoints_workers(run: Run, inv: Path) -> None:
    three_controllers(run)
    result = run("remove", "c1")
    assert result.code == 0, result.err
    assert "on c1: sudo kubeadm reset -f" in result.err  # kubeadm reset's remove-etcd-member phase
    assert "etcdctl member list, then member remove ID" in result.err
    assert "warning: 2 controllers" in result.err  # an even number left
    assert "w1 now join the bootstrap controller" in result.err
    entry = next(n for n in yaml.safe_load((inv / "cluster.yaml").read_text())["nodes"] if n["name"] == "w1")
    assert entry["master"] == "c2"
    assert "BOOTSTRAP=1 " in (inv / "node-c2/install.sh").read_text()
    assert "BOOTSTRAP=0 " in (inv / "node-c3/install.sh").read_text()
    assert run("list").out.count("up to date") == 3 and run("verify").code == 0


def test_the_last_controller_and_unknown_nodes_are_refused(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0
    before = snapshot(inv)
    for args, message in (
        (["c1"], "Error: that would remove the last controller"),
        (["c1", "w1"], "Error: that would remove the last controller"),
        (["w9"], "Error: node 'w9' is not in cluster.yaml"),
        ([], "Error: Missing argument 'names'."),
    ):
        result = run("remove", *args)
        assert result.code == 1 and result.err.startswith(message), (args, result.err)
        assert snapshot(inv) == before


def test_a_removed_node_can_come_back_under_its_name(run: Run, inv: Path) -> None:
    """Rename is remove plus add; so is re-adding a node taken out by mistake."""
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0
    assert run("remove", "w1").code == 0
    assert run("node", "w2", "10.0.0.21", "--master", "10.0.0.11").code == 0  # its IP is free again
    assert names(inv) == ["c1", "w2"] and len(list((inv / "removed").iterdir())) == 1


def test_what_a_copy_would_lose_is_refused_and_removed_may_not_be_a_link(run: Run, inv: Path, tmp_path: Path) -> None:
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "c1").code == 0
    assert run("node", "w2", "10.0.0.22", "--master", "c1").code == 0
    twice = run("remove", "w1", "w1")
    assert twice.code == 1 and twice.err.startswith("Error: node 'w1' is named twice")
    (inv / "node-w1/notes").symlink_to("/etc/hostname")
    before = snapshot(inv)
    result = run("remove", "w1")
    assert result.code == 1 and result.err.startswith("Error: node-w1/notes is not a file isobuild can keep")
    assert snapshot(inv) == before
    outside = tmp_path / "outside"
    outside.mkdir()
    (inv / "removed").symlink_to(outside)
    result = run("remove", "w2")
    assert result.code == 1 and "removed/" in result.err and "symbolic link" in result.err, result.err
    assert list(outside.iterdir()) == []  # no key written outside the inventory
