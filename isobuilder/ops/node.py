"""``init`` and ``node``: create the cluster once; add or update one node, and rebuild the other
up-to-date nodes that the change alters (the controllers when one is added, everyone when an
endpoint is set). One lock, one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from isobuilder import authority, checks, clusterfile
from isobuilder.authority import Authority
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.files import File, contents
from isobuilder.inventory import Inventory, Transaction
from isobuilder.keys import KeySource, generate_key
from isobuilder.model import Cluster, Format, Media, Node, bracket, merged_ssh_keys
from isobuilder.nodefolder import NodeFolder, build_node, credentials_in
from isobuilder.ops import (
    ClusterFile,
    check_versions,
    load_authority,
    out_of_step,
    put_cluster,
    read_cluster,
    read_node,
    transaction,
)
from isobuilder.plan import ClusterRequest, NodeRequest, plan_node

NO_SSH_KEY = "no SSH key: nobody can log in to this node (add --ssh-key FILE, or ssh_keys in cluster.yaml)"


def _refuse_orphan_pki(inv: Inventory) -> None:
    """A new cluster only where no trace of one is left: a CA key survives in ssl/ or in a
    controller's folder, and a new CA would orphan every node made from it."""
    if inv.ssl.is_dir() and any(inv.ssl.iterdir()):
        raise IsobuildError(
            f"{inv.ssl} holds a PKI but {inv.cluster_file} is missing",
            hint="restore cluster.yaml from your backup; to start a new cluster, move ssl/ away first",
        )
    folders = sorted(p.name for p in inv.root.glob("node-*") if p.is_dir() or p.is_symlink())
    if folders:
        raise IsobuildError(
            f"{inv.root} holds node folders ({folders[0]}, ...) but no cluster.yaml and no ssl/",
            hint="restore cluster.yaml and ssl/ from your backup; to start a new cluster, use a new --inventory",
        )


def _create(
    ctx: Context, tx: Transaction, request: ClusterRequest, *, encrypt_ca: bool, new_key: KeySource = generate_key
) -> tuple[Cluster, Authority]:
    """A new cluster and its CAs, staged in ``tx``."""
    _refuse_orphan_pki(ctx.inventory)
    cluster = request.new_cluster(ctx.new_id())
    passphrase = ctx.passphrase(confirm=True) if encrypt_ca else None
    ssl = authority.create(cluster.key_type, cluster.ca_days, ctx.now, passphrase, new_key=new_key)
    tx.put_tree("ssl", ssl)
    return cluster, Authority.of(contents(ssl), str(ctx.inventory.ssl), lambda: passphrase or b"")


def init(ctx: Context, request: ClusterRequest, *, encrypt_ca: bool = False) -> Cluster:
    with transaction(ctx) as tx:
        if ctx.inventory.has_cluster():
            raise IsobuildError(
                f"a cluster already exists in {ctx.inventory.root}",
                hint=f"change its settings by editing {ctx.inventory.cluster_file}; the CA is never re-made",
            )
        cluster, _ = _create(ctx, tx, request, encrypt_ca=encrypt_ca)
        tx.put_file(clusterfile.NAME, File(clusterfile.dump(cluster), clusterfile.mode(cluster)))
    return cluster


class Affected(NamedTuple):
    """Another node whose folder a change rebuilt (e.g. the controllers, when one is added)."""

    name: str
    folder: str
    to_apply: tuple[str, ...]  # paths on the node its apply.sh now changes

    @property
    def certs_changed(self) -> bool:
        return credentials_in(self.to_apply)

    def advice(self) -> str:
        if self.to_apply:
            return f"a running node needs it: isobuild push {self.name} (its apply.sh; {apply_summary(self.to_apply)})"
        return "first-boot config only (e.g. who runs kubeadm init): re-attach its config.iso if it has not booted yet"


def apply_summary(paths: Sequence[str], most: int = 4) -> str:
    """What apply.sh changes on a node, short: ``kubelet.crt, kubeadm-flags.env and 2 more``."""
    names = [p.rsplit("/", 1)[-1] or p for p in paths]
    shown = ", ".join(names[:most])
    return f"{shown} and {len(names) - most} more" if len(names) > most else shown


class NodeResult(NamedTuple):
    """What ``isobuild node`` did: the node, the files written and kept, what else it rebuilt."""

    node: Node
    folder: Path
    changed: tuple[str, ...]  # node-folder files written (relative); empty: nothing to do
    cluster_created: bool
    cert_expiry: dt.datetime
    kept_edits: tuple[str, ...]  # hand-edited files kept (relative to the folder)
    format: Format
    media: Media
    warnings: tuple[str, ...] = ()
    others: tuple[Affected, ...] = ()
    removed: tuple[str, ...] = ()  # labels and SANs an edit took away
    kubeconfigs: tuple[Path, ...] = ()  # the inventory's kubeconfigs re-issued for a new address
    to_apply: tuple[str, ...] = ()  # paths on the (running) node its apply.sh now changes

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.node.name,
            "ip": self.node.ip,
            "role": self.node.role.value,
            "folder": str(self.folder),
            "changed": list(self.changed),
            "cluster_created": self.cluster_created,
            "cert_expiry": self.cert_expiry.isoformat(),
            "kept_hand_edit": bool(self.kept_edits),
            "kept_edits": list(self.kept_edits),
            "format": self.format.value,
            "media": self.media.value,
            "static_network": self.node.static,
            "warnings": list(self.warnings),
            "removed": list(self.removed),
            "kubeconfigs": [str(p) for p in self.kubeconfigs],
            "rebuilt_others": [
                {"name": a.name, "folder": a.folder, "certs_changed": a.certs_changed, "to_apply": list(a.to_apply)}
                for a in self.others
            ],
            "to_apply": list(self.to_apply),
        }


