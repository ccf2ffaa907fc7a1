"""A node's folder, built as one pure, linear pipeline.

:func:`build_node` takes the cluster, the node, the CA store, the folder's existing files (with
their modes) and the clock, and returns the folder's new files. Every caller goes through it:
``node``, the rebuild of affected nodes, ``build``'s workers, ``certs renew``. The steps, in the
order a reader expects, each reading and extending one :class:`_Build` record::

    add_ca_material      the CA certificates (and, on a controller, keys) the node receives
    issue_identities     its leaf certificates, reusing keys and still-matching certs
    write_kubeconfigs    the kubeconfigs that embed them
    render_host_configs  kubeadm/kubelet configs, manifests, the first-boot scripts
    lay_out_drive        meta data, network config and user data at the medium's paths
    apply_hand_edit_rule a hand edit of a generated file is kept, or refused, never overwritten
    write_apply_script   apply.sh: what first boot writes (a kept edit's too) but the CAs
    write_upgrade_script upgrade.sh, while the node runs an older Kubernetes than cluster.yaml's
    keep_script_edits    apply.sh and upgrade.sh under the same hand-edit rule
    pack_iso             config.iso (kept, bytes and mtime, when it holds exactly the drive)
    record_state         .isobuild.json: what was generated, from which inputs

The drive layout, the state record and the hand-edit rule live here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import NamedTuple

from isobuilder import (
    configdrive,
    firewall,
    firstboot,
    handedits,
    hostsettings,
    kubeconfig,
    manifests,
    network,
    pki,
    render,
    serialize,
    skew,
)
from isobuilder.authority import CA_FILES, Authority
from isobuilder.files import File, changes
from isobuilder.identities import Kubeconfig, ca_files_for, node_identities, node_kubeconfigs
from isobuilder.keys import KeySource, generate_key
from isobuilder.model import Cluster, Format, Media, Node, Role
from isobuilder.staterecord import STATE, NodeState, cluster_digest, inputs_digest, version_or_none

CLOUD_DIR = "cloud-config"  # the drive's files, as they appear on config.iso
ISO = "config.iso"
APPLY = "apply.sh"  # brings a running node to what its folder holds
UPGRADE = "upgrade.sh"  # moves a running node to cluster.yaml's Kubernetes version
RETIRED = frozenset({"renew.sh"})  # what apply.sh replaced: dropped from a rebuilt folder
INSTALL = "install.sh"
DRIVE_INSTALLER = "install.sh"  # Ignition nodes: the disk installer travels on the drive too
# Every drive path isobuild writes, whatever the medium: a medium switch drops the old ones.
GENERATED_DRIVE_FILES = frozenset(
    {p for m in Media for p in (m.user_data_path, m.meta_data_path, m.network_path)} | {DRIVE_INSTALLER}
)
EMBEDDED_IN_KUBECONFIG = {"admin", "super-admin", "controller-manager", "scheduler"}


class NodeFolder(NamedTuple):
    """What :func:`build_node` made."""

    tree: dict[str, File]
    changed: list[str]  # paths written or removed, relative to the folder; empty: nothing to do
    kept_edits: tuple[str, ...]  # hand-edited files kept as they are (relative to the folder)
    to_apply: tuple[str, ...]  # paths on the node apply.sh now changes there; empty: nothing new

    @property
    def certs_changed(self) -> bool:
        return credentials_in(self.to_apply)

    def cert_expiry(self) -> dt.datetime:
        return min(
            pki.load_cert(f.content, rel).not_valid_after_utc
            for rel, f in self.tree.items()
            if rel.startswith("ssl/") and rel.endswith(".crt") and rel.removeprefix("ssl/") not in CA_FILES
        )


# -- the drive layout ---------------------------------------------------------------------------
def drive_of(tree: Mapping[str, File]) -> dict[str, bytes]:
    """The drive's files (paths as on config.iso) of a node folder's tree."""
    prefix = CLOUD_DIR + "/"
    return {rel.removeprefix(prefix): f.content for rel, f in tree.items() if rel.startswith(prefix)}


def user_data_of(tree: Mapping[str, File], media: Media) -> bytes | None:
    """The drive's user data: at this medium's path, or the other's (before a medium switch)."""
    for m in (media, *Media):
        found = tree.get(f"{CLOUD_DIR}/{m.user_data_path}")
        if found is not None:
            return found.content
    return None


