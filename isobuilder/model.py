"""What the user asked for: the cluster and its nodes, as frozen values, and what follows from them.

Nothing here touches the disk or checks a value: ``schema`` lists every setting (default, parser,
comment, flag), ``checks`` holds the rules, ``clusterfile`` turns these values into cluster.yaml
and back. Derived values are methods, never fields patched later.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import ipaddress
import re
import reprlib
import types
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from isobuilder.errors import IsobuildError

API_PORT = 6443
# The default of a record's mapping field (records are NamedTuples, their defaults shared): read-only.
EMPTY: Mapping[str, Any] = types.MappingProxyType({})
# RFC 1123 label; node names are DNS subdomains of such labels (Kubernetes' rule for Node names).
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")  # use with fullmatch: "$" lets a newline through


class Role(enum.StrEnum):
    CONTROLLER = "controller"
    WORKER = "worker"
    EDGE = "edge"

    @property
    def is_controller(self) -> bool:
        """Runs the control plane (etcd, apiserver): gets kubeadm's full PKI and the CA keys."""
        return self is Role.CONTROLLER

    @property
    def ansible_group(self) -> str:
        return {Role.CONTROLLER: "controllers", Role.WORKER: "workers", Role.EDGE: "edge_routers"}[self]

    def builtin_labels(self) -> dict[str, str]:
        """Labels the kubelet registers itself with for this role (seed design: role=edge-router)."""
        return {"role": "edge-router"} if self is Role.EDGE else {}


class Cni(enum.StrEnum):
    """The pod network isobuild installs."""

    FLANNEL = "flannel"
    NONE = "none"  # the operator brings their own (Cilium, Calico, ...): nodes stay NotReady until it runs


class Ingress(enum.StrEnum):
    """The ingress controller isobuild runs on edge routers."""

    CONTOUR = "contour"  # Envoy as a DaemonSet with hostPorts 80/443 (projectcontour, CNCF)
    INGRESS_NGINX = "ingress-nginx"  # retired upstream in March 2026: no more security fixes
    NONE = "none"  # the operator brings their own, or none


class Format(enum.StrEnum):
    """What the node's first-boot config is written for."""

    CLOUD_CONFIG = "cloud-config"  # cloud-init: Ubuntu, Debian and other cloud images
    IGNITION = "ignition"  # Ignition spec 3.3.0: Flatcar Container Linux (Fedora CoreOS reads it too)


class Media(enum.StrEnum):
    """The drive the config travels on."""

    CONFIG_2 = "config-2"  # OpenStack config drive: cloud-init, Ignition's openstack platform
    NOCLOUD = "nocloud"  # cloud-init NoCloud (cloud-localds, Proxmox), Ignition's proxmoxve platform

    @property
    def label(self) -> str:
        return "cidata" if self is Media.NOCLOUD else "config-2"

    @property
    def user_data_path(self) -> str:
        return "user-data" if self is Media.NOCLOUD else "openstack/latest/user_data"

    @property
    def meta_data_path(self) -> str:
        return "meta-data" if self is Media.NOCLOUD else "openstack/latest/meta_data.json"

    @property
    def network_path(self) -> str:
        return "network-config" if self is Media.NOCLOUD else "openstack/latest/network_data.json"

    @classmethod
    def of_drive(cls, paths: Iterable[str]) -> Media | None:
        """The medium a drive folder's files are laid out for, by where its user data sits."""
        present = set(paths)
        return next((m for m in cls if m.user_data_path in present), None)


class KeyType(enum.StrEnum):
    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa-")

    @property
    def rsa_bits(self) -> int:
        return int(self.value.split("-")[1])


