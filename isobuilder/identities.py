"""Which certificates a Kubernetes of today expects, following kubeadm's PKI.

Names are paths under ``/etc/kubernetes/pki`` (and the node's ``ssl/`` folder) without
the ``.crt``/``.key`` suffix; CNs, Organizations and usages are kubeadm's
(cmd/kubeadm/app/phases/certs/certlist.go, cmd/kubeadm/app/constants).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from isobuilder.model import Cluster, Node, Role, unique
from isobuilder.pki import CertSpec

CLUSTER_ADMINS_GROUP = "kubeadm:cluster-admins"  # bound to cluster-admin by kubeadm init (>= 1.29)
MASTERS_GROUP = "system:masters"  # bypasses RBAC: only kubeadm's break-glass super-admin.conf
NODES_GROUP = "system:nodes"
# Groups a user kubeconfig may not claim: the admin kubeconfig is the one break-glass identity.
RESERVED_GROUPS = frozenset({CLUSTER_ADMINS_GROUP, MASTERS_GROUP, NODES_GROUP})


class Signer(enum.StrEnum):
    """The three kubeadm CAs, named by their file stem."""

    CA = "ca"
    ETCD = "etcd/ca"
    FRONT_PROXY = "front-proxy-ca"

    @property
    def common_name(self) -> str:
        return {Signer.CA: "kubernetes", Signer.ETCD: "etcd-ca", Signer.FRONT_PROXY: "front-proxy-ca"}[self]


class Kubeconfig(enum.StrEnum):
    """Kubeconfig files kubeadm places in /etc/kubernetes, and whom they authenticate."""

    ADMIN = "admin"
    SUPER_ADMIN = "super-admin"
    CONTROLLER_MANAGER = "controller-manager"
    SCHEDULER = "scheduler"
    KUBELET = "kubelet"

    @property
    def file(self) -> str:
        return f"{self.value}.conf"

    @property
    def user(self) -> str:
        return {
            Kubeconfig.ADMIN: "kubernetes-admin",
            Kubeconfig.SUPER_ADMIN: "kubernetes-super-admin",
            Kubeconfig.CONTROLLER_MANAGER: "system:kube-controller-manager",
            Kubeconfig.SCHEDULER: "system:kube-scheduler",
            Kubeconfig.KUBELET: "kubelet",  # replaced by system:node:<name>
        }[self]

    @property
    def identity(self) -> str:
        """The ssl/ file stem whose keypair this kubeconfig embeds."""
        return self.value

    @property
    def uses_local_apiserver(self) -> bool:
        # kubeadm points controller-manager.conf and scheduler.conf at the local apiserver
        # (advertise address) so they keep working while the endpoint/VIP is down.
        return self in (Kubeconfig.CONTROLLER_MANAGER, Kubeconfig.SCHEDULER)


class Identity(NamedTuple):
    """One certificate a node gets: its file stem, the CA that signs it, and what it says."""

    name: str  # file stem under ssl/ and /etc/kubernetes/pki
    signer: Signer
    spec: CertSpec


def apiserver_sans(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """What kubeadm requires of a controller's apiserver.crt, and the node's own ``--san``s.

    kubeadm (cmd/kubeadm/app/util/pkiutil/pki_helpers.go, ``GetAPIServerAltNames``): the four
    ``kubernetes...`` names, the node name, the advertise address, the service CIDR's first IP,
    the controlPlaneEndpoint's host and ``apiServer.certSANs`` (here :meth:`Cluster.cluster_sans`).
    ``kubeadm join --control-plane`` checks a pre-placed certificate against exactly that list,
    computed from the *uploaded* ClusterConfiguration and the joining node's own name and address
    (phases/certs/certs.go, ``validateCertificateWithConfig``): so nothing node-specific may go
    into certSANs, and every node-specific name goes into the node's own certificate only."""
    return unique(
        [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{cluster.domain}",
            node.name,
            *cluster.cluster_sans(),
            cluster.kubernetes_service_ip(),
            node.ip,
            *node.sans,
        ]
    )


def etcd_sans(node: Node) -> tuple[str, ...]:
    # kubeadm: etcd server and peer certs carry the node name, localhost and the node's IPs.
    return unique([node.name, "localhost", node.ip, "127.0.0.1", "::1"])


def kubelet_spec(node: Node) -> CertSpec:
    """The node's one identity: kubelet client (kubelet.conf) and serving certificate."""
    return CertSpec(
        common_name=f"system:node:{node.name}",
        organizations=(NODES_GROUP,),
        sans=unique([node.name, node.ip, *node.sans]),
        server=True,
        client=True,
    )


