"""``list`` and ``verify``: read the whole inventory under the lock, write nothing.

``verify`` checks chains, SANs against cluster.yaml, keys matching certificates, expiry, modes,
each ISO holding exactly its ``cloud-config/`` folder, and that no CA or service-account key
sits where it must not (told by public key, so no passphrase is needed). Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from isobuilder import configdrive, keyscan, kubeconfig, pki
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.files import contents
from isobuilder.handedits import is_hand_edited
from isobuilder.identities import Signer, node_identities
from isobuilder.inventory import Inventory, read_file, read_tree
from isobuilder.model import Cluster, Format, Media, Node, is_ip, normal_ip
from isobuilder.nodefolder import APPLY, CLOUD_DIR, ISO, drive_of
from isobuilder.ops import load_authority, load_cluster, node_is_current
from isobuilder.ops.build import orphans
from isobuilder.plan import USERS_DIR
from isobuilder.staterecord import STATE, NodeState


class NodeStatus(enum.StrEnum):
    UP_TO_DATE = "up to date"
    STALE = "stale"
    NOT_BUILT = "not built"
    CERTS_EXPIRED = "certs expired"  # built from cluster.yaml as it is, but its certificates are past their end


# -- list --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Row:
    """One node of ``isobuild list``: how it boots, its certificates' expiry, its folder's state."""

    node: Node
    format: Format
    media: Media
    expiry: dt.datetime | None
    status: NodeStatus
    hand_edited: bool
    kubernetes: str | None  # what the node runs, as isobuild knows (None: never built)
    target: str  # cluster.yaml's version

    def version(self) -> str:
        """``1.37.1`` or, while its upgrade.sh waits, ``1.36.2 -> 1.37.1``."""
        if self.kubernetes in (None, self.target):
            return self.target
        return f"{self.kubernetes} -> {self.target}"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.node.name,
            "role": self.node.role.value,
            "ip": self.node.ip,
            "mac": self.node.mac,
            "format": self.format.value,
            "media": self.media.value,
            "cert_expiry": self.expiry.isoformat() if self.expiry else None,
            "status": self.status.value,
            "hand_edited": self.hand_edited,
            "kubernetes": self.kubernetes,
            "target_kubernetes": self.target,
        }


def list_nodes(ctx: Context) -> tuple[list[Row], list[str]]:
    """One row per node of cluster.yaml, and the folders of nodes no longer in it."""
    inv = ctx.inventory
    with inv.locked():
        cluster = load_cluster(inv)
        authority = load_authority(ctx)
        rows = []
        for node in cluster.nodes:
            folder = inv.node_dir(node.folder)
            cert = folder / "ssl" / "kubelet.crt"
            pem = read_file(cert)
            expiry = pki.load_cert(pem, str(cert)).not_valid_after_utc if pem is not None else None
            state_text = read_file(folder / STATE)
            if state_text is None:
                status = NodeStatus.NOT_BUILT
            elif expiry is not None and expiry <= ctx.now:
                status = NodeStatus.CERTS_EXPIRED
            elif node_is_current(inv, cluster, node, authority):
                status = NodeStatus.UP_TO_DATE
            else:
                status = NodeStatus.STALE
            user_data = read_file(folder / CLOUD_DIR / cluster.media_of(node).user_data_path)
            state = NodeState.parse(state_text)
            edited = is_hand_edited(state.user_data_sha256, user_data)
            runs = None if state_text is None else state.kubernetes or cluster.kubernetes_version
            rows.append(
                Row(node, cluster.format_of(node), cluster.media_of(node), expiry, status, edited, runs,
                    cluster.kubernetes_version)
            )  # fmt: skip
        return rows, orphans(inv, cluster)


# -- verify ------------------------------------------------------------------------------------
def verify(ctx: Context) -> list[str]:
    """Every finding in the inventory, one line each (empty: all is well)."""
    inv = ctx.inventory
    with inv.locked():
        cluster = load_cluster(inv)
        authority = load_authority(ctx)
        findings = [
            *_verify_workstation(inv),
            *(_mode_finding(inv.cluster_file, 0o600, inv.root) if cluster.holds_secrets else ()),
            *_verify_kubeconfig_servers(inv, cluster),
            *_verify_kubeconfig_expiry(ctx),
        ]
        cas = {s: authority.ca_cert(s) for s in Signer}
        # Secret keys are told by their public half: no passphrase needed, and encrypted CA keys
        # on disk are still recognised once decrypted onto a drive.
        ca_ids = {pki.public_id(c.public_key()): f"the {s.value} key" for s, c in cas.items()}  # type: ignore[arg-type]
        sa_id = pki.public_id(serialization.load_pem_public_key(authority.files["sa.pub"]))  # type: ignore[arg-type]
        for node in cluster.nodes:
            forbidden = dict(ca_ids) if cluster.external_ca or not node.role.is_controller else {}
            if not node.role.is_controller:
                forbidden[sa_id] = "the service-account key"
            findings += _verify_node(ctx, cluster, node, cas, forbidden)
        return findings


def _mode_finding(path: Path, want: int, root: Path) -> Iterator[str]:
    try:
        mode = path.lstat().st_mode & 0o777
    except OSError:
        return
    if mode != want:
        yield f"{path.relative_to(root)}: mode {mode:04o}, want {want:04o}"


def _verify_workstation(inv: Inventory) -> Iterator[str]:
    yield from _mode_finding(inv.ssl, 0o700, inv.root)
    for path in sorted(inv.ssl.rglob("*.key")):
        yield from _mode_finding(path, 0o600, inv.root)
    yield from _mode_finding(inv.root / "kubeconfig", 0o600, inv.root)


def _workstation_kubeconfigs(inv: Inventory) -> list[Path]:
    """The admin kubeconfig and the user kubeconfigs the inventory holds."""
    return [p for p in [inv.root / "kubeconfig", *sorted((inv.root / USERS_DIR).glob("*.kubeconfig"))] if p.is_file()]


def _verify_kubeconfig_expiry(ctx: Context) -> Iterator[str]:
    """The admin's and every user's kubeconfig: 0600 (a client key), and a client certificate
    still valid (kubectl would be refused with an expired one)."""
    inv = ctx.inventory
    for path in _workstation_kubeconfigs(inv):
        rel = path.relative_to(inv.root)
        if path.parent.name == USERS_DIR:  # the admin's mode is checked with the workstation's
            yield from _mode_finding(path, 0o600, inv.root)
        try:
            pair = kubeconfig.keypair(read_file(path) or b"", str(rel))
            end = pair.cert.not_valid_after_utc if pair is not None else None
        except IsobuildError as exc:
            yield f"{rel}: {exc.message}"
            continue
        if end is None:
            yield f"{rel}: holds no client certificate"
        elif end <= ctx.now:
            again = "isobuild kubeconfig" + (f" --user {path.stem}" if path.parent.name == USERS_DIR else "")
            yield f"{rel}: its client certificate expired on {end:%Y-%m-%d} (run {again})"


def _verify_kubeconfig_servers(inv: Inventory, cluster: Cluster) -> Iterator[str]:
    """A kubeconfig of the inventory that names an IP which is none of the cluster's (a
    controller moved by a hand edit of cluster.yaml, then build): kubectl would reach nothing."""
    ours = {n.ip for n in cluster.controllers()} | ({cluster.vip} if cluster.vip else set())
    ours.add(cluster.endpoint_host_port()[0] if cluster.controllers() or cluster.endpoint or cluster.vip else "")
    for path in _workstation_kubeconfigs(inv):
        try:
            server = kubeconfig.server_of(read_file(path) or b"", str(path))
        except IsobuildError:
            continue  # an unreadable one: its own finding elsewhere, not this one's
        host = urllib.parse.urlsplit(server).hostname if server else None
        if host and is_ip(host) and normal_ip(host) not in ours:
            again = "isobuild kubeconfig" + (f" --user {path.stem}" if path.parent.name == USERS_DIR else "")
            yield (
                f"{path.relative_to(inv.root)}: names {server}, no address of this cluster "
                f"(now {cluster.server_url()}): run {again}"
            )


def _verify_node(
    ctx: Context, cluster: Cluster, node: Node, cas: dict[Signer, Any], forbidden: dict[bytes, str]
) -> Iterator[str]:
    root = ctx.inventory.root
    folder = ctx.inventory.node_dir(node.folder)
    if not folder.is_dir():
        yield f"{node.folder}: not built (run isobuild build {node.name})"
        return
    tree = read_tree(folder)
    files = contents(tree)
    rel = node.folder
    yield from _verify_identities(ctx, cluster, node, files, cas)
    for path, file in sorted(tree.items()):
        name = path.rsplit("/", 1)[-1]
        if (path.endswith(".key") or name in ("user_data", "user-data", ISO)) and file.mode & 0o777 != 0o600:
            yield f"{rel}/{path}: mode {file.mode & 0o777:04o}, want 0600"
    drive = drive_of(tree)
    read = configdrive.read_drive(files.get(ISO))
    on_iso = read[1] if read else None
    if on_iso is None or read is None:
        yield f"{rel}/{ISO}: missing or unreadable"
    elif on_iso != drive:
        differ = sorted(k for k in set(on_iso) | set(drive) if on_iso.get(k) != drive.get(k))
        yield f"{rel}/{ISO}: differs from {CLOUD_DIR}/ ({', '.join(differ)}; run isobuild image {folder})"
    elif problem := configdrive.label_problem(files[ISO], read[0], cluster.media_of(node).label):
        yield f"{rel}/{ISO}: {problem} (run isobuild image {folder})"
    why = "external-CA mode" if node.role.is_controller else f"a {node.role} must not"
    own = _own_keys(cluster, node, files, forbidden)
    # Keys as cloud-init and Ignition would decode them: b64, gz+b64, !!binary, data URLs, gzip.
    on_drive = {key for blob in (on_iso or {}).values() for key in keyscan.private_key_ids(blob)}
    for what in sorted({_name(key, forbidden) for key in on_drive - own}):
        yield f"{rel}/{ISO}: carries {what} ({why})" if what in forbidden.values() else f"{rel}/{ISO}: carries {what}"
    for path, content in sorted(files.items()):
        if path == ISO or (on_iso == drive and path.startswith(CLOUD_DIR + "/")):
            continue  # the drive's files were scanned on the ISO, which holds exactly them
        for what in sorted({_name(key, forbidden) for key in keyscan.private_key_ids(content) - own}):
            yield f"{rel}/{path}: {what} in a node folder" + (f" ({why})" if what in forbidden.values() else "")
    yield from _mode_finding(folder / APPLY, 0o700, root)


def _own_keys(cluster: Cluster, node: Node, files: dict[str, bytes], forbidden: dict[bytes, str]) -> set[bytes]:
    """The keys this node may carry: its own identities' (by public id), and on a controller the
    CA and service-account keys its control plane signs with (unless forbidden)."""
    own = set()
    for ident in node_identities(cluster, node):
        own |= pki.private_keys_in(files.get(f"ssl/{ident.name}.key", b""))
    if node.role.is_controller:
        for name in ("ca.key", "etcd/ca.key", "front-proxy-ca.key", "sa.key"):
            own |= pki.private_keys_in(files.get(f"ssl/{name}", b""))
    return own - set(forbidden)


def _name(key: bytes, forbidden: dict[bytes, str]) -> str:
    return forbidden.get(key, "a private key that is not its own")


def _verify_identities(
    ctx: Context, cluster: Cluster, node: Node, files: dict[str, bytes], cas: dict[Signer, Any]
) -> Iterator[str]:
    rel = node.folder
    for ident in node_identities(cluster, node):
        cert_pem, key_pem = files.get(f"ssl/{ident.name}.crt"), files.get(f"ssl/{ident.name}.key")
        where = f"{rel}/ssl/{ident.name}"
        if cert_pem is None or key_pem is None:
            yield f"{where}.crt/.key: missing"
            continue
        try:
            cert = pki.load_cert(cert_pem, where + ".crt")
            key = pki.load_key(key_pem, where + ".key")
        except IsobuildError as exc:
            yield exc.message
            continue
        if not pki.signed_by(cert, cas[ident.signer]):
            yield f"{where}.crt: not signed by the cluster's {ident.signer.value}"
        if not pki.key_matches(cert, key):
            yield f"{where}.key: does not match {ident.name}.crt"
        if cert.not_valid_after_utc <= ctx.now:
            yield f"{where}.crt: expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        missing = sorted(set(ident.spec.sans) - set(_sans(cert)))
        if missing:
            yield f"{where}.crt: SANs lack {', '.join(missing)} (cluster.yaml changed? run isobuild build {node.name})"


def _sans(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in ext.get_values_for_type(x509.DNSName) + ext.get_values_for_type(x509.IPAddress)]
