"""Additive edits of a node: --label k=v / k-, --san NAME / NAME-, and `node NAME` without its IP."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.helpers import Run


def entry(inv: Path, name: str) -> dict[str, object]:
    nodes = yaml.safe_load((inv / "cluster.yaml").read_text())["nodes"]
    return next(n for n in nodes if n["name"] == name)


def apiserver_sans(inv: Path, node: str) -> str:
    return subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(inv / f"node-{node}/ssl/apiserver.crt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_labels_are_added_changed_and_removed_as_kubectl_does(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11").code == 0
    assert (
        run("node", "w1", "10.0.0.21", "--master", "10.0.0.11", "--label", "zone=rack1", "--label", "disk=hdd").code
        == 0
    )
    result = run("node", "w1", "--label", "zone-", "--label", "disk=ssd", "--label", "tier=web")
    assert result.code == 0, result.err
    assert entry(inv, "w1")["labels"] == {"disk": "ssd", "tier": "web"}
    assert "  removed: label zone=rack1\n" in result.err
    flags = (inv / "node-w1/cloud-config/openstack/latest/user_data").read_text()
    assert '--node-labels=disk=ssd,tier=web"' in flags  # what the kubelet registers with
    result = run("node", "w1", "--label", "disk-", "--label", "tier-", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["removed"] == ["label disk=ssd", "label tier=web"]
    assert "labels" not in entry(inv, "w1")  # the last one removed: no empty mapping left behind


def test_sans_are_added_and_removed_one_at_a_time(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11", "--san", "a.example", "--san", "b.example").code == 0
    result = run("node", "c1", "--san", "c.example", "--san", "a.example-")
    assert result.code == 0, result.err
    assert entry(inv, "c1")["sans"] == ["b.example", "c.example"]
    assert "  removed: SAN a.example\n" in result.err
    sans = apiserver_sans(inv, "c1")
    assert "DNS:b.example" in sans and "DNS:c.example" in sans and "DNS:a.example" not in sans
    # an IP SAN, given in another spelling, is the same SAN
    assert run("node", "c1", "--san", "fd00::0:1").code == 0
    assert run("node", "c1", "--san", "fd00::1-").code == 0
    assert entry(inv, "c1")["sans"] == ["b.example", "c.example"]


def test_node_without_ip_keeps_every_value_and_a_new_node_needs_one(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("node", "w1", "10.0.0.21/24", "--master", "10.0.0.11", "--mac", "52:54:00:00:00:01").code == 0
    before = entry(inv, "w1")
    result = run("node", "w1", "--label", "zone=a")
    assert result.code == 0, result.err
    assert entry(inv, "w1") == {**before, "labels": {"zone": "a"}}  # IP, prefix, MAC, master kept
    new = run("node", "w9")
    assert new.code == 1 and new.err.startswith("Error: node 'w9' is new: give its IP\n") and "Hint:" in new.err


def test_removing_what_is_not_there_is_refused_and_writes_nothing(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11", "--san", "a.example").code == 0
    text = (inv / "cluster.yaml").read_bytes()
    for args, message in (
        (["--label", "zone-"], "Error: --label 'zone-': node 'c1' has no label 'zone'"),
        (["--san", "b.example-"], "Error: --san 'b.example-': node 'c1' has no extra SAN 'b.example'"),
        (["--label", "zone"], "Error: --label: 'zone' is not key=value or key-"),
    ):
        result = run("node", "c1", *args)
        assert result.code == 1 and result.err.startswith(message), result.err
        assert (inv / "cluster.yaml").read_bytes() == text


def test_the_readme_example(run: Run, inv: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = "isobuild node worker1 --label zone- --label disk=ssd --san w1.example.test"
    assert f"`{example}`" in readme
    assert run("node", "controller", "10.10.10.1").code == 0
    assert run("node", "worker1", "10.10.10.2", "--master", "10.10.10.1", "--label", "zone=rack1").code == 0
    result = run(*example.split()[1:])
    assert result.code == 0, result.err
    assert entry(inv, "worker1")["labels"] == {"disk": "ssd"} and entry(inv, "worker1")["sans"] == ["w1.example.test"]


def test_odd_values_found_by_a_hostile_pass_are_refused_or_told_exactly(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "c1", "--label", "zone=a").code == 0
    for args, message in (
        (["w1", "--label", "/k=v"], "Error: --label: invalid label '/k=v'"),  # an empty prefix: the kubelet refuses it
        (["c1", "--san", "10.0.0.256"], "Error: --san: invalid SAN '10.0.0.256'"),  # a mistyped IP, not a name
        (["c1", "--san", "1.2.3"], "Error: --san: invalid SAN '1.2.3'"),
        (
            ["10.0.0.5", "10.0.0.99", "--master", "c1"],
            "Error: invalid node name '10.0.0.5'",
        ),  # master: would be ambiguous
    ):
        result = run("node", *args)
        assert result.code == 1 and result.err.startswith(message), (args, result.err)
    result = run("node", "w1", "--label", "zone-", "--label", "zone=a", "--json")  # removed, then put back
    assert result.code == 0 and json.loads(result.out)["removed"] == []
    result = run("node", "c1", "--san", "x.example", "--san", "x.example-", "--json")  # added, then taken out
    assert result.code == 0 and json.loads(result.out)["removed"] == []


def test_the_readme_many_nodes_example_builds_as_written(run: Run, inv: Path) -> None:
    """The cluster.yaml block of "Many nodes", then its commands; ip: ADDRESS/PREFIX is taken as
    the command line takes it, and written back as ip and prefix."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Many nodes", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    commands = section.split("```sh\n", 1)[1].split("```", 1)[0]
    assert run("init").code == 0
    cluster = inv / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("nodes: []\n", block))
    for line in commands.splitlines():
        words = line.split("#", 1)[0].split()
        result = run(*words[1:])
        assert result.code == 0, (line, result.err)
    assert "10.10.10.5/24" in (inv / "node-flatcar1/cloud-config/network-config").read_text()
    assert run("node", "flatcar1", "--label", "zone=rack2").code == 0  # a command that writes cluster.yaml back
    flatcar = entry(inv, "flatcar1")
    assert flatcar["ip"] == "10.10.10.5" and flatcar["prefix"] == 24
    text = cluster.read_text()
    cluster.write_text(text.replace("  ip: 10.10.10.5\n", "  ip: 10.10.10.5/25\n"))
    result = run("build")
    assert result.code == 1
    assert result.err.splitlines()[0] == "Error: cluster.yaml: nodes[2].ip: '10.10.10.5/25' and prefix: 24 disagree"
