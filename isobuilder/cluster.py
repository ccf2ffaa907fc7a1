"""The operations behind the commands: init, node, image, kubeconfig.

Each operation checks every input first, computes the new files in memory (pki, render,
configdrive) and hands them to one inventory transaction. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from isobuilder import __version__, clusterfile, configdrive, kubeconfig, model, network, pki, pxe, render
from isobuilder.errors import IsobuildError
from isobuilder.identities import (
    RESERVED_GROUPS,
    Kubeconfig,
    Signer,
    admin_spec,
    apiserver_sans,
    ca_files_for,
    node_identities,
    node_kubeconfigs,
    user_spec,
)
from isobuilder.inventory import STATE_DIR as STATE_DIR_NAME
from isobuilder.inventory import File, Inventory, read_tree, replace_tree_outside, write_outside
from isobuilder.model import Cluster, Format, KeyType, Media, Node, Role

CLOUD_DIR = "cloud-config"  # the drive's files, as they appear on config.iso
DRIVE_INSTALLER = "install.sh"  # Ignition nodes: the disk installer travels on the drive too
# Every drive path isobuild writes, whatever the medium: a medium switch drops the old ones.
GENERATED_DRIVE_FILES = frozenset(
    {p for m in Media for p in (m.user_data_path, m.meta_data_path, m.network_path)} | {DRIVE_INSTALLER}
)
ISO = "config.iso"
STATE = ".isobuild.json"  # what isobuild generated last; tells a hand edit from our own output
EMBEDDED_IN_KUBECONFIG = {"admin", "super-admin", "controller-manager", "scheduler"}
RENEW = "renew.sh"  # installs renewed certificates on a running node


Prompt = Callable[[bool], str]  # asks for the CA passphrase (True: twice, to create one)
PASSPHRASE_ENV = "ISOBUILD_CA_PASSPHRASE"
CLOCK_ENV = "ISOBUILD_NOW"


def _no_prompt(confirm: bool) -> str:
    raise IsobuildError(
        "the CA keys are encrypted and no passphrase was given",
        hint=f"set {PASSPHRASE_ENV}, or run the command in a terminal to be asked",
    )


@dataclasses.dataclass(frozen=True)
class Context:
    """Per-run state: where, when (the clock is injected, never read deep inside), and how to
    get the CA passphrase."""

    inventory: Inventory
    now: dt.datetime
    iso_epoch: float
    prompt: Prompt = _no_prompt

    @classmethod
    def create(
        cls,
        root: Path,
        now: dt.datetime | None = None,
        environ: Mapping[str, str] = os.environ,
        prompt: Prompt | None = None,
    ) -> Context:
        now = now or _clock(environ.get(CLOCK_ENV, ""))
        sde = environ.get("SOURCE_DATE_EPOCH", "")
        if sde and not (sde.isascii() and sde.isdigit() and int(sde) < 253402300800):  # before year 10000
            raise IsobuildError(
                f"SOURCE_DATE_EPOCH={sde!r} is not a number of seconds", hint="unset it or set it to e.g. $(date +%s)"
            )
        given = environ.get(PASSPHRASE_ENV)
        if given is not None:
            prompt = functools.partial(_given_passphrase, given)
        return cls(Inventory(root), now, float(sde) if sde else now.timestamp(), prompt or _no_prompt)

    def passphrase(self, *, confirm: bool = False) -> bytes:
        text = self.prompt(confirm)
        if not text:
            raise IsobuildError("the CA passphrase is empty", hint=f"set {PASSPHRASE_ENV} to a non-empty passphrase")
        return text.encode()


def _given_passphrase(value: str, confirm: bool) -> str:
    return value


def _clock(text: str) -> dt.datetime:
    """Now, or the time ``ISOBUILD_NOW`` names (ISO 8601): the injected clock of tests, and a
    way to ask `isobuild certs check` what will have expired by then."""
    if not text:
        return dt.datetime.now(dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise IsobuildError(
            f"{CLOCK_ENV}={text!r} is not a date", hint="use ISO 8601, e.g. 2027-06-01T00:00:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


# -- cluster creation ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    """Cluster settings given on the command line (None: not given)."""

    name: str | None = None
    endpoint: str | None = None
    service_cidr: str | None = None
    pod_cidr: str | None = None
    domain: str | None = None
    kubernetes_version: str | None = None
    key_type: KeyType | None = None
    ssh_keys: tuple[str, ...] = ()
    format: Format | None = None
    media: Media | None = None
    vip: str | None = None
    ca_days: int | None = None
    cert_days: int | None = None
    external_ca: bool | None = None

    # Settings a later `node` may still give when cluster.yaml has none (a second controller
    # needs an endpoint); changing one that is set is an edit of cluster.yaml and a `build`.
    SETTABLE_LATER = ("endpoint", "vip")

    def checked(self) -> ClusterOptions:
        return ClusterOptions(
            name=model.check_name(self.name) if self.name is not None else None,
            endpoint=model.check_endpoint(self.endpoint) if self.endpoint else None,
            service_cidr=model.check_cidr(self.service_cidr, "service CIDR") if self.service_cidr else None,
            pod_cidr=model.check_cidr(self.pod_cidr, "pod CIDR") if self.pod_cidr else None,
            domain=model.check_domain(self.domain) if self.domain else None,
            kubernetes_version=_version(self.kubernetes_version) if self.kubernetes_version else None,
            key_type=self.key_type,
            ssh_keys=model.unique(model.check_ssh_key(k) for k in self.ssh_keys),
            format=self.format,
            media=self.media,
            vip=model.check_ip(self.vip, "VIP") if self.vip else None,
            ca_days=_days(self.ca_days, "--ca-days") if self.ca_days is not None else None,
            cert_days=_days(self.cert_days, "--cert-days") if self.cert_days is not None else None,
            external_ca=self.external_ca,
        )

    def conflicts(self, cluster: Cluster) -> list[str]:
        """Settings given here that differ from an existing cluster's."""
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "ssh_keys"}
        return sorted(
            k
            for k, v in given.items()
            if v is not None and v != getattr(cluster, k) and not (k in self.SETTABLE_LATER and not getattr(cluster, k))
        )

    def apply_later(self, cluster: Cluster) -> Cluster:
        """``cluster`` with the settable-later settings given here (``conflicts`` refused the rest)."""
        given = {k: getattr(self, k) for k in self.SETTABLE_LATER if getattr(self, k) is not None}
        return dataclasses.replace(cluster, **given) if given else cluster


