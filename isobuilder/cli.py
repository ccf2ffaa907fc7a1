"""The ``isobuild`` command line: a thin layer over :mod:`isobuilder.cluster`.

Human output goes to stderr, data (``--json``) to stdout. :func:`main` is the one place
where errors become ``Error: ...`` lines and exit codes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from isobuilder import __version__
from isobuilder.errors import IsobuildError
from isobuilder.model import Format, KeyType, Media, Role

PASSPHRASE_ENV = "ISOBUILD_CA_PASSPHRASE"  # cluster.PASSPHRASE_ENV (not imported: keeps --help fast)

app = typer.Typer(
    name="isobuild",
    help="Per-node TLS, first-boot config and config-drive ISOs for Kubernetes clusters.\n\n"
    "\b\nExample:\n  isobuild node controller 10.10.10.1\n  isobuild node worker1 10.10.10.2 --master 10.10.10.1\n"
    "  isobuild kubeconfig",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclasses.dataclass
class Settings:
    inventory: Path = Path("inventory")
    quiet: bool = False
    debug: bool = False


settings = Settings()


def say(message: str) -> None:
    if not settings.quiet:
        print(message, file=sys.stderr)


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _version(value: bool) -> None:
    if value:
        print(f"isobuild {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    inventory: Annotated[
        Path, typer.Option("--inventory", envvar="ISOBUILD_INVENTORY", help="Inventory folder.")
    ] = Path("inventory"),
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    settings.inventory, settings.quiet, settings.debug = inventory, quiet, debug


def _context() -> Any:
    from isobuilder.cluster import Context

    return Context.create(settings.inventory, prompt=_ask_passphrase)


def _ask_passphrase(confirm: bool) -> str:
    """The CA passphrase from the terminal (never from the command line: it would sit in ps and
    the shell's history). Without a terminal: the error tells about ISOBUILD_CA_PASSPHRASE."""
    import getpass

    if not sys.stdin.isatty():
        raise IsobuildError(
            "the CA keys need a passphrase and there is no terminal to ask for it",
            hint=f"set {PASSPHRASE_ENV} (e.g. from your password manager) for this command",
        )
    first = getpass.getpass("CA passphrase: ")
    if confirm and getpass.getpass("CA passphrase again: ") != first:
        raise IsobuildError("the two passphrases differ", hint="run the command again")
    return first


# Cluster options shared by `init` and the first `node`.
NameOpt = Annotated[str | None, typer.Option("--name", help="Cluster name (default: k8s-<id>).")]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint", help="API endpoint HOST[:PORT] (default: first controller's IP).")
]
ServiceCidrOpt = Annotated[str | None, typer.Option("--service-cidr", help="Service CIDR [10.96.0.0/12].")]
PodCidrOpt = Annotated[str | None, typer.Option("--pod-cidr", help="Pod CIDR [10.244.0.0/16].")]
DomainOpt = Annotated[str | None, typer.Option("--domain", help="Cluster DNS domain [cluster.local].")]
VersionOpt = Annotated[str | None, typer.Option("--k8s-version", help="Kubernetes version to pin.")]
KeyTypeOpt = Annotated[KeyType | None, typer.Option("--key-type", help="Key algorithm [ecdsa-p256].")]
FormatOpt = Annotated[
    Format | None, typer.Option("--format", help="cloud-config (cloud-init) or ignition (Flatcar) [cloud-config].")
]
MediaOpt = Annotated[
    Media | None, typer.Option("--media", help="config-2 (OpenStack config drive) or nocloud (cidata) [config-2].")
]
VipOpt = Annotated[
    str | None, typer.Option("--vip", help="Virtual IP for the API, held by one controller at a time (kube-vip).")
]
CaDaysOpt = Annotated[int | None, typer.Option("--ca-days", help="Lifetime of the CAs in days [3650].")]
CertDaysOpt = Annotated[int | None, typer.Option("--cert-days", help="Lifetime of leaf certificates in days [365].")]
ExternalCaOpt = Annotated[
    bool, typer.Option("--external-ca", help="Keep every CA key on this workstation (kubeadm external-CA mode).")
]
EncryptCaOpt = Annotated[
    bool,
    typer.Option("--encrypt-ca", help=f"Encrypt the CA keys in ssl/ with a passphrase ({PASSPHRASE_ENV} or a prompt)."),
]
SshKeyOpt = Annotated[
    list[Path] | None, typer.Option("--ssh-key", help="SSH public key file; repeatable.", show_default=False)
]


def _read_ssh_keys(paths: list[Path] | None) -> tuple[str, ...]:
    keys: list[str] = []
    for path in paths or []:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise IsobuildError(
                f"cannot read SSH key file {path}: {getattr(exc, 'strerror', None) or exc}",
                hint="pass a public key file, e.g. --ssh-key ~/.ssh/id_ed25519.pub",
            ) from None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        if not lines:
            raise IsobuildError(
                f"SSH key file {path} is empty", hint="pass a public key file such as ~/.ssh/id_ed25519.pub"
            )
        keys += lines
    return tuple(keys)


def _cluster_options(
    name: str | None,
    endpoint: str | None,
    service_cidr: str | None,
    pod_cidr: str | None,
    domain: str | None,
    k8s_version: str | None,
    key_type: KeyType | None,
    ssh_keys: tuple[str, ...],
    format: Format | None = None,
    media: Media | None = None,
    vip: str | None = None,
    ca_days: int | None = None,
    cert_days: int | None = None,
    external_ca: bool = False,
) -> Any:
    from isobuilder.cluster import ClusterOptions

    return ClusterOptions(
        name,
        endpoint,
        service_cidr,
        pod_cidr,
        domain,
        k8s_version,
        key_type,
        ssh_keys,
        format,
        media,
        vip,
        ca_days,
        cert_days,
        external_ca or None,
    )


@app.command()
def init(
    name: NameOpt = None,
    endpoint: EndpointOpt = None,
    service_cidr: ServiceCidrOpt = None,
    pod_cidr: PodCidrOpt = None,
    domain: DomainOpt = None,
    k8s_version: VersionOpt = None,
    key_type: KeyTypeOpt = None,
    ssh_key: SshKeyOpt = None,
    format: FormatOpt = None,
    media: MediaOpt = None,
    vip: VipOpt = None,
    ca_days: CaDaysOpt = None,
    cert_days: CertDaysOpt = None,
    external_ca: ExternalCaOpt = False,
    encrypt_ca: EncryptCaOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Create the cluster: cluster.yaml and its CAs in ssl/ (once; never re-made).

    --format and --media set the cluster's defaults; a node may override them. --endpoint
    (a DNS name or load balancer) or --vip (kube-vip on the controllers) is what several
    controllers share. --external-ca keeps every CA key off the nodes; --encrypt-ca encrypts
    the CA keys in ssl/ (passphrase from ISOBUILD_CA_PASSPHRASE, else asked twice).

    \b
    Example:
      isobuild init --name lab --endpoint api.lab.example --ssh-key ~/.ssh/id_ed25519.pub
      isobuild init --format ignition            # Flatcar nodes by default
      isobuild init --vip 10.10.10.10 --external-ca --encrypt-ca --cert-days 90
    """
    from isobuilder import cluster as ops

    options = _cluster_options(
        name, endpoint, service_cidr, pod_cidr, domain, k8s_version, key_type, _read_ssh_keys(ssh_key), format, media,
        vip, ca_days, cert_days, external_ca,
    )  # fmt: skip
    created = ops.init(_context(), options, encrypt_ca=encrypt_ca)
    if as_json:
        emit_json({"name": created.name, "cluster_id": created.cluster_id, "inventory": str(settings.inventory)})
    say(f"Created cluster {created.name} in {settings.inventory} (Kubernetes {created.kubernetes_version}, "
        f"{created.key_type} keys). Next: isobuild node NAME IP")  # fmt: skip


@app.command()
def node(
    name: Annotated[str, typer.Argument(help="Node name (RFC 1123), also its hostname.")],
    ip: Annotated[str, typer.Argument(help="The node's IP address, or IP/PREFIX for a static address.")],
    master: Annotated[str | None, typer.Option("--master", help="Controller IP to join: makes a worker.")] = None,
    role: Annotated[Role | None, typer.Option("--role", help="controller, worker or edge.")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="Node label k=v; repeatable.")] = None,
    san: Annotated[list[str] | None, typer.Option("--san", help="Extra SAN (name or IP); repeatable.")] = None,
    ssh_key: SshKeyOpt = None,
    format: Annotated[
        Format | None, typer.Option("--format", help="This node's config: cloud-config or ignition.")
    ] = None,
    media: Annotated[Media | None, typer.Option("--media", help="This node's drive: config-2 or nocloud.")] = None,
    mac: Annotated[str | None, typer.Option("--mac", help="MAC of the NIC to configure statically.")] = None,
    prefix: Annotated[int | None, typer.Option("--prefix", help="Prefix length of a static address.")] = None,
    gateway: Annotated[str | None, typer.Option("--gateway", help="Default gateway (static).")] = None,
    dns: Annotated[list[str] | None, typer.Option("--dns", help="DNS server (static); repeatable.")] = None,
    mtu: Annotated[int | None, typer.Option("--mtu", help="MTU of the NIC (static).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a hand-edited user_data.")] = False,
    name_: NameOpt = None,
    endpoint: EndpointOpt = None,
    service_cidr: ServiceCidrOpt = None,
    pod_cidr: PodCidrOpt = None,
    domain: DomainOpt = None,
    k8s_version: VersionOpt = None,
    key_type: KeyTypeOpt = None,
    vip: VipOpt = None,
    ca_days: CaDaysOpt = None,
    cert_days: CertDaysOpt = None,
    external_ca: ExternalCaOpt = False,
    encrypt_ca: EncryptCaOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Add or update a node and build its folder: certs, user_data, config.iso, install.sh, renew.sh.

    No --master makes a controller; --master makes a worker; --role edge an edge router.
    The first node creates the cluster (the cluster options apply then). Options not
    given keep the node's current values. --ssh-key on the first node goes to the cluster.
    A static address (IP/PREFIX or --prefix) needs --mac: the NIC it is set on.
    Several controllers (HA) share an --endpoint or a --vip, given with the first of them
    (or set later, when cluster.yaml has none); adding one also rebuilds the others and
    says which ISOs matter.

    \b
    Example:
      isobuild node controller 10.10.10.1
      isobuild node worker1 10.10.10.2 --master 10.10.10.1 --label zone=rack1
      isobuild node example.com 123.234.234.123 --master 10.10.10.1 --role edge
      isobuild node worker3 10.10.10.4/24 --master 10.10.10.1 --mac 52:54:00:00:00:04 \\
          --gateway 10.10.10.254 --dns 1.1.1.1 --format ignition --media nocloud
      isobuild node ctrl1 10.10.10.11 --endpoint api.example.test --vip 10.10.10.10
      isobuild node ctrl2 10.10.10.12 --role controller
    """
    from isobuilder import cluster as ops

    keys = _read_ssh_keys(ssh_key)
    ctx = _context()
    first = not ctx.inventory.has_cluster()
    options = _cluster_options(
        name_, endpoint, service_cidr, pod_cidr, domain, k8s_version, key_type, keys if first else (),
        None, None, vip, ca_days, cert_days, external_ca,
    )  # fmt: skip
    request = ops.NodeRequest(
        name=name,
        ip=ip,
        master=master,
        role=role,
        labels=tuple(label or ()),
        sans=tuple(san or ()),
        ssh_keys=() if first else keys,
        format=format,
        media=media,
        mac=mac,
        prefix=prefix,
        gateway=gateway,
        dns=tuple(dns or ()),
        mtu=mtu,
        force=force,
    )
    result = ops.add_node(ctx, request, options, encrypt_ca=encrypt_ca)
    if as_json:
        emit_json(result.as_json())
    if result.cluster_created:
        say(f"Created a new cluster in {settings.inventory} (CA in {settings.inventory / 'ssl'}: back it up).")
    n = result.node
    status = f"{len(result.changed)} files written" if result.changed else "up to date, nothing written"
    say(f"{n.role} {n.name} ({n.ip}): {status}")
    if result.kept_hand_edit:
        say("  user_data: your hand edit is kept (nothing isobuild generates for it changed)")
    say(f"  folder:  {result.folder}/  (config.iso, install.sh, renew.sh, ssl/, cloud-config/)")
    network = f", static {n.ip}/{n.prefix} on {n.mac}" if n.static else ""
    say(f"  drive:   {result.format} on a {result.media.label} drive{network}")
    days = round((result.cert_expiry - ctx.now).total_seconds() / 86400)
    say(f"  certs:   valid until {result.cert_expiry:%Y-%m-%d} ({days} days; isobuild certs check tells them all)")
    for other in result.others:
        say(f"  rebuilt: {other.folder}: {other.advice()}")
    for warning in result.warnings:
        say(f"  warning: {warning}")
    if result.format is Format.IGNITION:
        nxt = "attach config.iso to a Flatcar image and boot it (bare metal: run install.sh from the live image)"
    else:
        nxt = "attach config.iso to the machine and boot it"
    say(f"  next:    {nxt}; then `isobuild kubeconfig`" if n.role is Role.CONTROLLER else f"  next:    {nxt}")


@app.command()
def image(
    folder: Annotated[Path, typer.Argument(help="A node folder, e.g. inventory/node-worker1.")],
) -> None:
    """Re-package FOLDER/cloud-config/ into FOLDER/config.iso after a hand edit.

    Nothing else in the folder changes. SOURCE_DATE_EPOCH makes the image reproducible.

    \b
    Example:
      vi inventory/node-worker1/cloud-config/openstack/latest/user_data
      isobuild image inventory/node-worker1
    """
    from isobuilder import cluster as ops

    target = ops.image(_context(), folder)
    say(f"Wrote {target}")


@app.command("kubeconfig")
def kubeconfig_cmd(
    server: Annotated[str | None, typer.Option("--server", help="API server URL (default: endpoint).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead.")] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Merge into ~/.kube/config (or $KUBECONFIG's first file).")
    ] = False,
    use: Annotated[bool, typer.Option("--use", help="With --merge: make it the current context.")] = False,
    user: Annotated[
        str | None, typer.Option("--user", help="Issue a kubeconfig for this user instead of the admin.")
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="With --user: a group the user is in; repeatable.")
    ] = None,
    days: Annotated[int | None, typer.Option("--days", help="With --user: lifetime in days [cert_days].")] = None,
) -> None:
    """Write the admin kubeconfig (inventory/kubeconfig, certs embedded, 0600), or with --user a
    least-privilege one (inventory/users/NAME.kubeconfig).

    The admin kubeconfig is break-glass (group kubeadm:cluster-admins). A --user kubeconfig
    carries only its user and --group names: it can do nothing until RBAC binds a role to them.
    Context names are USER@CLUSTER, so --merge never collides with other clusters.

    \b
    Example:
      isobuild kubeconfig
      kubectl --kubeconfig inventory/kubeconfig get nodes
      isobuild kubeconfig --merge --use
      isobuild kubeconfig --user alice --group developers --days 30
      kubectl create clusterrolebinding developers-view --clusterrole=view --group=developers
    """
    from isobuilder import cluster as ops

    if use and not merge:
        raise IsobuildError("--use goes with --merge", hint="isobuild kubeconfig --merge --use")
    if merge and output:
        raise IsobuildError("--merge and --output exclude each other", hint="pick one target file")
    if (group or days is not None) and user is None:
        raise IsobuildError("--group and --days go with --user", hint="isobuild kubeconfig --user alice --group dev")
    request = ops.UserRequest(user, tuple(group or ()), days) if user is not None else None
    merge_into = _default_kubeconfig() if merge else None
    result = ops.admin_kubeconfig(
        _context(), server=server, output=output, merge_into=merge_into, use=use, user=request
    )
    say(f"Wrote {result.path} (context {result.context}, server {result.server}, "
        f"valid until {result.expiry:%Y-%m-%d})")  # fmt: skip
    if result.backup:
        say(f"  previous file saved as {result.backup}")
    if request is not None:
        subject = f"--group={request.groups[0]}" if request.groups else f"--user={request.name}"
        say(f"  rbac:    it may do nothing yet; e.g. kubectl create rolebinding {request.name}-view "
            f"--clusterrole=view {subject} -n NAMESPACE")  # fmt: skip


certs_app = typer.Typer(help="Certificates over time: expiry of every certificate, and renewal.", no_args_is_help=True)
app.add_typer(certs_app, name="certs")


@certs_app.command("check")
def certs_check(
    warn_days: Annotated[
        int, typer.Option("--warn-days", min=0, help="Exit 1 when a certificate expires within this many days.")
    ] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON on stdout.")] = False,
) -> None:
    """Every certificate in the inventory (workstation and node folders), soonest expiry first;
    exit 1 when any expires within --warn-days. Made for cron and CI.

    \b
    Example:
      isobuild certs check
      isobuild certs check --warn-days 60 --json | jq -r '.certificates[0]'
      ISOBUILD_NOW=2027-06-01 isobuild certs check    # as it will stand on that day
    """
    from isobuilder import certs

    ctx = _context()
    rows = certs.check(ctx)
    soon = [r for r in rows if r.days_left(ctx.now) <= warn_days]
    if as_json:
        emit_json({
            "now": ctx.now.isoformat(),
            "warn_days": warn_days,
            "certificates": [r.as_json(ctx.now) for r in rows],
            "expiring": len(soon),
        })  # fmt: skip
    else:
        table = [("EXPIRES", "LEFT", "WHERE", "FILE", "SUBJECT", "ISSUER")]
        for r in rows:
            left = r.days_left(ctx.now)
            flag = " !" if left <= warn_days else ""
            table.append((f"{r.not_after:%Y-%m-%d}", f"{left:.0f}d{flag}", r.where, r.path, r.subject, r.issuer))
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if soon:
        say(f"certs: {len(soon)} of {len(rows)} certificate(s) expire within {warn_days} days "
            f"(first: {soon[0].path} on {soon[0].not_after:%Y-%m-%d})")  # fmt: skip
        if any(r.is_ca for r in soon):
            say("  a CA expires: renewing leaves cannot help; plan a CA rotation")
        else:
            say("  next:    isobuild certs renew --all (or the nodes named), then run each node's renew.sh")
        raise typer.Exit(1)
    say(f"certs: {len(rows)} certificate(s), none expires within {warn_days} days")


@certs_app.command("renew")
def certs_renew(
    names: Annotated[list[str] | None, typer.Argument(help="Nodes to renew.")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every node, the admin kubeconfig and the user kubeconfigs.")
    ] = False,
    rotate_keys: Annotated[bool, typer.Option("--rotate-keys", help="New private keys too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Re-issue leaf certificates from cluster.yaml as it is now (SANs, IPs, endpoint, cert_days),
    keeping each private key unless --rotate-keys; rebuild the ISOs, install files and renew.sh.
    The CAs are never touched.

    A running node picks the new certificates up with its renew.sh (scp it there, run it as root;
    one controller at a time). A re-attached ISO matters only for a re-install.

    \b
    Example:
      isobuild certs renew --all
      isobuild certs renew worker1 --rotate-keys
      scp inventory/node-worker1/renew.sh 10.10.10.2: && ssh 10.10.10.2 sudo ./renew.sh
    """
    from isobuilder import certs, fleet

    result = certs.renew(_context(), names or [], every=every, rotate=rotate_keys)
    built = result.build
    if as_json:
        emit_json({
            "nodes": built.as_json() if built else None,
            "kubeconfigs": [{"path": str(k.path), "expiry": k.expiry.isoformat()} for k in result.kubeconfigs],
        })  # fmt: skip
    if built is not None:
        for outcome in built.outcomes:
            if outcome.status == fleet.FAILED:
                say(f"  failed {outcome.name}: {outcome.error}")
            else:
                say(f"  renewed {outcome.name}: next, on the node: run its renew.sh")
    for k in result.kubeconfigs:
        say(f"  renewed {k.path} (valid until {k.expiry:%Y-%m-%d})")
    keys = "new keys" if rotate_keys else "same keys"
    say(f"certs renew: {built.count(fleet.BUILT) if built else 0} node(s), {len(result.kubeconfigs)} kubeconfig(s), "
        f"{keys}; the CAs are unchanged")  # fmt: skip
    if built is not None and built.count(fleet.FAILED):
        raise typer.Exit(1)


@app.command()
def build(
    names: Annotated[list[str] | None, typer.Argument(help="Nodes to build (default: every node).")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="Remove folders of nodes gone from cluster.yaml.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild all; overwrite hand-edited user_data.")] = False,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes [one per core].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Build every node listed in cluster.yaml (or the named ones), as `isobuild node` would.

    Incremental: a node whose inputs did not change is not touched (its ISO keeps its bytes and
    mtime). Every problem in cluster.yaml is reported before anything is written. Keys and
    certificates are made in parallel, one process per core. A folder of a node no longer in
    cluster.yaml is reported, and removed only with --prune.

    \b
    Example:
      vi inventory/cluster.yaml        # add nodes under nodes:, e.g.
                                       #   - {name: worker9, ip: 10.10.10.9, role: worker, mac: '52:54:00:00:00:09'}
      isobuild build
      isobuild build worker9 --json
    """
    from isobuilder import fleet

    bar: Any = None

    def started(total: int) -> None:
        nonlocal bar
        if total >= 20 and sys.stderr.isatty() and not settings.quiet and not as_json:
            bar = typer.progressbar(length=total, label="building", file=sys.stderr)
            bar.__enter__()

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        result = fleet.build(_context(), names or [], prune=prune, force=force, jobs=jobs, progress=progress,
                             started=started)  # fmt: skip
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        emit_json(result.as_json())
    for outcome in result.outcomes:
        if outcome.status == fleet.FAILED:
            say(f"  failed {outcome.name}: {outcome.error}")
        elif outcome.kept_hand_edit:
            say(f"  {outcome.name}: your hand edit of user_data is kept")
    for folder in result.orphans:
        say(f"  {folder}: not in cluster.yaml " + ("(removed)" if result.pruned else "(kept; --prune removes it)"))
    say(f"build: {result.count(fleet.BUILT)} built, {result.count(fleet.UNCHANGED)} unchanged, "
        f"{result.count(fleet.FAILED)} failed in {result.seconds:.2f} s ({result.jobs} jobs)")  # fmt: skip
    if result.count(fleet.FAILED):
        raise typer.Exit(1)


@app.command("list")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON on stdout.")] = False,
) -> None:
    """One row per node: role, IP, format, medium, certificate expiry, and whether its folder
    (ISO included) is up to date with cluster.yaml.

    \b
    Example:
      isobuild list
      isobuild list --json | jq -r '.nodes[] | select(.status != "up to date") | .name'
    """
    from isobuilder import fleet

    rows, stray = fleet.list_nodes(_context())
    if as_json:
        emit_json({"nodes": [r.as_json() for r in rows], "orphans": stray})
        return
    table = [("NAME", "ROLE", "IP", "FORMAT", "MEDIUM", "CERT EXPIRY", "STATUS")]
    for r in rows:
        expiry = f"{r.expiry:%Y-%m-%d}" if r.expiry else "-"
        status = r.status + (", hand-edited" if r.hand_edited else "")
        table.append((r.node.name, r.node.role.value, r.node.ip, r.format.value, r.media.value, expiry, status))
    table += [(folder.removeprefix("node-"), "-", "-", "-", "-", "-", "not in cluster.yaml") for folder in stray]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@app.command()
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON on stdout.")] = False,
) -> None:
    """Re-check the whole inventory; exit 1 with one line per finding.

    Checks: certificate chains, SANs against cluster.yaml, keys matching certificates, expiry,
    modes (keys, user_data and ISOs 0600; ssl/ 0700), each ISO holding exactly its cloud-config/
    folder, and no CA or service-account key on a worker's or edge router's ISO or folder.

    \b
    Example:
      isobuild verify && echo "inventory OK"
    """
    from isobuilder import fleet

    findings = fleet.verify(_context())
    if as_json:
        emit_json({"findings": findings})
    for finding in findings:
        print(f"{finding}", file=sys.stderr)
    say(f"verify: {len(findings)} finding(s)" if findings else "verify: no findings")
    if findings:
        raise typer.Exit(1)


@app.command()
def pxe(
    http_endpoint: Annotated[
        str, typer.Option("--http-endpoint", help="matchbox's HTTP endpoint, e.g. http://10.10.10.254:8080.")
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder [INVENTORY/pxe].")] = None,
    os_version: Annotated[
        str | None, typer.Option("--os-version", help="Flatcar release to PXE-boot and install [cluster.yaml's].")
    ] = None,
    install_disk: Annotated[str, typer.Option("--install-disk", help="Disk Flatcar nodes install to.")] = "/dev/sda",
    next_server: Annotated[
        str | None, typer.Option("--next-server", help="TFTP server IP for iPXE chain-loading in the DHCP files.")
    ] = None,
    no_secrets: Annotated[
        bool, typer.Option("--no-secrets", help="Leave private keys out of the configs matchbox serves.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Export every node with a MAC for network boot: matchbox, DHCP, inventories.

    Writes matchbox groups, profiles and configs (Flatcar nodes: a two-stage install;
    cloud-config nodes: cloud_id), dnsmasq and ISC dhcpd static mappings, and a CSV, JSON and
    Ansible inventory of the cluster. Nodes without a MAC are skipped, with the reason.
    matchbox serves configs over HTTP to anything that asks with a node's MAC: they hold the
    node's private keys unless you pass --no-secrets.

    \b
    Example:
      isobuild node worker1 10.10.10.2 --master 10.10.10.1 --mac 52:54:00:00:00:02
      isobuild pxe --http-endpoint http://10.10.10.254:8080 --next-server 10.10.10.254
      sudo rsync -a inventory/pxe/matchbox/ /var/lib/matchbox/
    """
    from isobuilder import cluster as ops
    from isobuilder.pxe import PxeOptions

    options = PxeOptions(http_endpoint, os_version or "", install_disk, next_server, secrets=not no_secrets)
    result = ops.pxe_export(_context(), options, out)
    if as_json:
        emit_json(result.as_json())
    exported, skipped = result.export.exported, result.export.skipped
    status = "written" if result.changed else "up to date, nothing written"
    say(f"pxe export in {result.out}/: {len(exported)} network-boot nodes, {len(skipped)} skipped ({status})")
    for e in exported:
        how = "Flatcar install, then its config" if e.format is Format.IGNITION else "cloud-config (cloud-config-url)"
        say(f"  {e.node.name}: {e.node.mac} {e.node.ip}, {how}")
    for name, why in skipped:
        say(f"  skipped {name}: {why}")
    for note in result.export.notes:
        say(f"  note: {note}")
    if result.serves_secrets:
        say("  secrets: matchbox serves these configs over HTTP to any machine that asks with a node's MAC;")
        say("           they hold private keys. Keep matchbox on an isolated provisioning network, or --no-secrets.")
    withheld = sum(len(e.withheld) for e in exported)
    if withheld:
        say(f"  secrets: {withheld} files with private keys left out (--json lists them); deliver them another way")
    say(f"  next:    sudo rsync -a {result.out}/matchbox/ /var/lib/matchbox/")
    say("           and include dnsmasq-hosts.conf (conf-file=) or dhcpd-hosts.conf (include) in your DHCP server")


def _default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first) if first else Path.home() / ".kube" / "config"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code. Tests call this with an argv list."""
    global settings
    command = typer.main.get_command(app)
    settings = Settings()  # fresh for each in-process call (tests call main() many times)
    try:
        command.main(args=argv, prog_name="isobuild", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except IsobuildError as exc:
        if settings.debug:
            raise
        for line in (exc.message, *exc.details):
            print(f"Error: {line}", file=sys.stderr)
        if exc.hint:
            print(f"Hint: {exc.hint}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: one line, not a traceback, unless --debug
        if settings.debug:
            raise
        print(f"Error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("Hint: re-run with --debug for a traceback and report it", file=sys.stderr)
        return 1
    return 0
