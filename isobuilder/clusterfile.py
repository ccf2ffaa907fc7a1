"""cluster.yaml: the source of truth, written for humans (commented, stable key order). Pure.

Both directions are derived from ``schema``'s tables. :func:`parse` collects every problem of
the file, each located (``cluster.yaml: nodes[1].gateway: ...``), and raises them together.
:func:`dump` writes a new file; :func:`rewrite` edits an existing one, so that the operator's
comments, blank lines, key order and quoting survive every command: a value is written anew
only when it means something else now.
"""

from __future__ import annotations

from typing import Any

import yaml

from isobuilder import checks, schema, serialize, yamledit
from isobuilder.errors import IsobuildError
from isobuilder.model import Cluster, Node, shown

NAME = "cluster.yaml"
MAX_BYTES = 16 << 20  # 16 MiB: some 50,000 nodes; past that it is not a cluster file

_HEADER = """\
# isobuild cluster settings: the source of truth for every node folder in this inventory.
# Edit by hand if you like, then re-run `isobuild node NAME IP ...` for the nodes you changed.
# The CA in ssl/ belongs to this file: never delete one without the other.
"""
_NODES_COMMENT = (
    "\n# Nodes: one mapping each (name, ip, role: controller|worker|edge, and options: master, labels,"
    "\n# sans, ssh_keys, format, media, kubelet_extra_args, ntp_servers, cloud_config_patch,\n"
    "# ignition_patch; static networking: mac, prefix (or ip: ADDRESS/PREFIX), gateway, dns, mtu;\n"
    "# an edge router's public_ip beside its private ip).\n"
)


def dump(cluster: Cluster) -> bytes:
    parts = [_HEADER]
    for field, (key, value) in zip(schema.SETTINGS, schema.settings_mapping(cluster).items(), strict=True):
        parts.append(f"\n# {field.comment}\n")
        parts.append(serialize.yaml_text({key: value}))
    parts.append(_NODES_COMMENT)
    parts.append(serialize.yaml_text({"nodes": [schema.node_mapping(n) for n in cluster.nodes]}))
    return "".join(parts).encode()


def mode(cluster: Cluster) -> int:
    """0600 when the file holds a proxy's password, else 0644."""
    return 0o600 if cluster.holds_secrets else 0o644


def rewrite(text: bytes | None, cluster: Cluster, *, before: Cluster | None = None) -> bytes:
    """``cluster`` as cluster.yaml, edited into the file's ``text`` (None: no file yet), which
    :func:`parse` read as ``before`` (given: not parsed again).

    Settings keep their place and text when their value is the same; one the file lacks is
    added, with its comment, after the setting the schema puts before it. Nodes are matched by
    name: a node's unchanged keys keep their text, changed ones are rewritten where they are,
    new ones added after their schema neighbour; a removed node goes with the comment lines just
    above it; a new node comes after the last. The result is parsed back, and a file laid out
    in a way this cannot edit in place (flow style, anchors, a key on another's line) is written
    fresh: it always means ``cluster`` exactly.
    """
    if text is None:
        return dump(cluster)
    try:
        before = before or parse(text, cross_checks=False)
        edited = yamledit.edit_text(text.decode(), lambda doc: _edited(doc, before, cluster)).encode()
        if parse(edited, cross_checks=False) == cluster.with_master_names():
            return edited
    except Exception:  # whatever it was (a layout not foreseen, a file changed since): written fresh
        pass
    return dump(cluster)


def _edited(doc: yamledit.Text, before: Cluster, cluster: Cluster) -> str:
    pairs = doc.pairs(yamledit.compose(doc.text))
    present = {p.key for p in pairs}
    settings = schema.settings_mapping(cluster)
    after: dict[str, list[str]] = {}  # a setting present in the file -> the missing ones to add after it
    anchor = schema.SETTINGS[0].key  # `name`: required, so the parse before found it
    for field in schema.SETTINGS:
        if field.key in present:
            anchor = field.key
        else:
            after.setdefault(anchor, []).append(field.key)
    edits: list[yamledit.Edit] = []
    for pair in pairs:
        if pair.key == "nodes":
            edits += _node_edits(doc, pair, before, cluster)
        elif getattr(before, pair.key) != getattr(cluster, pair.key):
            edits.append((pair.start, pair.end, yamledit.fresh({pair.key: settings[pair.key]}, pair.column)))
        for key in after.get(pair.key, ()):
            comment = schema.SETTING[key].comment
            at = doc.line_end(pair.end)  # after its line's comment
            edits.append((at, at, f"\n\n# {comment}\n" + yamledit.fresh({key: settings[key]}, 0)))
    tail = ""
    if "nodes" not in present:
        tail = _NODES_COMMENT + serialize.yaml_text({"nodes": [schema.node_mapping(n) for n in cluster.nodes]})
    return yamledit.splice(doc.text, 0, len(doc.text), edits) + tail


