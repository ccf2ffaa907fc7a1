"""cluster.yaml rewritten in place: the operator's comments, blank lines, key order and quoting
survive every change, and the file always means the new cluster exactly. Pure, no tools."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from isobuilder import clusterfile, schema
from isobuilder.errors import IsobuildError
from isobuilder.model import Cluster, Node, Role
from tests.strategies import clusters, label

CLUSTER_ID = "6f1c3f8e-8a4e-4c35-9d5e-0d4b3f0f4a11"
MINIMAL = f"""\
# lab cluster: ask #infra before changing anything
name: lab   # the kubeconfig's name
cluster_id: '{CLUSTER_ID}'

cert_days: 90      # our policy

nodes:
# the controller, rack 1
- name: c1
  ip: 10.0.0.1/24    # rack 1's switch
  role: controller
  mac: '52:54:00:00:00:01'

# workers
- {{name: w1, ip: 10.0.0.2, role: worker, master: c1}}
- name: w2
  role: worker     # GPU box
  ip: 10.0.0.3
  master: c1
  labels:
    gpu: "yes"     # quoted: YAML 1.1
# end of file
"""
# The first rewrite pins every setting the file lacks (the versions above all); from then on
# a rewrite changes only what changed.
HAND_EDITED = clusterfile.rewrite(MINIMAL.encode(), clusterfile.parse(MINIMAL.encode())).decode()


def _rewrite(text: str, change: object) -> str:
    before = clusterfile.parse(text.encode())
    after = change(before)  # type: ignore[operator]
    assert isinstance(after, Cluster)
    written = clusterfile.rewrite(text.encode(), after).decode()
    assert clusterfile.parse(written.encode()) == after.with_master_names()
    return written


def _node(cluster: Cluster, name: str, **changes: object) -> Cluster:
    node = cluster.node(name)
    assert node is not None
    return cluster.with_node(dataclasses.replace(node, **changes))  # type: ignore[arg-type]


def test_the_settings_a_file_lacks_are_pinned_and_its_lines_kept_in_order() -> None:
    lines = HAND_EDITED.splitlines()
    positions = [lines.index(line) for line in MINIMAL.splitlines() if line]
    assert positions == sorted(positions)
    for field in schema.SETTINGS:
        assert any(line.startswith(f"{field.key}:") for line in lines)
        assert f"# {field.comment}" in lines or field.key in ("name", "cluster_id", "cert_days")
    vip = lines.index("# " + schema.SETTING["vip"].comment)
    assert lines[vip - 1] == "" and lines[vip + 1] == "vip: ''"


def test_an_unchanged_cluster_is_the_same_bytes() -> None:
    assert _rewrite(HAND_EDITED, lambda c: c) == HAND_EDITED


def test_a_changed_setting_is_rewritten_in_its_place_with_its_comment() -> None:
    written = _rewrite(HAND_EDITED, lambda c: dataclasses.replace(c, cert_days=30))
    assert written == HAND_EDITED.replace("cert_days: 90      # our policy", "cert_days: 30      # our policy")


def test_a_setting_the_file_lacks_is_added_after_its_neighbour_with_its_comment() -> None:
    written = _rewrite(MINIMAL, lambda c: dataclasses.replace(c, vip="10.0.0.100"))
    block = f"\n\n# {schema.SETTING['vip'].comment}\nvip: 10.0.0.100\n"
    assert written.index("cluster_id: ") < written.index(block) < written.index("cert_days: 90      # our policy")


def test_a_node_is_edited_key_by_key() -> None:
    written = _rewrite(HAND_EDITED, lambda c: _node(c, "w2", labels={"gpu": "yes", "zone": "a"}, master="c1"))
    assert written == HAND_EDITED.replace(
        '  labels:\n    gpu: "yes"     # quoted: YAML 1.1',
        "  labels:\n    gpu: 'yes'\n    zone: a     # quoted: YAML 1.1",
    )


def test_a_key_set_on_a_node_is_added_after_its_schema_neighbour() -> None:
    written = _rewrite(HAND_EDITED, lambda c: _node(c, "c1", sans=("api.lab.example",)))
    assert written == HAND_EDITED.replace("  role: controller\n", "  role: controller\n  sans:\n  - api.lab.example\n")


def test_an_address_with_its_prefix_is_kept_while_it_means_the_same() -> None:
    written = _rewrite(HAND_EDITED, lambda c: _node(c, "c1", sans=("api.lab.example",)))
    assert "  ip: 10.0.0.1/24    # rack 1's switch\n" in written
    moved = _rewrite(HAND_EDITED, lambda c: _node(c, "c1", ip="10.0.0.9"))
    assert "  ip: 10.0.0.9/24    # rack 1's switch\n" in moved


def test_a_key_reset_to_its_default_goes_with_its_line() -> None:
    written = _rewrite(HAND_EDITED, lambda c: _node(c, "w2", labels={}))
    assert written == HAND_EDITED.replace('  labels:\n    gpu: "yes"     # quoted: YAML 1.1\n', "")


def test_a_new_node_comes_last_and_a_removed_one_takes_its_comments() -> None:
    added = _rewrite(HAND_EDITED, lambda c: c.with_node(Node("w3", "10.0.0.4", Role.WORKER, master="c1")))
    assert added == HAND_EDITED.replace(
        "# end of file", "- name: w3\n  ip: 10.0.0.4\n  role: worker\n  master: c1\n# end of file"
    )
    removed = _rewrite(HAND_EDITED, lambda c: dataclasses.replace(c, nodes=tuple(n for n in c.nodes if n.name != "w1")))
    assert removed == HAND_EDITED.replace("\n\n# workers\n- {name: w1, ip: 10.0.0.2, role: worker, master: c1}", "")


def test_a_flow_style_node_that_changes_is_written_as_a_block() -> None:
    written = _rewrite(HAND_EDITED, lambda c: _node(c, "w1", labels={"zone": "b"}))
    assert written == HAND_EDITED.replace(
        "- {name: w1, ip: 10.0.0.2, role: worker, master: c1}",
        "- name: w1\n  ip: 10.0.0.2\n  role: worker\n  master: c1\n  labels:\n    zone: b",
    )


def test_a_layout_it_cannot_edit_is_written_fresh_and_still_right() -> None:
    anchored = MINIMAL.replace("name: lab ", "name: &n lab ").replace(
        '"yes"     # quoted: YAML 1.1', '"yes"\n    team: *n'
    )
    after = _node(clusterfile.parse(anchored.encode()), "w2", labels={"team": "lab"})
    written = clusterfile.rewrite(anchored.encode(), after)
    assert clusterfile.parse(written) == after


def test_crlf_line_ends_and_a_byte_order_mark_are_kept() -> None:
    text = "\ufeff" + HAND_EDITED.replace("\n", "\r\n")
    written = _rewrite(text, lambda c: _node(c, "w2", labels={"gpu": "no"}))
    assert written.startswith("\ufeff# lab cluster") and "\n" not in written.replace("\r\n", "")
    assert "cert_days: 90      # our policy\r\n" in written and "    gpu: 'no'     # quoted: YAML 1.1\r\n" in written


@pytest.mark.parametrize("separator", ["\r", "\x85", "\u2028", "\u2029"])
def test_a_line_break_libyaml_counts_but_we_do_not_writes_the_file_fresh(separator: str) -> None:
    text = HAND_EDITED.replace("# lab cluster: ask", f"# lab{separator}# cluster: ask")
    written = _rewrite(text, lambda c: _node(c, "w2", labels={"gpu": "no"}))
    assert written == clusterfile.dump(clusterfile.parse(written.encode())).decode()


def test_the_first_node_goes_with_the_comment_above_it() -> None:
    spare = "nodes:\n# spare, rack 9\n- name: w0\n  ip: 10.0.0.20\n  role: worker\n  master: c1\n"
    text = HAND_EDITED.replace("\nnodes:\n", "\n" + spare, 1)
    assert _rewrite(text, lambda c: dataclasses.replace(c, nodes=c.nodes[1:])) == HAND_EDITED


def test_flow_style_nodes_stay_as_written_while_they_do_not_change() -> None:
    flow = (
        HAND_EDITED[: HAND_EDITED.index("\nnodes:") + 1]
        + "nodes: [{name: c1, ip: 10.0.0.1, role: controller}]  # one\n"
    )
    assert _rewrite(flow, lambda c: dataclasses.replace(c, cert_days=30)) == flow.replace(
        "cert_days: 90", "cert_days: 30"
    )


def test_a_file_changed_since_it_was_read_is_written_fresh_and_right() -> None:
    before = clusterfile.parse(HAND_EDITED.encode())
    grown = HAND_EDITED + "- name: w9\n  ip: 10.0.0.9\n  role: worker\n  master: c1\n"
    after = _node(before, "w2", labels={})
    assert clusterfile.parse(clusterfile.rewrite(grown.encode(), after, before=before)) == after


def test_a_merge_key_reads_as_yaml_1_1_says() -> None:
    text = HAND_EDITED.replace("- name: w2\n", "- <<: {role: worker, master: c1}\n  name: w2\n")
    text = text.replace("  role: worker     # GPU box\n", "").replace(
        "  ip: 10.0.0.3\n  master: c1\n", "  ip: 10.0.0.3\n"
    )
    assert clusterfile.parse(text.encode()) == clusterfile.parse(HAND_EDITED.encode())


@pytest.mark.parametrize(
    ("bad", "message"),
    [(b"\xe9", "invalid trailing UTF-8 octet"), (b"\x00", "control characters are not allowed")],
)
def test_a_byte_yaml_cannot_read_is_named_with_its_line(bad: bytes, message: str) -> None:
    text = HAND_EDITED.encode().replace(b"# the GPU box", b"# the GPU box " + bad)
    text = text.replace(b"role: worker     # GPU box", b"role: worker     # GPU box " + bad)
    line = text[: text.index(bad)].count(b"\n") + 1
    with pytest.raises(IsobuildError) as caught:
        clusterfile.parse(text)
    assert caught.value.message == f"cluster.yaml: {message} at line {line}"


def test_the_nodes_comment_names_every_node_field() -> None:
    comment = clusterfile.dump(clusterfile.parse(HAND_EDITED.encode())).decode().split("\n# Nodes:", 1)[1]
    comment = comment.split("\nnodes:", 1)[0]
    assert all(re.search(rf"\b{field.key}\b", comment) for field in schema.NODE_FIELDS)


# -- property: any cluster, any comments, any change ------------------------------------------
@st.composite
def commented(draw: st.DrawFn, cluster: Cluster) -> str:
    """``cluster``'s file with comment lines and end-of-line comments sprinkled in."""
    lines = []
    for i, line in enumerate(clusterfile.dump(cluster).decode().splitlines()):
        if draw(st.booleans()) and line.strip() and not line.startswith("#"):
            lines.append(f"# c{i}")
        lines.append(f"{line}   # e{i}" if line.strip() and not line.startswith("#") and draw(st.booleans()) else line)
    return "\n".join(lines) + "\n"