def _days(value: int, flag: str) -> int:
    if not 0 < value <= 36500:
        raise model.bad_value(flag, value, "give a number of days from 1 to 36500")
    return value


def _version(value: str) -> str:
    model.parse_kubernetes_version(value)
    return value.removeprefix("v")


def new_cluster(options: ClusterOptions) -> Cluster:
    cluster_id = str(uuid.uuid4())
    values = {
        f.name: getattr(options, f.name) for f in dataclasses.fields(options) if getattr(options, f.name) is not None
    }
    values.setdefault("name", f"k8s-{cluster_id[:8]}")  # unique by default, so kubeconfigs merge cleanly
    values["ssh_keys"] = tuple(options.ssh_keys)
    return model.check_cluster(Cluster(cluster_id=cluster_id, **values))


def create_pki(cluster: Cluster, now: dt.datetime, passphrase: bytes | None = None) -> dict[str, File]:
    """The workstation's ``ssl/``: the three kubeadm CAs and the service-account key pair, their
    private keys encrypted with ``passphrase`` when one is given."""

    def key_file(key: pki.PrivateKey) -> File:
        return File(pki.encrypt_key_pem(key, passphrase) if passphrase else pki.key_to_pem(key), 0o600)

    tree: dict[str, File] = {}
    for signer in Signer:
        key = pki.generate_key(cluster.key_type)
        ca = pki.issue_ca(signer.common_name, key, now, cluster.ca_days)
        tree[f"{signer.value}.crt"] = File(ca.cert_pem, 0o644)
        tree[f"{signer.value}.key"] = key_file(key)
    sa = pki.generate_key(cluster.key_type)
    tree["sa.key"] = key_file(sa)
    tree["sa.pub"] = File(pki.public_key_to_pem(sa), 0o644)
    return tree


CA_FILES = (*(f"{s.value}.{ext}" for s in Signer for ext in ("crt", "key")), "sa.key", "sa.pub")
SECRET_CA_FILES = tuple(n for n in CA_FILES if n.endswith(".key"))  # what a passphrase protects
PUBLIC_CA_FILES = tuple(n for n in CA_FILES if not n.endswith(".key"))


@dataclasses.dataclass(frozen=True)
class Pki:
    """The workstation's CA material. Private keys are read (and decrypted: the passphrase is
    asked for once) only when something is signed or a controller's folder is made."""

    files: Mapping[str, bytes]  # as on disk: CA keys may be encrypted
    where: Path = Path("ssl")
    ask: Callable[[], bytes] = dataclasses.field(default=lambda: b"", compare=False)

    @functools.cached_property
    def digest(self) -> str:
        """Of the public CA material nodes are made from (not e.g. the admin cert beside it): no
        passphrase needed to tell whether a node is up to date."""
        return _sha256(b"".join(n.encode() + b"\0" + self.files[n] for n in PUBLIC_CA_FILES))

    @property
    def encrypted(self) -> bool:
        return any(pki.is_encrypted(self.files[n]) for n in SECRET_CA_FILES)

    def ca(self, signer: Signer) -> pki.KeyPair:
        return self._cas[signer]

    def plain(self, name: str) -> bytes:
        """A file of ssl/ as a node receives it: keys decrypted (kubeadm reads no encrypted key)."""
        return self._plain_keys.get(name) or self.files[name]

    def unlock(self) -> Pki:
        """Decrypt and check every CA key now (before forking workers, or before writing anything)."""
        self._cas  # noqa: B018
        return self

    @functools.cached_property
    def _plain_keys(self) -> dict[str, bytes]:
        if not self.encrypted:
            return {}
        passphrase = self.ask()
        return {
            n: pki.key_to_pem(pki.load_key(self.files[n], str(self.where / n), passphrase)) for n in SECRET_CA_FILES
        }

    @functools.cached_property
    def _cas(self) -> dict[Signer, pki.KeyPair]:  # one KeyPair each: its key is loaded once
        cas = {}
        for s in Signer:  # fail early and clearly on a corrupt CA, not deep inside a signature
            ca = pki.KeyPair(self.plain(f"{s.value}.key"), self.files[f"{s.value}.crt"], str(self.where / s.value))
            if not pki.key_matches(ca.cert, ca.key):
                raise IsobuildError(
                    f"{self.where / s.value}.key does not belong to {s.value}.crt",
                    hint="restore ssl/ from your backup; isobuild never re-creates a CA by itself",
                )
            cas[s] = ca
        return cas

    @classmethod
    def load(cls, inventory: Inventory, ctx: Context | None = None) -> Pki:
        files = read_tree(inventory.ssl)
        missing = [n for n in CA_FILES if n not in files]
        if missing:
            raise IsobuildError(
                f"the cluster PKI is incomplete: {inventory.ssl / missing[0]} is missing",
                hint="restore ssl/ from your backup; isobuild never re-creates a CA by itself",
            )
        return cls(files, inventory.ssl, ctx.passphrase if ctx is not None else _no_passphrase)


