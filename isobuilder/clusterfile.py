"""cluster.yaml: the source of truth, written for humans (commented, stable key order). Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml

from isobuilder import model
from isobuilder.errors import IsobuildError
from isobuilder.model import Cluster, Format, KeyType, Media, Node, Role

T = TypeVar("T")
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_HEADER = """\
# isobuild cluster settings: the source of truth for every node folder in this inventory.
# Edit by hand if you like, then re-run `isobuild node NAME IP ...` for the nodes you changed.
# The CA in ssl/ belongs to this file: never delete one without the other.
"""

# key -> comment shown above it; the order is the file's order.
_SETTINGS: dict[str, str] = {
    "name": "Cluster name: kubeconfig cluster/context names and kubeadm's clusterName.",
    "cluster_id": "Stable identity of this cluster; node UUIDs in meta_data.json derive from it.",
    "kubernetes_version": "Pinned kubelet/kubeadm/kubectl version (pkgs.k8s.io).",
    "endpoint": "API endpoint HOST[:PORT] for every kubeconfig; empty: the VIP, else the first controller's IP.",
    "vip": "Virtual IP kube-vip keeps on one healthy controller (ARP); empty: none (bring a DNS name or LB).",
    "service_cidr": "Service network (kubeadm default); its first IP is the 'kubernetes' Service.",
    "pod_cidr": "Pod network, handed to flannel.",
    "domain": "Cluster DNS domain.",
    "key_type": "Key algorithm for new keys: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096.",
    "ca_days": "Lifetime of the CAs, in days.",
    "cert_days": "Lifetime of leaf certificates, in days (isobuild certs renew re-issues them).",
    "external_ca": "true: CA keys never leave ssl/ (kubeadm external-CA mode; the cluster signs no CSRs).",
    "ssh_keys": "SSH public keys installed on every node.",
    "flannel_version": "Pinned flannel release (CNI).",
    "ingress_nginx_version": "Pinned ingress-nginx controller release for edge routers.",
    "containerd_version": "containerd.io package version (prefix) from Docker's repository, e.g. 2. or 2.1.4.",
    "format": "First-boot config: cloud-config (cloud-init) or ignition (Flatcar); a node may override it.",
    "media": "Drive: config-2 (OpenStack config drive) or nocloud (label cidata); a node may override it.",
    "cni_plugins_version": "Pinned CNI plugins release for ignition nodes (containernetworking/plugins).",
    "flatcar_channel": "Flatcar channel install.sh installs on ignition nodes: stable, beta, alpha or lts.",
    "flatcar_version": "Flatcar release install.sh installs (flatcar-install -V): current or e.g. 4459.2.1.",
    "kube_vip_version": "Pinned kube-vip release (ghcr.io/kube-vip/kube-vip) when vip is set.",
}
_NODE_KEYS = (
    "name", "ip", "role", "master", "labels", "sans", "ssh_keys", "format", "media",
    "mac", "prefix", "gateway", "dns", "mtu",
)  # fmt: skip


def dump(cluster: Cluster) -> bytes:
    parts = [_HEADER]
    values = settings(cluster)
    for key, comment in _SETTINGS.items():
        parts.append(f"\n# {comment}\n")
        parts.append(_dump({key: values[key]}))
    parts.append(
        "\n# Nodes: one mapping each (name, ip, role: controller|worker|edge, and options: master, labels,"
        "\n# sans, ssh_keys, format, media; static networking: mac, prefix, gateway, dns, mtu).\n"
    )
    nodes = [node_mapping(n) for n in cluster.nodes]
    parts.append(_dump({"nodes": nodes}))
    return "".join(parts).encode()


def _dump(value: Any) -> str:
    return yaml.dump(value, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, width=1 << 30)


def settings(cluster: Cluster) -> dict[str, Any]:
    return {
        "name": cluster.name,
        "cluster_id": cluster.cluster_id,
        "kubernetes_version": cluster.kubernetes_version,
        "endpoint": cluster.endpoint or "",
        "vip": cluster.vip or "",
        "service_cidr": cluster.service_cidr,
        "pod_cidr": cluster.pod_cidr,
        "domain": cluster.domain,
        "key_type": cluster.key_type.value,
        "ca_days": cluster.ca_days,
        "cert_days": cluster.cert_days,
        "external_ca": cluster.external_ca,
        "ssh_keys": list(cluster.ssh_keys),
        "flannel_version": cluster.flannel_version,
        "ingress_nginx_version": cluster.ingress_nginx_version,
        "containerd_version": cluster.containerd_version,
        "format": cluster.format.value,
        "media": cluster.media.value,
        "cni_plugins_version": cluster.cni_plugins_version,
        "flatcar_channel": cluster.flatcar_channel,
        "flatcar_version": cluster.flatcar_version,
        "kube_vip_version": cluster.kube_vip_version,
    }


def node_mapping(node: Node) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": node.name, "ip": node.ip, "role": node.role.value}
    if node.master:
        entry["master"] = node.master
    if node.labels:
        entry["labels"] = dict(sorted(node.labels.items()))
    if node.sans:
        entry["sans"] = list(node.sans)
    if node.ssh_keys:
        entry["ssh_keys"] = list(node.ssh_keys)
    optional = {
        "format": node.format and node.format.value,
        "media": node.media and node.media.value,
        "mac": node.mac,
        "prefix": node.prefix,
        "gateway": node.gateway,
        "dns": list(node.dns),
        "mtu": node.mtu,
    }
    entry.update({k: v for k, v in optional.items() if v})
    return entry


# -- parsing ---------------------------------------------------------------------------------
_FIX = "fix cluster.yaml by hand (see the comments in it), or restore it from a backup"


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """`` at line N`` for a YAML error that knows where it is, else nothing."""
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}" if mark is not None else ""


def parse(text: bytes) -> Cluster:
    cluster, problems = parse_collecting(text)
    if problems:
        raise problems[0]
    return cluster


def parse_collecting(text: bytes) -> tuple[Cluster, list[IsobuildError]]:
    """cluster.yaml with every node problem found (a bad entry is left out of the cluster);
    a bad cluster setting raises at once."""
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise IsobuildError(f"cluster.yaml is not valid YAML{yaml_error_line(exc)}", hint=_FIX) from None
    except UnicodeDecodeError:
        raise IsobuildError("cluster.yaml is not UTF-8 text", hint=_FIX) from None
    if not isinstance(data, dict):
        raise IsobuildError("cluster.yaml is not a mapping of settings", hint=_FIX)
    unknown = sorted(set(data) - set(_SETTINGS) - {"nodes"}, key=str)
    if unknown:
        raise IsobuildError(f"cluster.yaml: unknown setting {unknown[0]!r}", hint="known: " + ", ".join(_SETTINGS))
    for required in ("name", "cluster_id"):
        if required not in data:
            raise IsobuildError(f"cluster.yaml: {required!r} is missing", hint=_FIX)
    get = _Getter(data, "cluster.yaml")
    endpoint = get("endpoint", str, "")
    vip = get("vip", str, "")
    cluster = Cluster(
        name=get("name", str, None, model.check_name),
        cluster_id=get("cluster_id", str, None, _check_uuid),
        kubernetes_version=get("kubernetes_version", str, model.DEFAULT_KUBERNETES_VERSION, _check_version),
        endpoint=_wrap(lambda: model.check_endpoint(endpoint), "cluster.yaml: endpoint") if endpoint else None,
        service_cidr=get(
            "service_cidr", str, model.DEFAULT_SERVICE_CIDR, lambda v: model.check_cidr(v, "service_cidr")
        ),
        pod_cidr=get("pod_cidr", str, model.DEFAULT_POD_CIDR, lambda v: model.check_cidr(v, "pod_cidr")),
        domain=get("domain", str, model.DEFAULT_DOMAIN, model.check_domain),
        key_type=get("key_type", str, KeyType.ECDSA_P256.value, _enum(KeyType, "key_type")),
        ca_days=get("ca_days", int, 3650, _positive),
        cert_days=get("cert_days", int, 365, _positive),
        external_ca=get("external_ca", bool, False),
        vip=_wrap(lambda: model.check_ip(vip, "VIP"), "cluster.yaml: vip") if vip else None,
        kube_vip_version=get(
            "kube_vip_version",
            str,
            model.DEFAULT_KUBE_VIP_VERSION,
            lambda v: model.check_addon_version(v, "kube_vip_version"),
        ),
        ssh_keys=tuple(get("ssh_keys", list, [], lambda v: [model.check_ssh_key(k) for k in v])),
        flannel_version=get(
            "flannel_version",
            str,
            model.DEFAULT_FLANNEL_VERSION,
            lambda v: model.check_addon_version(v, "flannel_version"),
        ),
        ingress_nginx_version=get(
            "ingress_nginx_version",
            str,
            model.DEFAULT_INGRESS_NGINX_VERSION,
            lambda v: model.check_addon_version(v, "ingress_nginx_version"),
        ),
        containerd_version=get(
            "containerd_version",
            str,
            model.DEFAULT_CONTAINERD_VERSION,
            lambda v: model.check_package_version(v, "containerd_version"),
        ),
        format=get("format", str, Format.CLOUD_CONFIG.value, _enum(Format, "format")),
        media=get("media", str, Media.CONFIG_2.value, _enum(Media, "media")),
        cni_plugins_version=get(
            "cni_plugins_version",
            str,
            model.DEFAULT_CNI_PLUGINS_VERSION,
            lambda v: model.check_addon_version(v, "cni_plugins_version"),
        ),
        flatcar_channel=get("flatcar_channel", str, model.DEFAULT_FLATCAR_CHANNEL, model.check_flatcar_channel),
        flatcar_version=get("flatcar_version", str, model.DEFAULT_FLATCAR_VERSION, model.check_flatcar_version),
    )
    nodes, problems = [], []
    for i, entry in enumerate(get("nodes", list, [])):
        try:
            nodes.append(_parse_node(entry, i))
        except IsobuildError as exc:
            problems.append(exc)
    cluster = dataclasses.replace(cluster, nodes=tuple(nodes))
    return cluster, problems + list(model.cluster_problems(cluster))


def _parse_node(entry: object, index: int) -> Node:
    where = f"cluster.yaml: nodes[{index}]"
    if not isinstance(entry, dict):
        raise IsobuildError(f"{where} is not a mapping", hint="each node is a mapping with name, ip and role")
    unknown = sorted(set(entry) - set(_NODE_KEYS), key=str)
    if unknown:
        raise IsobuildError(f"{where}: unknown key {unknown[0]!r}", hint="known: " + ", ".join(_NODE_KEYS))
    for required in ("name", "ip", "role"):
        if required not in entry:
            raise IsobuildError(f"{where}: {required!r} is missing", hint=_FIX)
    if isinstance(entry.get("mac"), int):  # YAML 1.1 reads an unquoted 52:54:00:12:34:56 as a base-60 number
        raise IsobuildError(f"{where}: 'mac' must be quoted", hint="write it as mac: '52:54:00:12:34:56'")
    get = _Getter(entry, where)
    labels = get("labels", dict, {})
    ip = get("ip", str, None, model.check_ip)

    def has(key: str) -> bool:
        return entry.get(key) is not None

    return Node(
        name=get("name", str, None, model.check_name),
        ip=ip,
        role=get("role", str, None, _enum(Role, "role")),
        master=get("master", str, None, lambda v: model.check_ip(v, "master IP")) if entry.get("master") else None,
        labels=_wrap(lambda: dict(model.check_label(_text(k), _text(v)) for k, v in labels.items()), where),
        sans=get("sans", list, [], lambda v: model.check_sans([_text(s) for s in v])),
        ssh_keys=tuple(get("ssh_keys", list, [], lambda v: [model.check_ssh_key(k) for k in v])),
        format=get("format", str, None, _enum(Format, "format")) if entry.get("format") else None,
        media=get("media", str, None, _enum(Media, "media")) if entry.get("media") else None,
        mac=get("mac", str, None, model.check_mac) if entry.get("mac") else None,
        prefix=get("prefix", int, None, lambda v: model.check_prefix(v, ip)) if has("prefix") else None,
        gateway=get("gateway", str, None, lambda v: model.check_ip(v, "gateway")) if entry.get("gateway") else None,
        dns=tuple(get("dns", list, [], lambda v: model.unique(model.check_ip(_text(d), "DNS server") for d in v))),
        mtu=get("mtu", int, None, model.check_mtu) if has("mtu") else None,
    )


def _text(value: object) -> str:
    """YAML turns `yes`, `1.5` or `null` into other types; a label or SAN must be written as text."""
    if not isinstance(value, str):
        raise IsobuildError(f"{value!r} is not a string", hint="quote it in cluster.yaml, e.g. 'yes'")
    return value


_KINDS = {int: "a whole number", str: "a string", list: "a list", dict: "a mapping", bool: "true or false"}


class _Getter:
    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def __call__(self, key: str, kind: type, default: Any, check: Callable[[Any], Any] | None = None) -> Any:
        value = self.data.get(key, default)
        if value is None:
            value = default
        if value is None or not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise IsobuildError(f"{self.where}: {key!r} must be {_KINDS[kind]}", hint=_FIX)
        return _wrap(lambda: check(value), f"{self.where}: {key}") if check else value


def _wrap(fn: Callable[[], T], where: str | None) -> T:
    try:
        return fn()
    except IsobuildError as exc:
        if where:
            raise IsobuildError(f"{where}: {exc.message}", hint=exc.hint) from None
        raise


def _enum(kind: type[Any], key: str) -> Callable[[str], Any]:
    def check(value: str) -> Any:
        try:
            return kind(value)
        except ValueError:
            raise IsobuildError(
                f"{value!r} is not a {key}", hint="use one of " + ", ".join(str(v) for v in kind)
            ) from None

    return check


def _positive(value: int) -> int:
    if not 0 < value <= 36500:
        raise IsobuildError(f"{value} is not a number of days from 1 to 36500", hint=_FIX)
    return value


def _check_uuid(value: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise IsobuildError(
            f"{value!r} is not a UUID", hint="restore cluster_id from a backup; it names the nodes"
        ) from None


def _check_version(value: str) -> str:
    model.parse_kubernetes_version(value)
    return value.removeprefix("v")