def node_identities(cluster: Cluster, node: Node) -> list[Identity]:
    """Every leaf certificate ``node`` receives, in a fixed order."""
    ids = [Identity("kubelet", Signer.CA, kubelet_spec(node))]
    if not node.role.is_controller:
        return ids
    ids += [
        Identity("apiserver", Signer.CA, CertSpec("kube-apiserver", sans=apiserver_sans(cluster, node), server=True)),
        *_controller_identities(node),
    ]
    if cluster.external_ca:
        # kubeadm init makes super-admin.conf itself, with ca.key; without it, it must be there.
        ids.append(Identity("super-admin", Signer.CA, super_admin_spec()))
    return ids


def _controller_identities(node: Node) -> list[Identity]:
    """A controller's identities that do not depend on the cluster's settings."""
    etcd_names = etcd_sans(node)
    return [
        # No Organization since kubeadm 1.36 (kubernetes/kubernetes#138957): the user is bound to
        # system:kubelet-api-admin by name (render.rbac_manifest), not made a cluster admin.
        Identity("apiserver-kubelet-client", Signer.CA, CertSpec("kube-apiserver-kubelet-client", client=True)),
        Identity("apiserver-etcd-client", Signer.ETCD, CertSpec("kube-apiserver-etcd-client", client=True)),
        Identity("front-proxy-client", Signer.FRONT_PROXY, CertSpec("front-proxy-client", client=True)),
        Identity("etcd/server", Signer.ETCD, CertSpec(node.name, sans=etcd_names, server=True, client=True)),
        Identity("etcd/peer", Signer.ETCD, CertSpec(node.name, sans=etcd_names, server=True, client=True)),
        Identity("etcd/healthcheck-client", Signer.ETCD, CertSpec("kube-etcd-healthcheck-client", client=True)),
        Identity("admin", Signer.CA, admin_spec()),
        Identity("controller-manager", Signer.CA, CertSpec(Kubeconfig.CONTROLLER_MANAGER.user, client=True)),
        Identity("scheduler", Signer.CA, CertSpec(Kubeconfig.SCHEDULER.user, client=True)),
    ]


def admin_spec() -> CertSpec:
    return CertSpec(Kubeconfig.ADMIN.user, (CLUSTER_ADMINS_GROUP,), client=True)


def super_admin_spec() -> CertSpec:
    return CertSpec(Kubeconfig.SUPER_ADMIN.user, (MASTERS_GROUP,), client=True)


def component_users() -> frozenset[str]:
    """Every user name a cluster component authenticates as: no user kubeconfig may take one
    (kube-apiserver-kubelet-client, for one, is bound to system:kubelet-api-admin)."""
    probe = Node("probe", "192.0.2.1", Role.CONTROLLER)
    cluster_free = [i.spec.common_name for i in _controller_identities(probe)]
    return frozenset(
        {*cluster_free, admin_spec().common_name, super_admin_spec().common_name} - {probe.name}
        | {"kube-apiserver", "kube-proxy"}
    )


def user_spec(user: str, groups: tuple[str, ...]) -> CertSpec:
    """An extra kubeconfig's identity: the apiserver reads CN as the user, O as its groups."""
    return CertSpec(user, groups, client=True)


def node_kubeconfigs(cluster: Cluster, node: Node) -> list[Kubeconfig]:
    if node.role.is_controller:
        extra = [Kubeconfig.SUPER_ADMIN] if cluster.external_ca else []
        return [Kubeconfig.ADMIN, *extra, Kubeconfig.CONTROLLER_MANAGER, Kubeconfig.SCHEDULER, Kubeconfig.KUBELET]
    return [Kubeconfig.KUBELET]


def ca_files_for(cluster: Cluster, node: Node) -> list[str]:
    """CA material a node receives: certificates everywhere, CA keys only on controllers, whose
    control plane signs with them (controller-manager's CSR signer, kubeadm join of new nodes),
    and not even there in external-CA mode. The service-account key pair is not a CA: every
    apiserver signs and checks tokens with it."""
    if not node.role.is_controller:
        return ["ca.crt"]
    if cluster.external_ca:
        return ["ca.crt", "etcd/ca.crt", "front-proxy-ca.crt", "sa.key", "sa.pub"]
    return [
        "ca.crt", "ca.key",
        "etcd/ca.crt", "etcd/ca.key",
        "front-proxy-ca.crt", "front-proxy-ca.key",
        "sa.key", "sa.pub",
    ]  # fmt: skip
