"""Every cluster setting and node field, declared once.

One :class:`Field` per key says what YAML type it takes, how its value is checked (and turned
into the model's), its default, the comment cluster.yaml shows above it, its command-line flag
and help. Everything else is derived from these two tables: cluster.yaml parsing with located
errors and its commented dump (``clusterfile``), new clusters' defaults, the merge of
command-line options (``plan``) and the flags of ``init`` and ``node`` (``cli``). Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from isobuilder import checks, customchecks, patches
from isobuilder.errors import IsobuildError
from isobuilder.model import Cluster, Cni, Format, Ingress, KeyType, Media, Node, Role, shown, unique

FIX_HINT = "fix cluster.yaml by hand (see the comments in it), or restore it from a backup"
_KINDS = {int: "a whole number", str: "a string", list: "a list", dict: "a mapping", bool: "true or false"}


def _same(value: Any) -> Any:
    return value


class Field(NamedTuple):
    """One cluster setting or node field: its YAML kind, check, default, comment and flag."""

    key: str  # cluster.yaml's key and the model's attribute
    kind: type  # what YAML holds: str, int, bool, list or dict
    check: Callable[[Any], Any] = _same  # a value of ``kind`` -> the model's value; raises IsobuildError
    default: Any = None  # the model's value when the key is absent (None: unset)
    comment: str = ""  # shown above the key in cluster.yaml
    flag: str = ""  # the command-line flag; empty: cluster.yaml only
    help: str = ""  # the flag's help (the default is appended)
    dump: Callable[[Any], Any] = _same  # the model's value -> what cluster.yaml holds
    choices: type[enum.StrEnum] | None = None  # a closed set: the flag takes its values
    later: bool = False  # a setting a later `node` may still give while cluster.yaml has none
    required: bool = False
    kind_hint: str = ""  # a better hint when the YAML type is wrong
    from_flag: Callable[[Any], Any] | None = None  # the flag's value -> what cluster.yaml would hold

    def parse(self, value: Any, where: str) -> Any:
        """``value`` as the model holds it; errors start with ``where`` (``cluster.yaml: vip``, ``--vip``)."""
        if value is None:
            return self.default
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise IsobuildError(f"{where} must be {_KINDS[self.kind]}", hint=self.kind_hint or FIX_HINT)
        try:
            return self.check(value)
        except IsobuildError as exc:
            raise IsobuildError(f"{where}: {exc.message}", hint=exc.hint, details=exc.details) from None

    def flag_help(self) -> str:
        if self.default in (None, "", (), False, {}):
            return self.help
        default = self.dump(self.default)
        return f"{self.help} [{default}]"


# -- value converters -------------------------------------------------------------------------
def _enum(kind: type[enum.StrEnum]) -> Callable[[str], Any]:
    def check(value: str) -> Any:
        try:
            return kind(value)
        except ValueError:
            raise IsobuildError(
                f"{shown(value)} is not one of {', '.join(kind)}", hint="use one of " + ", ".join(kind)
            ) from None

    return check


def _value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _optional(value: Any) -> Any:
    return "" if value is None else value


def _text_list(check: Callable[[str], str]) -> Callable[[list[Any]], tuple[str, ...]]:
    """A YAML list of strings, each checked (YAML reads `yes`, `1.5` or `null` as other types)."""

    def parse(values: list[Any]) -> tuple[str, ...]:
        return unique(check(_text(v)) for v in values)

    return parse


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise IsobuildError(f"{shown(value)} is not a string", hint="quote it in cluster.yaml, e.g. 'yes'")
    return value


def _optional_text(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """An empty string means unset (cluster.yaml writes ``endpoint: ''``)."""
    return lambda value: check(value) if value else None


def _days(value: int) -> int:
    if not 0 < value <= 36500:
        raise IsobuildError(f"{shown(value)} is not a number of days from 1 to 36500", hint="e.g. 365")
    return value


def _version(value: str) -> str:
    checks.parse_kubernetes_version(value)
    return value.removeprefix("v")


def _labels(values: Mapping[Any, Any]) -> dict[str, str]:
    return dict(sorted(checks.check_label(_text(k), _text(v)) for k, v in values.items()))


def labels_from_flags(texts: Iterable[str]) -> dict[str, str]:
    """``--label k=v`` (repeatable) as cluster.yaml's mapping."""
    pairs = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep:
            raise IsobuildError(f"--label: {shown(text)} is not key=value", hint="e.g. --label zone=rack1")
        pairs[key] = value
    return pairs


