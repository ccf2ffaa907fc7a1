"""``remove``: nodes out of cluster.yaml, their folders kept under ``removed/``, and what to run.

Nothing is deleted: a node's folder moves to ``removed/NAME-<UTC time>/`` in the same
transaction that rewrites cluster.yaml. The last controller is refused; workers that named a
removed controller as ``master`` move to the bootstrap controller; the nodes made from the old
cluster-wide view (e.g. the bootstrap controller removed) are rebuilt. What the running cluster
needs is told, not done: isobuild never talks to a cluster.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import stat
from pathlib import Path
from typing import Any

from isobuilder import checks, pki
from isobuilder.authority import CA_FILES
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.files import File
from isobuilder.inventory import refuse_symlink
from isobuilder.model import Cluster, Node
from isobuilder.ops import load_authority, put_cluster, read_cluster, read_node, transaction
from isobuilder.ops.node import Affected, rebuild_others
from isobuilder.staterecord import STATE

REMOVED_DIR = "removed"


@dataclasses.dataclass(frozen=True)
class Removed:
    """A node taken out of cluster.yaml, where its folder went, and when its certificates end."""

    node: Node
    kept_in: str | None  # removed/NAME-TIME, None when the node had no folder
    cert_expiry: dt.datetime | None  # when its certificates stop working (they cannot be revoked)

    def steps(self) -> list[str]:
        """What to run on the cluster, in order, before the machine goes."""
        name = self.node.name
        drain = f"kubectl drain {name} --ignore-daemonsets --delete-emptydir-data"
        if not self.node.role.is_controller:
            return [drain, f"kubectl delete node {name}"]
        return [
            drain,
            # kubeadm reset's remove-etcd-member phase takes the local member out of etcd
            # (cmd/kubeadm/app/cmd/phases/reset/removeetcdmember.go, runRemoveETCDMemberPhase).
            f"on {name}: sudo kubeadm reset -f   (takes {name}'s member out of etcd, stops its control plane)",
            f"kubectl delete node {name}",
            f"if {name} is gone already: on another controller, etcdctl member list, then member remove ID",
        ]


@dataclasses.dataclass(frozen=True)
class RemoveResult:
    """What ``isobuild remove`` did, and what it changed for the nodes that stay."""

    removed: list[Removed]
    repointed: list[str]  # workers and edge routers whose master was a removed controller
    others: list[Affected]
    warnings: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "removed": [
                {
                    "name": r.node.name,
                    "role": r.node.role.value,
                    "kept_in": r.kept_in,
                    "cert_expiry": r.cert_expiry.isoformat() if r.cert_expiry else None,
                    "steps": r.steps(),
                }
                for r in self.removed
            ],
            "repointed": self.repointed,
            "rebuilt_others": [a._asdict() for a in self.others],
            "warnings": self.warnings,
        }


def remove(ctx: Context, names: list[str]) -> RemoveResult:
    if not names:
        raise IsobuildError("name the nodes to remove", hint="e.g. isobuild remove worker3")
    inv = ctx.inventory
    with transaction(ctx) as tx:
        read = read_cluster(inv)
        cluster = read.cluster
        twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if twice is not None:
            raise IsobuildError(f"node {twice!r} is named twice", hint="name each node to remove once")
        gone = [_known(cluster, name) for name in names]
        refuse_symlink(inv.root / REMOVED_DIR, "removed/ (where removed nodes' folders are kept)")
        after, repointed = _without(cluster, {n.name for n in gone})
        checks.check_cluster(after, what="cluster.yaml without " + ", ".join(n.name for n in gone))
        authority = load_authority(ctx)
        stamp = ctx.now.strftime("%Y%m%dT%H%M%SZ")
        removed = []
        for node in gone:
            where = inv.node_dir(node.folder)
            tree = read_node(inv, node) if where.is_dir() else {}
            _refuse_what_a_copy_loses(where, node)
            kept_in = f"{REMOVED_DIR}/{node.name}-{stamp}" if tree else None
            if kept_in is not None:
                if (inv.root / kept_in).exists():
                    raise IsobuildError(f"{kept_in} exists already", hint="run isobuild remove again in a second")
                tx.put_tree(kept_in, tree)
                tx.delete(node.folder)
            removed.append(Removed(node, kept_in, _expiry(tree)))
        built = [n for n in after.nodes if n.name in repointed and (inv.node_dir(n.folder) / STATE).is_file()]
        others, skipped = rebuild_others(ctx, after, authority, set(), also=built)
        for affected, folder in others:
            tx.put_tree(affected.folder, folder.tree)
        put_cluster(tx, after, read)
    return RemoveResult(removed, repointed, [a for a, _ in others], [*_warnings(after), *skipped])


def _refuse_what_a_copy_loses(folder: Path, node: Node) -> None:
    """The folder is kept by copying its files: a link, a FIFO, a device or an empty folder in
    it would be lost, so it is refused instead (nothing is deleted that is not kept)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        try:
            mode = path.lstat().st_mode
            lost = not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) or (stat.S_ISDIR(mode) and not any(path.iterdir()))
        except OSError as exc:
            raise IsobuildError(f"cannot read {path}: {exc.strerror or exc}", hint="check its permissions") from None
        if lost:
            rel = path.relative_to(folder.parent)
            raise IsobuildError(
                f"{rel} is not a file isobuild can keep (a link, a FIFO or an empty folder)",
                hint=f"move it out of {node.folder}/, then run isobuild remove {node.name} again",
            )


def _known(cluster: Cluster, name: str) -> Node:
    node = cluster.node(name)
    if node is None:
        raise IsobuildError(
            f"node {name!r} is not in cluster.yaml",
            hint="its nodes: " + (", ".join(n.name for n in cluster.nodes) or "none"),
        )
    return node


def _without(cluster: Cluster, names: set[str]) -> tuple[Cluster, list[str]]:
    """The cluster without ``names``; workers that joined a removed controller join the
    bootstrap controller of what is left."""
    kept = [n for n in cluster.nodes if n.name not in names]
    left = [n for n in kept if n.role.is_controller]
    if not left and any(n.role.is_controller for n in cluster.nodes):
        raise IsobuildError(
            "that would remove the last controller: the others would have no control plane to join",
            hint="add another controller first (isobuild node NAME IP --role controller), then remove this one",
        )
    gone = {ref for n in cluster.nodes if n.name in names and n.role.is_controller for ref in (n.name, n.ip)}
    new = dataclasses.replace(cluster, nodes=tuple(kept))
    init = new.init_controller()
    if cluster.bootstrap_controller in names:
        new = dataclasses.replace(new, bootstrap_controller=None)
        init = new.init_controller()
    repointed = []
    nodes = []
    for node in new.nodes:
        if node.master in gone and init is not None:
            node = dataclasses.replace(node, master=init.name)
            repointed.append(node.name)
        nodes.append(node)
    return dataclasses.replace(new, nodes=tuple(nodes)), repointed


def _expiry(tree: dict[str, File]) -> dt.datetime | None:
    """The latest expiry of the node's own certificates (ssl/*.crt, not the CAs)."""
    ends = []
    for rel, file in tree.items():
        if rel.startswith("ssl/") and rel.endswith(".crt") and rel.removeprefix("ssl/") not in CA_FILES:
            try:
                ends.append(pki.load_cert(file.content, rel).not_valid_after_utc)
            except IsobuildError:
                continue  # not ours to judge here: `isobuild verify` says what is wrong with it
    return max(ends, default=None)


def _warnings(after: Cluster) -> list[str]:
    return checks.cluster_warnings(after)  # an even number of controllers left
