"""The commands over the whole cluster: ``build``, ``remove``, ``push``, ``list``, ``verify``, ``certs``, ``pxe``.

Built on first use, by name (:data:`isobuilder.cli.COMMAND_MODULES`); like the rest of the CLI, a
thin layer that parses, calls one operation and prints its result (tables and human lines on
stderr, ``--json`` on stdout).
"""

# No `from __future__ import annotations` here: typer reads every command's signature at start-up,
# and string annotations would cost an eval each (~30 ms of every command's start).

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from isobuilder import cli
from isobuilder.cli import _context, emit_json, say
from isobuilder.errors import IsobuildError
from isobuilder.model import Format

if TYPE_CHECKING:  # the ops modules load with the command that needs them (start-up time)
    from isobuilder.ops.build import BuildResult


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns on stdout, the first row the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


app = cli.commands_app()
certs_app = typer.Typer(help="Certificates over time: expiry of every certificate, and renewal.", no_args_is_help=True)
app.add_typer(certs_app, name="certs")


@certs_app.command("check")
def certs_check(
    warn_days: Annotated[
        int, typer.Option("--warn-days", min=0, help="Exit 1 when a certificate has expired or has fewer days left.")
    ] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON on stdout.")] = False,
) -> None:
    """Every certificate in the inventory (workstation and node folders), soonest expiry first;
    exit 1 when any has expired or has fewer than --warn-days left. Made for cron and CI.

    \b
    Example:
      isobuild certs check
      isobuild certs check --warn-days 60 --json | jq -r '.certificates[0]'
      ISOBUILD_NOW=2027-06-01 isobuild certs check    # as it will stand on that day
    """
    from isobuilder.ops import certs

    ctx = _context()
    rows = certs.check(ctx)
    expired = [r for r in rows if r.expired(ctx.now)]
    soon = [r for r in rows if not r.expired(ctx.now) and r.days_left(ctx.now) < warn_days]
    if as_json:
        emit_json({
            "now": ctx.now.isoformat(),
            "warn_days": warn_days,
            "certificates": [r.as_json(ctx.now) for r in rows],
            "expired": len(expired),
            "expiring": len(soon),
        })  # fmt: skip
    else:
        table = [("EXPIRES", "LEFT", "WHERE", "FILE", "SUBJECT", "ISSUER")]
        for r in rows:
            left = "expired" if r.expired(ctx.now) else f"{r.days_left(ctx.now)}d" + (" !" if r in soon else "")
            table.append((f"{r.not_after:%Y-%m-%d}", left, r.where, r.path, r.subject, r.issuer))
        print_table(table)
    if expired or soon:
        parts = [f"{len(expired)} expired"] if expired else []
        parts += [f"{len(soon)} expire within {warn_days} days"] if soon else []
        first = (expired or soon)[0]
        verb = "expired" if expired else "expires"
        say(f"certs: of {len(rows)} certificate(s), {' and '.join(parts)} "
            f"(first: {first.path}, {verb} on {first.not_after:%Y-%m-%d})")  # fmt: skip
        if any(r.is_ca for r in (*expired, *soon)):
            say("  a CA expires: renewing leaves cannot help; plan a CA rotation")
        else:
            say("  next:    isobuild certs renew --all (or the nodes named), then isobuild push NODE...")
        raise typer.Exit(1)
    say(f"certs: {len(rows)} certificate(s), none expired, none expires within {warn_days} days")


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
    keeping each private key unless --rotate-keys; rebuild the ISOs, install files and apply.sh.
    The CAs are never touched.

    A running node picks the new certificates up with its apply.sh: isobuild push NODE runs it
    over ssh (one controller at a time). A re-attached ISO matters only for a re-install.

    \b
    Example:
      isobuild certs renew --all
      isobuild certs renew worker1 --rotate-keys
      isobuild push worker1
    """
    from isobuilder.ops import certs
    from isobuilder.ops.node import apply_summary

    result = certs.renew(_context(), names or [], every=every, rotate=rotate_keys)
    if as_json:
        emit_json({
            "nodes": [{"name": o.name, "status": o.status.value, "changed": o.changed} for o in result.nodes],
            "kubeconfigs": [{"path": str(k.path), "expiry": k.expiry.isoformat()} for k in result.kubeconfigs],
            "caught_up": [o.name for o in result.caught_up],
        })  # fmt: skip
    for outcome in result.nodes:
        say(f"  renewed {outcome.name}: next, isobuild push {outcome.name} "
            f"(its apply.sh: {apply_summary(outcome.to_apply) or 'nothing new'})")  # fmt: skip
    for outcome in result.caught_up:
        say(f"  rebuilt {outcome.name}, made from an older cluster.yaml (not renewed)")
    for k in result.kubeconfigs:
        say(f"  renewed {k.path} (valid until {k.expiry:%Y-%m-%d})")
    keys = "new keys" if rotate_keys else "same keys"
    say(f"certs renew: {len(result.nodes)} node(s), {len(result.kubeconfigs)} kubeconfig(s), "
        f"{keys}; the CAs are unchanged")  # fmt: skip


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
    from isobuilder.ops.build import Progress, Status
    from isobuilder.ops.build import build as build_nodes

    bar: Any = None

    def started(total: int) -> None:
        nonlocal bar
        if total >= 20 and sys.stderr.isatty() and not cli.settings.quiet and not as_json:
            bar = typer.progressbar(length=total, label="building", file=sys.stderr)
            bar.__enter__()

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        result = build_nodes(_context(), names or [], prune=prune, force=force, jobs=jobs,
                             progress=Progress(started, progress))  # fmt: skip
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        emit_json(result.as_json())
    _say_build(result)
    if result.count(Status.FAILED):
        raise typer.Exit(1)


def _say_build(result: "BuildResult") -> None:
    from isobuilder.ops.build import Status
    from isobuilder.ops.node import apply_summary

    for outcome in result.outcomes:
        if outcome.status is Status.FAILED:
            say(f"  failed {outcome.name}: {outcome.error}")
        elif outcome.kept_edits:
            say(f"  {outcome.name}: your hand edit of {', '.join(outcome.kept_edits)} is kept")
    upgrading = {s.node.name for s in result.upgrades}  # push --upgrade runs their apply.sh too
    running = [o for o in result.outcomes if o.to_apply and o.name not in upgrading]
    for outcome in running:
        say(f"  {outcome.name}: a running node needs its apply.sh ({apply_summary(outcome.to_apply)})")
    if running:
        say(f"  next:    isobuild push {' '.join(o.name for o in running)}  (controllers one at a time)")
    for folder in result.orphans:
        say(f"  {folder}: not in cluster.yaml " + ("(removed)" if result.pruned else "(kept; --prune removes it)"))
    if result.caught_up:
        say(f"  also rebuilt, made from an older cluster.yaml: {', '.join(result.caught_up)}")
    if result.upgrades:
        order = ", then ".join(f"isobuild push {s.node.name} --upgrade" for s in result.upgrades)
        say(f"  upgrade: {len(result.upgrades)} node(s) run an older Kubernetes than cluster.yaml; "
            f"in this order, each drained first: {order}")  # fmt: skip
    say(f"build: {result.count(Status.BUILT)} built, {result.count(Status.UNCHANGED)} unchanged, "
        f"{result.count(Status.FAILED)} failed in {result.seconds:.2f} s ({result.jobs} jobs)")  # fmt: skip


@app.command()
def remove(
    names: Annotated[list[str], typer.Argument(help="Nodes to remove.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Take nodes out of cluster.yaml; their folders move to removed/NAME-<time>/ (nothing is deleted).

    Refuses the last controller. Workers that joined a removed controller join the bootstrap
    controller; nodes made from the old cluster are rebuilt. Prints what to run on the cluster
    (drain, kubeadm reset for a controller's etcd member, delete node) and until when the node's
    certificates stay valid: they cannot be revoked. To rename a node: remove it, add it anew.

    \b
    Example:
      isobuild remove worker3
      isobuild remove ctrl3 --json
    """
    from isobuilder.ops.remove import remove as remove_nodes

    ctx = _context()
    result = remove_nodes(ctx, names)
    if as_json:
        emit_json(result.as_json())
    for r in result.removed:
        kept = f"folder kept in {ctx.inventory.root / r.kept_in}/" if r.kept_in else "it had no folder"
        say(f"removed {r.node.role} {r.node.name} ({r.node.ip}): {kept}")
        if r.cert_expiry is not None:
            say(f"  certs:   valid until {r.cert_expiry:%Y-%m-%d}: they cannot be revoked; keep removed/ private")
        for step in r.steps():
            say(f"  run:     {step}")
    if result.repointed:
        say(f"  master:  {', '.join(result.repointed)} now join the bootstrap controller")
    for other in result.others:
        say(f"  rebuilt: {other.folder}: {other.advice()}")
    for warning in result.warnings:
        say(f"  warning: {warning}")


