"""Checks of the operator's customisation values in cluster.yaml: kubeadm's extraArgs (and
the flags isobuild owns), the proxy and NTP settings, a kubeconfig entry name. Each returns the
value as the model holds it or raises IsobuildError; ``checks`` has the others. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence

from isobuilder.errors import IsobuildError
from isobuilder.model import DNS_SUBDOMAIN, bad_value, is_ip, normal_ip, shown

_FLAG_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,98}[a-z0-9])?")
_MAX_ARG_VALUE = 4096
# The flags isobuild sets from cluster.yaml's own keys (or that its files depend on): an extra
# argument may not change them. kubeadm lets extraArgs override its own flags of the same name
# (cmd/kubeadm/app/util/arguments.go, ArgumentsToCommand); for these that would break what
# isobuild wrote (the pre-issued PKI, etcd membership, the node's identity).
OWNED_ARGS: dict[str, tuple[str, ...]] = {
    "kubelet": ("node-ip", "hostname-override", "node-labels", "register-with-taints", "container-runtime-endpoint",
                "kubeconfig", "bootstrap-kubeconfig", "config", "cert-dir"),
    "apiserver": ("advertise-address", "secure-port", "service-cluster-ip-range", "etcd-servers", "etcd-cafile",
                  "etcd-certfile", "etcd-keyfile", "client-ca-file", "tls-cert-file", "tls-private-key-file",
                  "service-account-key-file", "service-account-signing-key-file", "kubelet-client-certificate",
                  "kubelet-client-key", "proxy-client-cert-file", "proxy-client-key-file",
                  "requestheader-client-ca-file"),
    "controller_manager": ("kubeconfig", "cluster-cidr", "service-cluster-ip-range", "cluster-signing-cert-file",
                           "cluster-signing-key-file", "root-ca-file", "service-account-private-key-file",
                           "allocate-node-cidrs"),
    "scheduler": ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig"),
    "etcd": ("name", "data-dir", "initial-cluster", "initial-cluster-state", "initial-advertise-peer-urls",
             "advertise-client-urls", "listen-client-urls", "listen-peer-urls", "cert-file", "key-file",
             "peer-cert-file", "peer-key-file", "trusted-ca-file", "peer-trusted-ca-file", "client-cert-auth",
             "peer-client-cert-auth"),
}  # fmt: skip


def check_extra_args(values: Sequence[object], component: str) -> tuple[tuple[str, str], ...]:
    """kubeadm v1beta4's ``[{name: FLAG, value: VALUE}]`` (the flag without its dashes), the
    value a string as kubeadm wants it. Duplicates stay, as kubeadm allows them."""
    found = []
    owned = OWNED_ARGS[component]
    for i, item in enumerate(values):
        if not isinstance(item, dict) or set(item) - {"name", "value"} or "name" not in item:
            raise IsobuildError(
                f"[{i}] is not a mapping of name and value", hint="e.g. - {name: max-pods, value: '200'}"
            )
        name, value = item["name"], item.get("value", "")
        if not isinstance(name, str) or not _FLAG_NAME.fullmatch(name):
            raise IsobuildError(
                f"[{i}].name {shown(name)} is not a flag name", hint="the flag without its dashes, e.g. max-pods"
            )
        if name in owned:
            raise IsobuildError(
                f"[{i}].name {name} is set by isobuild",
                hint="its own key in cluster.yaml sets it, or it must stay as is",
            )
        if not isinstance(value, str):  # YAML 1.1 reads 0755 as 493, 1:30 as 90, on as true: quoted, as kubeadm
            raise IsobuildError(
                f"[{i}].value {shown(value)} is not a string", hint=f"quote it: value: '{shown(value).strip(chr(39))}'"
            )
        if not isinstance(value, str) or len(value) > _MAX_ARG_VALUE or not value.isprintable():
            raise IsobuildError(
                f"[{i}].value {shown(value)} is not a flag value",
                hint=f"one line of printable text, up to {_MAX_ARG_VALUE} characters",
            )
        if component == "kubelet" and any(c in value for c in " \t\"'\\"):
            # kubeadm-flags.env reaches the kubelet through systemd's $KUBELET_KUBEADM_ARGS,
            # which splits at whitespace (the unit's ExecStart): such a value would be cut in two.
            raise IsobuildError(
                f"[{i}].value {shown(value)} holds a space, quote or backslash",
                hint="a kubelet flag value is one word; set such settings in the KubeletConfiguration instead",
            )
        found.append((name, value))
    return tuple(found)


_PROXY_URL = re.compile(r"https?://([^\s/@\"'\\%#?]+@)?[A-Za-z0-9.\[\]:-]+/?")
_NO_PROXY_ENTRY = re.compile(r"[A-Za-z0-9.*:/\[\]-]{1,253}")


def check_proxy_url(value: str) -> str:
    """``http://[USER:PASSWORD@]HOST[:PORT]``: one word systemd, apt, curl and Go's net/url read
    alike: no space, quote, backslash or ``%`` (a systemd specifier), no ``#`` or ``?`` (Go ends
    the host there), a port from 1 to 65535, a host that is a name or an IP."""
    import urllib.parse

    hint = "e.g. http://proxy.example.test:3128 (a password with #, ?, % or spaces cannot be written here)"
    if not _PROXY_URL.fullmatch(value) or "#" in value or "?" in value:
        raise bad_value("proxy URL", value, hint)
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        raise bad_value("proxy URL", value, hint) from None
    host = parts.hostname or ""
    if not (is_ip(host) or DNS_SUBDOMAIN.fullmatch(host)) or port == 0:
        raise bad_value("proxy URL", value, hint)
    return value


def check_no_proxy(value: str) -> str:
    """A host, a domain suffix (``.example.test``), an IP or a CIDR, as NO_PROXY lists them."""
    if not _NO_PROXY_ENTRY.fullmatch(value):
        raise bad_value("no_proxy entry", value, "a host, .domain, IP or CIDR, e.g. .example.test or 10.0.0.0/8")
    return value


def check_ntp_server(value: str) -> str:
    """An NTP server: a host name or an IP address."""
    if is_ip(value):
        return normal_ip(value)
    if not DNS_SUBDOMAIN.fullmatch(value):
        raise bad_value("NTP server", value, "a host name or an IP address, e.g. ntp.example.test")
    return value


_CONTEXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:/-]{0,252}")


def check_context_name(value: str) -> str:
    """A kubeconfig entry name for ``--context`` (kubectl takes any string; one that a shell,
    YAML and kubectl's own ``--context`` flag pass through unchanged)."""
    if not _CONTEXT_NAME.fullmatch(value):
        raise bad_value("--context", value, "letters, digits and . _ @ : / -, starting with a letter or digit")
    return value


_MIRROR_URL = re.compile(r"https?://[A-Za-z0-9.\[\]:-]+(/[A-Za-z0-9._~/-]*)?")


def check_registry_mirrors(values: dict[object, object]) -> dict[str, tuple[str, ...]]:
    """``{REGISTRY: [MIRROR URL, ...]}``: a registry host[:port] (``docker.io``, or ``_default``
    for every other), and the mirrors containerd tries in order before it (hosts.toml)."""
    found: dict[str, tuple[str, ...]] = {}
    for registry, mirrors in values.items():
        host = registry.rsplit(":", 1)[0] if isinstance(registry, str) and registry.count(":") == 1 else registry
        if registry != "_default" and not (isinstance(host, str) and (DNS_SUBDOMAIN.fullmatch(host) or is_ip(host))):
            raise bad_value("registry", registry, "a registry's host[:port], e.g. docker.io, or _default")
        if not isinstance(mirrors, list) or not mirrors:
            raise IsobuildError(
                f"{registry}: give a list of mirror URLs", hint="e.g. docker.io: [https://mirror.example.test]"
            )
        for url in mirrors:
            if not isinstance(url, str) or not _MIRROR_URL.fullmatch(url):
                raise bad_value("mirror URL", url, "e.g. https://mirror.example.test:5000")
        found[str(registry)] = tuple(str(u) for u in mirrors)
    return dict(sorted(found.items()))