def add_node(
    ctx: Context,
    request: NodeRequest,
    options: ClusterRequest,
    *,
    encrypt_ca: bool = False,
    new_key: KeySource = generate_key,
) -> NodeResult:
    """``new_key``: where new keys come from (the CLI makes them ahead: :mod:`isobuilder.keys`)."""
    inv = ctx.inventory
    with transaction(ctx) as tx:
        created = not inv.has_cluster()
        if created:
            before, authority_ = _create(ctx, tx, options, encrypt_ca=encrypt_ca, new_key=new_key)
            read = ClusterFile(None, before)
        else:
            read = read_cluster(inv, cross_checks=False)  # checked below, with the node in it
            before = read.cluster
            conflicts = options.conflicts(before)
            if conflicts:
                raise IsobuildError(
                    f"the cluster exists; {conflicts[0]} differs from cluster.yaml",
                    hint=f"cluster settings live in {inv.cluster_file}: edit it there, then run isobuild build",
                )
            if encrypt_ca:
                raise IsobuildError(
                    "--encrypt-ca goes with a new cluster", hint="the CA of this cluster exists already"
                )
            authority_ = load_authority(ctx)
            check_versions(inv, before, authority_)  # a hand edit of kubernetes_version
        cluster = options.apply_later(before)
        planned = plan_node(cluster, request)
        node, source = planned.node, planned.source
        updated = checks.check_cluster(cluster.with_node(node), source, f"node {node.name!r}")
        built = build_node(
            updated,
            node,
            authority_,
            read_node(inv, node),
            now=ctx.now,
            iso_epoch=ctx.iso_epoch,
            force=request.force,
            new_key=new_key,
        )
        others, skipped = rebuild_others(ctx, updated, authority_, {node.name})
        if built.changed:
            tx.put_tree(node.folder, built.tree)
        for other, folder in others:
            tx.put_tree(other.folder, folder.tree)
        if created or updated != before:  # an unchanged cluster keeps the operator's comments
            put_cluster(tx, updated, read)
        moved = _follow_endpoint(ctx, tx, before, updated, authority_) if not created else []
    warnings = (
        *(() if merged_ssh_keys(updated, node) else (NO_SSH_KEY,)),
        *checks.cluster_warnings(updated),
        *_uploaded_config_warning(before, updated, [a for a, _ in others]),
    )
    return NodeResult(
        node,
        inv.node_dir(node.folder),
        tuple(built.changed),
        created,
        built.cert_expiry(),
        built.kept_edits,
        updated.format_of(node),
        updated.media_of(node),
        (*warnings, *skipped),
        tuple(a for a, _ in others),
        planned.removed,
        tuple(moved),
        built.to_apply,
    )


def _follow_endpoint(
    ctx: Context, tx: Transaction, before: Cluster, after: Cluster, authority_: Authority
) -> list[Path]:
    """The admin's and users' kubeconfigs follow the cluster's address (e.g. the only
    controller's new IP, a VIP set later)."""
    if not before.controllers() or before.server_url() == after.server_url():
        return []
    from isobuilder.ops.certs import follow_endpoint  # with the command that needs it (start-up time)

    return follow_endpoint(ctx, tx, after, authority_, before.server_url())


def _uploaded_config_warning(before: Cluster, after: Cluster, others: list[Affected]) -> list[str]:
    """A running control plane keeps the ClusterConfiguration kubeadm init uploaded
    (kube-system/kubeadm-config), and checks every joining controller's certificate against its
    endpoint and certSANs (cmd/kubeadm/app/phases/certs/certs.go, validateCertificateWithConfig)."""
    fix = (
        "on a running cluster, set them in kube-system/kubeadm-config too (kubectl -n kube-system edit "
        "configmap kubeadm-config) before another controller joins"
    )
    if before.controllers() and (before.endpoint_host_port(), before.cluster_sans()) != (
        after.endpoint_host_port(),
        after.cluster_sans(),
    ):
        host, port = after.endpoint_host_port()
        return [f"the API endpoint is now {bracket(host)}:{port} (certSANs {', '.join(after.cluster_sans())}): {fix}"]
    reissued = [a.name for a in others if a.certs_changed and (n := after.node(a.name)) and n.role.is_controller]
    if reissued:  # cluster.yaml edited by hand: what changed is not known here, only its effect
        return [
            f"controller certificates re-issued from an edited cluster.yaml ({', '.join(reissued)}): if the "
            f"endpoint, VIP, domain or service CIDR changed, {fix}"
        ]
    return []


def rebuild_others(
    ctx: Context, after: Cluster, authority_: Authority, building: set[str], also: Sequence[Node] = ()
) -> tuple[list[tuple[Affected, NodeFolder]], list[str]]:
    """Other built nodes made from another cluster-wide view than ``after`` (this command's
    options, or a hand edit of cluster.yaml), and ``also``, rebuilt: the cluster stays one
    cluster. A node that cannot be rebuilt (a hand edit) is skipped, with the reason."""
    rebuilt: list[tuple[Affected, NodeFolder]] = []
    skipped: list[str] = []
    inv = ctx.inventory
    wanted = {n.name for n in (*out_of_step(inv, after, authority_, building), *also)}
    for other in (n for n in after.nodes if n.name in wanted and n.name not in building):
        try:
            built = build_node(after, other, authority_, read_node(inv, other), now=ctx.now, iso_epoch=ctx.iso_epoch)
        except IsobuildError as exc:
            skipped.append(f"{other.folder} not rebuilt: {exc.message}")
            continue
        rebuilt.append((Affected(other.name, other.folder, built.to_apply), built))
    return rebuilt, skipped
