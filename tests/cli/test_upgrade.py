"""``isobuild upgrade``: kubeadm's skew policy checked before anything is written
(cmd/kubeadm/app/phases/upgrade/policy.go), cluster.yaml and every folder moved on, an upgrade.sh
per node that runs an older version, the order printed and enforced, ``--done`` and ``list``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Run, snapshot


@pytest.fixture
def lab(run: Run, inv: Path) -> Path:
    """Two controllers (c1 runs kubeadm init), two workers, one of them Flatcar, at 1.36.2."""
    for args in (
        ("node", "c1", "10.0.0.11", "--k8s-version", "1.36.2", "--vip", "10.0.0.50"),
        ("node", "c2", "10.0.0.12"),
        ("node", "w1", "10.0.0.21", "--master", "c1"),
        ("node", "f1", "10.0.0.31", "--master", "c1", "--format", "ignition"),
    ):
        result = run(*args)
        assert result.code == 0, result.err
    return inv


def versions(run: Run) -> dict[str, str]:
    result = run("list", "--json")
    assert result.code == 0, result.err
    return {row["name"]: row["kubernetes"] for row in json.loads(result.out)["nodes"]}


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("1.38.0", "Error: 1.36.2 -> 1.38.0 skips a minor version: kubeadm upgrades one minor at a time"),
        ("1.35.9", "Error: 1.35.9 is older than the cluster's 1.36.2: isobuild does not downgrade"),
        ("2.0.0", "Error: 1.36.2 -> 2.0.0 changes the major version"),
        ("1.37", "Error: --to: invalid Kubernetes version '1.37'"),
        ("1.37.0\n", "Error: --to: invalid Kubernetes version"),
    ],
)
def test_what_kubeadm_refuses_is_refused_and_nothing_is_written(run: Run, lab: Path, to: str, message: str) -> None:
    before = snapshot(lab)
    result = run("upgrade", "--to", to)
    assert result.code == 1
    assert result.err.splitlines()[0].startswith(message), result.err
    assert result.err.count("Error:") == 1 and "Hint:" in result.err
    assert snapshot(lab) == before


def test_an_upgrade_moves_cluster_yaml_and_writes_each_node_s_upgrade_sh_in_kubeadm_s_order(
    run: Run, lab: Path
) -> None:
    result = run("upgrade", "--to", "1.37.0", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert (out["from"], out["to"]) == ("1.36.2", "1.37.0")
    assert [(s["name"], s["runs"]) for s in out["order"]] == [
        ("c1", "kubeadm upgrade apply"),  # the bootstrap controller first
        ("c2", "kubeadm upgrade node"),
        ("w1", "kubeadm upgrade node"),
        ("f1", "kubeadm upgrade node"),
    ]
    assert "kubernetes_version: 1.37.0" in (lab / "cluster.yaml").read_text()
    assert "1. c1" in result.err and "isobuild push c1 --upgrade; kubectl uncordon c1" in result.err
    first = (lab / "node-c1/upgrade.sh").read_text()
    # kubeadm moves first: it refuses a target newer than itself (policy.go, "Upgrade kubeadm first")
    apply = 'kubeadm upgrade apply --yes --certificate-renewal=false "v${TO}" </dev/null'  # isobuild issues them
    assert first.index("upgrade_binary kubeadm\n") < first.index(apply) < first.index("upgrade_binary kubelet\n")
    assert first.rstrip().endswith('main "$@"')  # read whole before it runs (it comes on ssh's stdin)
    assert "TO=1.37.0" in first and "TO_MINOR=v1.37" in first and "pkgs.k8s.io/core:/stable:/${TO_MINOR}/deb/" in first
    for other in ("c2", "w1"):
        text = (lab / f"node-{other}/upgrade.sh").read_text()
        assert "kubeadm upgrade node --certificate-renewal=false </dev/null\n" in text
        assert "upgrade apply" not in text.split("set -euo pipefail")[1]
    flatcar = (lab / "node-f1/upgrade.sh").read_text()
    assert 'fetch_verified "https://dl.k8s.io/release/v${TO}/bin/linux/$(machine_arch)/$1" "${BIN_DIR}/$1"' in flatcar
    assert "apt-get" not in flatcar and "sha256sum --check" in flatcar
    assert versions(run) == {"c1": "1.36.2", "c2": "1.36.2", "w1": "1.36.2", "f1": "1.36.2"}
    table = run("list").out
    assert "1.36.2 -> 1.37.0" in table and "KUBERNETES" in table.splitlines()[0]
    # install.sh of a node built now installs the new version; a node added now needs no upgrade
    assert "K8S_VERSION=1.37.0" in (lab / "node-w1/install.sh").read_text()
    assert run("node", "w2", "10.0.0.22", "--master", "c1").code == 0
    assert not (lab / "node-w2/upgrade.sh").exists()
    assert versions(run)["w2"] == "1.37.0"


def test_controllers_go_first_and_done_removes_the_script(run: Run, lab: Path) -> None:
    assert run("upgrade", "--to", "1.37.0").code == 0
    early = run("upgrade", "--done", "w1")
    assert early.code == 1 and "Error: w1 cannot move to 1.37.0 before c1, c2" in early.err
    second = run("upgrade", "--done", "c2")
    assert second.code == 1 and "Error: c2 cannot move to 1.37.0 before c1" in second.err
    assert run("push", "w1", "--upgrade", "--dry-run").code == 1  # push enforces the same order
    for name in ("c1", "c2", "w1"):
        result = run("upgrade", "--done", name)
        assert result.code == 0, result.err
        assert not (lab / f"node-{name}/upgrade.sh").exists()
    assert versions(run) == {"c1": "1.37.0", "c2": "1.37.0", "w1": "1.37.0", "f1": "1.36.2"}
    again = run("upgrade", "--done", "c1")
    assert again.code == 0 and "all were at the version already" in again.err


def test_push_upgrade_runs_upgrade_sh_then_apply_sh_in_order(run: Run, lab: Path) -> None:
    assert run("upgrade", "--to", "1.37.0").code == 0
    result = run("push", "w1", "c2", "c1", "--upgrade", "--dry-run")
    assert result.code == 0, result.err
    scripts = [line.rsplit("/", 2)[-2:] for line in result.out.splitlines()]
    assert scripts == [
        ["node-c1", "upgrade.sh"], ["node-c1", "apply.sh"],
        ["node-c2", "upgrade.sh"], ["node-c2", "apply.sh"],
        ["node-w1", "upgrade.sh"], ["node-w1", "apply.sh"],
    ]  # fmt: skip
    nothing = run("push", "w2", "--upgrade", "--dry-run")
    assert nothing.code == 1 and "no node 'w2'" in nothing.err


def test_the_next_minor_waits_for_the_control_plane_and_for_kubelets_three_behind(run: Run, lab: Path) -> None:
    assert run("upgrade", "--to", "1.37.0").code == 0
    behind = run("upgrade", "--to", "1.38.0")
    assert behind.code == 1
    assert "controller c1 runs 1.36.2: more than one minor behind 1.38.0" in behind.err
    assert run("upgrade", "--to", "1.37.4").code == 0  # a patch release on top is fine
    for minor in (37, 38, 39):  # the control plane moves on; the workers stay at 1.36.2
        if minor > 37:
            assert run("upgrade", "--to", f"1.{minor}.0").code == 0, minor
        assert run("upgrade", "--done", "c1").code == 0
        assert run("upgrade", "--done", "c2").code == 0
    too_far = run("upgrade", "--to", "1.40.0")
    assert too_far.code == 1
    assert "w1 runs 1.36.2: more than 3 minors behind 1.40.0" in too_far.err
    assert "f1 runs 1.36.2" in too_far.err


def test_a_hand_edit_of_kubernetes_version_is_held_to_the_same_policy(run: Run, lab: Path) -> None:
    cluster_yaml = lab / "cluster.yaml"
    text = cluster_yaml.read_text()
    cluster_yaml.write_text(text.replace("kubernetes_version: 1.36.2", "kubernetes_version: 1.38.0"))
    refused = run("build")
    assert refused.code == 1 and "is out of reach of the running nodes" in refused.err
    cluster_yaml.write_text(text.replace("kubernetes_version: 1.36.2", "kubernetes_version: 1.37.1"))
    built = run("build")
    assert built.code == 0, built.err
    assert "TO=1.37.1" in (lab / "node-w1/upgrade.sh").read_text()  # no longer a silent "4 built"
    assert "upgrade: 4 node(s) run an older Kubernetes than cluster.yaml; in this order, each drained first: " in (
        built.err
    )
    assert "isobuild push c1 --upgrade, then isobuild push c2 --upgrade, then isobuild push w1 --upgrade" in built.err


def test_the_readme_s_changing_a_running_cluster_block_runs(run: Run, example: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Changing a running cluster", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].split() for line in block.splitlines() if line.strip()]
    assert len(lines) == 8 and all(words[0] == "isobuild" for words in lines)
    outputs = []
    for words in lines:
        result = run(*words[1:])
        assert result.code == 0, (words, result.err)
        outputs.append(result)
    assert "running: if worker1 runs already: isobuild push worker1 (its apply.sh: kubeadm-flags.env)" in outputs[0].err
    assert "ssh -T 10.10.10.2" in outputs[1].out
    assert "1. controller" in outputs[3].err and "kubeadm upgrade apply" in outputs[3].err
    assert "node-controller/upgrade.sh" in outputs[4].out
    assert "1.37.1 -> 1.38.0" in outputs[6].out and "controller" in outputs[6].out
    assert not (example / "node-controller/upgrade.sh").exists()


def test_a_folder_from_before_version_records_counts_as_the_version_it_was_built_with(run: Run, lab: Path) -> None:
    """Its install script pins what it was built with: a hand edit two minors on is still refused."""
    for state_file in lab.glob("node-*/.isobuild.json"):
        state = json.loads(state_file.read_text())
        del state["kubernetes"]
        state_file.write_text(json.dumps(state))
    assert versions(run) == {"c1": "1.36.2", "c2": "1.36.2", "w1": "1.36.2", "f1": "1.36.2"}  # f1: its setup.sh
    cluster_yaml = lab / "cluster.yaml"
    cluster_yaml.write_text(
        cluster_yaml.read_text().replace("kubernetes_version: 1.36.2", "kubernetes_version: 1.38.0")
    )
    refused = run("build")
    assert refused.code == 1 and "more than one minor behind 1.38.0" in refused.err


def test_build_after_a_version_edit_gives_one_piece_of_advice_per_node(run: Run, lab: Path) -> None:
    cluster_yaml = lab / "cluster.yaml"
    cluster_yaml.write_text(
        cluster_yaml.read_text().replace("kubernetes_version: 1.36.2", "kubernetes_version: 1.37.0")
    )
    result = run("build")
    assert result.code == 0, result.err
    assert "needs its apply.sh" not in result.err  # push --upgrade runs it after upgrade.sh
    assert "isobuild push c1 --upgrade, then isobuild push c2 --upgrade" in result.err


def test_every_command_that_builds_a_node_holds_it_to_the_policy(run: Run, lab: Path) -> None:
    """node, certs renew and build NAME refuse a hand-edited version the nodes cannot reach, before any write."""
    cluster_yaml = lab / "cluster.yaml"
    cluster_yaml.write_text(
        cluster_yaml.read_text().replace("kubernetes_version: 1.36.2", "kubernetes_version: 1.38.0")
    )
    before = snapshot(lab)
    for args in (("node", "w1", "--label", "zone=a"), ("certs", "renew", "w1"), ("build", "w1")):
        result = run(*args)
        assert result.code == 1, args
        assert "Kubernetes 1.38.0 is out of reach of the running nodes" in result.err, args
    assert snapshot(lab) == before
