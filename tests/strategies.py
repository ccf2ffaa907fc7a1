"""Hypothesis strategies for the property tests: names and whole clusters as cluster.yaml
may hold them."""

from __future__ import annotations

import dataclasses
import uuid

from hypothesis import strategies as st

from isobuilder import checks, schema
from isobuilder.errors import IsobuildError
from isobuilder.model import Cluster, KeyType, Node, Role, is_ip
from tests.helpers import SSH_KEY

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
