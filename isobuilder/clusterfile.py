"""cluster.yaml: the source of truth, written for humans (commented, stable key order). Pure.

Both directions are derived from ``schema``'s tables. :func:`parse` collects every problem of
the file, each located (``cluster.yaml: nodes[1].gateway: ...``), and raises them together.
"""

from __future__ import annotations

from typing import Any

import yaml

from isobuilder import checks, schema, serialize
from isobuilder.errors import IsobuildError
from isobuilder.model import Cluster, KeyType, Node, shown

NAME = "cluster.yaml"
MAX_BYTES = 16 << 20  # 16 MiB: some 50,000 nodes; past that it is not a cluster file

_HEADER = """\
# isobuild cluster settings: the source of truth for every node folder in this inventory.
# Edit by hand if you like, then re-run `isobuild node NAME IP ...` for the nodes you changed.
# The CA in ssl/ belongs to this file: never delete one without the other.
"""
_NODES_COMMENT = (
    "\n# Nodes: one mapping each (name, ip, role: controller|worker|edge, and options: master, labels,"
    "\n# sans, ssh_keys, format, media, kubelet_extra_args; static networking: mac, prefix (or ip:\n"
    "# ADDRESS/PREFIX), gateway, dns, mtu; an edge router's public_ip beside its private ip).\n"
)


def dump(cluster: Cluster) -> bytes:
    parts = [_HEADER]
    for field, (key, value) in zip(schema.SETTINGS, schema.settings_mapping(cluster).items(), strict=True):
        parts.append(f"\n# {field.comment}\n")
        parts.append(serialize.yaml_text({key: value}))
    parts.append(_NODES_COMMENT)
    parts.append(serialize.yaml_text({"nodes": [schema.node_mapping(n) for n in cluster.nodes]}))
    return "".join(parts).encode()


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """`` at line N`` for a YAML error that knows where it is, else nothing."""
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}" if mark is not None else ""


def key_type_hint(text: bytes) -> KeyType | None:
    """The key type cluster.yaml names, read from what precedes its ``nodes:`` (where :func:`dump`
    puts the settings; a thousand nodes take ~50 ms to parse): a hint for making keys ahead
    (:mod:`isobuilder.keys`), never a check. None when that part says nothing clear."""
    head = text[:MAX_BYTES].split(b"\nnodes:", 1)[0]
    try:
        data = serialize.load_yaml(head)
        return KeyType(data.get("key_type", schema.SETTING["key_type"].default)) if isinstance(data, dict) else None
    except (yaml.YAMLError, ValueError, TypeError):
        return None


def parse(text: bytes, *, cross_checks: bool = True) -> Cluster:
    """cluster.yaml as a Cluster; raises one error naming every problem in it. ``cross_checks``
    False: the rules that span nodes are left to the caller, which checks the cluster it makes."""
    cluster, problems = parse_collecting(text, cross_checks=cross_checks)
    checks.raise_all(problems, NAME)
    return cluster


def parse_collecting(text: bytes, *, cross_checks: bool = True) -> tuple[Cluster, list[IsobuildError]]:
    """cluster.yaml and every problem found in it (a node entry with a problem is left out).
    A file that is not a mapping of settings, or lacks a valid name or cluster_id, raises."""
    data = _load(text)
    problems: list[IsobuildError] = []
    unknown = sorted((k for k in data if k not in schema.SETTING and k != "nodes"), key=str)
    for key in unknown:
        problems.append(
            IsobuildError(f"{NAME}: unknown setting {shown(key)}", hint="known: " + ", ".join(schema.SETTING))
        )
    values, bad = schema.parse_fields(schema.SETTINGS, data, lambda key: f"{NAME}: {key}")
    problems += bad
    if any(f.required and f.key not in values for f in schema.SETTINGS):
        checks.raise_all(problems, NAME)  # no cluster without its name and id
    entries = data.get("nodes")
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        problems.append(IsobuildError(f"{NAME}: nodes must be a list", hint=schema.FIX_HINT))
        entries = []
    nodes = []
    for index, entry in enumerate(entries):
        node, bad = _parse_node(entry, f"{NAME}: nodes[{index}]")
        problems += bad
        if node is not None:
            nodes.append(node)
    cluster = schema.cluster_of(values, tuple(nodes))
    if cross_checks:
        problems += checks.cluster_problems(cluster, checks.Source(cluster))
    return cluster.with_master_names(), problems  # an older file's controller IPs, as names


def _load(text: bytes) -> dict[Any, Any]:
    if len(text) > MAX_BYTES:
        raise IsobuildError(f"{NAME} is {len(text) >> 20} MiB", hint=f"a cluster file is at most {MAX_BYTES >> 20} MiB")
    try:
        data = serialize.load_yaml(text, unique_keys=True)
    except serialize.DuplicateKey as exc:
        raise IsobuildError(f"{NAME}: {exc.problem}{yaml_error_line(exc)}", hint=schema.FIX_HINT) from None
    except yaml.YAMLError as exc:
        raise IsobuildError(f"{NAME} is not valid YAML{yaml_error_line(exc)}", hint=schema.FIX_HINT) from None
    except (UnicodeDecodeError, ValueError):
        raise IsobuildError(f"{NAME} is not UTF-8 text", hint=schema.FIX_HINT) from None
    if not isinstance(data, dict):
        raise IsobuildError(f"{NAME} is not a mapping of settings", hint=schema.FIX_HINT)
    return data


def _parse_node(entry: object, where: str) -> tuple[Node | None, list[IsobuildError]]:
    if not isinstance(entry, dict):
        return None, [IsobuildError(f"{where} is not a mapping", hint="each node is a mapping with name, ip and role")]
    problems = [
        IsobuildError(f"{where}: unknown key {shown(key)}", hint="known: " + ", ".join(schema.NODE_FIELD))
        for key in sorted((k for k in entry if k not in schema.NODE_FIELD), key=str)
    ]
    entry, split = _ip_with_prefix(entry, where)
    values, bad = schema.parse_fields(schema.NODE_FIELDS, entry, lambda key: f"{where}.{key}")
    problems += split + bad
    return (schema.node_of(values) if not problems else None), problems


def _ip_with_prefix(entry: dict[Any, Any], where: str) -> tuple[dict[Any, Any], list[IsobuildError]]:
    """``ip: 10.10.10.5/24`` as the command line takes it: ``ip`` and ``prefix`` (which is how
    cluster.yaml is written back)."""
    ip = entry.get("ip")
    if not isinstance(ip, str) or "/" not in ip:
        return entry, []
    address, _, prefix = ip.partition("/")
    if not (prefix.isascii() and prefix.isdigit()):
        return entry, []  # the ip check says what is wrong with it
    given = entry.get("prefix")
    if given is not None and given != int(prefix):
        problem = IsobuildError(
            f"{where}.ip: {shown(ip)} and prefix: {shown(given)} disagree",
            hint="give the prefix once: ip: ADDRESS/PREFIX",
        )
        return {**entry, "ip": address}, [problem]  # one problem: not the address's too
    return {**entry, "ip": address, "prefix": int(prefix)}, []
