"""The node pipeline as a pure function: cluster, node, CA store, existing files and clock in,
the folder's files out. No disk, no tools."""

from __future__ import annotations

import datetime as dt
import functools
import json

import pytest

from isobuilder import authority, schema
from isobuilder.authority import Authority
from isobuilder.errors import IsobuildError
from isobuilder.files import File, contents
from isobuilder.handedits import hand_edit_rule
from isobuilder.model import Cluster, KeyType, Node, Role
from isobuilder.nodefolder import CLOUD_DIR, ISO, NodeFolder, build_node
from isobuilder.staterecord import STATE, NodeState

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
USER_DATA = f"{CLOUD_DIR}/openstack/latest/user_data"


@functools.cache
def _authority() -> Authority:
    return Authority.of(contents(authority.create(KeyType.ECDSA_P256, 3650, NOW)))


def _cluster() -> Cluster:
    nodes = (Node("c1", "10.0.0.1", Role.CONTROLLER), Node("w1", "10.0.0.2", Role.WORKER, master="10.0.0.1"))
    return schema.cluster_of({"name": "lab", "cluster_id": "6f1c3f8e-8a4e-4c35-9d5e-0d4b3f0f4a11"}, nodes)


def _build(name: str, existing: dict[str, File] | None = None, **kw: object) -> NodeFolder:
    cluster = _cluster()
    node = cluster.node(name)
    assert node is not None
    return build_node(cluster, node, _authority(), existing or {}, now=NOW, iso_epoch=1700000000, **kw)  # type: ignore[arg-type]


def test_a_rebuild_from_its_own_output_changes_nothing() -> None:
    first = _build("w1")
    again = _build("w1", first.tree)
    assert again.changed == [] and again.tree == first.tree and not again.certs_changed
    assert first.to_apply == () and again.to_apply == ()  # a new node boots its drive; nothing to apply


def test_what_a_running_node_must_apply_is_what_changed_on_it() -> None:
    from isobuilder.pki import Renewal

    first = _build("w1")
    renewed = _build("w1", first.tree, renewal=Renewal())
    assert renewed.to_apply == ("/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/pki/kubelet.crt")
    assert NodeState.parse(renewed.tree[STATE].content).applied["/etc/hosts"]  # the hosts entry is tracked too


def test_the_folder_has_every_part_with_secret_modes() -> None:
    tree = _build("c1").tree
    assert {"install.sh", "apply.sh", ISO, STATE, USER_DATA, "ssl/ca.key", "ssl/apiserver.crt"} <= set(tree)
    secret = [rel for rel in tree if rel.endswith(".key") or rel in (USER_DATA, ISO)]
    assert all(tree[rel].mode == 0o600 for rel in secret), [(r, oct(tree[r].mode)) for r in secret]
    assert tree["apply.sh"].mode == 0o700


def test_a_worker_gets_no_ca_key_and_no_control_plane_identity() -> None:
    tree = _build("w1").tree
    assert "ssl/ca.crt" in tree
    assert not any(rel.startswith("ssl/") and rel.endswith(".key") and rel != "ssl/kubelet.key" for rel in tree)
    assert b"PRIVATE KEY" not in b"".join(f.content for r, f in tree.items() if r.startswith("ssl/ca"))


def test_a_hand_edit_is_kept_while_our_output_is_unchanged() -> None:
    first = _build("w1")
    edited = dict(first.tree)
    edited[USER_DATA] = File(first.tree[USER_DATA].content + b"# mine\n", 0o600)
    kept = _build("w1", edited)
    assert kept.kept_edits == (USER_DATA,) and kept.tree[USER_DATA] == edited[USER_DATA]
    assert kept.tree[ISO] != first.tree[ISO]  # the ISO now carries the edit


def test_a_change_that_would_overwrite_a_hand_edit_is_refused_unless_forced() -> None:
    state = NodeState(user_data_sha256="0" * 64)
    with pytest.raises(IsobuildError, match="edited by hand"):
        hand_edit_rule(state.user_data_sha256, b"mine", b"ours", force=False, where="x")
    assert hand_edit_rule(state.user_data_sha256, b"mine", b"ours", force=True, where="x") == b"ours"


@pytest.mark.parametrize("text", [None, b"", b"not json", b"[]", b'{"files": 3}', b'{"files": {"a": "x"}}'])
def test_an_unreadable_state_record_counts_as_unknown(text: bytes | None) -> None:
    assert NodeState.parse(text) == NodeState()


def test_the_state_record_round_trips_and_tells_whether_it_holds() -> None:
    state = NodeState("a" * 64, "d" * 64, {"x": 3}, "c" * 64, {"/etc/hosts": "b" * 64})
    assert NodeState.parse(state.dump()) == state
    assert state.holds("d" * 64, {"x": 3}) and not state.holds("d" * 64, {"x": 4}) and not state.holds("e", {"x": 3})


def test_a_renewal_reissues_with_the_same_keys() -> None:
    from isobuilder.pki import Renewal

    first = _build("w1")
    renewed = _build("w1", first.tree, renewal=Renewal())
    assert renewed.tree["ssl/kubelet.key"] == first.tree["ssl/kubelet.key"]
    assert renewed.tree["ssl/kubelet.crt"] != first.tree["ssl/kubelet.crt"] and renewed.certs_changed


@pytest.mark.parametrize(
    ("value", "read"), [("1.36.2", "1.36.2"), ("abc", None), (5, None), ("1.2.3", None), ("", None)]
)
def test_a_state_record_s_kubernetes_version_is_a_version_or_unknown(value: object, read: str | None) -> None:
    assert NodeState.parse(json.dumps({"kubernetes": value}).encode()).kubernetes == read
