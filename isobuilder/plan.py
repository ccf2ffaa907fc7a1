"""What the user asked for on the command line, checked and merged with what exists. Pure.

``isobuild node`` and ``init`` take the flags ``schema`` declares. What a flag leaves out keeps
its value: a node's current entry in cluster.yaml, else the table's default. Every problem is
named by its flag (``--gateway: ...``), and every problem of one request is reported at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

from isobuilder import checks, schema
from isobuilder.errors import IsobuildError
from isobuilder.identities import RESERVED_GROUPS, component_users, user_spec
from isobuilder.model import EMPTY, Cluster, Node, Role, bad_value, shown, unique
from isobuilder.pki import CertSpec

USERS_DIR = "users"  # extra kubeconfigs (`kubeconfig --user`), one file each


def is_given(value: Any) -> bool:
    """A flag left out arrives as None, an empty list, or False (a switch)."""
    return value is not None and value is not False and value != () and value != []


def _parse_flags(fields: Mapping[str, schema.Field], raw: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    problems = []
    for key, value in raw.items():
        if not is_given(value):
            continue
        field = fields[key]
        try:
            if field.from_flag is not None:
                value = field.from_flag(value)
            elif field.kind is list:
                value = list(value)
            elif field.kind is int:
                value = _whole_number(value, field.flag)
            values[key] = field.parse(value, field.flag)
        except IsobuildError as exc:
            problems.append(exc)
    checks.raise_all(problems, "the command line")
    return values


def _whole_number(text: str, flag: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        raise IsobuildError(f"{flag}: {shown(text)} is not a whole number", hint=f"e.g. {flag} 24")
    return int(text)


class ClusterRequest(NamedTuple):
    """Cluster settings given on the command line (``init``, the first ``node``), checked."""

    given: Mapping[str, Any] = EMPTY

    @classmethod
    def from_flags(cls, raw: Mapping[str, Any]) -> ClusterRequest:
        return cls(_parse_flags(schema.SETTING, raw))

    def new_cluster(self, cluster_id: str) -> Cluster:
        # A unique name by default, so kubeconfigs of several clusters merge cleanly.
        values = {"name": f"k8s-{cluster_id[:8]}", **self.given, "cluster_id": cluster_id}
        cluster = schema.cluster_of(values)
        checks.raise_all(list(checks.cluster_problems(cluster, checks.Source(cluster))), "the command line")
        return cluster

    def conflicts(self, cluster: Cluster) -> list[str]:
        """Flags given here whose value differs from the existing cluster's."""
        return [
            schema.SETTING[key].flag
            for key, value in self.given.items()
            if value != getattr(cluster, key) and not (schema.SETTING[key].later and getattr(cluster, key) is None)
        ]

    def apply_later(self, cluster: Cluster) -> Cluster:
        """``cluster`` with the settable-later settings given here (``conflicts`` refused the rest)."""
        later = {k: v for k, v in self.given.items() if schema.SETTING[k].later and getattr(cluster, k) is None}
        return dataclasses.replace(cluster, **later) if later else cluster


class NodeRequest(NamedTuple):
    """``isobuild node NAME IP [flags]``: ``flags`` maps node field keys to the flags' values."""

    name: str
    ip: str | None  # IP, or IP/PREFIX for a static address; None: the node's current one
    flags: Mapping[str, Any] = EMPTY
    force: bool = False


class PlannedNode(NamedTuple):
    """A node as the command will write it, and the source (flags, cluster.yaml) of its values."""

    node: Node
    source: checks.Source
    removed: tuple[str, ...] = ()  # what an edit took away, said to the user: "label zone=rack1"


def plan_node(cluster: Cluster, request: NodeRequest) -> PlannedNode:
    """The node as it will be in cluster.yaml, and the source that names its values in errors.
    ``--label`` and ``--san`` edit the node's current ones (``k=v`` adds or changes, ``k-``
    removes; ``NAME`` adds, ``NAME-`` removes); every other flag replaces its field."""
    name = checks.check_name(request.name)
    current = cluster.node(name)
    flags = dict(request.flags)
    edits = {key: flags.pop(key, None) or [] for key in ("labels", "sans")}
    given = _parse_flags(schema.NODE_FIELD, flags)
    labels, removed_labels = edit_labels(current.labels if current else {}, edits["labels"], name)
    sans, removed_sans = edit_sans(current.sans if current else (), edits["sans"], name)
    if edits["labels"]:
        given["labels"] = schema.NODE_FIELD["labels"].parse(labels, "--label")
    if edits["sans"]:
        given["sans"] = schema.NODE_FIELD["sans"].parse(list(sans), "--san")
    cidr_prefix = _plan_address(name, request.ip, current, given)
    given["role"] = _role(cluster, name, current, given)
    values = {f.key: getattr(current, f.key) if current else f.default for f in schema.NODE_FIELDS} | given
    node = schema.node_of({**values, "name": name})
    joined = cluster.controller(node.master) if node.master else None
    if joined is not None:  # stored by name: a controller's IP may change
        node = dataclasses.replace(node, master=joined.name)
    named = {key: schema.NODE_FIELD[key].flag for key in given if schema.NODE_FIELD[key].flag}
    if cidr_prefix is not None:
        named["prefix"] = f"{request.ip} (IP/PREFIX)"
    source = checks.Source(cluster.with_node(node), flagged=name, flags=named)
    return PlannedNode(node, source, (*removed_labels, *removed_sans))


