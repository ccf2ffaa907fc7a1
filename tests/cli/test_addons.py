"""The add-ons a cluster chooses (cni, ingress in cluster.yaml) and the edge router's taint, on
generated inventories. The rules they rely on are cited in isobuilder/manifests.py and
docs/KUBEADM.md."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from isobuilder.firstboot import files_written
from isobuilder.model import Role
from tests.helpers import CONFIG_2_USER_DATA, Run, require_tool

ADDONS = "/etc/kubernetes/isobuild"
TAINT = {"key": "node-role.kubernetes.io/edge", "effect": "NoSchedule"}


def _cluster(run: Run, *init: str) -> None:
    assert run("init", *init).code == 0
    for args in (
        ("node", "c1", "10.0.0.1"),
        ("node", "w1", "10.0.0.2", "--master", "c1"),
        ("node", "edge1", "192.0.2.10", "--master", "c1", "--role", "edge"),
    ):
        result = run(*args)
        assert result.code == 0, result.err


def _written(inv: Path, node: str) -> dict[str, bytes]:
    """What first boot writes on the node, read from its user_data as cloud-init decodes it."""
    files = files_written((inv / f"node-{node}" / CONFIG_2_USER_DATA).read_bytes())
    assert files is not None
    return {path: f.content for path, f in files.items()}


def _addon_paths(inv: Path) -> set[str]:
    return {p for p in _written(inv, "c1") if p.startswith(ADDONS)}


def _tolerates(toleration: dict[str, str], taint: dict[str, str]) -> bool:
    """core/v1 Toleration.ToleratesTaint: the key (or an empty key with Exists), the effect (or
    none), and with Exists any value."""
    key_ok = toleration.get("key") == taint["key"] or (not toleration.get("key") and toleration["operator"] == "Exists")
    effect_ok = toleration.get("effect") in (None, "", taint["effect"])
    value_ok = toleration.get("operator") == "Exists" or toleration.get("value", "") == taint.get("value", "")
    return key_ok and effect_ok and value_ok


def _contour_envoy_patch(kustomization: bytes) -> dict[str, Any]:
    patches = [yaml.safe_load(p["patch"]) for p in yaml.safe_load(kustomization)["patches"]]
    return next(p for p in patches if p["kind"] == "DaemonSet" and p["metadata"]["name"] == "envoy")


def test_by_default_flannel_and_contour_are_applied(run: Run, inv: Path) -> None:
    _cluster(run)
    paths = _addon_paths(inv)
    assert {f"{ADDONS}/flannel/kustomization.yaml", f"{ADDONS}/contour/kustomization.yaml"} <= paths
    assert not [p for p in paths if "/ingress-nginx/" in p]
    install = (inv / "node-c1" / "install.sh").read_text()
    assert 'kubectl apply -k "${ADDONS_DIR}/flannel"' in install
    assert 'kubectl apply -k "${ADDONS_DIR}/contour"' in install
    text = (inv / "cluster.yaml").read_text()
    assert {"cni: flannel", "ingress: contour", "contour_version: v1.33.7"} <= set(text.splitlines())
    kustomization = yaml.safe_load(_written(inv, "c1")[f"{ADDONS}/contour/kustomization.yaml"])
    assert kustomization["resources"] == [
        "https://raw.githubusercontent.com/projectcontour/contour/v1.33.7/examples/render/contour.yaml"
    ]


def test_ingress_nginx_is_still_a_choice_pinned_by_its_tag(run: Run, inv: Path) -> None:
    _cluster(run, "--ingress", "ingress-nginx")
    paths = _addon_paths(inv)
    assert {f"{ADDONS}/ingress-nginx/kustomization.yaml", f"{ADDONS}/ingress-nginx/daemonset.yaml"} <= paths
    assert not [p for p in paths if "/contour/" in p]
    assert 'kubectl apply -k "${ADDONS_DIR}/ingress-nginx"' in (inv / "node-c1" / "install.sh").read_text()
    kustomization = yaml.safe_load(_written(inv, "c1")[f"{ADDONS}/ingress-nginx/kustomization.yaml"])
    assert kustomization["resources"][0].startswith(
        "https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.15.1/"
    )
    daemonset = yaml.safe_load(_written(inv, "c1")[f"{ADDONS}/ingress-nginx/daemonset.yaml"])
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["role"] == "edge-router"
    assert any(_tolerates(t, TAINT) for t in pod["tolerations"])


def test_cni_none_and_ingress_none_leave_them_out_and_say_what_to_do(run: Run, inv: Path) -> None:
    _cluster(run, "--cni", "none", "--ingress", "none")
    paths = _addon_paths(inv)
    assert not [p for p in paths if "/flannel/" in p or "/contour/" in p or "/ingress-nginx/" in p], paths
    assert f"{ADDONS}/rbac.yaml" in paths
    install = (inv / "node-c1" / "install.sh").read_text()
    assert "kubectl apply -k" not in install
    assert "cni: none in cluster.yaml: install your CNI now (with pod CIDR 10.244.0.0/16)" in install
    result = subprocess.run([require_tool("shellcheck"), "--shell=bash", str(inv / "node-c1" / "install.sh")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout
    # Chosen later, in cluster.yaml: the next build brings flannel back.
    cluster = inv / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("\ncni: none\n", "\ncni: flannel\n"))
    assert run("build").code == 0
    assert f"{ADDONS}/flannel/kustomization.yaml" in _addon_paths(inv)


def test_an_unknown_choice_is_refused_where_it_is_written(run: Run, inv: Path) -> None:
    assert run("init", "--cni", "calico").err.splitlines()[0] == (
        "Error: Invalid value for '--cni': 'calico' is not one of 'flannel', 'none'."
    )
    _cluster(run)
    cluster = inv / "cluster.yaml"
    before = cluster.read_bytes()
    cluster.write_text(cluster.read_text().replace("\ningress: contour\n", "\ningress: traefik\n"))
    result = run("build")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "Error: cluster.yaml: ingress: 'traefik' is not one of contour, ingress-nginx, none"
    )
    cluster.write_bytes(before)


def test_an_edge_router_registers_tainted_and_only_the_ingress_tolerates_it(run: Run, inv: Path) -> None:
    _cluster(run)

    def flags(node: str) -> str:
        return _written(inv, node)["/var/lib/kubelet/kubeadm-flags.env"].decode()

    assert "--register-with-taints=node-role.kubernetes.io/edge:NoSchedule" in flags("edge1")
    assert "--node-labels=role=edge-router" in flags("edge1")
    assert "register-with-taints" not in flags("w1")
    daemonset = _contour_envoy_patch(_written(inv, "c1")[f"{ADDONS}/contour/kustomization.yaml"])
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["role"] == "edge-router"
    assert any(_tolerates(t, TAINT) for t in pod["tolerations"])
    # The controllers' own kubelet flags (kubeadm's kubeletExtraArgs) carry no edge taint.
    controller = _written(inv, "c1")[f"{ADDONS}/kubeadm.yaml"].decode()
    assert "register-with-taints" not in controller


def test_the_readme_pod_spec_lands_on_edge_routers() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## Edge routers", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = yaml.safe_load(block)
    assert spec["nodeSelector"] == Role.EDGE.builtin_labels()
    assert [t for t in spec["tolerations"] if _tolerates(t, TAINT)] == spec["tolerations"]
