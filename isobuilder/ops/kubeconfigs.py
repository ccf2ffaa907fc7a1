"""``kubeconfig``: the admin kubeconfig, or a least-privilege one for an extra user.

The inventory keeps the record ``certs check`` reads and ``certs renew`` renews from: the admin
keypair in ssl/ (and ``kubeconfig`` when it is the target), each user's ``users/NAME.kubeconfig``.
``-o`` and ``--merge`` write outside the inventory after the transaction committed, to a target
checked before anything was written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import stat
from pathlib import Path
from typing import Any

from isobuilder import customchecks, kubeconfig, pki
from isobuilder.authority import Authority
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.files import File
from isobuilder.identities import Kubeconfig, Signer, admin_spec
from isobuilder.inventory import Inventory, Transaction, read_file
from isobuilder.model import Cluster
from isobuilder.ops import load_authority, load_cluster, transaction
from isobuilder.outside import kubeconfig_lock, write_outside
from isobuilder.plan import UserRequest

ADMIN = "kubeconfig"  # the admin kubeconfig in the inventory


STDOUT = Path("-")  # -o -: the kubeconfig on stdout, no file written


@dataclasses.dataclass(frozen=True)
class KubeconfigResult:
    """A kubeconfig written (or printed): where, for which server and context, until when."""

    path: Path
    server: str
    context: str
    backup: Path | None
    expiry: dt.datetime
    text: bytes  # what was written (``-o -``: for stdout)


@dataclasses.dataclass(frozen=True)
class Issued:
    """A kubeconfig made in memory, and the inventory files that record it."""

    stored: str  # its path in the inventory
    config: dict[str, Any]
    text: bytes
    pair: pki.KeyPair
    files: dict[str, File]  # to stage: what changed in the inventory's record


def issue(
    inv: Inventory,
    cluster: Cluster,
    authority: Authority,
    now: dt.datetime,
    *,
    user: UserRequest | None,
    server: str,
    renewal: pki.Renewal | None = None,
    record_admin: bool = True,
) -> Issued:
    """The admin's kubeconfig (``user`` None) or a user's, keeping the key and a still-valid
    certificate unless ``renewal``. ``record_admin``: the admin kubeconfig is kept in the inventory too."""
    if user is None:
        stored = ADMIN
        previous = _admin_pair(authority)
        spec, days, name = admin_spec(), cluster.cert_days, Kubeconfig.ADMIN.user
    else:
        stored = user.path
        previous = kubeconfig.keypair(inv.read(stored), str(inv.root / stored))
        spec, days, name = user.spec, user.days or cluster.cert_days, user.name
    pair = pki.ensure_leaf(spec, authority.ca(Signer.CA), previous, cluster.key_type, now, days, renewal)
    config = kubeconfig.build(cluster.name, server, authority.files["ca.crt"], name, pair)
    text = kubeconfig.dump(config)
    files: dict[str, File] = {}
    if user is None and pair is not previous:
        files["ssl/admin.key"] = File(pair.key_pem, 0o600)
        files["ssl/admin.crt"] = File(pair.cert_pem, 0o644)
    if (user is not None or record_admin) and inv.read(stored) != text:
        files[stored] = File(text, 0o600)
    return Issued(stored, config, text, pair, files)


def _admin_pair(authority: Authority) -> pki.KeyPair | None:
    return pki.pair_of(authority.files.get("admin.key"), authority.files.get("admin.crt"), f"{authority.where}/admin")


def stage(tx: Transaction, issued: Issued) -> None:
    for rel, file in sorted(issued.files.items()):
        tx.put_file(rel, file)


def _backup_name(path: Path, now: dt.datetime) -> Path:
    """``FILE.bak-TIME``, or ``-2``, ``-3`` ... when a merge in the same second made one already."""
    stem = f"{path.name}.bak-{now:%Y%m%dT%H%M%SZ}"
    candidate, n = path.with_name(stem), 1
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{stem}-{n}")
    return candidate


def check_target(path: Path, inv: Inventory, flag: str) -> None:
    """A file outside the inventory that we may replace: absent, or a regular file, in a folder that exists."""
    hint = f"give {flag} a file path outside the inventory, e.g. {flag} ~/lab.kubeconfig"
    if path.is_dir():
        raise IsobuildError(f"{path} is a folder", hint="give the kubeconfig's file path")
    if path.is_symlink():  # never write through a link to somewhere else
        raise IsobuildError(
            f"{flag} {path} is a symbolic link", hint=f"give the file it points to: {flag} {path.resolve()}"
        )
    resolved = path.resolve()
    try:
        resolved.relative_to(inv.root.resolve())
        raise IsobuildError(f"{flag} {path} is inside the inventory", hint=hint)
    except ValueError:
        pass
    try:
        st = resolved.stat()
    except FileNotFoundError:
        # ~/.kube may not exist yet on a new workstation: --merge makes it, as kubectl does
        if not resolved.parent.is_dir() and flag != "--merge":
            raise IsobuildError(f"{flag} {path}: the folder {resolved.parent} does not exist", hint=hint) from None
        return
    except OSError as exc:
        raise IsobuildError(f"{flag} {path}: {exc.strerror}", hint=hint) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsobuildError(f"{path} is a folder", hint="give the kubeconfig's file path")
    if not stat.S_ISREG(st.st_mode):
        raise IsobuildError(f"{flag} {path} is not a regular file (a device, FIFO or socket)", hint=hint)


def admin_kubeconfig(
    ctx: Context,
    *,
    server: str | None,
    output: Path | None,
    merge_into: Path | None,
    use: bool,
    user: UserRequest | None = None,
    context: str | None = None,
    force: bool = False,
) -> KubeconfigResult:
    """The admin kubeconfig (``user`` None) or an extra user's, written to the inventory (or
    ``output``; ``-``: returned as ``text`` for stdout) and optionally merged into ``merge_into``:
    under kubectl's lock, refused when it would replace another cluster's entries (``context``
    merges under another name, ``force`` replaces them), the file before kept as a backup."""
    inv = ctx.inventory
    user = user.checked() if user is not None else None
    with transaction(ctx) as tx:
        for path, flag in ((None if output == STDOUT else output, "-o"), (merge_into, "--merge")):
            if path is not None:
                check_target(path, inv, flag)
        if context is not None:
            customchecks.check_context_name(context)
        cluster = load_cluster(inv)
        url = server or cluster.server_url()
        if not url.startswith("https://"):
            raise IsobuildError(
                f"--server {url!r} is not an https:// URL", hint="e.g. --server https://10.10.10.1:6443"
            )
        if merge_into is not None:  # a corrupt file to merge into stops us before anything is written
            kubeconfig.parse(read_file(merge_into) or b"", str(merge_into))
        authority = load_authority(ctx)
        issued = issue(
            inv, cluster, authority, ctx.now, user=user, server=url,
            record_admin=output is None and merge_into is None,
        )  # fmt: skip
        ca_pem = authority.files["ca.crt"]
        stage(tx, issued)
    backup = None
    target = output or merge_into or inv.root / issued.stored
    config = kubeconfig.renamed(issued.config, context) if context else issued.config
    text = kubeconfig.dump(config) if context else issued.text
    if merge_into is not None:
        with kubeconfig_lock(merge_into):  # read, merge and write under kubectl's own lock
            current = read_file(merge_into) or b""
            existing = kubeconfig.parse(current, str(merge_into))
            conflicts = kubeconfig.merge_conflicts(existing, config, ca_pem)
            if conflicts and not force:
                more = f" (and {len(conflicts) - 1} more of its entries)" if len(conflicts) > 1 else ""
                raise IsobuildError(
                    f"{merge_into} already has {conflicts[0]}{more}: merging would replace it",
                    hint="--context NAME merges under another name; --force replaces it",
                )
            text = kubeconfig.dump(kubeconfig.merge(existing, config, use=use, replace=bool(conflicts)))
            if current and current != text:
                backup = _backup_name(merge_into, ctx.now)
                write_outside(backup, current, 0o600)
            if current != text:
                write_outside(merge_into, text, 0o600)
    elif output == STDOUT:
        pass  # the caller prints it
    elif target != inv.root / issued.stored and read_file(target) != text:
        write_outside(target, text, 0o600)
    end = issued.pair.cert.not_valid_after_utc
    return KubeconfigResult(target, url, config["current-context"], backup, end, text)
