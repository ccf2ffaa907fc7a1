"""`isobuild build`, `list` and `verify` over a cluster declared in cluster.yaml: incrementality,
determinism, parallel equal to serial, every problem reported before anything is written, and
verify catching each planted fault (checked against openssl and blkid where it matters)."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from isobuilder import configdrive
from tests.helpers import Run, require_tool

NODES: list[dict[str, Any]] = [
    {"name": "ctrl", "ip": "10.10.10.1", "role": "controller"},
    {"name": "w1", "ip": "10.10.10.2", "role": "worker", "mac": "52:54:00:00:00:02", "labels": {"zone": "a"}},
    {"name": "w2", "ip": "10.10.10.3", "role": "worker", "format": "ignition", "media": "nocloud"},
    {"name": "edge1", "ip": "192.0.2.10", "role": "edge", "sans": ["edge.example.com"]},
    *({"name": f"w{i}", "ip": f"10.10.11.{i}", "role": "worker"} for i in range(3, 23)),
]


def declare(inv: Path, nodes: list[dict[str, Any]]) -> None:
    text = (inv / "cluster.yaml").read_text()
    head = text[: text.index("\nnodes:") + 1]
    (inv / "cluster.yaml").write_text(head + yaml.safe_dump({"nodes": nodes}, sort_keys=False))


@pytest.fixture
def declared(run: Run, inv: Path) -> Path:
    assert run("init", "--name", "lab").code == 0
    declare(inv, NODES)
    return inv


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".isobuild" not in p.relative_to(root).parts[:1]
    }


def test_build_makes_every_node_and_a_rerun_changes_no_byte_or_mtime(run: Run, declared: Path) -> None:
    result = run("build", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["built"], report["unchanged"], report["failed"]) == (len(NODES), 0, 0)
    assert "build: 24 built, 0 unchanged, 0 failed" in result.err
    for node in NODES:
        assert (declared / f"node-{node['name']}" / "config.iso").is_file()
    blkid = subprocess.run([require_tool("blkid"), "-o", "value", "-s", "LABEL", str(declared / "node-w2/config.iso")],
                           capture_output=True, text=True)  # fmt: skip
    assert blkid.stdout.strip() == "cidata"
    before = snapshot(declared)
    again = run("build", "--json")
    assert json.loads(again.out)["unchanged"] == len(NODES)
    assert snapshot(declared) == before
    # `isobuild node` and `build` agree: nothing to do for either
    assert "up to date, nothing written" in run("node", "w1", "10.10.10.2").err
    assert snapshot(declared) == before


def test_touching_one_nodes_input_rebuilds_only_its_folder(run: Run, declared: Path) -> None:
    assert run("build").code == 0
    before = snapshot(declared)
    nodes = [dict(n) for n in NODES]
    nodes[1]["labels"] = {"zone": "b"}
    declare(declared, nodes)
    result = run("build", "--json")
    report = json.loads(result.out)
    assert [n["name"] for n in report["nodes"] if n["status"] == "built"] == ["w1"]
    after = snapshot(declared)
    changed = sorted({k.split("/")[0] for k in set(before) | set(after) if before.get(k) != after.get(k)})
    assert changed == ["cluster.yaml", "node-w1"]
    assert after["node-w1/ssl/kubelet.key"] == before["node-w1/ssl/kubelet.key"]  # the key stays


def test_every_problem_is_reported_before_anything_is_written(run: Run, declared: Path) -> None:
    nodes = [*NODES, {"name": "dup", "ip": "10.10.10.2", "role": "worker"}, {"name": "m", "ip": "10.10.10.8",
             "role": "worker", "mac": yaml.safe_load("52:54:00:00:00:09")},
             {"name": "bad_name", "ip": "10.10.10.9", "role": "worker"},
             {"name": "w99", "ip": "10.96.0.5", "role": "worker"}]  # fmt: skip
    declare(declared, nodes)
    result = run("build")
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("Error: ")]
    assert errors[0] == "Error: 4 problems in cluster.yaml; nothing was written"
    assert "Error: cluster.yaml: nodes[25].mac must be a string" in errors
    assert any("'bad_name'" in e for e in errors)
    assert any("IP 10.10.10.2 of node 'dup' is already used by node 'w1'" in e for e in errors)
    assert any("inside the service CIDR" in e for e in errors)
    assert "Traceback" not in result.err
    assert not list(declared.glob("node-*"))


def test_parallel_build_equals_a_serial_one_in_structure(run: Run, declared: Path, tmp_path: Path) -> None:
    serial = tmp_path / "serial"
    shutil.copytree(declared, serial)
    assert run("build", "--jobs", "2").code == 0
    assert run("build", "--jobs", "1", inventory=serial).code == 0

    def shape(root: Path) -> dict[str, object]:
        out: dict[str, object] = {}
        for p in sorted(root.glob("node-*/**/*")):
            if p.is_file():
                rel = str(p.relative_to(root))
                random = p.suffix in (".key", ".crt", ".iso", ".json") or "cloud-config" in rel or p.name == "apply.sh"
                out[rel] = (p.stat().st_mode, None if random else p.read_bytes())
        return out

    assert shape(declared) == shape(serial)


def test_repackaged_copy_gives_byte_identical_user_data_and_isos(run: Run, declared: Path, tmp_path: Path) -> None:
    """Fresh keys are random; everything made from them is not: a copy re-built in another folder
    with the same SOURCE_DATE_EPOCH has the same user data and ISOs."""
    assert run("build").code == 0
    copy = tmp_path / "elsewhere"
    shutil.copytree(declared, copy)
    for folder in copy.glob("node-*"):
        (folder / "config.iso").unlink()
        (folder / ".isobuild.json").unlink()
        for data in (folder / "cloud-config").rglob("user*data"):
            data.unlink()
    assert run("build", inventory=copy).code == 0
    for folder in declared.glob("node-*"):
        for rel in ("config.iso", "cloud-config/openstack/latest/user_data", "cloud-config/user-data"):
            if (folder / rel).exists():
                assert (copy / folder.name / rel).read_bytes() == (folder / rel).read_bytes(), (folder, rel)


def test_removed_nodes_are_reported_and_pruned_only_on_request(run: Run, declared: Path) -> None:
    assert run("build").code == 0
    declare(declared, [n for n in NODES if n["name"] != "w22"])
    kept = run("build")
    assert "node-w22: not in cluster.yaml (kept; --prune removes it)" in kept.err
    assert (declared / "node-w22").is_dir()
    listed = json.loads(run("list", "--json").out)
    assert listed["orphans"] == ["node-w22"]
    pruned = run("build", "--prune", "--json")
    assert json.loads(pruned.out)["pruned"] is True
    assert not (declared / "node-w22").exists()


def test_named_nodes_only_and_unknown_names_are_refused(run: Run, declared: Path) -> None:
    result = run("build", "ctrl", "w1", "--json")
    assert [n["name"] for n in json.loads(result.out)["nodes"]] == ["ctrl", "w1"]
    assert sorted(p.name for p in declared.glob("node-*")) == ["node-ctrl", "node-w1"]
    unknown = run("build", "nope")
    assert unknown.code == 1 and unknown.err.startswith("Error: node 'nope' is not in")


def test_a_hand_edit_conflict_fails_that_node_only(run: Run, declared: Path) -> None:
    assert run("build").code == 0
    user_data = declared / "node-w1/cloud-config/openstack/latest/user_data"
    user_data.write_text(user_data.read_text() + "# mine\n")
    nodes = [dict(n) for n in NODES]
    nodes[1]["labels"] = {"zone": "c"}
    nodes[4]["labels"] = {"zone": "c"}
    declare(declared, nodes)
    result = run("build", "--json")
    assert result.code == 1
    status = {n["name"]: n["status"] for n in json.loads(result.out)["nodes"]}
    assert status["w1"] == "failed" and status["w3"] == "built"
    assert "# mine" in user_data.read_text()


def test_list_shows_expiry_and_staleness(run: Run, declared: Path) -> None:
    assert run("list").out.count("not built") == len(NODES)
    assert run("build").code == 0
    nodes = [dict(n) for n in NODES]
    nodes[2]["mac"] = "52:54:00:00:00:03"
    declare(declared, nodes)
    rows = {r["name"]: r for r in json.loads(run("list", "--json").out)["nodes"]}
    assert rows["w2"]["status"] == "stale" and rows["w1"]["status"] == "up to date"
    assert rows["w1"]["cert_expiry"].startswith("20") and rows["w1"]["format"] == "cloud-config"
    table = run("list").out.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "IP", "FORMAT", "MEDIUM", "KUBERNETES", "CERT", "EXPIRY", "STATUS"]


# -- verify: each planted fault is caught -----------------------------------------------------------
@pytest.fixture
def built(run: Run, declared: Path) -> Path:
    assert run("build", "ctrl", "w1", "w2", "edge1").code == 0
    declare(declared, NODES[:4])
    assert run("kubeconfig").code == 0
    assert run("verify").code == 0
    return declared


def plant_swapped_key(inv: Path) -> str:
    w1, edge = inv / "node-w1/ssl/kubelet.key", inv / "node-edge1/ssl/kubelet.key"
    a, b = w1.read_bytes(), edge.read_bytes()
    w1.write_bytes(b)
    edge.write_bytes(a)
    return "node-w1/ssl/kubelet.key: does not match kubelet.crt"


def plant_world_readable_key(inv: Path) -> str:
    (inv / "node-w1/ssl/kubelet.key").chmod(0o644)
    return "node-w1/ssl/kubelet.key: mode 0644, want 0600"


def plant_stale_iso(inv: Path) -> str:
    user_data = inv / "node-w1/cloud-config/openstack/latest/user_data"
    user_data.write_text(user_data.read_text() + "# edited, not re-packaged\n")
    return "node-w1/config.iso: differs from cloud-config/ (openstack/latest/user_data"


def plant_relabelled_iso(inv: Path) -> str:
    _pack_by_hand(inv / "node-w1", "NOTCONFIG")  # the same files, another label: cloud-init finds no drive
    return "node-w1/config.iso: labelled 'NOTCONFIG', not config-2"


def plant_grown_iso(inv: Path) -> str:
    iso = inv / "node-w1/config.iso"
    size = iso.stat().st_size
    iso.write_bytes(iso.read_bytes() + bytes(4096))
    return f"node-w1/config.iso: {size + 4096} bytes, where its volume declares {size}"


def plant_ca_key_in_worker_folder(inv: Path) -> str:
    shutil.copy(inv / "ssl/ca.key", inv / "node-w1/ssl/ca.key")
    return "node-w1/ssl/ca.key: the ca key in a node folder (a worker must not)"


def plant_ca_key_on_worker_iso(inv: Path) -> str:
    drive = inv / "node-w2/cloud-config"
    (drive / "extra.key").write_bytes((inv / "ssl/etcd/ca.key").read_bytes())
    _pack_by_hand(inv / "node-w2", "cidata")  # `isobuild image` refuses it: an ISO made elsewhere
    return "node-w2/config.iso: carries the etcd/ca key (a worker must not)"


def plant_other_nodes_key_in_folder(inv: Path) -> str:
    (inv / "node-w1/notes.txt").write_bytes((inv / "node-edge1/ssl/kubelet.key").read_bytes())
    return "node-w1/notes.txt: a private key that is not its own in a node folder"


def plant_encoded_ca_key_on_worker_iso(inv: Path) -> str:
    """A hand edit that ships the CA key gzip+base64-encoded, as cloud-init would decode it."""
    user_data = inv / "node-w1/cloud-config/openstack/latest/user_data"
    body = base64.b64encode(gzip.compress((inv / "ssl/ca.key").read_bytes())).decode()
    entry = f"  - path: /root/x\n    encoding: gz+b64\n    content: {body}\n"
    user_data.write_text(user_data.read_text().replace("write_files:\n", "write_files:\n" + entry, 1))
    _pack_by_hand(inv / "node-w1", "config-2")
    return "node-w1/config.iso: carries the ca key (a worker must not)"


def _pack_by_hand(folder: Path, label: str) -> None:
    drive = {p.relative_to(folder / "cloud-config").as_posix(): p.read_bytes()
             for p in (folder / "cloud-config").rglob("*") if p.is_file()}  # fmt: skip
    (folder / "config.iso").write_bytes(configdrive.build_iso(drive, label, 1700000000))


def plant_unbuilt_node(inv: Path) -> str:
    declare(inv, [*NODES[:4], {"name": "w9", "ip": "10.10.10.9", "role": "worker"}])
    return "node-w9: not built (run isobuild build w9)"


def plant_foreign_cert(inv: Path) -> str:
    cert = inv / "node-edge1/ssl/kubelet.crt"
    subprocess.run([require_tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(inv.parent / "x.key"), "-out", str(cert), "-subj", "/CN=impostor",
                    "-days", "30"], check=True, capture_output=True)  # fmt: skip
    return "node-edge1/ssl/kubelet.crt: not signed by the cluster's ca"


@pytest.mark.parametrize(
    "plant",
    [plant_swapped_key, plant_world_readable_key, plant_stale_iso, plant_ca_key_in_worker_folder,
     plant_ca_key_on_worker_iso, plant_foreign_cert, plant_unbuilt_node, plant_other_nodes_key_in_folder,
     plant_encoded_ca_key_on_worker_iso, plant_relabelled_iso, plant_grown_iso],
)  # fmt: skip
def test_verify_catches_each_planted_fault(run: Run, built: Path, plant: Callable[[Path], str]) -> None:
    expected = plant(built)
    result = run("verify", "--json")
    assert result.code == 1
    findings = json.loads(result.out)["findings"]
    assert any(f.startswith(expected) for f in findings), findings
    assert f"verify: {len(findings)} finding(s)" in result.err


@pytest.mark.parametrize("encoding", ["plain", "gz+b64"])
def test_image_and_build_refuse_a_key_that_is_not_the_nodes_own(run: Run, built: Path, encoding: str) -> None:
    ca_key = (built / "ssl/ca.key").read_bytes()
    drive = built / "node-w1/cloud-config"
    if encoding == "plain":
        (drive / "extra.key").write_bytes(ca_key)
        where = "node-w1/cloud-config/extra.key"
    else:
        user_data = drive / "openstack/latest/user_data"
        body = base64.b64encode(gzip.compress(ca_key)).decode()
        entry = f"  - path: /root/x\n    encoding: gz+b64\n    content: {body}\n"
        user_data.write_text(user_data.read_text().replace("write_files:\n", "write_files:\n" + entry, 1))
        where = "node-w1/cloud-config/openstack/latest/user_data"
    iso = (built / "node-w1/config.iso").read_bytes()
    for args in (("image", str(built / "node-w1")), ("node", "w1", "10.10.10.2"), ("build", "w1", "--force")):
        result = run(*args)
        if args[0] == "build" and encoding != "plain":
            assert result.code == 0  # --force replaces the hand edit with what isobuild makes: no key
            continue
        assert result.code == 1 and f"{where} holds a private key that is not this node's own" in result.err
        assert (built / "node-w1/config.iso").read_bytes() == iso
    # its own key is fine: a hand edit may ship the node's kubelet key elsewhere
    (drive / "extra.key").unlink(missing_ok=True)
    if encoding == "plain":
        (drive / "mine.key").write_bytes((built / "node-w1/ssl/kubelet.key").read_bytes())
        assert run("image", str(built / "node-w1")).code == 0


def test_a_ca_key_left_in_a_controller_folder_goes_with_external_ca(run: Run, built: Path) -> None:
    assert (built / "node-ctrl/ssl/ca.key").exists()
    text = (built / "cluster.yaml").read_text()
    (built / "cluster.yaml").write_text(text.replace("external_ca: false", "external_ca: true"))
    assert run("build", "ctrl").code == 0
    assert not (built / "node-ctrl/ssl/ca.key").exists() and not (built / "node-ctrl/ssl/etcd/ca.key").exists()
    assert run("verify").code == 0


def test_verify_is_clean_on_a_fresh_inventory_and_openssl_agrees(run: Run, built: Path) -> None:
    result = run("verify", "--json")
    assert result.code == 0 and json.loads(result.out) == {"findings": []}
    check = subprocess.run([require_tool("openssl"), "verify", "-CAfile", str(built / "ssl/ca.crt"),
                            str(built / "node-w1/ssl/kubelet.crt")], capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stderr