@dataclasses.dataclass(frozen=True)
class Node:
    """One node as cluster.yaml lists it (``schema.NODE_FIELDS``); None: the cluster's value."""

    name: str
    ip: str
    role: Role
    master: str | None = None  # the controller a worker or edge router joins (--master): its name
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    sans: tuple[str, ...] = ()
    ssh_keys: tuple[str, ...] = ()
    format: Format | None = None  # None: the cluster's
    media: Media | None = None  # None: the cluster's
    # Static networking on the NIC with this MAC; on when ``prefix`` is set (the MAC alone only
    # names the NIC, e.g. for DHCP reservations).
    mac: str | None = None
    prefix: int | None = None
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    mtu: int | None = None
    # An edge router's address on the internet, beside its private ``ip`` (which the kubelet,
    # flannel and its certificates use): it carries the ingress only.
    public_ip: str | None = None
    kubelet_extra_args: tuple[tuple[str, str], ...] = ()  # replace the cluster's of the same name
    ntp_servers: tuple[str, ...] = ()  # replace the cluster's
    # Merged after the cluster's (isobuilder/patches.py).
    cloud_config_patch: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    ignition_patch: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def folder(self) -> str:
        return f"node-{self.name}"

    @property
    def static(self) -> bool:
        return self.prefix is not None

    def all_labels(self) -> dict[str, str]:
        return {**self.role.builtin_labels(), **self.labels}


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The whole of cluster.yaml. Built by ``schema`` (the one place that knows the defaults)."""

    name: str
    cluster_id: str
    kubernetes_version: str
    endpoint: str | None
    vip: str | None  # a virtual IP for the API endpoint, held by one controller at a time (kube-vip, ARP)
    hosts_entry: bool | None  # the endpoint's name in every node's /etc/hosts; None: when there is a VIP
    bootstrap_controller: str | None  # the controller that runs kubeadm init; None: the first one
    service_cidr: str
    pod_cidr: str
    domain: str
    key_type: KeyType
    ca_days: int
    cert_days: int
    # kubeadm's external-CA mode: no CA private key leaves the workstation; controllers get
    # every certificate and kubeconfig pre-issued (and the cluster signs no CSRs).
    external_ca: bool
    ssh_keys: tuple[str, ...]
    cni: Cni
    flannel_version: str
    ingress: Ingress
    contour_version: str
    ingress_nginx_version: str
    containerd_version: str
    format: Format
    media: Media
    cni_plugins_version: str
    flatcar_channel: str
    flatcar_version: str
    kube_vip_version: str
    ntp_servers: tuple[str, ...] = ()
    registry_mirrors: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: tuple[str, ...] = ()
    # kubeadm v1beta4's extraArgs (name, value), cluster-wide; a node's kubelet_extra_args add to them.
    kubelet_extra_args: tuple[tuple[str, str], ...] = ()
    apiserver_extra_args: tuple[tuple[str, str], ...] = ()
    controller_manager_extra_args: tuple[tuple[str, str], ...] = ()
    scheduler_extra_args: tuple[tuple[str, str], ...] = ()
    etcd_extra_args: tuple[tuple[str, str], ...] = ()
    # Fragments merged into every node's first-boot config (isobuilder/patches.py).
    cloud_config_patch: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    ignition_patch: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    nodes: tuple[Node, ...] = ()

    # -- derived values ------------------------------------------------------------------
    def controllers(self) -> list[Node]:
        return list(self._controllers)

    @functools.cached_property
    def _controllers(self) -> tuple[Node, ...]:
        # Asked for every node a build makes (its endpoint, its bootstrap controller): once per
        # cluster value, not once per node. cached_property writes the instance's __dict__,
        # which a frozen dataclass allows, and no field: equality and replace() ignore it.
        return tuple(n for n in self.nodes if n.role.is_controller)

    @property
    def holds_secrets(self) -> bool:
        """Whether a proxy URL carries a password: files that hold it are for root's eyes only
        (cluster.yaml, the proxy drop-ins)."""
        return any("@" in (url or "") for url in (self.http_proxy, self.https_proxy))

    @functools.cached_property
    def pod_network_encrypted(self) -> bool:
        """Whether pod traffic crosses the internet: a node's address is public (an edge router
        with no private address beside it). flannel then runs its WireGuard backend."""
        return any(is_public(n.ip) for n in self.nodes)

    def kubelet_extra_args_of(self, node: Node) -> tuple[tuple[str, str], ...]:
        """The cluster's extra kubelet flags, those the node names itself replaced by its own."""
        own = {name for name, _ in node.kubelet_extra_args}
        return (*((n, v) for n, v in self.kubelet_extra_args if n not in own), *node.kubelet_extra_args)

    def ntp_servers_of(self, node: Node) -> tuple[str, ...]:
        return node.ntp_servers or self.ntp_servers

    def no_proxy_list(self) -> tuple[str, ...]:
        """NO_PROXY: the operator's entries, then what must never go through a proxy: this
        host, the service and pod networks, in-cluster names, the API endpoint and controllers."""
        ours = ["localhost", "127.0.0.1", "::1", self.service_cidr, self.pod_cidr, ".svc", f".{self.domain}"]
        if self.endpoint or self.vip or self._controllers:
            ours.append(self.endpoint_host_port()[0])
        if self.vip:
            ours.append(self.vip)
        ours += [n.ip for n in self._controllers]
        return unique([*self.no_proxy, *ours])

    def controller(self, ref: str) -> Node | None:
        """The controller a ``master:`` names: by name, or by IP (cluster.yaml's older form)."""
        return next((n for n in self._controllers if ref in (n.name, n.ip)), None)

    def with_master_names(self) -> Cluster:
        """Every ``master:`` that is a controller's IP, as that controller's name (what
        cluster.yaml stores: a controller's IP may change, its name does not)."""
        nodes = []
        for node in self.nodes:
            joined = self.controller(node.master) if node.master else None
            nodes.append(
                dataclasses.replace(node, master=joined.name) if joined and node.master != joined.name else node
            )
        return dataclasses.replace(self, nodes=tuple(nodes)) if nodes != list(self.nodes) else self

    def format_of(self, node: Node) -> Format:
        return node.format or self.format

    def media_of(self, node: Node) -> Media:
        return node.media or self.media

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def endpoint_host_port(self) -> tuple[str, int]:
        """The API endpoint every kubeconfig uses: ``endpoint``, else the VIP, else the first controller's IP."""
        if self.endpoint:
            return split_host_port(self.endpoint)
        if self.vip:
            return self.vip, API_PORT
        controllers = self.controllers()
        if not controllers:
            raise IsobuildError(
                "the cluster has no controller and no endpoint",
                hint="add a controller first: isobuild node NAME IP (without --master)",
            )
        return controllers[0].ip, API_PORT

    def cluster_sans(self) -> tuple[str, ...]:
        """The names every apiserver certificate carries, whichever controller it is for: the
        endpoint's host and the VIP. They alone go into kubeadm's ``apiServer.certSANs``, which
        ``kubeadm init`` uploads and every later ``kubeadm join --control-plane`` checks against."""
        host, _ = self.endpoint_host_port()
        return unique([host, *([self.vip] if self.vip else [])])

    def init_controller(self) -> Node | None:
        """The one controller that runs ``kubeadm init``; every other one joins it."""
        controllers = self.controllers()
        named = [n for n in controllers if n.name == self.bootstrap_controller]
        first = named or controllers
        return first[0] if first else None

    def is_bootstrap(self, node: Node) -> bool:
        init = self.init_controller()
        return init is not None and init.name == node.name

    def hosts_entry_line(self) -> str | None:
        """The /etc/hosts line that makes the endpoint's name resolve on every node (to the VIP,
        else the controller that runs kubeadm init), when the endpoint is a name and the entry is wanted."""
        if not self.endpoint:
            return None
        host, _ = split_host_port(self.endpoint)
        wanted = self.hosts_entry if self.hosts_entry is not None else self.vip is not None
        if is_ip(host) or not wanted:
            return None
        init = self.init_controller()
        target = self.vip or (init.ip if init else None)
        return f"{target} {host}" if target else None

    def server_url(self, via_ip: str | None = None) -> str:
        host, port = self.endpoint_host_port() if via_ip is None else (via_ip, API_PORT)
        return f"https://{bracket(host)}:{port}"

    def kubernetes_service_ip(self) -> str:
        """First address of the service CIDR: the ``kubernetes`` Service's ClusterIP."""
        return str(ipaddress.ip_network(self.service_cidr)[1])

    def dns_service_ip(self) -> str:
        """kubeadm puts CoreDNS on the tenth address of the service CIDR."""
        return str(ipaddress.ip_network(self.service_cidr)[10])

    def node_local_cri_socket(self) -> bool:
        """kubeadm's NodeLocalCRISocket gate is on by default (beta in 1.34, GA in 1.36): the CRI
        socket is in /var/lib/kubelet/instance-config.yaml, not in a Node annotation."""
        major, minor, _ = (int(p) for p in self.kubernetes_version.split("."))
        return (major, minor) >= (1, 34)

    def kubernetes_minor(self) -> str:
        major, minor, _ = self.kubernetes_version.split(".")
        return f"v{major}.{minor}"

    def node_uuid(self, node: Node) -> str:
        """Stable per cluster and node name: config-2's meta_data.json ``uuid``."""
        return str(uuid.uuid5(uuid.UUID(self.cluster_id), node.name))

    def with_node(self, node: Node) -> Cluster:
        """This cluster with ``node`` added, or replacing the entry of the same name."""
        others = [n for n in self.nodes if n.name != node.name]
        index = next((i for i, n in enumerate(self.nodes) if n.name == node.name), len(others))
        others.insert(index, node)
        return dataclasses.replace(self, nodes=tuple(others))