# -- the pipeline ------------------------------------------------------------------------------
@dataclasses.dataclass
class _Build:
    """The one record the steps read and extend."""

    cluster: Cluster
    node: Node
    authority: Authority
    existing: Mapping[str, File]
    now: dt.datetime
    iso_epoch: float
    force: bool
    renewal: pki.Renewal | None
    new_key: KeySource
    tree: dict[str, File] = dataclasses.field(default_factory=dict)  # the folder, relative paths
    host: manifests.HostFiles = dataclasses.field(default_factory=dict)  # files on the node
    ca_paths: set[str] = dataclasses.field(default_factory=set)  # on the node: not apply.sh's to change
    applied: manifests.HostFiles = dataclasses.field(default_factory=dict)  # what apply.sh installs
    pairs: dict[str, pki.KeyPair] = dataclasses.field(default_factory=dict)
    drive: dict[str, bytes] = dataclasses.field(default_factory=dict)
    install: bytes = b""
    generated: bytes = b""  # the user data isobuild generates
    kept_edits: list[str] = dataclasses.field(default_factory=list)
    digests: dict[str, str] = dataclasses.field(default_factory=dict)  # of what isobuild generated
    running: str = ""  # the Kubernetes version the node runs
    state: NodeState = dataclasses.field(default_factory=NodeState)  # the folder's record, read once

    @property
    def media(self) -> Media:
        return self.cluster.media_of(self.node)


def load_libraries() -> None:
    """Import the libraries the pipeline loads at their first use (jinja2 for the templates,
    pycdlib for the ISO) now: ``isobuild node`` loads them while a new node's keys are made on
    the other core, so that the key is ready when :func:`issue_identities` asks for it."""
    import jinja2  # noqa: F401
    import pycdlib  # noqa: F401


def build_node(
    cluster: Cluster,
    node: Node,
    authority: Authority,
    existing: Mapping[str, File],
    *,
    now: dt.datetime,
    iso_epoch: float,
    force: bool = False,
    renewal: pki.Renewal | None = None,
    running: str | None = None,
    new_key: KeySource = generate_key,
) -> NodeFolder:
    """The node folder's files. ``renewal``: re-issue every leaf certificate (``certs renew``).
    ``running``: the Kubernetes version the node runs (default: :func:`running_version`).
    ``new_key``: where new keys come from (:class:`keys.KeysAhead`: made ahead, in a thread)."""
    b = _Build(cluster, node, authority, existing, now, iso_epoch, force, renewal, new_key)
    b.state = NodeState.parse(_content(existing.get(STATE)))
    b.running = running or running_version(b.state, user_data_of(existing, b.media), cluster.kubernetes_version)
    add_ca_material(b)
    issue_identities(b)
    write_kubeconfigs(b)
    render_host_configs(b)
    lay_out_drive(b)
    apply_hand_edit_rule(b)
    write_apply_script(b)
    write_upgrade_script(b)
    keep_script_edits(b)
    pack_iso(b)
    state = record_state(b)
    return NodeFolder(b.tree, changes(existing, b.tree), tuple(b.kept_edits), _to_apply(b, state))


def add_ca_material(b: _Build) -> None:
    for name in ca_files_for(b.cluster, b.node):
        file = File(b.authority.plain(name), 0o600 if name.endswith(".key") else 0o644)
        b.tree[f"ssl/{name}"] = file
        b.host[f"{manifests.PKI_DIR}/{name}"] = file
        b.ca_paths.add(f"{manifests.PKI_DIR}/{name}")


