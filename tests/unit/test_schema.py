"""The settings schema and cluster.yaml: one table, both directions, located errors. Pure, no tools."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings

from isobuilder import checks, clusterfile, schema
from isobuilder.errors import IsobuildError
from isobuilder.model import Cluster, KeyType, Node, Role
from tests.strategies import clusters

CLUSTER_ID = "6f1c3f8e-8a4e-4c35-9d5e-0d4b3f0f4a11"


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