def _plan_address(name: str, ip: str | None, current: Node | None, given: dict[str, Any]) -> int | None:
    """``given["ip"]`` (and the prefix of IP/PREFIX) from the argument, or the node's current IP."""
    if ip is None:
        if current is None:
            raise IsobuildError(
                f"node {name!r} is new: give its IP",
                hint=f"e.g. isobuild node {name} 10.10.10.9 (IP/PREFIX for static)",
            )
        given["ip"] = current.ip
        return None
    address, cidr_prefix = checks.split_ip_prefix(ip)
    given["ip"] = checks.check_ip(address, "node IP")
    if cidr_prefix is not None:
        if given.get("prefix", cidr_prefix) != cidr_prefix:
            raise IsobuildError(
                f"node {name!r}: {ip} and --prefix {given['prefix']} disagree", hint="give the prefix once"
            )
        given["prefix"] = cidr_prefix
    return cidr_prefix


def edit_labels(current: Mapping[str, str], texts: list[str], node: str) -> tuple[dict[str, str], list[str]]:
    """kubectl's convention: ``k=v`` adds or changes label k, ``k-`` removes it."""
    labels = dict(current)
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep and key.endswith("-") and len(key) > 1:
            key = key[:-1]
            if key not in labels:
                raise IsobuildError(
                    f"--label {shown(text)}: node {node!r} has no label {shown(key)}",
                    hint="its labels: " + (", ".join(f"{k}={v}" for k, v in labels.items()) or "none"),
                )
            del labels[key]
        elif not sep:
            raise IsobuildError(
                f"--label: {shown(text)} is not key=value or key-",
                hint="e.g. --label zone=rack1; --label zone- removes it",
            )
        else:
            labels[key] = value
    return labels, [f"label {k}={v}" for k, v in current.items() if k not in labels]  # gone at the end


def edit_sans(current: tuple[str, ...], texts: list[str], node: str) -> tuple[tuple[str, ...], list[str]]:
    """``NAME`` adds an extra SAN, ``NAME-`` removes one (no DNS name or IP ends with '-')."""
    sans = list(current)
    try:
        for text in texts:
            _edit_san(sans, text, node)
    except IsobuildError as exc:
        if exc.message.startswith("--san"):
            raise
        raise IsobuildError(f"--san: {exc.message}", hint=exc.hint) from None
    return tuple(sans), [f"SAN {s}" for s in current if s not in sans]  # gone at the end


def _edit_san(sans: list[str], text: str, node: str) -> None:
    if not (text.endswith("-") and len(text) > 1):
        if (san := checks.check_san(text)) not in sans:
            sans.append(san)
        return
    san = checks.check_san(text[:-1])
    if san not in sans:
        raise IsobuildError(
            f"--san {shown(text)}: node {node!r} has no extra SAN {shown(san)}",
            hint="its extra SANs: " + (", ".join(sans) or "none"),
        )
    sans.remove(san)


def _role(cluster: Cluster, name: str, current: Node | None, given: Mapping[str, Any]) -> Role:
    role: Role | None = given.get("role")
    master = given.get("master")
    if role is None and master is None and current is not None:
        return current.role  # an update: `isobuild node w1 NEW_IP` keeps w1 a worker
    role = role or (Role.WORKER if master else Role.CONTROLLER)
    if role.is_controller and master:
        raise IsobuildError(
            f"node {name!r}: --master goes with workers and edge routers, not with --role controller",
            hint="drop --master to add a controller",
        )
    if not role.is_controller and master is None and not cluster.controllers():
        raise IsobuildError(
            f"node {name!r}: a {role} needs a controller to join",
            hint="add a controller first (isobuild node NAME IP), then pass --master CONTROLLER",
        )
    if current is not None and current.role is not role:
        raise IsobuildError(
            f"node {name!r} is a {current.role}; refusing to turn it into a {role}",
            hint=f"pick another name, or remove {name!r} from cluster.yaml and its folder first",
        )
    return role


class UserRequest(NamedTuple):
    """``kubeconfig --user NAME --group GROUP [--days N]``."""

    name: str
    groups: tuple[str, ...] = ()
    days: int | None = None

    @property
    def path(self) -> str:
        return f"{USERS_DIR}/{self.name}.kubeconfig"

    @property
    def spec(self) -> CertSpec:
        return user_spec(self.name, self.groups)

    def checked(self) -> UserRequest:
        hint = "the admin kubeconfig is the break-glass identity; bind users to roles with RBAC instead"
        if not checks.is_user_name(self.name):
            raise bad_value("user name", self.name, "use letters, digits, '.', '_', '@' or '-', e.g. alice")
        if self.name.startswith("system:") or self.name in component_users():
            raise IsobuildError(f"user name {shown(self.name)} is reserved: a cluster component uses it", hint=hint)
        for group in self.groups:
            if not checks.is_group_name(group):
                raise bad_value("group", group, "use a name such as developers or team:payments")
            if group in RESERVED_GROUPS or group.startswith("system:"):
                raise IsobuildError(f"group {shown(group)} would give more than least privilege", hint=hint)
        days = schema.Field("days", int, schema.SETTING["cert_days"].check).parse(self.days, "--days")
        return self._replace(groups=unique(self.groups), days=days)