def issue_identities(b: _Build) -> None:
    for ident in node_identities(b.cluster, b.node):
        previous = _keypair(b.existing, f"ssl/{ident.name}")
        pair = pki.ensure_leaf(
            ident.spec,
            b.authority.ca(ident.signer),
            previous,
            b.cluster.key_type,
            b.now,
            b.cluster.cert_days,
            b.renewal,
            b.new_key,
        )
        b.pairs[ident.name] = pair
        b.tree[f"ssl/{ident.name}.crt"] = File(pair.cert_pem, 0o644)
        b.tree[f"ssl/{ident.name}.key"] = File(pair.key_pem, 0o600)
        if ident.name in EMBEDDED_IN_KUBECONFIG:
            continue
        folder = manifests.KUBELET_PKI_DIR if ident.name == "kubelet" else manifests.PKI_DIR
        base = f"{folder}/{ident.name}"
        b.host[f"{base}.crt"] = File(pair.cert_pem)
        b.host[f"{base}.key"] = File(pair.key_pem, 0o600)


def write_kubeconfigs(b: _Build) -> None:
    for kc in node_kubeconfigs(b.cluster, b.node):
        local = kc.uses_local_apiserver or (kc is Kubeconfig.KUBELET and b.node.role.is_controller)
        user = f"system:node:{b.node.name}" if kc is Kubeconfig.KUBELET else kc.user
        ca = b.authority.files["ca.crt"]
        config = kubeconfig.build(
            b.cluster.name, server_for(b.cluster, b.node, local=local), ca, user, b.pairs[kc.identity]
        )
        b.host[f"/etc/kubernetes/{kc.file}"] = File(kubeconfig.dump(config), 0o600)


def server_for(cluster: Cluster, node: Node, *, local: bool) -> str:
    """The local apiserver (a controller's own components), else the one endpoint every node and
    kubeconfig uses: endpoint, else the VIP, else the first controller (--master only says which
    cluster a worker joins)."""
    return cluster.server_url(via_ip=node.ip) if local else cluster.server_url()


def render_host_configs(b: _Build) -> None:
    cluster, node = b.cluster, b.node
    if node.role.is_controller:
        b.host |= manifests.controller_configs(cluster, node)
    else:
        b.host |= manifests.worker_configs(cluster, node)
    if node.role is Role.EDGE:
        b.host |= firewall.host_files(cluster, node)
    b.host |= hostsettings.host_files(cluster, node)
    if cluster.format_of(node) is Format.IGNITION:
        b.host[render.SETUP_PATH] = File(render.flatcar_setup_script(cluster, node), 0o700)
        b.install = render.flatcar_install_script(cluster, node, b.media.user_data_path)
    else:
        b.install = render.install_script(cluster, node)
        b.host[render.INSTALL_PATH] = File(b.install, 0o700)
        b.host[render.INSTALL_UNIT_PATH] = File(render.install_unit(render.INSTALL_PATH).encode(), 0o644)
    b.tree[INSTALL] = File(b.install, 0o755)


def write_apply_script(b: _Build) -> None:
    """What apply.sh installs: what first boot writes but the CAs (a CA is never re-made: another
    one on a running node would cut it off). A hand edit kept on the drive: the files it writes
    (as cloud-init or Ignition reads them), so the running node gets the edit too."""
    b.applied = {path: f for path, f in b.host.items() if path not in b.ca_paths}
    user_data_rel = f"{CLOUD_DIR}/{b.media.user_data_path}"
    if user_data_rel in b.kept_edits:
        edited = firstboot.files_written(b.drive[b.media.user_data_path])
        if edited is not None:
            b.applied = {p: f for p, f in edited.items() if p not in b.ca_paths and p != render.HOSTS}
    b.tree[APPLY] = File(render.apply_script(b.cluster, b.node, b.applied), 0o700)


def write_upgrade_script(b: _Build) -> None:
    """upgrade.sh, while the node runs another version than cluster.yaml's (the commands check
    before building that every node can reach it: ``ops.check_versions``)."""
    if b.running != b.cluster.kubernetes_version:
        how = skew.how(b.cluster, b.node)
        b.tree[UPGRADE] = File(render.upgrade_script(b.cluster, b.node, b.running, how), 0o700)


def _to_apply(b: _Build, state: NodeState) -> tuple[str, ...]:
    """The node's paths this build changes, by the previous state record's; a folder made before
    state records listed them: every path (apply.sh is new to it). A new node: nothing."""
    if not b.existing:
        return ()
    before = b.state.applied
    return tuple(sorted(p for p, d in state.applied.items() if before.get(p) != d and read_when_running(p)))


