"""Rendered configs compared with reviewed golden files (the parts without keys or random IDs).

After an intended change: ISOBUILD_UPDATE_GOLDEN=1 pytest tests/cli/test_golden.py, then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.helpers import Run

GOLDEN = Path(__file__).parent / "golden"
CLUSTER_ID = "5f0c7a2e-1b7d-4c1e-9a43-2f8d3c6b9e10"

# Files in user_data that hold no secret and nothing random: fit for golden files.
PLAIN = {
    "controller": [
        "/opt/isobuild/install.sh",
        "/etc/kubernetes/isobuild/kubeadm.yaml",
        "/etc/kubernetes/isobuild/rbac.yaml",
        "/etc/kubernetes/isobuild/flannel/kustomization.yaml",
        "/etc/kubernetes/isobuild/contour/kustomization.yaml",
    ],
    "example.com": [
        "/opt/isobuild/install.sh",
        "/etc/isobuild/firewall.nft",
        "/etc/systemd/system/isobuild-firewall.service",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubelet/kubeadm-flags.env",
    ],
}


@pytest.fixture
def fixed_cluster(run: Run, inv: Path) -> Path:
    assert run("init", "--name", "golden").code == 0
    text = (inv / "cluster.yaml").read_text()
    current = yaml.safe_load(text)["cluster_id"]
    (inv / "cluster.yaml").write_text(text.replace(current, CLUSTER_ID))
    assert run("node", "controller", "10.10.10.1").code == 0
    assert run("node", "example.com", "123.234.234.123", "--master", "10.10.10.1", "--role", "edge").code == 0
    return inv


def check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ISOBUILD_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert path.exists(), f"{path} missing: run with ISOBUILD_UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(), f"{name} differs from its golden file"


@pytest.mark.parametrize("node", sorted(PLAIN))
def test_rendered_files_match_golden(fixed_cluster: Path, node: str) -> None:
    data = yaml.safe_load((fixed_cluster / f"node-{node}/cloud-config/openstack/latest/user_data").read_text())
    files = {f["path"]: f for f in data["write_files"]}
    for path in PLAIN[node]:
        check(f"{node}{path}", files[path]["content"])
    check(
        f"{node}/meta_data.json",
        (fixed_cluster / f"node-{node}/cloud-config/openstack/latest/meta_data.json").read_text(),
    )
    skeleton = {k: v for k, v in data.items() if k != "write_files"}
    skeleton["write_files"] = [{k: v for k, v in f.items() if k != "content"} for f in data["write_files"]]
    check(f"{node}/user_data.skeleton.yaml", yaml.safe_dump(skeleton, sort_keys=False))


# Ignition files that hold no secret and nothing random (the rest: path, mode and a marker).
IGNITION_PLAIN = {
    "/etc/hostname",
    "/etc/systemd/network/00-isobuild.network",
    "/opt/isobuild/setup.sh",
    "/var/lib/kubelet/config.yaml",
    "/var/lib/kubelet/kubeadm-flags.env",
}


@pytest.fixture
def fixed_mixed(run: Run, inv: Path) -> Path:
    assert run("init", "--name", "golden", "--format", "ignition").code == 0
    text = (inv / "cluster.yaml").read_text()
    (inv / "cluster.yaml").write_text(text.replace(yaml.safe_load(text)["cluster_id"], CLUSTER_ID))
    assert run("node", "controller", "10.10.10.1").code == 0
    assert run("node", "flatcar1", "10.10.10.5/24", "--master", "10.10.10.1", "--mac", "52:54:00:00:00:05",
               "--gateway", "10.10.10.254", "--dns", "1.1.1.1", "--mtu", "1450").code == 0  # fmt: skip
    assert run("node", "ubuntu1", "10.10.10.6/24", "--master", "10.10.10.1", "--format", "cloud-config",
               "--media", "nocloud", "--mac", "52:54:00:00:00:06", "--gateway", "10.10.10.254").code == 0  # fmt: skip
    return inv


def test_ignition_config_matches_golden(fixed_mixed: Path) -> None:
    from tests.helpers import decode

    folder = fixed_mixed / "node-flatcar1"
    config = json.loads((folder / "cloud-config/openstack/latest/user_data").read_text())
    for entry in config["storage"]["files"]:
        content = decode(entry.pop("contents"))
        entry["contents"] = content.decode() if entry["path"] in IGNITION_PLAIN else "<secret or random>"
    check("flatcar1/ignition.skeleton.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    check("flatcar1/network_data.json", (folder / "cloud-config/openstack/latest/network_data.json").read_text())
    check("flatcar1/install.sh", (folder / "install.sh").read_text())
    nocloud = fixed_mixed / "node-ubuntu1/cloud-config"
    check("ubuntu1/network-config", (nocloud / "network-config").read_text())
    check("ubuntu1/meta-data", (nocloud / "meta-data").read_text())


def test_ignition_drives_are_byte_identical_when_rebuilt_elsewhere(fixed_mixed: Path, run: Run, tmp_path: Path) -> None:
    """Same inputs and SOURCE_DATE_EPOCH: a copy rebuilt in another folder gives the same bytes
    (gzip inside the data URLs carries no timestamp)."""
    import shutil

    copy = tmp_path / "elsewhere"
    shutil.copytree(fixed_mixed, copy)
    for folder in ("node-flatcar1", "node-ubuntu1"):
        (copy / folder / "config.iso").unlink()
        for user_data in (copy / folder / "cloud-config").rglob("user*data"):
            user_data.unlink()
        (copy / folder / ".isobuild.json").unlink()
    assert run("node", "flatcar1", "10.10.10.5", inventory=copy).code == 0
    assert run("node", "ubuntu1", "10.10.10.6", inventory=copy).code == 0
    for folder in ("node-flatcar1", "node-ubuntu1"):
        assert (copy / folder / "config.iso").read_bytes() == (fixed_mixed / folder / "config.iso").read_bytes()


def test_pxe_export_matches_golden(fixed_mixed: Path, run: Run) -> None:
    """Everything `isobuild pxe` writes that holds no key: matchbox groups and profiles, the install
    stage's Ignition (script decoded), the DHCP files and the inventories."""
    from tests.helpers import decode

    assert run("pxe", "--http-endpoint", "http://10.10.10.254:8080", "--next-server", "10.10.10.254").code == 0
    out = fixed_mixed / "pxe"
    plain = [p for p in sorted(out.rglob("*")) if p.is_file() and p.parent.name in ("pxe", "groups", "profiles")]
    for path in plain:
        check(f"pxe/{path.relative_to(out)}", path.read_text())
    install = json.loads((out / "matchbox/ignition/golden_flatcar1_install.ign").read_text())
    for entry in install["storage"]["files"]:
        entry["contents"] = decode(entry.pop("contents")).decode()
    check("pxe/matchbox/ignition/golden_flatcar1_install.json", json.dumps(install, indent=2, sort_keys=True) + "\n")
