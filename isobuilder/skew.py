"""Kubernetes' version-skew policy for ``isobuild upgrade``, as kubeadm enforces it. Pure.

kubeadm's rules (cmd/kubeadm/app/phases/upgrade/policy.go, ``EnforceVersionPolicies``):
the control plane moves at most one minor version at a time
(``MaximumAllowedMinorVersionUpgradeSkew = 1``), kubeadm itself must be at the target first
("Upgrade kubeadm first"), and no kubelet may fall more than three minors behind the new
control plane (``detectTooOldKubelets`` with ``MaximumAllowedMinorVersionKubeletSkew``, 3 since
kubernetes/kubernetes#120825, kubeadm 1.29). Kubernetes' own policy adds: a kubelet is never
newer than the apiserver, so controllers go first, the one that ran ``kubeadm init`` with
``kubeadm upgrade apply``, the others with ``kubeadm upgrade node`` (cmd/kubeadm/app/cmd/upgrade/).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from isobuilder.checks import parse_kubernetes_version
from isobuilder.errors import IsobuildError
from isobuilder.model import Cluster, Node

UPGRADE_SKEW = 1  # policy.go MaximumAllowedMinorVersionUpgradeSkew
KUBELET_SKEW = 3  # policy.go MaximumAllowedMinorVersionKubeletSkew (kubeadm >= 1.29)


def check_upgrade(cluster: Cluster, target: str, running: Mapping[str, str]) -> None:
    """Raise unless the cluster can move from its version to ``target`` now (``running``: the
    version each node runs, as far as isobuild knows; a node not in it has not booted)."""
    current = cluster.kubernetes_version
    to, now = parse_kubernetes_version(target), parse_kubernetes_version(current)
    if to < now:
        raise IsobuildError(
            f"{target} is older than the cluster's {current}: isobuild does not downgrade",
            hint="kubeadm has no supported path down; restore etcd from a backup to go back",
        )
    if to[0] != now[0]:
        raise IsobuildError(
            f"{current} -> {target} changes the major version", hint="kubeadm upgrades within one major version"
        )
    if to[1] > now[1] + UPGRADE_SKEW:
        raise IsobuildError(
            f"{current} -> {target} skips a minor version: kubeadm upgrades one minor at a time",
            hint=f"upgrade to the latest {now[0]}.{now[1] + 1}.x first (kubeadm's policy.go, EnforceVersionPolicies)",
        )
    check_versions(cluster, target, running)


def check_versions(cluster: Cluster, target: str, running: Mapping[str, str]) -> None:
    """Raise unless every node can reach ``target`` from what it runs (:func:`problem`)."""
    problems = [p for n in cluster.nodes if n.name in running and (p := problem(n, running[n.name], target))]
    if problems:
        raise IsobuildError(
            f"Kubernetes {target} is out of reach of the running nodes: {'; '.join(problems)}",
            hint="upgrade one minor at a time, controllers first (isobuild upgrade --to, then isobuild push "
            "NODE --upgrade); kubeadm refuses a larger skew (phases/upgrade/policy.go)",
        )


def problem(node: Node, version: str, target: str) -> str | None:
    """Why ``node``, running ``version``, cannot move to ``target``: newer already (a kubelet is
    never newer than the apiserver), a controller more than one minor behind, a kubelet more than
    three. None: it can."""
    to, have = parse_kubernetes_version(target), parse_kubernetes_version(version)
    if have > to:
        return f"{node.name} runs {version}, newer than {target} (isobuild does not downgrade)"
    if node.role.is_controller and (to[0], to[1]) > (have[0], have[1] + UPGRADE_SKEW):
        return f"controller {node.name} runs {version}: more than one minor behind {target}"
    if (to[0], to[1]) > (have[0], have[1] + KUBELET_SKEW):
        return f"{node.name} runs {version}: more than {KUBELET_SKEW} minors behind {target}"
    return None


class Step(NamedTuple):
    """One node of an upgrade, and the kubeadm command that upgrades it."""

    node: Node
    how: str  # "kubeadm upgrade apply" or "kubeadm upgrade node"


def how(cluster: Cluster, node: Node) -> str:
    """The kubeadm command that upgrades ``node``: ``upgrade apply`` on the controller that ran
    ``kubeadm init``, ``upgrade node`` everywhere else (cmd/kubeadm/app/cmd/upgrade/)."""
    return "kubeadm upgrade apply" if cluster.is_bootstrap(node) else "kubeadm upgrade node"


def order(cluster: Cluster, behind: Sequence[Node]) -> list[Step]:
    """The nodes to upgrade, in the order kubeadm and the skew policy want: the bootstrap
    controller, the other controllers one at a time, then the workers."""
    controllers = sorted((n for n in behind if n.role.is_controller), key=lambda n: not cluster.is_bootstrap(n))
    workers = [n for n in behind if not n.role.is_controller]
    return [Step(n, how(cluster, n)) for n in (*controllers, *workers)]


def refuse_out_of_order(cluster: Cluster, node: Node, running: Mapping[str, str]) -> None:
    """A kubelet is never newer than the apiserver: no worker before every controller, no other
    controller before the bootstrap one (it runs ``kubeadm upgrade apply``)."""
    target = cluster.kubernetes_version
    pending = [n for n in cluster.controllers() if running.get(n.name, target) != target and n.name != node.name]
    if node.role.is_controller:
        pending = [n for n in pending if cluster.is_bootstrap(n)]
    if pending:
        raise IsobuildError(
            f"{node.name} cannot move to {target} before {', '.join(n.name for n in pending)}",
            hint="controllers go first, the bootstrap controller before the others: "
            + ", then ".join(f"isobuild push {n.name} --upgrade" for n in pending),
        )