def _no_passphrase() -> bytes:
    return _no_prompt(False).encode()


def cluster_text(inventory: Inventory) -> bytes:
    text = inventory.read("cluster.yaml")
    if text is None:
        raise IsobuildError(
            f"no cluster in {inventory.root} (cluster.yaml not found)",
            hint="create one with `isobuild init` or `isobuild node NAME IP`, or pass --inventory DIR",
        )
    return text


def load_cluster(inventory: Inventory) -> Cluster:
    return clusterfile.parse(cluster_text(inventory))


def _refuse_orphan_pki(inventory: Inventory) -> None:
    if inventory.ssl.is_dir() and any(inventory.ssl.iterdir()):
        raise IsobuildError(
            f"{inventory.ssl} holds a PKI but {inventory.cluster_file} is missing",
            hint="restore cluster.yaml from your backup; to start a new cluster, move ssl/ away first",
        )


def init(ctx: Context, options: ClusterOptions, *, encrypt_ca: bool = False) -> Cluster:
    options = options.checked()
    with ctx.inventory.locked():
        if ctx.inventory.has_cluster():
            raise IsobuildError(
                f"a cluster already exists in {ctx.inventory.root}",
                hint=f"change its settings by editing {ctx.inventory.cluster_file}; the CA is never re-made",
            )
        _refuse_orphan_pki(ctx.inventory)
        cluster = new_cluster(options)
        passphrase = ctx.passphrase(confirm=True) if encrypt_ca else None
        with ctx.inventory.transaction() as tx:
            tx.put_tree("ssl", create_pki(cluster, ctx.now, passphrase))
            tx.put_file("cluster.yaml", File(clusterfile.dump(cluster)))
            tx.commit()
    return cluster


# -- nodes ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NodeRequest:
    """``isobuild node``'s arguments. Options left empty keep the node's current values."""

    name: str
    ip: str
    master: str | None = None
    role: Role | None = None
    labels: tuple[str, ...] = ()
    sans: tuple[str, ...] = ()
    ssh_keys: tuple[str, ...] = ()
    format: Format | None = None
    media: Media | None = None
    mac: str | None = None
    prefix: int | None = None
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    mtu: int | None = None
    force: bool = False


def plan_node(cluster: Cluster, request: NodeRequest) -> Node:
    name = model.check_name(request.name)
    address, cidr_prefix = model.split_ip_prefix(request.ip)
    ip = model.check_ip(address, "node IP")
    if cidr_prefix is not None and request.prefix is not None and cidr_prefix != request.prefix:
        raise IsobuildError(
            f"node {name!r}: {request.ip} and --prefix {request.prefix} disagree", hint="give the prefix once"
        )
    prefix = cidr_prefix if cidr_prefix is not None else request.prefix
    prefix = model.check_prefix(prefix, ip) if prefix is not None else None
    master = model.check_ip(request.master, "--master IP") if request.master else None
    current = cluster.node(name)
    if request.role is None and master is None and current is not None:
        role = current.role  # an update: `isobuild node w1 NEW_IP` keeps w1 a worker
    else:
        role = request.role or (Role.WORKER if master else Role.CONTROLLER)
    if role.is_control_plane and master:
        raise IsobuildError(
            f"node {name!r}: --master goes with workers and edge routers, not with --role controller",
            hint="drop --master to add a controller",
        )
    if not role.is_control_plane and master is None and not cluster.controllers():
        raise IsobuildError(
            f"node {name!r}: a {role} needs a controller to join",
            hint="add a controller first (isobuild node NAME IP), then pass --master CONTROLLER_IP",
        )
    if current is not None and current.role is not role:
        raise IsobuildError(
            f"node {name!r} is a {current.role}; refusing to turn it into a {role}",
            hint=f"pick another name, or remove {name!r} from cluster.yaml and its folder first",
        )
    labels = dict(model.parse_label(text) for text in request.labels)
    mac = model.check_mac(request.mac) if request.mac else None
    gateway = model.check_ip(request.gateway, "gateway") if request.gateway else None
    dns = model.unique(model.check_ip(d, "DNS server") for d in request.dns)
    mtu = model.check_mtu(request.mtu) if request.mtu is not None else None

    def keep(value: Any, field: str, default: Any = None) -> Any:
        """The value given on the command line, else the node's current one, else ``default``."""
        if value is not None and value != ():
            return value
        return getattr(current, field) if current else default

    return Node(
        name=name,
        ip=ip,
        role=role,
        master=keep(master, "master"),
        labels=labels if request.labels else (current.labels if current else {}),
        sans=keep(model.check_sans(request.sans), "sans", ()),
        ssh_keys=keep(model.unique(model.check_ssh_key(k) for k in request.ssh_keys), "ssh_keys", ()),
        format=keep(request.format, "format"),
        media=keep(request.media, "media"),
        mac=keep(mac, "mac"),
        prefix=keep(prefix, "prefix"),
        gateway=keep(gateway, "gateway"),
        dns=keep(dns, "dns", ()),
        mtu=keep(mtu, "mtu"),
    )


