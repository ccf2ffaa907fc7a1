"""Atomicity and serialisation of inventory changes, with real processes and real SIGKILLs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from isobuilder.errors import IsobuildError
from isobuilder.files import File, contents
from isobuilder.inventory import Inventory, read_tree
from tests.helpers import EPOCH


def isobuild(inv: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "isobuilder", "-q", "--inventory", str(inv), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()


def consistent(inv: Path) -> set[str]:
    """The inventory's invariants after recovery; returns the node names."""
    with Inventory(inv).locked():
        pass  # taking the lock rolls back whatever a killed command left
    assert not list((inv / ".isobuild").glob("tx-*"))
    nodes = {n["name"] for n in yaml.safe_load((inv / "cluster.yaml").read_text())["nodes"]}
    folders = {p.name.removeprefix("node-") for p in inv.glob("node-*")}
    assert folders == nodes
    for name in nodes:
        folder = inv / f"node-{name}"
        assert (folder / "config.iso").stat().st_size > 0
        assert (folder / "ssl" / "kubelet.key").stat().st_size > 0
    return nodes


def test_concurrent_commands_are_serialised_and_none_is_lost(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    assert finish(isobuild(inv, "node", "c1", "10.0.0.1"))[0] == 0
    procs = [isobuild(inv, "node", f"w{i}", f"10.0.0.{10 + i}", "--master", "10.0.0.1") for i in range(6)]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _ in results), results
    assert consistent(inv) == {"c1", *(f"w{i}" for i in range(6))}