@app.command()
def push(
    names: Annotated[list[str] | None, typer.Argument(help="Nodes to push to.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every node of cluster.yaml.")] = False,
    user: Annotated[
        str | None, typer.Option("--user", help="Login user [Flatcar: core; else your ssh config's].")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="List what differs on each node; change nothing.")] = False,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", help="Run upgrade.sh first (isobuild upgrade writes it), in its order.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the ssh commands; run nothing.")] = False,
) -> None:
    """Bring running nodes to their folders: run each node's apply.sh on it over your own ssh.

    The script goes on ssh's standard input to `bash -s` as root (sudo -n when you log in as
    another user): nothing is left on the node. Controllers go first, one at a time; the first
    node that fails stops the push. A node folder not built from cluster.yaml as it is now is
    refused: run isobuild build first. ISOBUILD_SSH replaces `ssh`, as GIT_SSH_COMMAND does.
    With --upgrade each node runs its upgrade.sh, then its apply.sh, and is recorded as upgraded.

    \b
    Example:
      isobuild push worker1 --dry-run
      isobuild push --all --check
      isobuild push ctrl1 --upgrade
      ISOBUILD_SSH="ssh -F ~/.ssh/lab.config" isobuild push ctrl1 ctrl2 ctrl3 --user debian
    """
    from isobuilder.ops import push as pushing

    if upgrade and check:
        raise IsobuildError("--upgrade and --check go separately", hint="check with --check, then --upgrade")
    ctx = _context()
    pushes = pushing.plan(ctx, names or [], every=every, user=user, check=check, upgrade=upgrade)
    nodes = len({p.node.name for p in pushes})
    if dry_run:
        for p in pushes:
            print(p.shown())
        say(f"push: {nodes} node(s); --dry-run: nothing was run")
        return

    def started(p: "pushing.Push") -> None:
        what = "checking" if check else "upgrading with" if p.upgrades else "applying"
        say(f"push: {p.node.name} ({p.target}): {what} {p.script_path}")

    pushing.run_all(ctx, pushes, started)
    outcome = "checked" if check else "upgraded and recorded (kubectl uncordon each)" if upgrade else "applied"
    say(f"push: {nodes} node(s) {outcome}")