@dataclasses.dataclass(frozen=True)
class NodeResult:
    node: Node
    folder: Path
    changed: tuple[str, ...]  # node-folder files written (relative); empty: nothing to do
    cluster_created: bool
    cert_expiry: dt.datetime
    kept_hand_edit: bool
    format: Format
    media: Media
    warnings: tuple[str, ...] = ()
    others: tuple[Affected, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.node.name,
            "ip": self.node.ip,
            "role": self.node.role.value,
            "folder": str(self.folder),
            "changed": list(self.changed),
            "cluster_created": self.cluster_created,
            "cert_expiry": self.cert_expiry.isoformat(),
            "kept_hand_edit": self.kept_hand_edit,
            "format": self.format.value,
            "media": self.media.value,
            "static_network": self.node.static,
            "warnings": list(self.warnings),
            "rebuilt_others": [
                {"name": a.name, "folder": a.folder, "certs_changed": a.certs_changed} for a in self.others
            ],
        }


@dataclasses.dataclass(frozen=True)
class Affected:
    """Another node whose folder a change rebuilt (e.g. the controllers, when one is added)."""

    name: str
    folder: str
    certs_changed: bool  # certificates or kubeconfigs re-issued: a running node needs them too

    def advice(self) -> str:
        if self.certs_changed:
            return "certificates re-issued: run its renew.sh on the node (or re-attach its config.iso and re-install)"
        return "first-boot config only (e.g. etcd's member list): re-attach its config.iso if it has not booted yet"


def add_node(ctx: Context, request: NodeRequest, options: ClusterOptions, *, encrypt_ca: bool = False) -> NodeResult:
    options = options.checked()
    inv = ctx.inventory
    with inv.locked():
        created = not inv.has_cluster()
        if created:
            _refuse_orphan_pki(inv)
            cluster = new_cluster(options)
            passphrase = ctx.passphrase(confirm=True) if encrypt_ca else None
            ssl_tree = create_pki(cluster, ctx.now, passphrase)
            authority = Pki({k: f.content for k, f in ssl_tree.items()}, inv.ssl, lambda: passphrase or b"")
            before = cluster
        else:
            before = load_cluster(inv)
            conflicts = options.conflicts(before)
            if conflicts:
                raise IsobuildError(
                    f"the cluster exists; --{conflicts[0].replace('_', '-')} differs from cluster.yaml",
                    hint=f"cluster settings live in {inv.cluster_file}: edit it there, then run isobuild build",
                )
            if encrypt_ca:
                raise IsobuildError(
                    "--encrypt-ca goes with a new cluster", hint="the CA of this cluster exists already"
                )
            cluster = options.apply_later(before)
            authority = Pki.load(inv, ctx)
        node = plan_node(cluster, request)
        updated = model.check_cluster(cluster.with_node(node))
        folder = inv.node_dir(node.folder)
        existing = read_tree(folder)
        tree, kept = node_tree(ctx, updated, node, authority, existing, force=request.force)
        changed = _changes(folder, existing, tree)
        others, skipped = _affected_others(ctx, before, updated, node, authority)
        with inv.transaction() as tx:
            if created:
                tx.put_tree("ssl", ssl_tree)
            if changed:
                tx.put_tree(node.folder, tree)
            for other, other_tree in others:
                tx.put_tree(other.folder, other_tree)
            if created or updated != before:  # an unchanged cluster keeps the operator's comments
                tx.put_file("cluster.yaml", File(clusterfile.dump(updated)))
            tx.commit()
    expiry = min(
        pki.load_cert(f.content, rel).not_valid_after_utc
        for rel, f in tree.items()
        if rel.startswith("ssl/") and rel.endswith(".crt") and rel.removeprefix("ssl/") not in CA_FILES
    )
    warnings = (*(() if model.merged_ssh_keys(updated, node) else (_NO_SSH_KEY,)), *model.cluster_warnings(updated))
    return NodeResult(
        node,
        folder,
        tuple(changed),
        created,
        expiry,
        kept,
        updated.format_of(node),
        updated.media_of(node),
        (*warnings, *skipped),
        tuple(a for a, _ in others),
    )


