"""The rules every value and every cluster obeys. Pure.

Value checks take what the user wrote (from cluster.yaml or a flag) and return it in one
canonical form, or raise an :class:`IsobuildError` that says what is wrong and how to fix it;
the caller (``schema``) prefixes where the value came from. Every pattern is matched whole
(``fullmatch``): a trailing newline, carriage return or NUL never passes. Cross-node rules
(``cluster_problems``) name a field through a :class:`Source`: ``cluster.yaml: nodes[1].gateway``
or ``--gateway``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

from isobuilder.errors import IsobuildError
from isobuilder.model import (
    DNS_SUBDOMAIN,
    EMPTY,
    Cluster,
    Node,
    Role,
    bad_value,
    bracket,
    is_ip,
    is_ipv6,
    is_public,
    normal_ip,
    split_host_port,
    unique,
)

MIN_KUBERNETES = (1, 31)  # kubeadm's v1beta4 config
FLATCAR_CHANNELS = ("stable", "beta", "alpha", "lts")
_K8S_VERSION = re.compile(r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")  # ASCII digits, as release tags
_ADDON_VERSION = re.compile(r"v\d+\.\d+\.\d+")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}")
_SSH_KEY = re.compile(
    r"(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|"
    r"sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\x00-\x1f\x7f]*)?"
)
_MAX_SSH_KEY = 16384  # an RSA-16384 key is ~2.8 KB of base64; anything far past that is not a key
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


def check_endpoint(value: str) -> str:
    """``value`` in one canonical form, ``host:port`` or ``[v6]:port``, so equal endpoints compare equal."""
    host, port = split_host_port(value)
    if not is_ip(host):
        # A resolver reads an all-numeric name (010.010.010.010, 1.2.3, 0x0a.0.0.1) as an address
        # without asking /etc/hosts or DNS, and localhost is every machine itself.
        last = host.rsplit(".", 1)[-1]
        if (
            host == "localhost"
            or host.endswith(".localhost")
            or not re.search("[a-z]", last)
            or re.fullmatch("0x[0-9a-f]+", last)
        ):
            raise bad_value(
                "endpoint", value, "use a DNS name whose last label has a letter (api.example.com), or an IP address"
            )
    return f"{bracket(host)}:{port}"


def is_user_name(value: str) -> bool:
    """A Kubernetes user name as a certificate CN carries it (fits X.509's 64 characters)."""
    return isinstance(value, str) and bool(_USER_NAME.fullmatch(value)) and not value.endswith(":")


def is_group_name(value: str) -> bool:
    return is_user_name(value)


def check_name(name: str) -> str:
    # 52: the kubelet's certificate CN "system:node:<name>" must fit X.509's 64 characters.
    if isinstance(name, str) and is_ip(name):  # `master:` names a controller by name or IP: never both
        raise bad_value("node name", name, "a node name is not an IP address: e.g. worker1")
    if not isinstance(name, str) or len(name) > 52 or not DNS_SUBDOMAIN.fullmatch(name):
        raise bad_value(
            "node name",
            name,
            "use an RFC 1123 name of at most 52 characters: lowercase letters, digits, '-' and '.', "
            "e.g. worker1 or edge.example.com",
        )
    return name


def check_master(value: str) -> str:
    """The controller a worker joins: its name, or its IP (the form cluster.yaml once stored)."""
    try:
        return check_ip(value, "master")
    except IsobuildError:
        try:
            return check_name(value)
        except IsobuildError:
            raise bad_value("master", value, "give a controller's name or IP, e.g. --master ctrl1") from None


def check_ip(ip: str, what: str = "IP address") -> str:
    """A unicast address in canonical form. Cached: cluster.yaml names the same controller
    (``master:``) on every node."""
    if isinstance(ip, str) and isinstance(what, str):
        return _check_ip(ip, what)
    raise bad_value(what, ip, "use a plain IPv4 or IPv6 address such as 10.10.10.2")


@functools.lru_cache(maxsize=1 << 16)
def _check_ip(ip: str, what: str) -> str:
    if not is_ip(ip):
        raise bad_value(what, ip, "use a plain IPv4 or IPv6 address such as 10.10.10.2")
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise bad_value(what, ip, f"use the IPv4 address itself: {addr.ipv4_mapped}")
    if addr.is_loopback or addr.is_multicast or addr.is_link_local or addr.is_unspecified or ip == "255.255.255.255":
        raise bad_value(what, ip, "a node needs a unicast address that other machines can reach")
    return str(addr)


def check_cidr(value: str, what: str) -> str:
    if isinstance(value, str) and "," in value:
        raise bad_value(
            what,
            value,
            "isobuild builds single-stack clusters (dual-stack needs two addresses per node): give one CIDR",
        )
    if not isinstance(value, str):  # ipaddress would take a number as an address
        raise bad_value(what, value, "use CIDR notation such as 10.96.0.0/12")
    try:
        net = ipaddress.ip_network(value, strict=False)
        given = ipaddress.ip_interface(value).ip
    except (ValueError, TypeError):
        raise bad_value(what, value, "use CIDR notation such as 10.96.0.0/12") from None
    if not re.fullmatch(r"[0-9A-Fa-f.:]+/[0-9]{1,3}", value) or given != net.network_address:
        raise bad_value(what, value, f"use the network address, e.g. {net}")
    if net.num_addresses < 16:
        raise bad_value(what, value, "the network is too small for a cluster")
    return str(net)


def check_domain(value: str) -> str:
    if not isinstance(value, str) or not DNS_SUBDOMAIN.fullmatch(value):
        raise bad_value("cluster domain", value, "use a DNS domain such as cluster.local")
    return value


def parse_kubernetes_version(value: str) -> tuple[int, int, int]:
    match = _K8S_VERSION.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise bad_value("Kubernetes version", value, "use MAJOR.MINOR.PATCH, e.g. 1.37.1")
    major, minor, patch = (int(g) for g in match.groups())
    if (major, minor) < MIN_KUBERNETES:
        raise bad_value("Kubernetes version", value, "isobuild targets kubeadm's v1beta4 config: use 1.31 or newer")
    return major, minor, patch


def check_addon_version(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ADDON_VERSION.fullmatch(value):
        raise bad_value(what, value, "use a release tag such as v1.2.3")
    return value


def check_package_version(value: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9][0-9A-Za-z.+~:-]*", value):
        raise bad_value(what, value, "use a Debian package version or its prefix, e.g. 2. or 2.1.4")
    return value


def check_ssh_key(key: str) -> str:
    key = key.strip(" \t") if isinstance(key, str) else key
    if not isinstance(key, str) or len(key) > _MAX_SSH_KEY or not _SSH_KEY.fullmatch(key):
        # The value is not echoed: it may be any file the user pointed at, a private key included.
        raise IsobuildError(
            "invalid SSH public key", hint="give an OpenSSH public key file (one 'ssh-ed25519 AAAA... comment' line)"
        )
    return key


def check_san(value: str) -> str:
    if isinstance(value, str) and is_ip(value):
        return normal_ip(value)
    if not isinstance(value, str) or len(value) > 253 or not DNS_SUBDOMAIN.fullmatch(value.removeprefix("*.")):
        raise bad_value("SAN", value, "use a DNS name (e.g. api.example.com) or an IP address")
    if not re.search("[a-z]", value.rsplit(".", 1)[-1]):  # 10.0.0.256, 1.2.3: a mistyped IP, not a name
        raise bad_value("SAN", value, "not an IP address, and a DNS name's last label has a letter")
    return value


def check_mac(value: str) -> str:
    """A unicast Ethernet MAC in one canonical form (lowercase, colons), as Linux and cloud-init show it."""
    import netaddr  # only here: its import costs every command ~25 ms of start-up

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
    bits = 128 if is_ipv6(ip) else 32
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


class Source(NamedTuple):
    """Where the values being checked came from: names a field as the user wrote it.

    ``flags`` maps node keys to the command-line flags given for node ``flagged`` (the node
    ``isobuild node`` adds); every other value comes from cluster.yaml."""

    cluster: Cluster
    flagged: str | None = None
    flags: Mapping[str, str] = EMPTY

    def name(self, node: Node, key: str) -> str:
        if node.name == self.flagged and key in self.flags:
            return self.flags[key]
        index = next((i for i, n in enumerate(self.cluster.nodes) if n.name == node.name), None)
        return f"cluster.yaml: nodes[{index}].{key}" if index is not None else f"node {node.name!r}: {key}"

    def fix(self, node: Node, key: str, example: object) -> str:
        """How the user sets ``key``: ``--prefix 24``, or ``prefix: 24`` in the node's entry."""
        if node.name == self.flagged:
            flag = self.flags.get(key) or f"--{key.replace('_', '-')}"
            return f"{flag} {example}"
        return f"{key}: {example} in the entry of node {node.name!r} in cluster.yaml"


def node_network_problems(node: Node, cluster: Cluster, source: Source) -> Iterator[IsobuildError]:
    """Static networking of one node: complete, inside its own network, clear of the cluster's."""
    where = f"node {node.name!r}"
    extras = [key for key in ("gateway", "dns", "mtu") if getattr(node, key)]
    if node.prefix is None:
        if extras:
            yield IsobuildError(
                f"{source.name(node, extras[0])} needs a static address with its prefix length",
                hint=f"give {source.fix(node, 'prefix', 24)} (or the IP as IP/PREFIX, e.g. {node.ip}/24)",
            )
        return
    if node.mac is None:
        yield IsobuildError(
            f"{where}: static networking needs the MAC of the NIC it configures",
            hint=f"give {source.fix(node, 'mac', chr(39) + '52:54:00:12:34:56' + chr(39))} "
            "(ip link show on the machine tells it)",
        )
        return
    try:
        check_prefix(node.prefix, node.ip)  # a kept prefix may not fit a new address's family
    except IsobuildError as exc:
        yield IsobuildError(f"{source.name(node, 'prefix')}: {exc.message}", hint=exc.hint)
        return
    net = ipaddress.ip_interface(f"{node.ip}/{node.prefix}").network
    if net.version == 4 and node.prefix < 31 and ipaddress.ip_address(node.ip) in (net[0], net[-1]):
        yield IsobuildError(
            f"{where}: {node.ip} is the network or broadcast address of {net}",
            hint="pick a host address of the network, or another prefix length",
        )
    for cidr, what in ((cluster.service_cidr, "service"), (cluster.pod_cidr, "pod")):
        if _overlaps(net, ipaddress.ip_network(cidr)):
            yield IsobuildError(
                f"{where}: its network {net} overlaps the {what} CIDR {cidr}",
                hint=f"pods and services would be unreachable: change the prefix or {what}_cidr in cluster.yaml",
            )
    if node.gateway is not None:
        gateway = ipaddress.ip_address(node.gateway)
        if gateway.version != net.version or gateway not in net:
            yield IsobuildError(
                f"{source.name(node, 'gateway')}: {node.gateway} is outside the node's network {net}",
                hint="the gateway must be on the node's own network; check its IP, prefix and gateway",
            )
        elif node.gateway == node.ip:
            yield IsobuildError(
                f"{source.name(node, 'gateway')}: it is the node's own IP", hint="give the router's address"
            )
    if node.mtu is not None and net.version == 6 and node.mtu < 1280:
        yield IsobuildError(
            f"{source.name(node, 'mtu')}: {node.mtu} is too small", hint="IPv6 needs an MTU of at least 1280"
        )


def check_label(key: str, value: str) -> tuple[str, str]:
    prefix, slash, name = key.rpartition("/")
    ok_prefix = not slash or (0 < len(prefix) <= 253 and DNS_SUBDOMAIN.fullmatch(prefix))  # "/k": no
    if not (ok_prefix and _LABEL_NAME.fullmatch(name) and _LABEL_VALUE.fullmatch(value)):
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


def check_cluster(cluster: Cluster, source: Source | None = None, what: str = "cluster.yaml") -> Cluster:
    """Every rule that spans more than one value; raises one error listing every problem."""
    raise_all(list(cluster_problems(cluster, source or Source(cluster))), what)
    return cluster


def raise_all(problems: Sequence[IsobuildError], what: str) -> None:
    """One problem: itself. Several: one error whose lines are every problem (a user fixes them
    in one go)."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise IsobuildError(
            f"{len(problems)} problems in {what}; nothing was written",
            hint=problems[0].hint,
            details=tuple(p.message for p in problems),
        )


def cluster_problems(cluster: Cluster, source: Source) -> Iterator[IsobuildError]:
    """Every problem of the cluster, in cluster.yaml's order."""
    yield from _settings_problems(cluster)
    yield from _node_problems(cluster, source)
    if cluster.nodes and not cluster.controllers() and not any(n.master for n in cluster.nodes):
        yield IsobuildError(
            "cluster.yaml lists nodes but no controller", hint="add a node with role: controller for the others to join"
        )


def _settings_problems(cluster: Cluster) -> Iterator[IsobuildError]:
    service = ipaddress.ip_network(cluster.service_cidr)
    pods = ipaddress.ip_network(cluster.pod_cidr)
    if service.version != pods.version:
        yield IsobuildError(
            f"the service CIDR {service} and the pod CIDR {pods} are of different IP families",
            hint="isobuild builds single-stack clusters (dual-stack needs two addresses per node): "
            "give service_cidr and pod_cidr of one family",
        )
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
    if cluster.bootstrap_controller and cluster.bootstrap_controller not in {n.name for n in control_plane}:
        yield IsobuildError(
            f"cluster.yaml: bootstrap_controller: {cluster.bootstrap_controller!r} is not a controller of this cluster",
            hint="name one of the controllers ("
            + (", ".join(n.name for n in control_plane) or "none yet")
            + "), or leave it empty for the first",
        )
    if cluster.vip is not None:
        endpoint_host = split_host_port(cluster.endpoint)[0] if cluster.endpoint else cluster.vip
        if is_ip(endpoint_host) and endpoint_host != cluster.vip:
            yield IsobuildError(
                f"the endpoint {cluster.endpoint} is an IP other than the VIP {cluster.vip}",
                hint="kube-vip holds the VIP for the API: use the VIP (or a DNS name pointing to it) as endpoint",
            )
        for net, what in ((service, "service"), (pods, "pod")):
            if ipaddress.ip_address(cluster.vip) in net:
                yield IsobuildError(
                    f"the VIP {cluster.vip} is inside the {what} CIDR {net}",
                    hint="pick an unused address on the controllers' network",
                )


def _node_problems(cluster: Cluster, source: Source) -> Iterator[IsobuildError]:
    service = ipaddress.ip_network(cluster.service_cidr)
    pods = ipaddress.ip_network(cluster.pod_cidr)
    control_plane = cluster.controllers()
    names: set[str] = set()
    ips: dict[str, str] = {}
    macs: dict[str, str] = {}
    for node in cluster.nodes:
        yield from node_network_problems(node, cluster, source)
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
        address = ipaddress.ip_address(node.ip)
        if address.version != pods.version:
            yield IsobuildError(
                f"IP {node.ip} of node {node.name!r} is IPv{address.version}, the pod network {pods} IPv{pods.version}",
                hint="a single-stack cluster has one family: the kubelet's node IP and flannel's network must match "
                "(set pod_cidr and service_cidr of the nodes' family in cluster.yaml)",
            )
        for net, what in ((service, "service"), (pods, "pod")):
            if address in net:
                yield IsobuildError(
                    f"IP {node.ip} of node {node.name!r} is inside the {what} CIDR {net}",
                    hint=f"node IPs must lie outside service_cidr and pod_cidr; change the IP or {what}_cidr",
                )
        yield from _public_ip_problems(node, cluster, source, ips)
        if node.master is not None and cluster.controller(node.master) is None:
            yield IsobuildError(
                f"{source.name(node, 'master')}: {node.master} is not a controller of this cluster",
                hint="known controllers: "
                + (", ".join(f"{n.name} ({n.ip})" for n in control_plane) or "none; add one without --master"),
            )


def _public_ip_problems(node: Node, cluster: Cluster, source: Source, ips: dict[str, str]) -> Iterator[IsobuildError]:
    """An edge router's public address beside its private one: the kubelet, flannel and its
    certificates use ``ip``, the internet reaches ``public_ip`` (the ingress, and nothing else:
    the firewall). ``ips``: the addresses seen so far, and whose; this one is added. One
    problem at most: the first that applies."""
    if node.public_ip is None:
        return
    where = source.name(node, "public_ip")
    address = ipaddress.ip_address(node.public_ip)
    inside = [
        what
        for what, net in (("service", cluster.service_cidr), ("pod", cluster.pod_cidr))
        if address in ipaddress.ip_network(net)
    ]
    if node.role is not Role.EDGE:
        yield IsobuildError(
            f"{where}: only an edge router has a public address",
            hint=f"make the node an edge router ({source.fix(node, 'role', 'edge')}), or leave public_ip out",
        )
    elif node.public_ip == node.ip:
        yield IsobuildError(
            f"{where}: it is the node's own ip",
            hint="an edge router on a public address alone needs no public_ip; with one, ip is its private address",
        )
    elif node.public_ip in ips or node.public_ip == cluster.vip:
        owner = "the VIP" if node.public_ip == cluster.vip else f"node {ips[node.public_ip]!r}"
        yield IsobuildError(f"{where}: {node.public_ip} is already used by {owner}", hint="give the node its own")
    elif not is_public(node.public_ip):
        yield IsobuildError(
            f"{where}: {node.public_ip} is not an address on the internet",
            hint="public_ip is the address the internet reaches; the private one is the node's ip",
        )
    elif inside:
        yield IsobuildError(
            f"{where}: {node.public_ip} is inside the {inside[0]} CIDR",
            hint=f"an address there is the cluster's own; change public_ip or {inside[0]}_cidr",
        )
    elif is_public(node.ip):
        yield IsobuildError(
            f"{where}: the node's ip {node.ip} is public too",
            hint="with public_ip, ip is the node's private address (cluster traffic); "
            "an edge router on a public address alone needs no public_ip",
        )
    ips.setdefault(node.public_ip, node.name)


def cluster_warnings(cluster: Cluster) -> list[str]:
    """Legal but doubtful: said on stderr, never refused."""
    count = len(cluster.controllers())
    if count in (2, 4, 6):
        return [
            f"{count} controllers: etcd needs {count // 2 + 1} of them up, so it survives {(count - 1) // 2} "
            f"failure(s), as {count - 1} would; an odd number (3, 5) is the usual choice"
        ]
    return []


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _overlaps(a: _Network, b: _Network) -> bool:
    return a.version == b.version and a.overlaps(b)


def check_sans(values: Sequence[str]) -> tuple[str, ...]:
    return unique(check_san(v) for v in values)
