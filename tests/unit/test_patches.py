"""cluster.yaml's cloud-config and Ignition patches: merged as their consumers merge, refused when
they would replace what isobuild writes. Pure, no tools (tests/integration/test_patches.py runs
cloud-init's own mergers and Ignition on the same)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from isobuilder import clusterfile, patches, render, schema, serialize
from isobuilder.errors import IsobuildError
from isobuilder.ignition import read_contents
from isobuilder.model import Cluster, Format, Node, Role

APPEND = "dict(recurse_array,no_replace)+list(append)"
OURS = {"hostname": "w1", "runcmd": [["systemctl", "daemon-reload"]], "write_files": [{"path": "/etc/a"}]}


def _merge(*patch: dict[str, Any]) -> dict[str, Any]:
    return patches.merge_cloud_config(OURS, [(f"patch {i}", p) for i, p in enumerate(patch)])


def test_a_patch_adds_to_isobuilds_lists_with_merge_how() -> None:
    merged = _merge({"merge_how": APPEND, "runcmd": [["echo", "hi"]], "packages": ["htop"]})
    assert merged == {**OURS, "runcmd": [["systemctl", "daemon-reload"], ["echo", "hi"]], "packages": ["htop"]}


@pytest.mark.parametrize(
    "how",
    [
        [{"name": "list", "settings": ["append"]}, {"name": "dict", "settings": ["no_replace", "recurse_list"]}],
        [["list", "append"], ["m_dict", "no_replace", "recurse_array"]],
        "List(Append) + Dict(No-Replace, Recurse_Array)",
    ],
)
def test_merge_how_in_every_form_cloud_init_reads(how: object) -> None:
    merged = _merge({"merge_how": how, "runcmd": [["echo", "last"]]})
    assert merged["runcmd"] == [["systemctl", "daemon-reload"], ["echo", "last"]]


def test_settings_given_as_a_string_are_read_as_cloud_init_reads_them() -> None:
    """cloud-init tests ``"replace" in opts``: within a string, no_replace holds replace."""
    how = [{"name": "list", "settings": "append"}, {"name": "dict", "settings": "no_replace,recurse_list"}]
    with pytest.raises(IsobuildError, match="would change runcmd"):
        _merge({"merge_how": how, "runcmd": [["echo", "last"]]})


@pytest.mark.parametrize("how", ["", [], "+"])
def test_no_mergers_is_cloud_inits_default(how: object) -> None:
    assert _merge({"merge_how": how, "packages": ["htop"]}) == {**OURS, "packages": ["htop"]}
    with pytest.raises(IsobuildError, match="would change hostname"):
        _merge({"merge_how": how, "hostname": "evil"})


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({"runcmd": [["echo", "hi"]]}, "patch 0 would change runcmd, which isobuild writes"),  # dict(replace): cloud-init's default
        ({"hostname": "evil"}, "patch 0 would change hostname, which isobuild writes"),
        ({"merge_how": APPEND, "write_files": [{"path": "/etc/a", "content": "x"}]}, "patch 0 writes /etc/a, where isobuild writes /etc/a"),
        ({"merge_how": APPEND, "write_files": [{"path": "/etc//a"}]}, "patch 0 writes /etc//a, where isobuild writes /etc/a"),
        ({"merge_how": APPEND, "write_files": [{"path": "etc/./a/"}]}, "patch 0 writes etc/./a/, where isobuild writes /etc/a"),
        ({"merge_how": APPEND, "write_files": [{"path": "/etc", "content": "x"}]}, "patch 0 writes /etc, where isobuild writes /etc/a"),
        ({"merge_how": APPEND, "write_files": [{"path": "/etc/a/b"}]}, "patch 0 writes /etc/a/b, where isobuild writes /etc/a"),
        ({"merge_how": APPEND, "write_files": [{"path": ["a"]}]}, "patch 0: write_files entry {'path': ['a']} has no path"),
        ({"merge_how": APPEND, "write_files": ["/etc/hosts"]}, "patch 0: write_files entry '/etc/hosts' has no path"),
        ({"merge_how": APPEND, "write_files": [{"path": "/x", "content": 5}]}, "patch 0: write_files /x: content must be a string"),
        ({"merge_how": "dict(recurse_array,no_replace)+list(prepend)", "runcmd": [["systemctl", "mask", "x"]]}, "patch 0 would change runcmd, which isobuild writes"),
        ({"fqdn": "evil.example.test"}, "patch 0 sets fqdn, which would change the node's name"),
        ({"preserve_hostname": True}, "patch 0 sets preserve_hostname, which would change the node's name"),
        ({"disable_root_opts": ""}, "patch 0 sets disable_root_opts, which would change the SSH login"),
        ({"users": [{"name": "alice"}]}, "patch 0 sets users without the default user, who gets the SSH keys"),
        ({"users": ["default", {"name": "alice"}]}, None),
        ({"merge_how": "dict(replace)+list(no_replace)", "runcmd": [["rm", "-rf"]]}, "patch 0 would change runcmd, which isobuild writes"),
        ({"merge_how": "list(append)+dict(no_replace,recurse_list)", "hostname": ["a"]}, None),  # no_replace: ignored, like cloud-init
        ({"merge_how": "dict(allow_delete,no_replace)", "runcmd": None}, "patch 0 would change runcmd, which isobuild writes"),
        ({"merge_how": "dicts()"}, "patch 0: merge_how: cloud-init has no merger 'dicts'"),
        ({"merge_how": "dict"}, "patch 0: merge_how: 'dict' is not NAME(SETTINGS)"),
        ({"merge_how": APPEND, "runcmd": 5}, None),  # no_replace, and 5 is no list: ignored, like cloud-init
        ({"merge_how": "dict(no_replace,recurse_array)+list(recurse_array)+str(append)", "runcmd": [[["x"]]]},
         "patch 0 does not merge: a value of the wrong type"),  # 'systemctl' + ['x']: cloud-init fails too
    ],
)  # fmt: skip
def test_what_isobuild_writes_stays(patch: dict[str, Any], error: str | None) -> None:
    if error is None:
        _merge(patch)
        return
    with pytest.raises(IsobuildError) as caught:
        _merge(patch)
    assert caught.value.message == error


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"when": dt.date(2026, 1, 1)}, "'2026-01-01' is a date, not text"),
        ({1: "x"}, "key 1 is not a string"),
        ({"merge_how": 3}, "merge_how must be a string or a list"),
        ({"mode": float("nan")}, "nan is no JSON number"),
        ({"write_files": [{"path": "/x", "content": "x" * (1 << 20)}]}, "is 1024 KiB as JSON, over 1024 KiB"),
    ],
)
def test_a_patch_is_plain_data(value: dict[Any, Any], error: str) -> None:
    with pytest.raises(IsobuildError) as caught:
        patches.check_cloud_config_patch(value)
    assert caught.value.message == error


def test_merge_how_is_cloud_inits_word_not_ignitions() -> None:
    assert patches.check_patch({"merge_how": 3}) == {"merge_how": 3}  # an Ignition patch: Ignition's to judge


def test_an_alias_bomb_is_refused_before_it_is_expanded() -> None:
    levels = "".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10))
    patch = "cloud_config_patch:\n  l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + levels
    text = clusterfile.dump(_cluster()).replace(b"cloud_config_patch: {}\n", patch.encode())
    with pytest.raises(IsobuildError) as caught:
        clusterfile.parse(text)
    assert caught.value.message == (
        "cluster.yaml: cloud_config_patch: holds over 100000 values (YAML aliases count each time)"
    )


def test_a_patch_that_refers_to_itself_is_refused_located() -> None:
    text = clusterfile.dump(_cluster()).replace(b"cloud_config_patch: {}", b"cloud_config_patch: &p {a: [*p]}")
    with pytest.raises(IsobuildError) as caught:
        clusterfile.parse(text)
    assert caught.value.message == "cluster.yaml: cloud_config_patch: nests too deep (or refers to itself)"


def _cluster(**settings: Any) -> Cluster:
    nodes = (
        Node("c1", "10.1.0.1", Role.CONTROLLER, format=Format.IGNITION),
        Node("w1", "10.1.0.2", Role.WORKER, master="c1"),
    )
    return schema.cluster_of({"name": "lab", "cluster_id": "6f1c3f8e-8a4e-4c35-9d5e-0d4b3f0f4a11", **settings}, nodes)


def test_the_nodes_patch_is_merged_after_the_clusters() -> None:
    cluster = _cluster(cloud_config_patch={"merge_how": APPEND, "packages": ["htop"]})
    node = Node(
        "w1", "10.1.0.2", Role.WORKER, master="c1", cloud_config_patch={"merge_how": APPEND, "packages": ["vim"]}
    )
    text = render.user_data(cluster.with_node(node), node, {})
    assert text.startswith(b"#cloud-config\n")
    assert serialize.load_yaml(text)["packages"] == ["htop", "vim"]


def test_an_ignition_patch_rides_as_a_merged_config() -> None:
    patch = {"storage": {"files": [{"path": "/etc/motd", "contents": {"source": "data:,hi"}}]}}
    cluster = _cluster(ignition_patch=patch)
    config = json.loads(render.ignition_config(cluster, cluster.nodes[0], {}))
    (merged,) = config["ignition"]["config"]["merge"]
    assert json.loads(read_contents(merged) or b"") == {"ignition": {"version": "3.3.0"}, **patch}


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({"storage": {"files": [{"path": "/etc/hostname"}]}}, "storage.files /etc/hostname, where isobuild writes /etc/hostname"),
        ({"storage": {"directories": [{"path": "/etc"}]}}, "storage.directories /etc, where isobuild writes /etc/hostname"),
        ({"storage": {"files": [{"path": "/etc//hostname"}]}}, "storage.files path '/etc//hostname' is not absolute and simplified"),
        ({"storage": {"links": [{"path": "etc/x"}]}}, "storage.links path 'etc/x' is not absolute and simplified"),
        ({"storage": {"files": [{"path": ["a"]}]}}, "storage.files path ['a'] is not absolute and simplified"),
        ({"storage": {"files": None}}, "storage.files must be a list of mappings"),
        ({"storage": [1]}, "storage must be a mapping"),
        ({"ignition": None}, "ignition must be a mapping"),
        ({"ignition": []}, "ignition must be a mapping"),
        ({"systemd": {"units": [{"name": "kubelet", "mask": True}]}}, "systemd unit name 'kubelet'"),
        ({"systemd": {"units": [{"name": ["a"]}]}}, "systemd unit name ['a']"),
        ({"systemd": {"units": [{"name": "kubelet.service", "dropins": None}]}}, "systemd unit kubelet.service: dropins must be a list of mappings"),
        ({"systemd": {"units": [{"name": "kubelet.service", "dropins": ["x"]}]}}, "systemd unit kubelet.service: dropins must be a list of mappings"),
        ({"systemd": {"units": [{"name": "x.service", "dropins": [{}]}]}}, "systemd unit x.service: a drop-in without a name"),
        ({"systemd": {"units": [{"name": "kubelet.service", "enabled": False}]}}, "systemd unit kubelet.service, which isobuild writes"),
        ({"systemd": {"units": [{"name": "kubelet.service", "dropins": [{"name": "10-kubeadm.conf"}]}]}}, "systemd unit kubelet.service, which isobuild writes"),
        ({"ignition": {"version": "3.4.0"}}, "ignition.version '3.4.0'"),
        ({"ignition": {"config": {"merge": [{"source": "http://x"}]}}}, "ignition.config in a patch"),
        ({"systemd": {"units": [{"name": "containerd.service", "dropins": [{"name": "50-mine.conf", "contents": "[Service]\n"}]}]}}, None),
    ],
)  # fmt: skip
def test_an_ignition_patch_may_not_replace_what_isobuild_writes(patch: dict[str, Any], error: str | None) -> None:
    cluster = _cluster(ignition_patch=patch)
    if error is None:
        render.ignition_config(cluster, cluster.nodes[0], {})
        return
    with pytest.raises(IsobuildError) as caught:
        render.ignition_config(cluster, cluster.nodes[0], {})
    assert caught.value.message == f"cluster.yaml: ignition_patch: {error}"