def _affected_others(
    ctx: Context, before: Cluster, after: Cluster, changed: Node, authority: Pki
) -> tuple[list[tuple[Affected, dict[str, File]]], list[str]]:
    """Other built nodes that were up to date and whose inputs this change alters (adding a
    controller changes the others' etcd member list; a new endpoint, their certificates), rebuilt.
    A stale node stays stale: `isobuild build` is the command that catches up on everything."""
    rebuilt: list[tuple[Affected, dict[str, File]]] = []
    skipped: list[str] = []
    settings_changed = clusterfile.settings(before) != clusterfile.settings(after)
    if not settings_changed and _joined_at(before) == _joined_at(after):
        if _members(before) == _members(after):
            return rebuilt, skipped  # e.g. a worker added or moved: nobody else is made from it
        candidates = after.controllers()  # the etcd member list changed: the controllers only
    else:
        candidates = list(after.nodes)
    for other in candidates:
        folder = ctx.inventory.node_dir(other.folder)
        if other.name == changed.name or not (folder / STATE).is_file():
            continue
        previous = before.node(other.name)
        if previous is None or not is_current(folder, inputs_digest(before, previous, authority)):
            continue
        if is_current(folder, inputs_digest(after, other, authority)):
            continue
        existing = read_tree(folder)
        try:
            tree, _ = node_tree(ctx, after, other, authority, existing, force=False)
        except IsobuildError as exc:
            skipped.append(f"{other.folder} not rebuilt: {exc.message}")
            continue
        # renew.sh carries every certificate and kubeconfig the node installs: it changes with them
        rebuilt.append((Affected(other.name, other.folder, existing.get(RENEW) != tree[RENEW].content), tree))
    return rebuilt, skipped


_NO_SSH_KEY = "no SSH key: nobody can log in to this node (add --ssh-key FILE, or ssh_keys in cluster.yaml)"


def _changes(folder: Path, existing: Mapping[str, bytes], tree: Mapping[str, File]) -> list[str]:
    changed = [
        rel for rel, f in sorted(tree.items()) if existing.get(rel) != f.content or _mode(folder / rel) != f.mode
    ]
    return changed + sorted(set(existing) - set(tree))


def _mode(path: Path) -> int | None:
    try:
        return path.lstat().st_mode & 0o7777
    except OSError:
        return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _joined_at(cluster: Cluster) -> tuple[str, int] | None:
    """The address nodes join, None while there is none (no controller yet)."""
    return cluster.endpoint_host_port() if cluster.endpoint or cluster.vip or cluster.controllers() else None


def _members(cluster: Cluster) -> list[tuple[str, str]]:
    return [(n.name, n.ip) for n in cluster.controllers()]


def node_tree(
    ctx: Context,
    cluster: Cluster,
    node: Node,
    authority: Pki,
    existing: Mapping[str, bytes],
    *,
    force: bool,
    renewal: pki.Renewal | None = None,
) -> tuple[dict[str, File], bool]:
    """The node folder's files. Returns the tree and whether a hand-edited user_data was kept.
    ``renewal``: re-issue every leaf certificate (``certs renew``)."""
    tree: dict[str, File] = {}
    host: list[render.HostFile] = []
    for name in ca_files_for(cluster, node):
        mode = 0o600 if name.endswith(".key") else 0o644
        content = authority.plain(name)
        tree[f"ssl/{name}"] = File(content, mode)
        host.append(render.HostFile(f"{render.PKI_DIR}/{name}", content, mode))
    credentials_from = len(host)

    pairs: dict[str, pki.KeyPair] = {}
    for ident in node_identities(cluster, node):
        previous = _keypair(existing, f"ssl/{ident.name}")
        pair = pki.ensure_leaf(
            ident.spec, authority.ca(ident.signer), previous, cluster.key_type, ctx.now, cluster.cert_days, renewal
        )
        pairs[ident.name] = pair
        tree[f"ssl/{ident.name}.crt"] = File(pair.cert_pem, 0o644)
        tree[f"ssl/{ident.name}.key"] = File(pair.key_pem, 0o600)
        if ident.name == "kubelet":
            base = f"{render.KUBELET_PKI_DIR}/kubelet"
        elif ident.name in EMBEDDED_IN_KUBECONFIG:
            continue
        else:
            base = f"{render.PKI_DIR}/{ident.name}"
        host += [render.HostFile(f"{base}.crt", pair.cert_pem), render.HostFile(f"{base}.key", pair.key_pem, 0o600)]

    for kc in node_kubeconfigs(cluster, node):
        local = kc.uses_local_apiserver or (kc is Kubeconfig.KUBELET and node.role.is_control_plane)
        user = f"system:node:{node.name}" if kc is Kubeconfig.KUBELET else kc.user
        config = kubeconfig.build(
            cluster.name,
            server_for(cluster, node, local=local),
            authority.files["ca.crt"],
            user,
            pairs[kc.identity],
        )
        host.append(render.HostFile(f"/etc/kubernetes/{kc.file}", kubeconfig.dump(config), 0o600))
    tree[RENEW] = File(render.renew_script(cluster, node, host[credentials_from:]), 0o700)

    if node.role.is_control_plane:
        host += render.controller_configs(cluster, node, list(apiserver_sans(cluster, node)))
    else:
        host += render.worker_configs(cluster, node)
    media = cluster.media_of(node)
    drive: dict[str, bytes] = {media.meta_data_path: _meta_data(cluster, node, media)}
    if node.static:
        drive[media.network_path] = _network_file(node, media)
    if cluster.format_of(node) is Format.IGNITION:
        host.append(render.HostFile(render.SETUP_PATH, render.flatcar_setup_script(cluster, node), 0o700))
        user_data = render.ignition_config(cluster, node, host)
        install = render.flatcar_install_script(cluster, node, media.user_data_path)
        drive[DRIVE_INSTALLER] = install
    else:
        install = render.install_script(cluster, node)
        host.append(render.HostFile(render.INSTALL_PATH, install, 0o700))
        user_data = render.user_data(cluster, node, host)

    state = _state(existing.get(STATE))
    generated = _sha256(user_data)
    on_disk = _user_data_on_disk(existing, media)
    hand_edited = on_disk is not None and _sha256(on_disk) != state.get("user_data_sha256")
    kept = False
    if hand_edited and not force:
        if generated != state.get("user_data_sha256"):
            raise IsobuildError(
                f"{node.folder}/{CLOUD_DIR}/{media.user_data_path} was edited by hand "
                "and this change would overwrite it",
                hint="re-run with --force to replace it (your edit is lost), "
                "or `isobuild image` to ship your edit as is",
            )
        assert on_disk is not None
        user_data, kept = on_disk, True
    drive[media.user_data_path] = user_data

    folder = ctx.inventory.node_dir(node.folder)
    cloud = {  # files the operator added to the drive stay on it, with their modes
        rel: File(content, _mode(folder / rel) or 0o600)
        for rel, content in existing.items()
        if rel.startswith(CLOUD_DIR + "/") and rel.removeprefix(CLOUD_DIR + "/") not in GENERATED_DRIVE_FILES
    }
    for path, content in drive.items():
        cloud[f"{CLOUD_DIR}/{path}"] = File(content, 0o600 if path == media.user_data_path else 0o644)
    tree.update(cloud)
    wanted = {rel.removeprefix(CLOUD_DIR + "/"): f.content for rel, f in cloud.items()}
    current_iso = existing.get(ISO)
    # Keep the image (bytes and mtime) when it already holds exactly these files.
    if current_iso is not None and _drive_files(current_iso) == wanted:
        tree[ISO] = File(current_iso, 0o600)
    else:
        tree[ISO] = File(configdrive.build_iso(wanted, media.label, ctx.iso_epoch), 0o600)
    tree["install.sh"] = File(install, 0o755)
    for rel, content in existing.items():  # the operator's own files in the folder are kept
        if rel not in tree and not rel.startswith(CLOUD_DIR + "/") and rel != STATE:
            tree[rel] = File(content, _mode(folder / rel) or 0o600)
    new_state = {
        "user_data_sha256": generated,  # what isobuild generated: a different user_data is a hand edit
        "inputs": inputs_digest(cluster, node, authority),  # build skips the node while these hold...
        "files": {rel: len(f.content) for rel, f in sorted(tree.items())},  # ...and its files are there
    }
    tree[STATE] = File((json.dumps(new_state, sort_keys=True) + "\n").encode(), 0o644)
    return tree, kept