# -- addresses --------------------------------------------------------------------------------
def is_ip(value: str) -> bool:
    """A plain IPv4 or IPv6 address (no zone index: ``fe80::1%eth0`` names no one host)."""
    return _address(value) is not None


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(value, str) or "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)  # ~3x faster than netaddr's inet_pton path, as strict
    except ValueError:
        return None


def bracket(host: str) -> str:
    return f"[{host}]" if is_ipv6(host) else host


def split_host_port(value: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address."""
    host, port = value, API_PORT
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise bad_value("endpoint", value, "use HOST, HOST:PORT or [IPv6]:PORT")
        if rest:
            port = _port(rest[1:], value)
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = _port(port_text, value)
    if is_ip(host):
        return normal_ip(host), port
    if not DNS_SUBDOMAIN.fullmatch(host):
        raise bad_value("endpoint", value, "use a DNS name or an IP address, optionally with :PORT")
    return host, port


def _port(text: str, whole: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise bad_value("endpoint", whole, "the port must be a number from 1 to 65535")
    return int(text)


def bad_value(what: str, value: object, hint: str) -> IsobuildError:
    return IsobuildError(f"invalid {what} {shown(value)}", hint=hint)


_SHOWN = reprlib.Repr()  # Python 3.11's Repr takes no arguments
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 2, 3, 3, 60, 60, 40


def shown(value: object) -> str:
    """``repr(value)`` in a bounded size, whatever the value (a 50 MB label, a YAML alias bomb, a
    5000-digit number): an error line stays one short line."""
    try:
        return _SHOWN.repr(value)
    except ValueError:  # int too large to print (Python's 4300-digit limit)
        return "<a very large number>"


def is_ipv6(value: str) -> bool:
    return isinstance(_address(value), ipaddress.IPv6Address)


# Documentation ranges (RFC 5737, RFC 3849) stand for public addresses in examples and tests.
_DOCUMENTATION_NETS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def is_public(value: str) -> bool:
    """Whether an address is on the internet (as an edge router's may be): global in IANA's
    special-purpose registries (Python's ``is_global``: not RFC 1918, shared 100.64.0.0/10,
    link-local, loopback, reserved, benchmarking, unique-local ...), and no IPv4 address in an
    IPv6 form or a site-local one; or a documentation address."""
    ip = ipaddress.ip_address(value)
    if any(ip.version == net.version and ip in net for net in _DOCUMENTATION_NETS):
        return True
    if isinstance(ip, ipaddress.IPv6Address) and (ip.is_site_local or int(ip) < 1 << 32 or ip.ipv4_mapped):
        return False
    return ip.is_global


def normal_ip(value: str) -> str:
    """The canonical text of an address, as a certificate's SAN reads back (RFC 5952 for IPv6)."""
    return str(ipaddress.ip_address(value))


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """Keep the first of each value, in order."""
    return tuple(dict.fromkeys(values))


def merged_ssh_keys(cluster: Cluster, node: Node) -> list[str]:
    return list(unique([*cluster.ssh_keys, *node.ssh_keys]))


def sorted_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return dict(sorted(labels.items()))