def credentials_in(paths: tuple[str, ...]) -> bool:
    """Certificates, keys or kubeconfigs among the paths apply.sh changes."""
    return any(p.endswith((".crt", ".key", ".conf")) for p in paths)


def read_when_running(path: str) -> bool:
    """Whether a running node reads ``path`` (apply.sh installs the others too, to keep the node
    like its folder, but a change there alone is no reason to run it): not the first-boot
    scripts and unit, not kubeadm's init and join configs, but kube-vip's manifest."""
    if path in (render.INSTALL_PATH, render.SETUP_PATH, render.INSTALL_UNIT_PATH):
        return False
    return not path.startswith(manifests.ADDONS_DIR + "/") or path == f"{manifests.ADDONS_DIR}/kube-vip.yaml"


def lay_out_drive(b: _Build) -> None:
    cluster, node, media = b.cluster, b.node, b.media
    nocloud = media is Media.NOCLOUD
    b.drive[media.meta_data_path] = (
        render.nocloud_meta_data(cluster, node) if nocloud else render.meta_data(cluster, node)
    )
    if node.static:
        b.drive[media.network_path] = (
            network.network_config_v2(node) if nocloud else network.openstack_network_data(node)
        )
    if cluster.format_of(node) is Format.IGNITION:
        b.generated = render.ignition_config(cluster, node, b.host)
        b.drive[DRIVE_INSTALLER] = b.install
    else:
        b.generated = render.user_data(cluster, node, b.host)


def apply_hand_edit_rule(b: _Build) -> None:
    state = b.state
    on_disk = user_data_of(b.existing, b.media)
    where = f"{b.node.folder}/{CLOUD_DIR}/{b.media.user_data_path}"
    user_data = handedits.hand_edit_rule(state.user_data_sha256, on_disk, b.generated, force=b.force, where=where)
    if user_data is not b.generated:
        b.kept_edits.append(f"{CLOUD_DIR}/{b.media.user_data_path}")
    b.drive[b.media.user_data_path] = user_data
    # Every other file isobuild writes, by the same rule: the drive's and install.sh here, the
    # scripts for the running node once they are written (keep_script_edits).
    guarded = {f"{CLOUD_DIR}/{path}": content for path, content in b.drive.items() if path != b.media.user_data_path}
    _keep_or_refuse_all(b, state, {**guarded, INSTALL: b.tree[INSTALL].content})


def keep_script_edits(b: _Build) -> None:
    _keep_or_refuse_all(b, b.state, {rel: b.tree[rel].content for rel in (APPLY, UPGRADE) if rel in b.tree})


def _keep_or_refuse_all(b: _Build, state: NodeState, guarded: Mapping[str, bytes]) -> None:
    for rel, generated in sorted(guarded.items()):
        b.digests[rel] = serialize.sha256(generated)
        kept = _keep_or_refuse(b, state, rel, generated)
        if kept is None:
            continue
        b.kept_edits.append(rel)
        if rel.startswith(CLOUD_DIR + "/"):
            b.drive[rel.removeprefix(CLOUD_DIR + "/")] = kept
        else:
            b.tree[rel] = b.tree[rel]._replace(content=kept)


def _keep_or_refuse(b: _Build, state: NodeState, rel: str, generated: bytes) -> bytes | None:
    on_disk = b.existing.get(rel)
    copy = None
    if rel == INSTALL:  # a copy: the drive carries the one a node runs
        copy = f"{CLOUD_DIR}/{b.media.user_data_path} (write_files {render.INSTALL_PATH})"
        if b.cluster.format_of(b.node) is Format.IGNITION:
            copy = f"{CLOUD_DIR}/{DRIVE_INSTALLER}"
    return handedits.keep_or_refuse(
        f"{b.node.folder}/{rel}",
        on_disk.content if on_disk else None,
        state.generated.get(rel),
        generated,
        force=b.force,
        run_from=copy,
    )