def _uuid(value: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise IsobuildError(
            f"{shown(value)} is not a UUID", hint="restore cluster_id from a backup; it names the nodes"
        ) from None


def _addon(key: str) -> Callable[[str], str]:
    return lambda v: checks.check_addon_version(v, key)


def _ip(what: str) -> Callable[[str], str]:
    return lambda v: checks.check_ip(v, what)


def _cidr(what: str) -> Callable[[str], str]:
    return lambda v: checks.check_cidr(v, what)


def _list_dump(value: tuple[str, ...]) -> list[str]:
    return list(value)


def _extra_args(component: str) -> Callable[[list[Any]], tuple[tuple[str, str], ...]]:
    return lambda values: customchecks.check_extra_args(values, component)


def _args_dump(value: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": name, "value": text} for name, text in value]


def _args_field(key: str, component: str, comment: str) -> Field:
    return Field(key, list, _extra_args(component), (), comment=comment, dump=_args_dump,
                 kind_hint="a list of name/value mappings, e.g. - {name: max-pods, value: '200'}")  # fmt: skip


# -- the tables -------------------------------------------------------------------------------
_PATCH_HINT = "a mapping, e.g. cloud_config_patch: {packages: [htop]}"

# Pinned releases a new cluster starts with; cluster.yaml keeps what a cluster uses.
SETTINGS: tuple[Field, ...] = (
    Field("name", str, checks.check_name, required=True, flag="--name",
          comment="Cluster name: kubeconfig cluster/context names and kubeadm's clusterName.",
          help="Cluster name (default: k8s-<id>)."),
    Field("cluster_id", str, _uuid, required=True,
          comment="Stable identity of this cluster; node UUIDs in meta_data.json derive from it."),
    Field("kubernetes_version", str, _version, "1.37.1", flag="--k8s-version",
          comment="Pinned kubelet/kubeadm/kubectl version (pkgs.k8s.io).", help="Kubernetes version to pin."),
    Field("endpoint", str, _optional_text(checks.check_endpoint), None, flag="--endpoint", dump=_optional, later=True,
          comment="API endpoint HOST[:PORT] for every kubeconfig; empty: the VIP, else the first controller's IP.",
          help="API endpoint HOST[:PORT] (default: the VIP, else the first controller's IP)."),
    Field("vip", str, _optional_text(_ip("VIP")), None, flag="--vip", dump=_optional, later=True,
          comment="Virtual IP kube-vip keeps on one healthy controller (ARP); empty: none (bring a DNS name or LB).",
          help="Virtual IP for the API, held by one controller at a time (kube-vip)."),
    Field("hosts_entry", bool, default=None,
          comment="true: every node's /etc/hosts maps the endpoint's name to the VIP (else the "
                  "bootstrap controller); false: DNS does; null: true when vip is set."),
    Field("bootstrap_controller", str, _optional_text(checks.check_name), None, dump=_optional,
          comment="The controller that runs kubeadm init; the others join it. Empty: the first controller."),
    Field("service_cidr", str, _cidr("service CIDR"), "10.96.0.0/12", flag="--service-cidr",  # kubeadm's default
          comment="Service network (kubeadm default); its first IP is the 'kubernetes' Service.", help="Service CIDR."),
    Field("pod_cidr", str, _cidr("pod CIDR"), "10.244.0.0/16", flag="--pod-cidr",  # flannel's default Network
          comment="Pod network, handed to flannel.", help="Pod CIDR."),
    Field("domain", str, checks.check_domain, "cluster.local", flag="--domain",
          comment="Cluster DNS domain.", help="Cluster DNS domain."),
    Field("key_type", str, _enum(KeyType), KeyType.ECDSA_P256, flag="--key-type", dump=_value, choices=KeyType,
          comment="Key algorithm for new keys: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096.",
          help="Key algorithm."),
    Field("ca_days", int, _days, 3650, flag="--ca-days",
          comment="Lifetime of the CAs, in days.", help="Lifetime of the CAs in days."),
    Field("cert_days", int, _days, 365, flag="--cert-days",
          comment="Lifetime of leaf certificates, in days (isobuild certs renew re-issues them).",
          help="Lifetime of leaf certificates in days."),
    Field("external_ca", bool, default=False, flag="--external-ca",
          comment="true: CA keys never leave ssl/ (kubeadm external-CA mode; the cluster signs no CSRs).",
          help="Keep every CA key on this workstation (kubeadm external-CA mode)."),
    Field("ssh_keys", list, _text_list(checks.check_ssh_key), (), flag="--ssh-key", dump=_list_dump,
          comment="SSH public keys installed on every node.",
          help="SSH public key file; repeatable (the first node's go to the cluster)."),
    Field("cni", str, _enum(Cni), Cni.FLANNEL, flag="--cni", dump=_value, choices=Cni,
          comment="Pod network: flannel, or none (bring your own, e.g. Cilium or Calico: until it runs, "
                  "nodes stay NotReady and CoreDNS Pending).",
          help="flannel, or none (bring your own CNI)."),
    Field("flannel_version", str, _addon("flannel_version"), "v0.28.9",
          comment="Pinned flannel release (CNI)."),
    Field("ingress", str, _enum(Ingress), Ingress.CONTOUR, flag="--ingress", dump=_value, choices=Ingress,
          comment="Ingress controller on edge routers: contour, ingress-nginx (retired upstream), or none.",
          help="contour on edge routers, ingress-nginx (retired upstream), or none."),
    Field("contour_version", str, _addon("contour_version"), "v1.33.7",
          comment="Pinned Contour release (projectcontour/contour) for edge routers."),
    Field("ingress_nginx_version", str, _addon("ingress_nginx_version"), "v1.15.1",
          comment="Pinned ingress-nginx controller release for edge routers."),
    Field("containerd_version", str, lambda v: checks.check_package_version(v, "containerd_version"), "2.",
          comment="containerd.io package version (prefix) from Docker's repository, e.g. 2. or 2.1.4."),
    Field("format", str, _enum(Format), Format.CLOUD_CONFIG, flag="--format", dump=_value, choices=Format,
          comment="First-boot config: cloud-config (cloud-init) or ignition (Flatcar); a node may override it.",
          help="cloud-config (cloud-init) or ignition (Flatcar)."),
    Field("media", str, _enum(Media), Media.CONFIG_2, flag="--media", dump=_value, choices=Media,
          comment="Drive: config-2 (OpenStack config drive) or nocloud (label cidata); a node may override it.",
          help="config-2 (OpenStack config drive) or nocloud (cidata)."),
    Field("cni_plugins_version", str, _addon("cni_plugins_version"), "v1.8.0",
          comment="Pinned CNI plugins release for ignition nodes (containernetworking/plugins)."),
    Field("flatcar_channel", str, checks.check_flatcar_channel, "stable",
          comment="Flatcar channel install.sh installs on ignition nodes: stable, beta, alpha or lts."),
    Field("flatcar_version", str, checks.check_flatcar_version, "current",
          comment="Flatcar release install.sh installs (flatcar-install -V): current or e.g. 4459.2.1."),
    Field("kube_vip_version", str, _addon("kube_vip_version"), "v1.2.2",
          comment="Pinned kube-vip release (ghcr.io/kube-vip/kube-vip) when vip is set."),
    Field("ntp_servers", list, _text_list(customchecks.check_ntp_server), (), dump=_list_dump,
          comment="NTP servers for every node (cloud-init's ntp module; systemd-timesyncd on Flatcar); a node's "
                  "own ntp_servers replace them. Empty: the image's defaults."),
    Field("registry_mirrors", dict, customchecks.check_registry_mirrors, {},
          dump=lambda value: {k: list(v) for k, v in value.items()},
          comment="Registry mirrors containerd tries first, per registry (certs.d/REGISTRY/hosts.toml): "
                  "{docker.io: [https://mirror.example.test]}; _default for every other registry."),
    Field("http_proxy", str, _optional_text(customchecks.check_proxy_url), None, dump=_optional,
          comment="HTTP proxy for apt, containerd (image pulls), the kubelet and install.sh, e.g. "
                  "http://proxy.example.test:3128. Empty: none."),
    Field("https_proxy", str, _optional_text(customchecks.check_proxy_url), None, dump=_optional,
          comment="HTTPS proxy, as http_proxy (often the same URL)."),
    Field("no_proxy", list, _text_list(customchecks.check_no_proxy), (), dump=_list_dump,
          comment="Reached without the proxy, besides what isobuild adds itself (localhost, the service and "
                  "pod CIDRs, .svc, the cluster domain, the endpoint and the controllers)."),
    _args_field("kubelet_extra_args", "kubelet",
                "Extra kubelet flags on every node, as kubeadm's name/value list: - {name: max-pods, value: '200'}. "
                "A node's own kubelet_extra_args replace these by name."),
    _args_field("apiserver_extra_args", "apiserver",
                "Extra kube-apiserver flags (kubeadm's apiServer.extraArgs), e.g. OIDC or audit logging. Read by "
                "kubeadm init only: on a running cluster, edit kube-system/kubeadm-config and the static pods too."),
    _args_field("controller_manager_extra_args", "controller_manager",
                "Extra kube-controller-manager flags (kubeadm's controllerManager.extraArgs); like "
                "apiserver_extra_args, read by kubeadm init only."),
    _args_field("scheduler_extra_args", "scheduler",
                "Extra kube-scheduler flags (kubeadm's scheduler.extraArgs); like apiserver_extra_args, read by "
                "kubeadm init only."),
    _args_field("etcd_extra_args", "etcd",
                "Extra etcd flags (kubeadm's etcd.local.extraArgs), not membership, names or certificates: kubeadm "
                "manages those."),
    Field("cloud_config_patch", dict, patches.check_cloud_config_patch, {}, dump=dict, kind_hint=_PATCH_HINT,
          comment="cloud-config merged into every cloud-config node's user_data, as cloud-init merges a second "
                  "part: its merge_how, else dict(replace)+list()+str(). Adding to isobuild's lists takes "
                  "merge_how: 'dict(recurse_array,no_replace)+list(append)'. What isobuild writes stays: a patch "
                  "that would replace it is refused. A node's own cloud_config_patch is merged after it."),
    Field("ignition_patch", dict, patches.check_patch, {}, dump=dict, kind_hint=_PATCH_HINT,
          comment="Ignition config (spec 3.x, as JSON in YAML) that Ignition merges into every ignition node's "
                  "config at boot (ignition.config.merge); files and units isobuild writes are refused, drop-ins of "
                  "your own are welcome. A node's own ignition_patch is merged after it."),
)  # fmt: skip

NODE_FIELDS: tuple[Field, ...] = (
    Field("name", str, checks.check_name, required=True),
    Field("ip", str, _ip("node IP"), required=True),
    Field("role", str, _enum(Role), required=True, flag="--role", dump=_value, choices=Role,
          help="controller, worker or edge (default: controller; with --master: worker)."),
    Field("master", str, _optional_text(checks.check_master), flag="--master",
          help="Controller to join, by name or IP: makes a worker."),
    Field("labels", dict, _labels, {}, flag="--label", dump=dict, help="Node label k=v; repeatable.",
          from_flag=lambda texts: labels_from_flags(texts)),
    Field("sans", list, _text_list(checks.check_san), (), flag="--san", dump=_list_dump,
          help="Extra SAN (name or IP); repeatable."),
    Field("ssh_keys", list, _text_list(checks.check_ssh_key), (), flag="--ssh-key", dump=_list_dump,
          help="SSH public key file; repeatable."),
    Field("format", str, _enum(Format), flag="--format", dump=_value, choices=Format,
          help="This node's config: cloud-config or ignition [the cluster's]."),
    Field("media", str, _enum(Media), flag="--media", dump=_value, choices=Media,
          help="This node's drive: config-2 or nocloud [the cluster's]."),
    Field("mac", str, _optional_text(checks.check_mac), flag="--mac", help="MAC of the NIC to configure statically.",
          kind_hint="quote it (YAML 1.1 reads an unquoted MAC as a number): mac: '52:54:00:12:34:56'"),
    Field("prefix", int, lambda v: checks.check_prefix(v, "::"), flag="--prefix",
          help="Prefix length of a static address."),
    Field("gateway", str, _optional_text(_ip("gateway")), flag="--gateway", help="Default gateway (static)."),
    Field("dns", list, _text_list(lambda v: checks.check_ip(v, "DNS server")), (), flag="--dns", dump=_list_dump,
          help="DNS server (static); repeatable."),
    Field("mtu", int, checks.check_mtu, flag="--mtu", help="MTU of the NIC (static)."),
    Field("public_ip", str, _optional_text(_ip("public IP")), flag="--public-ip",
          help="An edge router's public address, beside its private IP: ingress only."),
    Field("kubelet_extra_args", list, _extra_args("kubelet"), (), dump=_args_dump,
          kind_hint="a list of name/value mappings, e.g. - {name: max-pods, value: '200'}"),
    Field("ntp_servers", list, _text_list(customchecks.check_ntp_server), (), dump=_list_dump),
    Field("cloud_config_patch", dict, patches.check_cloud_config_patch, {}, dump=dict, kind_hint=_PATCH_HINT),
    Field("ignition_patch", dict, patches.check_patch, {}, dump=dict, kind_hint=_PATCH_HINT),
)  # fmt: skip

SETTING = {f.key: f for f in SETTINGS}
NODE_FIELD = {f.key: f for f in NODE_FIELDS}


# -- derived: building, parsing and dumping values ----------------------------------------------
def parse_fields(
    fields: Iterable[Field], data: Mapping[str, Any], where: Callable[[str], str]
) -> tuple[dict[str, Any], list[IsobuildError]]:
    """Every field's value from ``data`` (absent: its default), and every problem found."""
    values: dict[str, Any] = {}
    problems: list[IsobuildError] = []
    for field in fields:
        if field.required and data.get(field.key) in (None, ""):
            problems.append(IsobuildError(f"{where(field.key)} is missing", hint=FIX_HINT))
            continue
        try:
            values[field.key] = field.parse(data.get(field.key), where(field.key))
        except IsobuildError as exc:
            problems.append(exc)
    return values, problems


def cluster_of(values: Mapping[str, Any], nodes: tuple[Node, ...] = ()) -> Cluster:
    """A Cluster from checked values; what is absent takes the table's default."""
    given = {f.key: values.get(f.key, f.default) for f in SETTINGS}
    return Cluster(**given, nodes=nodes)


def node_of(values: Mapping[str, Any]) -> Node:
    return Node(**{f.key: values.get(f.key, f.default) for f in NODE_FIELDS})


def settings_mapping(cluster: Cluster) -> dict[str, Any]:
    """The settings as cluster.yaml holds them, in its order."""
    return {f.key: f.dump(getattr(cluster, f.key)) for f in SETTINGS}


def node_mapping(node: Node) -> dict[str, Any]:
    """A node's entry: name, ip and role, then only the fields that are set."""
    entry: dict[str, Any] = {}
    for field in NODE_FIELDS:
        value = getattr(node, field.key)
        if field.required or value not in (None, "", (), {}):
            entry[field.key] = field.dump(value)
    return entry
