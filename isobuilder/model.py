"""What the user asked for: the cluster and its nodes, as frozen, validated values.

Nothing here touches the disk. ``clusterfile`` turns these values into
cluster.yaml and back; everything else reads them.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence

import netaddr

from isobuilder.errors import IsobuildError

# Pinned releases a new cluster starts with; cluster.yaml keeps what a cluster uses.
DEFAULT_KUBERNETES_VERSION = "1.37.1"
DEFAULT_FLANNEL_VERSION = "v0.28.9"
DEFAULT_INGRESS_NGINX_VERSION = "v1.15.1"
DEFAULT_CONTAINERD_VERSION = "2."  # a containerd.io version prefix: the newest 2.x
DEFAULT_CNI_PLUGINS_VERSION = "v1.8.0"  # containernetworking/plugins, for Ignition (Flatcar) nodes
DEFAULT_KUBE_VIP_VERSION = "v1.2.2"  # kube-vip: the control plane's virtual IP (--vip), a static pod
DEFAULT_FLATCAR_CHANNEL = "stable"
DEFAULT_FLATCAR_VERSION = "current"
FLATCAR_CHANNELS = ("stable", "beta", "alpha", "lts")
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"  # kubeadm's default serviceSubnet
DEFAULT_POD_CIDR = "10.244.0.0/16"  # flannel's default Network
DEFAULT_DOMAIN = "cluster.local"
API_PORT = 6443
ETCD_PEER_PORT = 2380

# RFC 1123 label; node names are DNS subdomains of such labels (Kubernetes' rule for Node names).
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_K8S_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
_ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)$")
_SSH_KEY = re.compile(
    r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|"
    r"sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$"
)
# Label prefixes the NodeRestriction admission plugin lets a kubelet set on itself.
_KUBELET_ALLOWED_PREFIXES = ("kubelet.kubernetes.io", "node.kubernetes.io", "node-restriction.kubernetes.io")
_KUBELET_ALLOWED_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    }
)


class Role(enum.StrEnum):
    CONTROLLER = "controller"
    WORKER = "worker"
    EDGE = "edge"

    @property
    def is_control_plane(self) -> bool:
        return self is Role.CONTROLLER

    def builtin_labels(self) -> dict[str, str]:
        """Labels the kubelet registers itself with for this role (seed design: role=edge-router)."""
        return {"role": "edge-router"} if self is Role.EDGE else {}


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
    name: str
    ip: str
    role: Role
    master: str | None = None  # the controller IP a worker or edge router joins (--master)
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
    """The whole of cluster.yaml."""

    name: str
    cluster_id: str
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    endpoint: str | None = None
    service_cidr: str = DEFAULT_SERVICE_CIDR
    pod_cidr: str = DEFAULT_POD_CIDR
    domain: str = DEFAULT_DOMAIN
    key_type: KeyType = KeyType.ECDSA_P256
    ca_days: int = 3650
    cert_days: int = 365
    ssh_keys: tuple[str, ...] = ()
    flannel_version: str = DEFAULT_FLANNEL_VERSION
    ingress_nginx_version: str = DEFAULT_INGRESS_NGINX_VERSION
    containerd_version: str = DEFAULT_CONTAINERD_VERSION
    format: Format = Format.CLOUD_CONFIG
    media: Media = Media.CONFIG_2
    cni_plugins_version: str = DEFAULT_CNI_PLUGINS_VERSION
    flatcar_channel: str = DEFAULT_FLATCAR_CHANNEL
    flatcar_version: str = DEFAULT_FLATCAR_VERSION
    # A virtual IP for the API endpoint, held by one controller at a time (kube-vip, ARP).
    vip: str | None = None
    kube_vip_version: str = DEFAULT_KUBE_VIP_VERSION
    # kubeadm's external-CA mode: no CA private key leaves the workstation; controllers get
    # every certificate and kubeconfig pre-issued (and the cluster signs no CSRs).
    external_ca: bool = False
    nodes: tuple[Node, ...] = ()

    # -- derived values ------------------------------------------------------------------
    def controllers(self) -> list[Node]:
        return [n for n in self.nodes if n.role.is_control_plane]

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

    def server_url(self, via_ip: str | None = None) -> str:
        host, port = self.endpoint_host_port() if via_ip is None else (via_ip, API_PORT)
        return f"https://{bracket(host)}:{port}"

    def etcd_initial_cluster(self) -> str:
        """etcd's ``--initial-cluster``: every controller of cluster.yaml, by name and peer URL."""
        return ",".join(f"{n.name}=https://{bracket(n.ip)}:{ETCD_PEER_PORT}" for n in self.controllers())

    def kubernetes_service_ip(self) -> str:
        """First address of the service CIDR: the ``kubernetes`` Service's ClusterIP."""
        return str(netaddr.IPNetwork(self.service_cidr)[1])

    def dns_service_ip(self) -> str:
        """kubeadm puts CoreDNS on the tenth address of the service CIDR."""
        return str(netaddr.IPNetwork(self.service_cidr)[10])

    def kubernetes_minor(self) -> str:
        major, minor, _ = parse_kubernetes_version(self.kubernetes_version)
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