def pack_iso(b: _Build) -> None:
    # Files the operator added to the drive stay on it, with their modes, but never a key that is
    # not the node's (what isobuild generates itself carries only the node's own).
    added = {}
    for rel, file in b.existing.items():
        if rel.startswith(CLOUD_DIR + "/") and rel.removeprefix(CLOUD_DIR + "/") not in GENERATED_DRIVE_FILES:
            b.tree[rel] = file
            added[rel.removeprefix(CLOUD_DIR + "/")] = file.content
    for path, content in b.drive.items():
        b.tree[f"{CLOUD_DIR}/{path}"] = File(content, 0o600 if path == b.media.user_data_path else 0o644)
    for rel in b.kept_edits:
        if rel.startswith(CLOUD_DIR + "/"):
            added[rel.removeprefix(CLOUD_DIR + "/")] = b.drive[rel.removeprefix(CLOUD_DIR + "/")]
    if added:
        ssl_keys = {rel: f.content for rel, f in b.tree.items() if rel.startswith("ssl/") and rel.endswith(".key")}
        handedits.refuse_foreign_keys(b.node.folder, CLOUD_DIR, added, ssl_keys)
    wanted = drive_of(b.tree)
    current = b.existing.get(ISO)
    if current is not None and configdrive.drive_files(current.content) == wanted:
        b.tree[ISO] = File(current.content, 0o600)  # the same files: keep the image (and its mtime)
    else:
        b.tree[ISO] = File(configdrive.build_iso(wanted, b.media.label, b.iso_epoch), 0o600)


def record_state(b: _Build) -> NodeState:
    for rel, file in b.existing.items():  # the operator's own files in the folder are kept...
        ours = rel.startswith("ssl/") and rel.endswith((".key", ".crt"))  # ...but not keys we no longer issue
        ours = ours or rel in RETIRED or rel in (STATE, UPGRADE)
        if rel not in b.tree and not rel.startswith(CLOUD_DIR + "/") and not ours:
            b.tree[rel] = file
    state = NodeState(
        user_data_sha256=serialize.sha256(b.generated),
        inputs=inputs_digest(b.cluster, b.node, b.authority),
        files={rel: len(f.content) for rel, f in sorted(b.tree.items())},
        cluster=cluster_digest(b.cluster, b.authority, b.node),
        applied=_applied_digests(b),
        generated=b.digests,
        kubernetes=b.running,
    )
    b.tree[STATE] = File(state.dump(), 0o644)
    return state


def _applied_digests(b: _Build) -> dict[str, str]:
    """What apply.sh holds, per path on the node (content and mode): the next build tells from it
    what a running node must apply."""
    digests = {p: serialize.sha256(b"%o\0" % f.mode + f.content) for p, f in b.applied.items()}
    digests[render.HOSTS] = serialize.sha256((b.cluster.hosts_entry_line() or "").encode())
    return digests


def running_version(state: NodeState, user_data: bytes | None, cluster_version: str) -> str:
    """The Kubernetes version a node runs, as isobuild knows: its state record's; for a folder made
    before records kept it, the version its install script pins (what it was built with, read
    from ``user_data``); for a new folder, the cluster's."""
    return state.kubernetes or version_from_drive(user_data) or cluster_version


_K8S_LINE = re.compile(rb"^K8S_VERSION=([0-9]+\.[0-9]+\.[0-9]+)\b", re.MULTILINE)


def version_from_drive(user_data: bytes | None) -> str | None:
    """``K8S_VERSION`` of the install script a drive's first boot writes (install.sh on cloud-init
    nodes, setup.sh on Flatcar's), as cloud-init or Ignition would write it."""
    files = firstboot.files_written(user_data) if user_data else None
    for path in (render.INSTALL_PATH, render.SETUP_PATH):
        script = files.get(path) if files else None
        found = _K8S_LINE.search(script.content) if script else None
        if found:
            return version_or_none(found.group(1).decode())
    return None


def _content(file: File | None) -> bytes | None:
    return file.content if file is not None else None


def _keypair(existing: Mapping[str, File], stem: str) -> pki.KeyPair | None:
    return pki.pair_of(_content(existing.get(f"{stem}.key")), _content(existing.get(f"{stem}.crt")), stem)