def inputs_digest(cluster: Cluster, node: Node, authority: Pki) -> str:
    """Everything a node folder is made from, but the clock: cluster settings, the node's entry,
    the controllers it joins, the CAs, isobuild's version and templates."""
    inputs = {
        "isobuild": [__version__, render.templates_digest()],
        "settings": clusterfile.settings(cluster),
        "node": clusterfile.node_mapping(node),
        # A controller is made from the whole control plane (etcd's member list); another node
        # only from the address it joins.
        "controllers": _members(cluster) if node.role.is_control_plane else list(cluster.endpoint_host_port()),
        "pki": authority.digest,
    }
    return _sha256(json.dumps(inputs, sort_keys=True).encode())


def is_current(folder: Path, digest: str) -> bool:
    """Whether the folder was made from inputs with this digest and still holds its files (by size):
    the fast path of a no-change build, without computing anything."""
    try:
        state = json.loads((folder / STATE).read_bytes())
        files = state["files"]
        return bool(state["inputs"] == digest and files) and all(
            (folder / rel).stat().st_size == size for rel, size in files.items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _meta_data(cluster: Cluster, node: Node, media: Media) -> bytes:
    if media is Media.NOCLOUD:
        return render.nocloud_meta_data(cluster, node)
    return render.meta_data(cluster, node)


def _network_file(node: Node, media: Media) -> bytes:
    if media is Media.NOCLOUD:
        return network.network_config_v2(node)
    return network.openstack_network_data(node)


def _user_data_on_disk(existing: Mapping[str, bytes], media: Media) -> bytes | None:
    """The drive's user data as it is on disk: at this medium's path, or the other's (a medium switch)."""
    for m in (media, *Media):
        found = existing.get(f"{CLOUD_DIR}/{m.user_data_path}")
        if found is not None:
            return found
    return None


def _state(text: bytes | None) -> dict[str, Any]:
    """What isobuild generated last; unreadable counts as unknown (so user_data counts as edited)."""
    try:
        state = json.loads(text or b"{}")
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def _keypair(existing: Mapping[str, bytes], stem: str) -> pki.KeyPair | None:
    key, cert = existing.get(f"{stem}.key"), existing.get(f"{stem}.crt")
    if key is None or cert is None:
        return None
    pair = pki.KeyPair(key, cert, stem)
    pair.key, pair.cert  # noqa: B018 (load both now: a corrupt file is reported here, by name)
    return pair


def server_for(cluster: Cluster, node: Node, *, local: bool) -> str:
    if local:
        return cluster.server_url(via_ip=node.ip)
    if cluster.endpoint or node.master is None:
        return cluster.server_url()
    return cluster.server_url(via_ip=node.master)


# -- image -------------------------------------------------------------------------------------
def image(ctx: Context, folder: Path) -> Path:
    """Re-package ``folder/cloud-config/`` into ``folder/config.iso``; nothing else changes."""
    source = folder / CLOUD_DIR
    if not source.is_dir():
        raise IsobuildError(
            f"{source} not found",
            hint="give a node folder made by `isobuild node`, e.g. isobuild image inventory/node-worker1",
        )
    files = read_tree(source)
    media = Media.of_drive(files)
    if media is None:
        raise IsobuildError(
            f"{source} holds no user data",
            hint="a config-2 drive needs openstack/latest/user_data, a NoCloud drive user-data",
        )
    _check_user_data(files[media.user_data_path], source / media.user_data_path)
    target = folder / ISO
    parent = Inventory(folder.resolve().parent)
    # Inside an inventory, wait for any other isobuild command on it; a lone folder needs no lock.
    with parent.locked() if parent.has_cluster() else contextlib.nullcontext():
        if _drive_files(_read_outside(target)) != files:  # the same files: keep the image (and its mtime)
            write_outside(target, configdrive.build_iso(files, media.label, ctx.iso_epoch), 0o600)
    return target


def _drive_files(iso: bytes) -> dict[str, bytes] | None:
    """The files on a config drive image; None when it is not one we can read (then: rebuild)."""
    from pycdlib.pycdlibexception import PyCdlibException

    try:
        return configdrive.read_iso(iso)[1]
    except PyCdlibException:
        return None


def _read_outside(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise IsobuildError(f"cannot read {path}: {exc.strerror}", hint="check the file and its permissions") from None


def _check_user_data(data: bytes, path: Path) -> None:
    """Catch a broken hand edit before it ships: cloud-config must stay a YAML mapping, Ignition JSON."""
    import yaml

    hint = "fix the edit; the node would boot without its configuration"
    if data.lstrip().startswith(b"{"):
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise IsobuildError(f"{path} is not valid JSON{where}", hint=hint) from None
        section = parsed.get("ignition") if isinstance(parsed, dict) else None
        version = section.get("version") if isinstance(section, dict) else None
        if not isinstance(version, str):
            raise IsobuildError(f"{path} is not an Ignition config (no ignition.version)", hint=hint)
        return
    if not data.startswith(b"#cloud-config"):
        return  # a script or another format: cloud-init decides
    try:
        parsed = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise IsobuildError(f"{path} is not valid YAML{clusterfile.yaml_error_line(exc)}", hint=hint) from None
    if not isinstance(parsed, dict):
        raise IsobuildError(f"{path} is not a cloud-config mapping", hint=hint)


# -- kubeconfig ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class KubeconfigResult:
    path: Path
    server: str
    context: str
    backup: Path | None
    expiry: dt.datetime


def admin_kubeconfig(
    ctx: Context,
    *,
    server: str | None,
    output: Path | None,
    merge_into: Path | None,
    use: bool,
    user: UserRequest | None = None,
    renewal: pki.Renewal | None = None,
) -> KubeconfigResult:
    """The admin kubeconfig (``user`` None) or an extra user's, written to the inventory (or
    ``output``) and optionally merged into ``merge_into``."""
    inv = ctx.inventory
    for path in (output, merge_into):
        if path is not None and path.is_dir():
            raise IsobuildError(f"{path} is a folder", hint="give the kubeconfig's file path")
    with inv.locked():
        cluster = load_cluster(inv)
        authority = Pki.load(inv, ctx)
        url = server or cluster.server_url()
        if not url.startswith("https://"):
            raise IsobuildError(
                f"--server {url!r} is not an https:// URL", hint="e.g. --server https://10.10.10.1:6443"
            )
        # Read the file to merge into before anything is written: a corrupt one stops us here.
        current = _read_outside(merge_into) if merge_into is not None else b""
        base = kubeconfig.parse(current, str(merge_into)) if merge_into is not None else {}
        if user is None:
            stored = "kubeconfig"
            previous = _keypair(authority.files, "admin")
            spec, days, name = admin_spec(), cluster.cert_days, Kubeconfig.ADMIN.user
        else:
            user = user.checked()
            stored = user.path
            previous = kubeconfig.keypair(inv.read(stored), str(inv.root / stored))
            spec, days, name = user.spec, user.days or cluster.cert_days, user.name
        pair = pki.ensure_leaf(spec, authority.ca(Signer.CA), previous, cluster.key_type, ctx.now, days, renewal)
        config = kubeconfig.build(cluster.name, url, authority.files["ca.crt"], name, pair)
        text = kubeconfig.dump(config)
        with inv.transaction() as tx:
            if user is None and pair is not previous:
                tx.put_file("ssl/admin.key", File(pair.key_pem, 0o600))
                tx.put_file("ssl/admin.crt", File(pair.cert_pem, 0o644))
            # The inventory's copy is the record `certs check` reads (and renews from): a user's is
            # kept there whatever --output says; the admin's only when it is the target.
            inventory_copy = output is None and merge_into is None and inv.read(stored) != text
            if inventory_copy or (user is not None and pair is not previous):
                tx.put_file(stored, File(text, 0o600))
            tx.commit()
    backup = None
    target = output or merge_into or inv.root / stored
    if merge_into is not None:
        text = kubeconfig.dump(kubeconfig.merge(base, config, use=use))
        if current and current != text:
            backup = merge_into.with_name(f"{merge_into.name}.bak-{ctx.now:%Y%m%dT%H%M%SZ}")
            write_outside(backup, current, 0o600)
    if target != inv.root / stored and (not target.exists() or target.read_bytes() != text):
        write_outside(target, text, 0o600)
    expiry = pair.cert.not_valid_after_utc
    return KubeconfigResult(target, url, config["current-context"], backup, expiry)


USERS_DIR = "users"  # extra kubeconfigs (`kubeconfig --user`), one file each


@dataclasses.dataclass(frozen=True)
class UserRequest:
    """``kubeconfig --user NAME --group GROUP [--days N]``."""

    name: str
    groups: tuple[str, ...] = ()
    days: int | None = None

    @property
    def path(self) -> str:
        return f"{USERS_DIR}/{self.name}.kubeconfig"

    @property
    def spec(self) -> pki.CertSpec:
        return user_spec(self.name, self.groups)

    def checked(self) -> UserRequest:
        hint = "the admin kubeconfig is the break-glass identity; bind users to roles with RBAC instead"
        if not model.is_user_name(self.name):
            raise model.bad_value("user name", self.name, "use letters, digits, '.', '_', '@' or '-', e.g. alice")
        if self.name.startswith("system:") or self.name in (Kubeconfig.ADMIN.user, Kubeconfig.SUPER_ADMIN.user):
            raise IsobuildError(f"user name {self.name!r} is reserved", hint=hint)
        for group in self.groups:
            if not model.is_group_name(group):
                raise model.bad_value("group", group, "use a name such as developers or team:payments")
            if group in RESERVED_GROUPS or group.startswith("system:"):
                raise IsobuildError(f"group {group!r} would give more than least privilege", hint=hint)
        return dataclasses.replace(
            self,
            groups=model.unique(self.groups),
            days=_days(self.days, "--days") if self.days is not None else None,
        )


# -- pxe ---------------------------------------------------------------------------------------
PXE_MARKER = ".isobuild-pxe"  # marks a folder `isobuild pxe` made, which it may replace


@dataclasses.dataclass(frozen=True)
class PxeResult:
    out: Path
    export: pxe.Export
    changed: bool

    @property
    def serves_secrets(self) -> bool:
        """Whether matchbox would hand out private keys (to anything that asks with the right MAC)."""
        return any(
            rel.startswith("matchbox/") and any(m in f.content for m in pxe.SECRET_MARKERS)
            for rel, f in self.export.tree.items()
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "changed": self.changed,
            "serves_secrets": self.serves_secrets,
            "nodes": [
                {
                    "name": e.node.name,
                    "mac": e.node.mac,
                    "ip": e.node.ip,
                    "format": e.format.value,
                    "matchbox_id": e.matchbox_id,
                    "withheld": list(e.withheld),
                }
                for e in self.export.exported
            ],
            "skipped": [{"name": name, "reason": why} for name, why in self.export.skipped],
            "notes": self.export.notes,
            "files": sorted(self.export.tree),
        }


def pxe_export(ctx: Context, options: pxe.PxeOptions, out: Path | None) -> PxeResult:
    """Write the network-boot export (``pxe.export``) to ``out``, by default ``INVENTORY/pxe``.
    ``options.os_version`` empty: the cluster's Flatcar version."""
    inv = ctx.inventory
    target = out if out is not None else inv.root / "pxe"
    with inv.locked():
        cluster = load_cluster(inv)
        options = dataclasses.replace(options, os_version=options.os_version or cluster.flatcar_version).checked()
        user_data = {
            node.name: _built_user_data(inv.node_dir(node.folder), cluster.media_of(node)) for node in cluster.nodes
        }
        result = pxe.export(cluster, user_data, options)
        tree = {**result.tree, PXE_MARKER: File(f"cluster_id: {cluster.cluster_id}\n".encode())}
        _check_pxe_target(target, inv.root)
        inside = _relative_to(target, inv.root)
        if inside is None:
            changed = replace_tree_outside(target, tree)
        else:
            changed = bool(_changes(target, read_tree(target), tree))
            with inv.transaction() as tx:
                if changed:
                    tx.put_tree(inside, tree)
                tx.commit()
    return PxeResult(target, dataclasses.replace(result, tree=tree), changed)


def _built_user_data(folder: Path, media: Media) -> bytes | None:
    """The user data a node's drive carries (its medium's path first), None when not built."""
    for m in (media, *Media):
        path = folder / CLOUD_DIR / m.user_data_path
        if path.is_file():
            return _read_outside(path)
    return None


def _relative_to(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _check_pxe_target(target: Path, root: Path) -> None:
    """Replace only a folder an earlier `isobuild pxe` made (never e.g. /var/lib/matchbox itself)."""
    hint = "give a new folder with --out; then copy OUT/matchbox/ into matchbox's data path"
    inside = _relative_to(target, root)
    if inside == ".":
        raise IsobuildError(f"--out {target} is the inventory itself", hint=hint)
    top = (inside or "").split("/")[0]
    if top in ("ssl", STATE_DIR_NAME, "cluster.yaml", "kubeconfig") or top.startswith("node-"):
        raise IsobuildError(f"--out {target} is inside the inventory's {top}", hint=hint)
    if target.exists() and not target.is_dir():
        raise IsobuildError(f"--out {target} is a file", hint=hint)
    if target.is_dir() and any(target.iterdir()) and not (target / PXE_MARKER).is_file():
        raise IsobuildError(f"{target} exists and was not made by `isobuild pxe`; refusing to replace it", hint=hint)