@st.composite
def changes(draw: st.DrawFn, cluster: Cluster) -> Cluster:
    nodes = list(cluster.nodes)
    if len(nodes) > 1 and draw(st.booleans()):
        del nodes[draw(st.integers(1, len(nodes) - 1))]
    relabel = draw(st.lists(st.integers(0, len(nodes) - 1), max_size=2)) if nodes else []
    for i in relabel:
        nodes[i] = dataclasses.replace(nodes[i], labels=draw(st.dictionaries(label, label, max_size=2)))
    if draw(st.booleans()) and nodes:
        nodes.append(Node("added-node", "10.9.0.1", Role.WORKER, master=nodes[0].name))
    return dataclasses.replace(cluster, cert_days=draw(st.sampled_from([cluster.cert_days, 7])), nodes=tuple(nodes))


@settings(max_examples=100, deadline=None)  # ~50 ms an example: four parses of a whole cluster
@given(st.data())
def test_every_comment_survives_but_those_of_what_went(data: st.DataObject) -> None:
    text = data.draw(commented(data.draw(clusters())))
    before = clusterfile.parse(text.encode())
    after = data.draw(changes(before))
    written = clusterfile.rewrite(text.encode(), after).decode()
    assert clusterfile.parse(written.encode()) == after
    lost = _comments(text) - _comments(written)
    note(f"{text}\n----\n{written}")
    assert lost <= _may_go(text, before, after)
    assert _comments(written) <= _comments(text)


