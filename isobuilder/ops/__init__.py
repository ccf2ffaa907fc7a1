"""The operations behind the commands, one module per command family.

Every command that writes runs in one frame: :func:`transaction` takes the inventory's lock
(waiting for any other isobuild on it, and rolling back a killed command first), yields one
:class:`~isobuilder.inventory.Transaction`, and commits it once, at the end; an error anywhere
leaves the inventory as it was. Readers (``list``, ``verify``, ``certs check``) take the lock
alone. The helpers here read what every operation reads: cluster.yaml, the CA store, a node's
folder. Nothing here prints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from isobuilder import clusterfile, skew
from isobuilder.authority import Authority
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.files import File
from isobuilder.inventory import Inventory, Transaction, read_file, read_tree, refuse_symlink
from isobuilder.model import Cluster, Node, Role
from isobuilder.nodefolder import CLOUD_DIR, running_version
from isobuilder.staterecord import STATE, NodeState, cluster_digest, inputs_digest


@contextlib.contextmanager
def transaction(ctx: Context, *, bulk: bool = False) -> Iterator[Transaction]:
    """The lock and one transaction, committed when the block ends without an error."""
    with ctx.inventory.locked(), ctx.inventory.transaction(bulk=bulk) as tx:
        yield tx
        tx.commit()


def cluster_text(inv: Inventory) -> bytes:
    text = inv.read(clusterfile.NAME)
    if text is None:
        raise IsobuildError(
            f"no cluster in {inv.root} (cluster.yaml not found)",
            hint="create one with `isobuild init` or `isobuild node NAME IP`, or pass --inventory DIR",
        )
    return text


def load_cluster(inv: Inventory, *, cross_checks: bool = True) -> Cluster:
    """cluster.yaml, with every problem in it reported at once (``cross_checks`` False: the
    caller checks the cluster it makes from it, e.g. with a node added)."""
    return read_cluster(inv, cross_checks=cross_checks).cluster


class ClusterFile(NamedTuple):
    """cluster.yaml as a command read it: its bytes (None: not written yet) and their meaning."""

    text: bytes | None
    cluster: Cluster


def read_cluster(inv: Inventory, *, cross_checks: bool = True) -> ClusterFile:
    """:func:`load_cluster`, with the bytes it was parsed from (for :func:`put_cluster`)."""
    text = cluster_text(inv)
    return ClusterFile(text, clusterfile.parse(text, cross_checks=cross_checks))


def put_cluster(tx: Transaction, cluster: Cluster, read: ClusterFile) -> None:
    """Stage cluster.yaml for ``cluster``: the file as it was read, edited (its comments and
    layout kept), not read again."""
    text = clusterfile.rewrite(read.text, cluster, before=read.cluster)
    tx.put_file(clusterfile.NAME, File(text, clusterfile.mode(cluster)))


def load_authority(ctx: Context) -> Authority:
    files = {name: f.content for name, f in read_tree(ctx.inventory.ssl).items()}
    return Authority.of(files, str(ctx.inventory.ssl), ctx.passphrase)


def read_node(inv: Inventory, node: Node) -> dict[str, File]:
    folder = inv.node_dir(node.folder)
    refuse_symlink(folder, "a node folder")
    for sub in ("ssl", "cloud-config", "config.iso"):
        refuse_symlink(folder / sub, f"{node.folder}/{sub}")
    return read_tree(folder)


def is_current(folder: Path, digest: str) -> bool:
    """Whether the folder was made from inputs with this digest and still holds its files (by
    size): the fast path of a no-change build, without reading or computing anything."""
    try:
        state = NodeState.parse(read_file(folder / STATE))
    except (OSError, IsobuildError):  # a FIFO or a folder there: not current (a build says why)
        return False
    sizes: dict[str, int | None] = {}
    for rel in state.files:
        try:
            sizes[rel] = (folder / rel).stat().st_size
        except OSError:
            return False
    return state.holds(digest, sizes)


def node_is_current(inv: Inventory, cluster: Cluster, node: Node, authority: Authority) -> bool:
    return is_current(inv.node_dir(node.folder), inputs_digest(cluster, node, authority))


def _state(inv: Inventory, node: Node) -> NodeState | None:
    """The node's state record; None when it has no folder (never built) or no readable record."""
    path = inv.node_dir(node.folder) / STATE
    if not path.is_file():
        return None
    try:
        return NodeState.parse(read_file(path))
    except (OSError, IsobuildError):
        return NodeState()


def out_of_step(inv: Inventory, cluster: Cluster, authority: Authority, building: set[str]) -> list[Node]:
    """Built nodes, other than ``building``, made from another cluster-wide view than the one of
    cluster.yaml now (a hand edit of it, then a command naming one node): rebuilt in the same
    transaction, so that no two controllers both run kubeadm init and no kubeconfig names an old
    endpoint. Every command keeps the built nodes in step, so one record tells whether any are
    not; a record from before isobuild kept one (None) is left to ``isobuild build``."""
    others = [n for n in cluster.nodes if n.name not in building]

    def stale(node: Node) -> bool:
        state = _state(inv, node)
        return state is not None and state.cluster not in (cluster_digest(cluster, authority, node), None)

    rest = [n for n in others if n.role is not Role.EDGE]  # an edge router's covers every address: each asked
    first = next((s for n in rest if (s := _state(inv, n)) is not None), None)
    in_step = first is None or first.cluster in (cluster_digest(cluster, authority), None)
    return [n for n in others if (n.role is Role.EDGE or not in_step) and stale(n)]


def running_versions(inv: Inventory, cluster: Cluster) -> dict[str, str]:
    """The version each built node runs (``nodefolder.running_version``); a node never built is
    left out. Reads each folder's state record, and its user data only for a record from before
    records kept the version."""
    versions = {}
    for node in cluster.nodes:
        folder = inv.node_dir(node.folder)
        text = read_file(folder / STATE) if (folder / STATE).is_file() else None
        if text is None:
            continue
        state = NodeState.parse(text)
        user_data = None if state.kubernetes else read_file(folder / CLOUD_DIR / cluster.media_of(node).user_data_path)
        versions[node.name] = running_version(state, user_data, cluster.kubernetes_version)
    return versions


def check_versions(inv: Inventory, cluster: Cluster, authority: Authority) -> None:
    """Every built node can reach cluster.yaml's Kubernetes version (``skew.check_versions``),
    before anything is built: a hand edit of kubernetes_version is held to ``upgrade``'s policy.
    One record tells when all were built from this cluster.yaml at its version (every command
    keeps them in step): the scan of every record is left to when one was not."""
    first = next(((n, s) for n in cluster.nodes if (s := _state(inv, n)) is not None), None)
    if first is not None:
        node, state = first
        if state.cluster == cluster_digest(cluster, authority, node) and state.kubernetes == cluster.kubernetes_version:
            return
    skew.check_versions(cluster, cluster.kubernetes_version, running_versions(inv, cluster))
