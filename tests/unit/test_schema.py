"""The settings schema and cluster.yaml: one table, both directions, located errors. Pure, no tools."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isobuilder import checks, clusterfile, schema
from isobuilder.errors import IsobuildError
from isobuilder.model import Cluster, KeyType, Node, Role, is_ip
from tests.helpers import SSH_KEY

CLUSTER_ID = "6f1c3f8e-8a4e-4c35-9d5e-0d4b3f0f4a11"
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
# RFC 1123 labels, built from characters (hypothesis' from_regex costs ~20 ms an example)
label = st.sampled_from(ALNUM) | st.tuples(
    st.sampled_from(ALNUM), st.text(ALNUM + "-", max_size=10), st.sampled_from(ALNUM)
).map("".join)
names = st.lists(label, min_size=1, max_size=3).map(".".join).filter(lambda n: len(n) <= 52)
node_names = names.filter(lambda n: not is_ip(n))  # a node name is no IP
san_names = names.filter(lambda n: any(c.isalpha() for c in n.rsplit(".", 1)[-1]))  # 1.2.3 is no DNS SAN


def _is_endpoint(name: str) -> bool:
    """Names a resolver looks up (not 1.2.3 or localhost): the ones checks.check_endpoint takes."""
    try:
        checks.check_endpoint(name)
    except IsobuildError:
        return False
    return True


def test_every_model_field_is_in_the_schema_and_back() -> None:
    assert [f.name for f in dataclasses.fields(Cluster) if f.name != "nodes"] == sorted(
        schema.SETTING, key=[f.name for f in dataclasses.fields(Cluster)].index
    )
    assert {f.name for f in dataclasses.fields(Node)} == set(schema.NODE_FIELD)


def test_defaults_come_from_the_table() -> None:
    cluster = schema.cluster_of({"name": "lab", "cluster_id": CLUSTER_ID})
    for field in schema.SETTINGS:
        if not field.required:
            assert getattr(cluster, field.key) == field.default, field.key
    assert cluster.key_type is KeyType.ECDSA_P256 and cluster.endpoint is None


def test_flag_help_names_the_default() -> None:
    assert schema.SETTING["cert_days"].flag_help() == "Lifetime of leaf certificates in days. [365]"
    assert schema.SETTING["key_type"].flag_help() == "Key algorithm. [ecdsa-p256]"
    assert schema.SETTING["endpoint"].flag_help().endswith("controller's IP).")  # no default shown


@st.composite
def clusters(draw: st.DrawFn) -> Cluster:
    count = draw(st.integers(0, 6))
    chosen = draw(st.lists(node_names, min_size=count, max_size=count, unique=True))
    nodes = []
    for i, name in enumerate(chosen):
        role = Role.CONTROLLER if i == 0 else draw(st.sampled_from([Role.WORKER, Role.EDGE]))
        nodes.append(
            Node(
                name=name,
                ip=f"10.1.{i}.{draw(st.integers(1, 254))}",
                role=role,
                master=None if role.is_controller else chosen[0],  # cluster.yaml names it
                labels=draw(st.dictionaries(label, label, max_size=2)),
                sans=tuple(draw(st.lists(san_names, max_size=2, unique=True))),
                ssh_keys=(SSH_KEY,) if draw(st.booleans()) else (),
            )
        )
    if nodes:
        nodes[0] = dataclasses.replace(nodes[0], ip="10.1.0.1")
    values = {
        "name": draw(names.filter(lambda n: "." not in n)),
        "cluster_id": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4)),
        "key_type": draw(st.sampled_from(list(KeyType))),
        "cert_days": draw(st.integers(1, 3650)),
        "ssh_keys": (SSH_KEY,) if draw(st.booleans()) else (),
        "endpoint": draw(st.none() | names.filter(_is_endpoint).map(lambda n: f"{n}:6443")),
        "hosts_entry": draw(st.none() | st.booleans()),
        "bootstrap_controller": draw(st.none() | st.sampled_from([n.name for n in nodes if n.role.is_controller]))
        if nodes
        else None,
    }
    return schema.cluster_of(values, tuple(nodes))


@settings(max_examples=400, deadline=None)  # a whole cluster per example: ~15 ms of hypothesis each
@given(clusters())
def test_dump_then_parse_is_the_same_cluster(cluster: Cluster) -> None:
    assert clusterfile.parse(clusterfile.dump(cluster)) == cluster


def _file(*changes: tuple[str, str]) -> bytes:
    """cluster.yaml of a small cluster, with ``(old, new)`` text replacements."""
    cluster = schema.cluster_of(
        {"name": "lab", "cluster_id": CLUSTER_ID},
        (Node("c1", "10.0.0.1", Role.CONTROLLER), Node("w1", "10.0.0.2", Role.WORKER, master="10.0.0.1")),
    )
    text = clusterfile.dump(cluster).decode()
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    return text.encode()


MASTER = "  master: 10.0.0.1\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_file((MASTER, MASTER + "  gateway: 10.0.0.254\n")),
         "cluster.yaml: nodes[1].gateway needs a static address with its prefix length"),
        (_file((MASTER, "  master: 10.0.0.9\n")), "cluster.yaml: nodes[1].master: 10.0.0.9 is not a controller"),
        (_file(("cert_days: 365", "cert_days: 0")), "cluster.yaml: cert_days: 0 is not a number of days"),
        (_file(("ip: 10.0.0.2", 'ip: "10.0.0.2\\n"')), "cluster.yaml: nodes[1].ip: invalid node IP '10.0.0.2\\n'"),
    ],
)  # fmt: skip
def test_errors_name_their_place_in_the_file(text: bytes, message: str) -> None:
    with pytest.raises(IsobuildError) as caught:
        clusterfile.parse(text)
    assert caught.value.message.startswith(message), caught.value.message


def test_every_problem_of_the_file_is_collected() -> None:
    text = _file(("cert_days: 365", "cert_days: x"), ("ip: 10.0.0.2", "ip: nope"), (MASTER, MASTER + "  mtu: 1\n"))
    _, problems = clusterfile.parse_collecting(text)
    assert [p.message for p in problems] == [
        "cluster.yaml: cert_days must be a whole number",
        "cluster.yaml: nodes[1].ip: invalid node IP 'nope'",
        "cluster.yaml: nodes[1].mtu: invalid MTU 1",
    ]


def test_a_flag_source_names_the_flag() -> None:
    cluster = schema.cluster_of({"name": "lab", "cluster_id": CLUSTER_ID}, (Node("c1", "10.0.0.1", Role.CONTROLLER),))
    node = Node("w1", "10.0.0.2", Role.WORKER, master="10.0.0.1", gateway="10.0.0.254")
    with_node = cluster.with_node(node)
    source = checks.Source(with_node, flagged="w1", flags={"gateway": "--gateway"})
    problems = list(checks.cluster_problems(with_node, source))
    assert [p.message for p in problems] == ["--gateway needs a static address with its prefix length"]
    assert problems[0].hint.startswith("give --prefix 24")