@app.command("upgrade")
def upgrade_cmd(
    to: Annotated[str | None, typer.Option("--to", help="The Kubernetes version to move to, e.g. 1.38.0.")] = None,
    done: Annotated[
        list[str] | None, typer.Option("--done", help="Record that NODE ran its upgrade.sh by hand; repeatable.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Move the cluster to another Kubernetes version: check the skew policy, set cluster.yaml,
    rebuild every node folder and write upgrade.sh for each node that runs an older version.

    kubeadm's rules are checked before anything is written: one minor version at a time, no
    downgrade, no controller a minor behind when the next one starts, no kubelet more than three
    behind. upgrade.sh runs kubeadm upgrade apply on the bootstrap controller, kubeadm upgrade
    node everywhere else, then moves the kubelet and kubectl (pinned packages, or checksummed
    binaries on Flatcar). The order to run them in is printed: controllers first, one at a time.

    \b
    Example:
      isobuild upgrade --to 1.38.0
      isobuild push ctrl1 --upgrade        (then the others, in the order printed)
      isobuild upgrade --done worker7      (after running its upgrade.sh by hand)
    """
    from isobuilder.ops import upgrade as upgrading
    from isobuilder.ops.build import Status

    ctx = _context()
    if done:
        if to:
            raise IsobuildError("--to and --done go separately", hint="isobuild upgrade --to V, then --done NODE")
        moved = upgrading.mark_done(ctx, done)
        if as_json:
            emit_json({"done": moved})
        for name in moved:
            say(f"upgrade: {name} recorded at the cluster's version; its upgrade.sh is gone from its folder")
        say(f"upgrade: {len(moved)} node(s) recorded" + ("" if moved else " (all were at the version already)"))
        return
    if not to:
        raise IsobuildError("give --to VERSION (or --done NODE)", hint="e.g. isobuild upgrade --to 1.38.0")
    result = upgrading.upgrade(ctx, to)
    if as_json:
        emit_json(result.as_json())
    say(f"upgrade: cluster.yaml {result.before} -> {result.target}; "
        f"{sum(o.status is Status.BUILT for o in result.outcomes)} node folder(s) rebuilt")  # fmt: skip
    if not result.steps:
        say("  every node runs it already: nothing to run")
        return
    say("  order: one node at a time, each drained first (kubectl drain NODE --ignore-daemonsets)")
    for i, step in enumerate(result.steps, 1):
        say(f"  {i}. {step.node.name:<12} {step.how:<22} isobuild push {step.node.name} --upgrade; "
            f"kubectl uncordon {step.node.name}")  # fmt: skip


@app.command("list")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON on stdout.")] = False,
) -> None:
    """One row per node: role, IP, format, medium, the Kubernetes version it runs (and the one
    cluster.yaml wants, while its upgrade.sh waits), certificate expiry, and whether its folder
    (ISO included) is up to date with cluster.yaml.

    \b
    Example:
      isobuild list
      isobuild list --json | jq -r '.nodes[] | select(.status != "up to date") | .name'
    """
    from isobuilder.ops.inspect import NodeStatus, list_nodes

    rows, stray = list_nodes(_context())
    if as_json:
        emit_json({"nodes": [r.as_json() for r in rows], "orphans": stray})
        return
    table = [("NAME", "ROLE", "IP", "FORMAT", "MEDIUM", "KUBERNETES", "CERT EXPIRY", "STATUS")]
    for r in rows:
        expiry = f"{r.expiry:%Y-%m-%d}" if r.expiry else "-"
        status = r.status.value + (", hand-edited" if r.hand_edited else "")
        row = (r.node.name, r.node.role.value, r.node.ip, r.format.value, r.media.value, r.version(), expiry, status)
        table.append(row)
    table += [(folder.removeprefix("node-"), "-", "-", "-", "-", "-", "-", "not in cluster.yaml") for folder in stray]
    print_table(table)
    expired = [r.node.name for r in rows if r.status is NodeStatus.CERTS_EXPIRED]
    if expired:
        say(f"list: certificates expired on {', '.join(expired)}: isobuild certs renew {' '.join(expired)}, "
            f"then isobuild push each")  # fmt: skip


@app.command()
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON on stdout.")] = False,
) -> None:
    """Re-check the whole inventory; exit 1 with one line per finding.

    Checks: certificate chains, SANs against cluster.yaml, keys matching certificates, expiry
    (the admin's and users' kubeconfigs too), modes (keys, kubeconfigs, user_data and ISOs 0600;
    ssl/ 0700), each ISO holding exactly its cloud-config/
    folder, and no CA or service-account key on a worker's or edge router's ISO or folder.

    \b
    Example:
      isobuild verify && echo "inventory OK"
    """
    from isobuilder.ops.inspect import verify as verify_inventory

    findings = verify_inventory(_context())
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
    from isobuilder.ops.pxe_export import pxe_export
    from isobuilder.pxe import PxeOptions

    options = PxeOptions(http_endpoint, os_version or "", install_disk, next_server, secrets=not no_secrets)
    result = pxe_export(_context(), options, out)
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
