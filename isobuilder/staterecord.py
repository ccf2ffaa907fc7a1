"""``.isobuild.json``, each node folder's state record: what isobuild generated last (a different
file on disk is a hand edit), from which inputs (build's no-change fast path, ``out_of_step``),
what apply.sh holds per path on the node, and the Kubernetes version the node runs. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from isobuilder import __version__, checks, firewall, render, schema, serialize
from isobuilder.authority import Authority
from isobuilder.errors import IsobuildError
from isobuilder.model import EMPTY, Cluster, Node, Role

STATE = ".isobuild.json"  # what isobuild generated last; tells a hand edit from our own output


class NodeState(NamedTuple):
    """``.isobuild.json``: the user data isobuild generated (a different one on disk is a hand
    edit), the digest of the inputs it was made from, and its files' sizes (build's fast path)."""

    user_data_sha256: str | None = None
    inputs: str | None = None
    files: Mapping[str, int] = EMPTY
    cluster: str | None = None  # the cluster_digest it was made from (every node alike)
    applied: Mapping[str, str] = EMPTY  # apply.sh's, per path on the node
    generated: Mapping[str, str] = EMPTY  # sha256 of the other files it wrote
    kubernetes: str | None = None  # the version the node runs, as isobuild knows (upgrade.sh moves it)

    @classmethod
    def parse(cls, text: bytes | None) -> NodeState:
        """Unreadable counts as unknown (so the user data counts as edited, the node as stale)."""
        try:
            data = json.loads(text or b"{}")
            files = data.get("files") or {}
            sizes = {str(k): int(v) for k, v in files.items()}
            applied = {str(k): str(v) for k, v in (data.get("applied") or {}).items()}
            generated = {str(k): str(v) for k, v in (data.get("generated") or {}).items()}
            digest, inputs, whole = data.get("user_data_sha256"), data.get("inputs"), data.get("cluster")
            version = data.get("kubernetes")
        except (ValueError, AttributeError, TypeError):
            return cls()
        strings = [v if isinstance(v, str) else None for v in (digest, inputs, whole, version)]
        return cls(strings[0], strings[1], sizes, strings[2], applied, generated, version_or_none(strings[3]))

    def dump(self) -> bytes:
        maps = {"files": dict(sorted(self.files.items())), "applied": dict(self.applied)}
        return serialize.json_bytes(self._asdict() | maps | {"generated": dict(self.generated)})

    def holds(self, digest: str, sizes: Mapping[str, int | None]) -> bool:
        """Made from inputs with this digest, and its files still there (by size)."""
        return self.inputs == digest and bool(self.files) and all(sizes.get(r) == n for r, n in self.files.items())


def inputs_digest(cluster: Cluster, node: Node, authority: Authority) -> str:
    """Everything a node folder is made from, but the clock: what every node is made from alike
    (:func:`cluster_digest`), the node's entry, isobuild's version and templates."""
    return serialize.digest_of(
        {
            "isobuild": [__version__, render.templates_digest()],
            "cluster": cluster_digest(cluster, authority, node),
            "node": schema.node_mapping(node),
        }
    )


def cluster_digest(cluster: Cluster, authority: Authority, node: Node | None = None) -> str:
    """What every node is made from alike: the cluster settings, the CAs, and what nodes take
    from each other (:func:`shared_inputs`). Nodes made from different ones do not form one
    cluster (a second bootstrap controller, a kubeconfig naming an old endpoint): a command that
    builds some nodes rebuilds the others made from another (``ops.out_of_step``). An edge
    router's (``node``) covers the cluster's addresses too, which its firewall admits: a new
    node rebuilds the edge routers, not every node."""
    global _LAST_DIGEST, _LAST_EDGE_DIGEST
    if _LAST_DIGEST is not None and _LAST_DIGEST[0] is cluster and _LAST_DIGEST[1] is authority:
        digest = _LAST_DIGEST[2]  # every node of a build asks, of the same cluster: once, not once per node
    else:
        digest = serialize.digest_of(
            {"settings": schema.settings_mapping(cluster), "shared": shared_inputs(cluster), "pki": authority.digest}
        )
        _LAST_DIGEST = (cluster, authority, digest)
    if node is None or node.role is not Role.EDGE:
        return digest
    if _LAST_EDGE_DIGEST is None or _LAST_EDGE_DIGEST[0] != digest or _LAST_EDGE_DIGEST[1] is not cluster:
        v4, v6 = firewall.peers(cluster)
        _LAST_EDGE_DIGEST = (digest, cluster, serialize.digest_of([digest, [str(n) for n in (*v4, *v6)]]))
    return _LAST_EDGE_DIGEST[2]


_LAST_DIGEST: tuple[Cluster, Authority, str] | None = None  # the frozen values it was computed from, and it
_LAST_EDGE_DIGEST: tuple[str, Cluster, str] | None = None  # the same for edge routers


def shared_inputs(cluster: Cluster) -> list[Any]:
    """What nodes take from each other: the address they join (none while there is no
    controller), the endpoint's /etc/hosts line, the controller that runs kubeadm init, and
    whether the pod network runs encrypted (a node on the internet: flannel's backend)."""
    joined = cluster.endpoint_host_port() if cluster.endpoint or cluster.vip or cluster.controllers() else None
    init = cluster.init_controller()
    return [
        list(joined) if joined else None,
        cluster.hosts_entry_line(),
        init.name if init else None,
        cluster.pod_network_encrypted,
    ]


def version_or_none(value: str | None) -> str | None:
    """A Kubernetes version from a state record; anything else (an edited record) counts as unknown."""
    try:
        return value if value is not None and checks.parse_kubernetes_version(value) else None
    except IsobuildError:
        return None