def _node_edits(doc: yamledit.Text, pair: yamledit.Pair, before: Cluster, cluster: Cluster) -> list[yamledit.Edit]:
    """The edits that turn the ``nodes:`` list into ``cluster.nodes``: each item is a chunk from
    the end of the one before (its comment lines with it), moved, edited or dropped as a whole."""
    sequence = pair.value
    if pair.column != 0:
        raise yamledit.Unusual("nodes: is indented")
    if not isinstance(sequence, yaml.SequenceNode) or sequence.flow_style or not sequence.value:
        if cluster.nodes == before.nodes:
            return []  # `nodes: [...]` in flow style, unchanged: as it was
        entries = [schema.node_mapping(n) for n in cluster.nodes]  # `nodes: []`, or nothing: the list anew
        return [(pair.start, pair.end, yamledit.fresh({"nodes": entries}, 0))]
    if len(sequence.value) != len(before.nodes):
        raise yamledit.Unusual("the file is not what was read")  # changed since: rewritten fresh
    first_line = doc.line_start(doc.offset(sequence.start_mark))
    if first_line <= pair.start:
        raise yamledit.Unusual("a list on the key's line")
    column = sequence.start_mark.column
    chunks: dict[str, str] = {}  # name -> its text, edited
    now = {n.name: n for n in cluster.nodes}
    start = at = doc.line_end(pair.start)  # the key's line break: every chunk starts with one
    for index, item in enumerate(sequence.value):
        stop = doc.line_end(doc.end(item))  # its last line's comment with it
        old = before.nodes[index]
        chunks[old.name] = _item_text(doc, item, at, stop, old, now.get(old.name))
        at = stop
    pieces = []
    for node in cluster.nodes:
        if node.name in chunks:
            pieces.append(chunks[node.name])
        else:
            pieces.append("\n" + " " * column + yamledit.fresh([schema.node_mapping(node)], column))
    return [(start, at, "".join(pieces))]


def _item_text(doc: yamledit.Text, item: yaml.Node, start: int, stop: int, old: Node, new: Node | None) -> str:
    """One node's chunk of text (from the line break before its first line, or before the
    comments above it, to its last line's end), edited from ``old`` to ``new``."""
    master = _scalar(item, "master")  # an older file's controller IP: the next write names it
    if new is None or (old == new and master in (None, new.master)):
        return doc.text[start:stop]
    entry = schema.node_mapping(new)
    try:
        pairs = doc.pairs(item)
        by_key = {p.key: p for p in pairs}
        same = {f.key: getattr(old, f.key) == getattr(new, f.key) for f in schema.NODE_FIELDS}
        same["master"] = same["master"] and master in (None, new.master)
        if "prefix" not in by_key and "/" in (_scalar(item, "ip") or ""):
            same["ip"] = same["prefix"] = same["ip"] and same["prefix"]  # `ip: ADDRESS/PREFIX` holds both
            entry = {**entry, "ip": f"{new.ip}/{new.prefix}"} if new.prefix is not None else entry
            entry.pop("prefix", None)
        edits: list[yamledit.Edit] = []
        for pair in pairs:
            if same[pair.key]:
                continue
            if pair.key in entry:
                edits.append((pair.start, pair.end, yamledit.fresh({pair.key: entry[pair.key]}, pair.column)))
            elif doc.alone_on_line(pair):
                edits.append((doc.line_start(pair.start) - 1, doc.line_end(pair.end), ""))
            else:
                raise yamledit.Unusual("a key to drop shares its line")
        anchor = pairs[0]
        for field in schema.NODE_FIELDS:
            if field.key in by_key:
                anchor = by_key[field.key]
            elif field.key in entry and not same[field.key]:
                text = yamledit.fresh({field.key: entry[field.key]}, anchor.column)
                at = doc.line_end(anchor.end)
                edits.append((at, at, "\n" + " " * anchor.column + text))
        return yamledit.splice(doc.text, start, stop, edits)
    except yamledit.Unusual:  # the item anew, the comments around it kept
        item_start = doc.offset(item.start_mark)
        fresh = yamledit.fresh(entry, item.start_mark.column)
        return doc.text[start:item_start] + fresh + doc.text[doc.end(item) : stop]


def _scalar(item: yaml.Node, key: str) -> str | None:
    """The text of a node entry's scalar ``key`` as written, if it has one."""
    for k, v in item.value if isinstance(item, yaml.MappingNode) else ():
        if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.ScalarNode):
            return str(v.value)
    return None


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """`` at line N`` for a YAML error that knows where it is, else nothing."""
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}" if mark is not None else ""


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
    except yaml.reader.ReaderError as exc:  # not UTF-8, or a control character: where, in bytes
        line = text[: exc.position].count(b"\n") + 1
        raise IsobuildError(f"{NAME}: {exc.reason} at line {line}", hint=schema.FIX_HINT) from None
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