def _comments(text: str) -> set[str]:
    return set(re.findall(r"# [ce]\d+", text))


def _may_go(text: str, before: Cluster, after: Cluster) -> set[str]:
    """The comments a change may take with it: a removed node's (on its lines, and the comment
    lines just above it); and of a labels mapping written anew, those on its key's line, between
    its entries and on each but the last entry (that one too when the labels are gone)."""
    now = {n.name: n for n in after.nodes}
    relabelled = {n.name for n in before.nodes if n.name in now and n.labels != now[n.name].labels}
    lines = [*text.splitlines(), "", ""]  # the last, to end a labels mapping at the end of the file
    may: set[str] = set()
    owner, block = "", list[int]()
    for i, line in enumerate(lines[:-1]):
        in_labels = line.startswith("  labels:") or (
            block and (line.startswith("    ") or (line.startswith("# c") and lines[i + 1].startswith("    ")))
        )
        if block and not in_labels:  # the labels mapping just ended
            emptied = not now[owner].labels
            may |= {c for j in block for c in _comments(lines[j]) if j != block[-1] or emptied or c.startswith("# c")}
            block = []
        if line.startswith("- name: ") or (line.startswith("# c") and lines[i + 1].startswith("- name: ")):
            owner = (line if line.startswith("- ") else lines[i + 1]).split()[2]
        if owner and owner not in now:
            may |= _comments(line)
        if in_labels and owner in relabelled:
            block.append(i)
    return may
