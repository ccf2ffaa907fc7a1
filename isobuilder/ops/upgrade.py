"""``isobuild upgrade``: cluster.yaml moves to a new Kubernetes version, checked against the skew
policy (``skew``), and every node folder is rebuilt for it; each node that runs an older one gets
an ``upgrade.sh``. What a node runs is its state record's ``kubernetes``: set when the folder is
first built, moved on when its upgrade is done (``push --upgrade``, or ``upgrade --done``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from isobuilder import checks, schema, skew
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.nodefolder import build_node
from isobuilder.ops import (
    load_authority,
    put_cluster,
    read_cluster,
    read_node,
    running_versions,
    transaction,
)
from isobuilder.ops.build import Outcome, Status, default_jobs, stage_nodes


@dataclasses.dataclass(frozen=True)
class UpgradeResult:
    """What ``isobuild upgrade`` planned and built: the versions and the nodes in upgrade order."""

    before: str
    target: str
    steps: list[skew.Step]  # the nodes that run an older version, in the order to upgrade them
    outcomes: list[Outcome]

    def as_json(self) -> dict[str, object]:
        return {
            "from": self.before,
            "to": self.target,
            "order": [{"name": s.node.name, "role": s.node.role.value, "runs": s.how} for s in self.steps],
            "rebuilt": [o.name for o in self.outcomes if o.status is Status.BUILT],
        }


def upgrade(ctx: Context, to: str) -> UpgradeResult:
    """cluster.yaml to ``to`` and every folder rebuilt for it; one transaction."""
    target = schema.SETTING["kubernetes_version"].parse(to, "--to")
    with transaction(ctx, bulk=True) as tx:
        inv = ctx.inventory
        read = read_cluster(inv)
        cluster = read.cluster
        running = running_versions(inv, cluster)
        skew.check_upgrade(cluster, target, running)
        updated = checks.check_cluster(dataclasses.replace(cluster, kubernetes_version=target))
        authority_ = load_authority(ctx)
        outcomes = stage_nodes(ctx, tx, updated, authority_, list(updated.nodes), running=running, jobs=default_jobs())
        failed = [o for o in outcomes if o.status is Status.FAILED]
        if failed:
            raise IsobuildError(f"cannot rebuild {failed[0].name}: {failed[0].error}", hint="nothing was changed")
        if updated != cluster:
            put_cluster(tx, updated, read)
    behind = [n for n in updated.nodes if running.get(n.name, target) != target]
    return UpgradeResult(cluster.kubernetes_version, target, skew.order(updated, behind), outcomes)


def mark_done(ctx: Context, names: Sequence[str]) -> list[str]:
    """Record that these nodes run cluster.yaml's version now (their upgrade.sh ran): their
    folders are rebuilt without it. Returns the names whose record moved."""
    with transaction(ctx) as tx:
        inv = ctx.inventory
        read = read_cluster(inv)
        cluster = read.cluster
        running = running_versions(inv, cluster)
        authority_ = load_authority(ctx)
        moved = []
        for name in dict.fromkeys(names):
            node = cluster.node(name)
            if node is None:
                raise IsobuildError(f"no node {name!r} in cluster.yaml", hint="give the names isobuild list shows")
            if name not in running:
                raise IsobuildError(f"{node.folder}/ is not built", hint=f"run isobuild build {name}")
            if running[name] == cluster.kubernetes_version:
                continue
            skew.refuse_out_of_order(cluster, node, running)
            built = build_node(
                cluster, node, authority_, read_node(inv, node),
                now=ctx.now, iso_epoch=ctx.iso_epoch, running=cluster.kubernetes_version,
            )  # fmt: skip
            tx.put_tree(node.folder, built.tree)
            running[name] = cluster.kubernetes_version
            moved.append(name)
    return moved