# -- value checks ---------------------------------------------------------------------------
def is_ip(value: str) -> bool:
    if "\x00" in value:  # netaddr hands the text to inet_pton, which raises on a NUL
        return False
    return bool(netaddr.valid_ipv4(value) or netaddr.valid_ipv6(value))


def bracket(host: str) -> str:
    return f"[{host}]" if netaddr.valid_ipv6(host) else host


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
    if not _DNS_SUBDOMAIN.match(host):
        raise bad_value("endpoint", value, "use a DNS name or an IP address, optionally with :PORT")
    return host, port


def check_endpoint(value: str) -> str:
    """``value`` in one canonical form, ``host:port`` or ``[v6]:port``, so equal endpoints compare equal."""
    host, port = split_host_port(value)
    return f"{bracket(host)}:{port}"


def _port(text: str, whole: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise bad_value("endpoint", whole, "the port must be a number from 1 to 65535")
    return int(text)


def bad_value(what: str, value: object, hint: str) -> IsobuildError:
    return IsobuildError(f"invalid {what} {value!r}", hint=hint)


_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")


def is_user_name(value: str) -> bool:
    """A Kubernetes user name as a certificate CN carries it (fits X.509's 64 characters)."""
    return isinstance(value, str) and bool(_USER_NAME.match(value)) and not value.endswith(":")


def is_group_name(value: str) -> bool:
    return is_user_name(value)


def check_name(name: str) -> str:
    # 52: the kubelet's certificate CN "system:node:<name>" must fit X.509's 64 characters.
    if not isinstance(name, str) or len(name) > 52 or not _DNS_SUBDOMAIN.match(name):
        raise bad_value(
            "node name",
            name,
            "use an RFC 1123 name of at most 52 characters: lowercase letters, digits, '-' and '.', "
            "e.g. worker1 or edge.example.com",
        )
    return name


def normal_ip(value: str) -> str:
    """The canonical text of an address, as a certificate's SAN reads back (RFC 5952 for IPv6)."""
    return str(ipaddress.ip_address(value))


def check_ip(ip: str, what: str = "IP address") -> str:
    if not isinstance(ip, str) or not is_ip(ip):
        raise bad_value(what, ip, "use a plain IPv4 or IPv6 address such as 10.10.10.2")
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise bad_value(what, ip, f"use the IPv4 address itself: {addr.ipv4_mapped}")
    if addr.is_loopback or addr.is_multicast or addr.is_link_local or addr.is_unspecified or ip == "255.255.255.255":
        raise bad_value(what, ip, "a node needs a unicast address that other machines can reach")
    return str(addr)


def check_cidr(value: str, what: str) -> str:
    try:
        net = netaddr.IPNetwork(value)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise bad_value(what, value, "use CIDR notation such as 10.96.0.0/12") from None
    if "/" not in str(value) or str(net.cidr) != str(net):
        raise bad_value(what, value, f"use the network address, e.g. {net.cidr}")
    if net.size < 16:
        raise bad_value(what, value, "the network is too small for a cluster")
    return str(net)


def check_domain(value: str) -> str:
    if not isinstance(value, str) or not _DNS_SUBDOMAIN.match(value):
        raise bad_value("cluster domain", value, "use a DNS domain such as cluster.local")
    return value


def parse_kubernetes_version(value: str) -> tuple[int, int, int]:
    match = _K8S_VERSION.match(value) if isinstance(value, str) else None
    if not match:
        raise bad_value("Kubernetes version", value, f"use MAJOR.MINOR.PATCH, e.g. {DEFAULT_KUBERNETES_VERSION}")
    major, minor, patch = (int(g) for g in match.groups())
    if (major, minor) < (1, 31):
        raise bad_value("Kubernetes version", value, "isobuild targets kubeadm's v1beta4 config: use 1.31 or newer")
    return major, minor, patch


def check_addon_version(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ADDON_VERSION.match(value):
        raise bad_value(what, value, "use a release tag such as v1.2.3")
    return value


def check_package_version(value: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9][0-9A-Za-z.+~:-]*", value):
        raise bad_value(what, value, "use a Debian package version or its prefix, e.g. 2. or 2.1.4")
    return value


def check_ssh_key(key: str) -> str:
    key = key.strip() if isinstance(key, str) else key
    if not isinstance(key, str) or not _SSH_KEY.match(key):
        raise bad_value(
            "SSH public key",
            key[:40] + "..." if isinstance(key, str) and len(key) > 40 else key,
            "give an OpenSSH public key file (one 'ssh-ed25519 AAAA... comment' line)",
        )
    return key


def check_san(value: str) -> str:
    if isinstance(value, str) and is_ip(value):
        return normal_ip(value)
    if not isinstance(value, str) or len(value) > 253 or not _DNS_SUBDOMAIN.match(value.removeprefix("*.")):
        raise bad_value("SAN", value, "use a DNS name (e.g. api.example.com) or an IP address")
    return value


def check_mac(value: str) -> str:
    """A unicast Ethernet MAC in one canonical form (lowercase, colons), as Linux and cloud-init show it."""
    try:
        mac = netaddr.EUI(value, version=48, dialect=netaddr.mac_unix_expanded) if isinstance(value, str) else None
    except (netaddr.AddrFormatError, ValueError, TypeError):
        mac = None
    if mac is None or not re.fullmatch(r"[0-9A-Fa-f]{2}([:-]?[0-9A-Fa-f]{2}){5}", value):
        raise bad_value("MAC address", value, "use six hex bytes, e.g. 52:54:00:12:34:56")
    if mac.words[0] & 1:
        raise bad_value("MAC address", value, "a multicast MAC cannot name a NIC: the first byte must be even")
    if int(mac) == 0:
        raise bad_value("MAC address", value, "00:00:00:00:00:00 names no NIC")
    return str(mac)


def split_ip_prefix(value: str) -> tuple[str, int | None]:
    """``IP`` or ``IP/PREFIX`` (the node's address in CIDR form)."""
    ip, sep, prefix = value.partition("/") if isinstance(value, str) else (value, "", "")
    return ip, check_prefix(prefix, ip) if sep else None


def check_prefix(value: str | int, ip: str) -> int:
    bits = 128 if isinstance(ip, str) and netaddr.valid_ipv6(ip) else 32
    text = str(value)
    if not (text.isascii() and text.isdigit()) or not 8 <= int(text) <= bits:
        raise bad_value("prefix length", value, f"use a number of network bits from 8 to {bits}, e.g. 24")
    return int(text)


def check_mtu(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 576 <= value <= 9216:
        raise bad_value("MTU", value, "use a number of bytes from 576 to 9216, e.g. 1500 or 9000")
    return value


def check_flatcar_channel(value: str) -> str:
    if value not in FLATCAR_CHANNELS:
        raise bad_value("Flatcar channel", value, "use one of " + ", ".join(FLATCAR_CHANNELS))
    return value


def check_flatcar_version(value: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"current|\d+\.\d+\.\d+", value):
        raise bad_value("Flatcar version", value, "use current or a release such as 4459.2.1")
    return value


def check_node_network(node: Node, cluster: Cluster) -> None:
    """Static networking of one node: complete, inside its own network, clear of the cluster's."""
    where = f"node {node.name!r}"
    extras = [flag for flag, v in (("--gateway", node.gateway), ("--dns", node.dns), ("--mtu", node.mtu)) if v]
    if node.prefix is None:
        if extras:
            raise IsobuildError(
                f"{where}: {extras[0]} needs a static address with its prefix length",
                hint=f"give the IP as IP/PREFIX (e.g. {node.ip}/24) or add --prefix",
            )
        return
    if node.mac is None:
        raise IsobuildError(
            f"{where}: static networking needs the MAC of the NIC it configures",
            hint="add --mac, e.g. --mac 52:54:00:12:34:56 (ip link show on the machine tells it)",
        )
    check_prefix(node.prefix, node.ip)  # a kept prefix may not fit a new address's family
    net = netaddr.IPNetwork(f"{node.ip}/{node.prefix}")
    if net.version == 4 and node.prefix < 31 and netaddr.IPAddress(node.ip) in (net.network, net.broadcast):
        raise IsobuildError(
            f"{where}: {node.ip} is the network or broadcast address of {net.cidr}",
            hint="pick a host address of the network, or another prefix length",
        )
    for cidr, what in ((cluster.service_cidr, "service"), (cluster.pod_cidr, "pod")):
        if _overlaps(net.cidr, netaddr.IPNetwork(cidr)):
            raise IsobuildError(
                f"{where}: its network {net.cidr} overlaps the {what} CIDR {cidr}",
                hint=f"pods and services would be unreachable: change the prefix or {what}_cidr in cluster.yaml",
            )
    if node.gateway is not None:
        gateway = netaddr.IPAddress(node.gateway)
        if gateway.version != net.version or gateway not in net.cidr:
            raise IsobuildError(
                f"{where}: gateway {node.gateway} is outside its network {net.cidr}",
                hint="the gateway must be on the node's own network; check the IP, --prefix and --gateway",
            )
        if node.gateway == node.ip:
            raise IsobuildError(f"{where}: the gateway is the node's own IP", hint="give the router's address")
    if node.mtu is not None and net.version == 6 and node.mtu < 1280:
        raise bad_value("MTU", node.mtu, "IPv6 needs an MTU of at least 1280")


def check_label(key: str, value: str) -> tuple[str, str]:
    prefix, _, name = key.rpartition("/")
    ok_prefix = not prefix or (len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix))
    if not (ok_prefix and _LABEL_NAME.match(name) and _LABEL_VALUE.match(value)):
        raise bad_value("label", f"{key}={value}", "use key=value with Kubernetes label syntax, e.g. zone=rack1")
    if prefix and any(prefix == d or prefix.endswith("." + d) for d in ("kubernetes.io", "k8s.io")):
        allowed = key in _KUBELET_ALLOWED_LABELS or any(
            prefix == p or prefix.endswith("." + p) for p in _KUBELET_ALLOWED_PREFIXES
        )
        if not allowed:
            raise bad_value(
                "label",
                f"{key}={value}",
                "the NodeRestriction admission plugin forbids a kubelet to set this label on itself; "
                "use node-restriction.kubernetes.io/... or a prefix of your own",
            )
    return key, value


def parse_label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise bad_value("label", text, "use key=value, e.g. --label zone=rack1")
    return check_label(key, value)


def check_cluster(cluster: Cluster) -> Cluster:
    """Every rule that spans more than one value. Raises on the first problem found."""
    for problem in cluster_problems(cluster):
        raise problem
    return cluster


def cluster_problems(cluster: Cluster) -> Iterator[IsobuildError]:
    """Every problem of the cluster, in cluster.yaml's order (``build`` reports them all at once)."""
    service = netaddr.IPNetwork(cluster.service_cidr)
    pods = netaddr.IPNetwork(cluster.pod_cidr)
    if _overlaps(service, pods):
        yield IsobuildError(
            f"the service CIDR {service} overlaps the pod CIDR {pods}",
            hint="pick two separate ranges in cluster.yaml (service_cidr, pod_cidr)",
        )
    if cluster.cert_days > cluster.ca_days:
        yield IsobuildError(
            f"cert_days ({cluster.cert_days}) is longer than ca_days ({cluster.ca_days})",
            hint="a certificate cannot outlive its CA: lower cert_days in cluster.yaml",
        )
    control_plane = cluster.controllers()
    if len(control_plane) > 1 and not (cluster.endpoint or cluster.vip):
        yield IsobuildError(
            f"{len(control_plane)} controllers ({', '.join(n.name for n in control_plane)}) but no API endpoint",
            hint="several controllers need one address every node and kubeconfig uses: set endpoint: "
            "(a DNS name or load balancer) or vip: (kube-vip) in cluster.yaml, or pass --endpoint/--vip",
        )
    if cluster.vip is not None:
        endpoint_host = split_host_port(cluster.endpoint)[0] if cluster.endpoint else cluster.vip
        if is_ip(endpoint_host) and endpoint_host != cluster.vip:
            yield IsobuildError(
                f"the endpoint {cluster.endpoint} is an IP other than the VIP {cluster.vip}",
                hint="kube-vip holds the VIP for the API: use the VIP (or a DNS name pointing to it) as endpoint",
            )
        for net, what in ((service, "service"), (pods, "pod")):
            if netaddr.IPAddress(cluster.vip) in net:
                yield IsobuildError(
                    f"the VIP {cluster.vip} is inside the {what} CIDR {net}",
                    hint="pick an unused address on the controllers' network",
                )
    names: set[str] = set()
    ips: dict[str, str] = {}
    macs: dict[str, str] = {}
    controllers = {n.ip for n in control_plane}
    for node in cluster.nodes:
        if node.name in names:
            yield IsobuildError(f"node name {node.name!r} is used twice", hint="node names must be unique")
        names.add(node.name)
        if node.ip in ips:
            yield IsobuildError(
                f"IP {node.ip} of node {node.name!r} is already used by node {ips[node.ip]!r}",
                hint="every node needs its own IP; to move a node, run isobuild node with its name and new IP",
            )
        ips.setdefault(node.ip, node.name)
        if node.ip == cluster.vip:
            yield IsobuildError(
                f"IP {node.ip} of node {node.name!r} is the cluster's VIP",
                hint="the VIP must be an unused address that kube-vip moves between controllers",
            )
        if node.mac is not None:
            if node.mac in macs:
                yield IsobuildError(
                    f"MAC {node.mac} of node {node.name!r} is already used by node {macs[node.mac]!r}",
                    hint="every NIC has its own MAC; check --mac",
                )
            macs.setdefault(node.mac, node.name)
        try:
            check_node_network(node, cluster)
        except IsobuildError as exc:
            yield exc
        for net, what in ((service, "service"), (pods, "pod")):
            if netaddr.IPAddress(node.ip) in net:
                yield IsobuildError(
                    f"IP {node.ip} of node {node.name!r} is inside the {what} CIDR {net}",
                    hint=f"node IPs must lie outside service_cidr and pod_cidr; change the IP or {what}_cidr",
                )
        if node.master is not None and node.master not in controllers:
            yield IsobuildError(
                f"--master {node.master} of node {node.name!r} is not a controller of this cluster",
                hint="known controllers: " + (", ".join(sorted(controllers)) or "none; add one without --master"),
            )
    if cluster.nodes and not control_plane and not any(n.master for n in cluster.nodes):
        yield IsobuildError(
            "cluster.yaml lists nodes but no controller", hint="add a node with role: controller for the others to join"
        )


def cluster_warnings(cluster: Cluster) -> list[str]:
    """Legal but doubtful: said on stderr, never refused."""
    count = len(cluster.controllers())
    if count in (2, 4, 6):
        return [
            f"{count} controllers: etcd needs {count // 2 + 1} of them up, so it survives {(count - 1) // 2} "
            f"failure(s), as {count - 1} would; an odd number (3, 5) is the usual choice"
        ]
    return []


def _overlaps(a: netaddr.IPNetwork, b: netaddr.IPNetwork) -> bool:
    return bool(a.version == b.version and a.first <= b.last and b.first <= a.last)


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """Keep the first of each value, in order."""
    return tuple(dict.fromkeys(values))


def merged_ssh_keys(cluster: Cluster, node: Node) -> list[str]:
    return list(unique([*cluster.ssh_keys, *node.ssh_keys]))


def sorted_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return dict(sorted(labels.items()))


def check_sans(values: Sequence[str]) -> tuple[str, ...]:
    return unique(check_san(v) for v in values)
