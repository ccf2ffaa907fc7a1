"""Certificates over time: every certificate of the inventory with its expiry (``certs check``),
and their renewal (``certs renew``): all of it in one transaction, renewed together or not at
all. Nothing here prints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from isobuilder import kubeconfig, pki
from isobuilder.authority import CA_FILES, Authority
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.inventory import Inventory, Transaction, read_file
from isobuilder.model import Cluster
from isobuilder.ops import check_versions, cluster_text, load_authority, load_cluster, out_of_step, transaction
from isobuilder.ops.build import Outcome, Status, select, stage_nodes
from isobuilder.ops.kubeconfigs import ADMIN, KubeconfigResult, issue, stage
from isobuilder.plan import USERS_DIR, UserRequest

WORKSTATION = "workstation"


@dataclasses.dataclass(frozen=True)
class CertRow:
    """One certificate of ``certs check``: where it lives, whom it names, when it expires."""

    where: str  # "workstation" or the node's folder
    path: str  # relative to the inventory
    subject: str
    issuer: str
    not_after: dt.datetime
    is_ca: bool

    def days_left(self, now: dt.datetime) -> int:
        """Whole days until it expires (rounded down: 0 on its last day, negative once expired)."""
        return math.floor((self.not_after - now).total_seconds() / 86400)

    def expired(self, now: dt.datetime) -> bool:
        return self.not_after <= now

    def as_json(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "where": self.where,
            "path": self.path,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_after": self.not_after.isoformat(),
            "days_left": self.days_left(now),
            "expired": self.expired(now),
            "ca": self.is_ca,
        }


def _describe(name: x509.Name) -> str:
    """``CN`` or ``CN (O1, O2)``: how kubeadm's ``certs check-expiration`` and RBAC see it."""
    cn = [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (cn[0] if cn else name.rfc4514_string()) + (f" ({', '.join(orgs)})" if orgs else "")


def _row(where: str, path: str, cert: x509.Certificate) -> CertRow:
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertRow(where, path, _describe(cert.subject), _describe(cert.issuer), cert.not_valid_after_utc, is_ca)


def inventory_certs(inv: Inventory) -> list[CertRow]:
    """Every certificate of the inventory, soonest expiry first: the workstation's CAs and admin,
    user kubeconfigs, and each node folder's certificates (its copies of the CA certs left out)."""
    rows: list[CertRow] = []

    def add(where: str, path: Path) -> None:
        rel = path.relative_to(inv.root).as_posix()
        rows.append(_row(where, rel, pki.load_cert(_required(path), rel)))

    for path in sorted(inv.ssl.rglob("*.crt")):
        add(WORKSTATION, path)
    for path in user_kubeconfigs(inv):
        rows.append(_row(WORKSTATION, path.relative_to(inv.root).as_posix(), _user_pair(inv, path).cert))
    for folder in sorted(p for p in inv.root.glob("node-*") if p.is_dir()):
        for path in sorted((folder / "ssl").rglob("*.crt")):
            if path.relative_to(folder / "ssl").as_posix() not in CA_FILES:
                add(folder.name, path)
    return sorted(rows, key=lambda r: (r.not_after, r.path))


def user_kubeconfigs(inv: Inventory) -> list[Path]:
    return sorted((inv.root / USERS_DIR).glob("*.kubeconfig"))


def _user_pair(inv: Inventory, path: Path) -> pki.KeyPair:
    rel = path.relative_to(inv.root).as_posix()
    pair = kubeconfig.keypair(_required(path), rel)
    if pair is None:
        raise IsobuildError(
            f"{rel} holds no client certificate", hint="re-issue it with isobuild kubeconfig --user, or remove it"
        )
    return pair


def check(ctx: Context) -> list[CertRow]:
    inv = ctx.inventory
    with inv.locked():
        cluster_text(inv)  # a clear error when there is no cluster here
        if not inv.ssl.is_dir():
            raise IsobuildError(f"cannot read {inv.ssl}", hint="restore ssl/ from your backup")
        return inventory_certs(inv)


def _required(path: Path) -> bytes:
    data = read_file(path)
    if data is None:
        raise IsobuildError(f"{path} disappeared while reading the inventory", hint="run the command again")
    return data


# -- renew -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RenewResult:
    """What ``certs renew`` re-issued: the nodes, the kubeconfigs, the nodes rebuilt to catch up."""

    nodes: list[Outcome]
    kubeconfigs: list[KubeconfigResult]
    caught_up: list[Outcome] = dataclasses.field(default_factory=list)  # others rebuilt: ops.out_of_step


def renew(ctx: Context, names: list[str], *, every: bool, rotate: bool) -> RenewResult:
    """Re-issue the leaf certificates of the named nodes (``every``: all nodes, the admin
    kubeconfig and the user kubeconfigs) from cluster.yaml as it is now, keeping each key unless
    ``rotate``. One transaction: a node that fails, a user kubeconfig that cannot be renewed, a
    full disk or a kill, and nothing was renewed. The CAs are read, never written."""
    if not names and not every:
        raise IsobuildError("name the nodes to renew, or pass --all", hint="e.g. isobuild certs renew worker1 worker2")
    if names and every:
        raise IsobuildError("give node names or --all, not both", hint="isobuild certs renew --all renews everything")
    renewal = pki.Renewal(rotate=rotate)
    inv = ctx.inventory
    with transaction(ctx, bulk=True) as tx:
        cluster = load_cluster(inv)
        authority = load_authority(ctx)
        check_versions(inv, cluster, authority)  # a hand edit of kubernetes_version
        selected = select(inv, cluster, names)
        users = [_user_request(inv, path) for path in user_kubeconfigs(inv)] if every else []
        authority.unlock()
        outcomes = stage_nodes(ctx, tx, cluster, authority, selected, renewal=renewal)
        extra = out_of_step(inv, cluster, authority, {n.name for n in selected})
        caught_up = stage_nodes(ctx, tx, cluster, authority, extra) if extra else []
        failed = [o for o in (*outcomes, *caught_up) if o.status is Status.FAILED]
        if failed:
            raise IsobuildError(
                f"{failed[0].name}: {failed[0].error}",
                hint="nothing was renewed; fix this, then run certs renew again",
                details=tuple(f"{o.name}: {o.error}" for o in failed[1:]),
            )
        configs: list[KubeconfigResult] = []
        if every:
            configs.append(_renew(ctx, tx, cluster, authority, None, cluster.server_url(), renewal))
            for request, server in users:
                configs.append(_renew(ctx, tx, cluster, authority, request, server or cluster.server_url(), renewal))
    return RenewResult(outcomes, configs, caught_up)


def _user_request(inv: Inventory, path: Path) -> tuple[UserRequest, str | None]:
    """A user kubeconfig's name, groups and lifetime as they were, and its server."""
    rel = path.relative_to(inv.root).as_posix()
    pair = _user_pair(inv, path)
    spec = pki.spec_of(pair.cert)
    lifetime = pair.cert.not_valid_after_utc - pair.cert.not_valid_before_utc - pki.BACKDATE
    request = UserRequest(spec.common_name, spec.organizations, max(1, round(lifetime.total_seconds() / 86400)))
    return request, kubeconfig.server_of(_required(path), rel)


def _renew(
    ctx: Context,
    tx: Transaction,
    cluster: Cluster,
    authority: Authority,
    user: UserRequest | None,
    server: str,
    renewal: pki.Renewal,
) -> KubeconfigResult:
    issued = issue(ctx.inventory, cluster, authority, ctx.now, user=user, server=server, renewal=renewal)
    stage(tx, issued)
    path = ctx.inventory.root / issued.stored
    end = issued.pair.cert.not_valid_after_utc
    return KubeconfigResult(path, server, issued.config["current-context"], None, end, issued.text)


def follow_endpoint(ctx: Context, tx: Transaction, cluster: Cluster, authority: Authority, old: str) -> list[Path]:
    """The inventory's kubeconfigs (admin, users) that named ``old``, the cluster's address
    before this command, re-issued for the one it has now (same keys, same certificates while
    they are valid). One given its own ``--server`` is left alone."""
    inv, new = ctx.inventory, cluster.server_url()
    moved = []
    admin = inv.read(ADMIN)
    if admin is not None and kubeconfig.server_of(admin, ADMIN) == old:
        stage(tx, issue(inv, cluster, authority, ctx.now, user=None, server=new))
        moved.append(inv.root / ADMIN)
    for path in user_kubeconfigs(inv):
        request, server = _user_request(inv, path)
        if server == old:
            stage(tx, issue(inv, cluster, authority, ctx.now, user=request, server=new))
            moved.append(path)
    return moved