def test_a_killed_command_leaves_the_inventory_as_it_was_and_a_rerun_succeeds(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    assert finish(isobuild(inv, "node", "c1", "10.0.0.1"))[0] == 0
    ca = (inv / "ssl" / "ca.key").read_bytes()
    for attempt in range(12):
        name = f"w{attempt}"
        proc = isobuild(inv, "node", name, f"10.0.1.{attempt + 1}", "--master", "10.0.0.1")
        time.sleep(0.02 + 0.03 * attempt)  # from start-up to well after the commit
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        consistent(inv)  # either without the node or with all of it, never half of it
        code, err = finish(isobuild(inv, "node", name, f"10.0.1.{attempt + 1}", "--master", "10.0.0.1"))
        assert code == 0, err
        assert name in consistent(inv)
    assert (inv / "ssl" / "ca.key").read_bytes() == ca


def test_a_crash_in_the_middle_of_a_commit_is_rolled_back(tmp_path: Path) -> None:
    """A journal left by a commit that died after its first rename: the next lock restores it."""
    root = tmp_path / "inv"
    inventory = Inventory(root)
    with inventory.locked(), inventory.transaction() as tx:
        tx.put_tree("node-a", {"f": File(b"old")})
        tx.put_file("cluster.yaml", File(b"nodes: []\n"))
        tx.commit()
    tx = inventory.transaction()
    tx.put_tree("node-a", {"f": File(b"new")})
    tx.put_file("cluster.yaml", File(b"nodes: [changed]\n"))
    # What commit() does, stopped (as by SIGKILL) after swapping in the first target only:
    (tx.tx / "journal.json").write_text(
        '{"targets": [{"index": 0, "target": "node-a", "had_old": true, "delete": false},'
        ' {"index": 1, "target": "cluster.yaml", "had_old": true, "delete": false}]}'
    )
    (root / "node-a").rename(tx.tx / "old" / "0")
    (tx.tx / "new" / "0").rename(root / "node-a")
    assert contents(read_tree(root / "node-a")) == {"f": b"new"}

    with inventory.locked():
        assert contents(read_tree(root / "node-a")) == {"f": b"old"}
        assert (root / "cluster.yaml").read_bytes() == b"nodes: []\n"
        assert not tx.tx.exists()


def test_unchanged_files_keep_their_inode_when_a_folder_is_replaced(tmp_path: Path) -> None:
    root = tmp_path / "inv"
    inventory = Inventory(root)
    with inventory.locked(), inventory.transaction() as tx:
        tx.put_tree("node-a", {"same": File(b"1", 0o600), "other": File(b"x")})
        tx.put_file("cluster.yaml", File(b"{}\n"))
        tx.commit()
    before = (root / "node-a" / "same").stat()
    with inventory.locked(), inventory.transaction() as tx:
        tx.put_tree("node-a", {"same": File(b"1", 0o600), "other": File(b"y")})
        tx.commit()
    after = (root / "node-a" / "same").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert (root / "node-a" / "other").read_bytes() == b"y"
    assert oct((root / "node-a").stat().st_mode & 0o777) == oct(0o700)


def test_a_delete_is_rolled_back_with_the_rest_when_a_commit_fails(tmp_path: Path) -> None:
    """`build --prune` deletes folders in the same transaction: a commit that fails half-way (here a
    target whose parent is a file) brings the deleted folder back, and never removes a folder it
    had not reached yet."""
    root = tmp_path / "inv"
    inventory = Inventory(root)
    with inventory.locked(), inventory.transaction() as tx:
        tx.put_tree("node-gone", {"f": File(b"keep me")})
        tx.put_tree("node-later", {"f": File(b"later")})
        tx.put_file("cluster.yaml", File(b"{}\n"))
        tx.commit()
    with inventory.locked(), inventory.transaction() as tx:
        tx.delete("node-gone")
        tx.put_file("cluster.yaml/oops", File(b"x"))  # its parent is a file: the commit fails here
        tx.delete("node-later")
        with pytest.raises(IsobuildError, match="cannot update"):
            tx.commit()
    assert contents(read_tree(root / "node-gone")) == {"f": b"keep me"}
    assert contents(read_tree(root / "node-later")) == {"f": b"later"}
    with inventory.locked(), inventory.transaction() as tx:
        tx.delete("node-gone")
        tx.commit()
    assert not (root / "node-gone").exists() and (root / "node-later").is_dir()


def test_a_failing_first_command_never_removes_the_cluster_made_beside_it(tmp_path: Path) -> None:
    """`node BAD & node c1` on a new path: the failing one removes only what it made, under the lock."""
    for attempt in range(8):
        inv = tmp_path / f"inv{attempt}"
        bad = isobuild(inv, "node", "Bad_Name", "10.0.0.1")
        good = isobuild(inv, "node", "c1", "10.0.0.1")
        assert finish(bad)[0] == 1
        code, err = finish(good)
        assert code == 0, err
        assert (inv / "cluster.yaml").is_file() and (inv / "ssl/ca.key").is_file(), attempt
        assert "c1" in consistent(inv)


def test_concurrent_merges_from_two_inventories_keep_both_clusters(tmp_path: Path) -> None:
    """Two clusters merged into one kubeconfig at once: kubectl's PATH.lock serialises them."""
    invs = [tmp_path / "a", tmp_path / "b"]
    for i, inv in enumerate(invs):
        assert finish(isobuild(inv, "node", "c1", f"10.0.{i}.1", "--name", f"lab{i}"))[0] == 0
    for round_ in range(10):
        kube = tmp_path / f"config-{round_}"
        procs = [isobuild(inv, "kubeconfig", "--merge", env={"KUBECONFIG": str(kube)}) for inv in invs]
        assert all(finish(p)[0] == 0 for p in procs)
        contexts = {c["name"] for c in yaml.safe_load(kube.read_text())["contexts"]}
        assert contexts == {"kubernetes-admin@lab0", "kubernetes-admin@lab1"}, round_
        assert not kube.with_name(kube.name + ".lock").exists()


def test_ctrl_c_during_a_parallel_build_is_one_error_line_and_no_half_build(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    assert finish(isobuild(inv, "node", "c1", "10.1.0.1"))[0] == 0
    nodes = "".join(
        f"- name: n{i}\n  ip: 10.1.{i // 200}.{i % 200 + 2}\n  role: worker\n  master: 10.1.0.1\n" for i in range(300)
    )
    (inv / "cluster.yaml").write_text((inv / "cluster.yaml").read_text() + nodes)
    proc = isobuild(inv, "build", "--jobs", "2")
    deadline = time.monotonic() + 60  # in the middle of the pool's work: a node staged, 299 to go
    while not any((inv / ".isobuild").glob("tx-*/scratch/*/*")) and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 130, err
    assert err.splitlines() == [
        "Error: interrupted",
        "Hint: the inventory is as it was, or as the command made it (never a mix); isobuild list tells",
    ]
    with Inventory(inv).locked():
        assert not list((inv / ".isobuild").glob("tx-*"))  # rolled back and cleaned up already
    built = {p.name for p in inv.glob("node-*")}
    assert built in ({"node-c1"}, {"node-c1", *(f"node-n{i}" for i in range(300))})  # all or nothing


@pytest.mark.parametrize(
    "journal",
    [
        '{"targets": [{"index": 0, "target": "../victim", "had_old": false, "delete": false}]}',
        '{"targets": [{"index": 0, "target": "/tmp/victim", "had_old": false, "delete": false}]}',
        '{"targets": [{"index": 0, "target": "node-a/../../victim", "had_old": false, "delete": false}]}',
        '{"targets": [{"index": 0, "target": ".isobuild/lock", "had_old": false, "delete": false}]}',
        '{"targets": [{"index": 0, "target": "node-a"',
        '{"targets": 5}',
        "",
    ],
    ids=["parent", "absolute", "dotdot", "state", "truncated", "wrong-shape", "empty"],
)
def test_a_planted_or_truncated_journal_touches_nothing(tmp_path: Path, journal: str) -> None:
    root = tmp_path / "inv"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    inventory = Inventory(root)
    with inventory.locked(), inventory.transaction() as tx:
        tx.put_file("cluster.yaml", File(b"{}\n"))
        tx.commit()
    tx_dir = root / ".isobuild" / "tx-1-planted"
    (tx_dir / "new").mkdir(parents=True)
    (tx_dir / "journal.json").write_text(journal)
    with (
        pytest.raises(IsobuildError, match=r"is not a journal isobuild wrote|not a path inside the inventory"),
        inventory.locked(),
    ):
        pass
    assert victim.read_text() == "precious" and (root / "cluster.yaml").read_bytes() == b"{}\n"
    assert (tx_dir / "journal.json").exists()  # left for the operator to look at


def test_the_command_exits_without_teardown_and_loses_no_output_or_exit_code(tmp_path: Path) -> None:
    """`isobuild` ends with os._exit (isobuilder.__main__.run): stdout to a pipe arrives whole, exit codes pass
    through, and an RSA cluster's nodes get their keys made ahead in a thread (keys.KeysAhead)."""
    inv = tmp_path / "inv"
    assert finish(isobuild(inv, "init", "--key-type", "rsa-2048"))[0] == 0
    for args in (("node", "c1", "10.0.0.1"), ("node", "w1", "10.0.0.2", "--master", "c1")):
        code, err = finish(isobuild(inv, *args))
        assert code == 0, err
    proc = isobuild(inv, "list", "--json")
    out, raw_err = proc.communicate(timeout=60)
    assert proc.returncode == 0, raw_err
    assert {row["name"] for row in json.loads(out)["nodes"]} == {"c1", "w1"}
    code, err = finish(isobuild(inv, "node", "bad_name", "10.0.0.3"))
    assert code == 1 and err.startswith("Error: "), err
    for name in ("c1", "w1"):
        key = serialization.load_pem_private_key((inv / f"node-{name}/ssl/kubelet.key").read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    reader = subprocess.run(  # the reader leaves early: no traceback, no hang
        f"{sys.executable} -m isobuilder --inventory {inv} list --json | head -c 1",
        shell=True, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert reader.stdout == b"{" and b"Traceback" not in reader.stderr
