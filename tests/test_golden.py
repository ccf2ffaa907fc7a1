"""Rendered configs compared with reviewed golden files (the parts without keys or random IDs).

After an intended change: ISOBUILD_UPDATE_GOLDEN=1 pytest tests/test_golden.py, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import Run

GOLDEN = Path(__file__).parent / "golden"
CLUSTER_ID = "5f0c7a2e-1b7d-4c1e-9a43-2f8d3c6b9e10"

# Files in user_data that hold no secret and nothing random: fit for golden files.
PLAIN = {
    "controller": [
        "/opt/isobuild/install.sh",
        "/etc/kubernetes/isobuild/kubeadm.yaml",
        "/etc/kubernetes/isobuild/rbac.yaml",
        "/etc/kubernetes/isobuild/flannel/kustomization.yaml",
        "/etc/kubernetes/isobuild/ingress-nginx/kustomization.yaml",
        "/etc/kubernetes/isobuild/ingress-nginx/daemonset.yaml",
    ],
    "example.com": [
        "/opt/isobuild/install.sh",
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
