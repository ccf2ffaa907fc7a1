"""``isobuild push``: each node's apply.sh, run on the node over the operator's own ``ssh``.

The script goes to the node on ssh's standard input (``bash -s``): no copy of its private keys
is left on the node's disk. The ssh command is the operator's: ``ssh`` with their config and
agent, or ``ISOBUILD_SSH`` (as git's ``GIT_SSH_COMMAND``), so isobuild keeps no credentials.
Controllers go first, one at a time; the first node that fails stops the push.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from isobuilder import skew
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.inventory import read_file, refuse_symlink
from isobuilder.model import Cluster, Format, Node, unique
from isobuilder.nodefolder import APPLY, UPGRADE
from isobuilder.ops import load_authority, load_cluster, running_versions
from isobuilder.staterecord import STATE, NodeState, inputs_digest

_LOGIN = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}")  # a portable login name (POSIX, useradd's rule)
SSH_ENV = "ISOBUILD_SSH"  # the ssh command line, e.g. "ssh -F ~/.ssh/lab.config"
# As root, or through sudo (-n: a password prompt would read the script as the password).
REMOTE = 'if [ "$(id -u)" -eq 0 ]; then exec bash -s -- {args}; else exec sudo -n bash -s -- {args}; fi'


@dataclasses.dataclass(frozen=True)
class Push:
    """One node's push: the command line, and the script it sends."""

    node: Node
    target: str  # user@ip, as ssh takes it
    script_path: Path  # apply.sh, or upgrade.sh (then its apply.sh follows)
    script: bytes = dataclasses.field(repr=False)
    command: tuple[str, ...]

    @property
    def upgrades(self) -> bool:
        return self.script_path.name == UPGRADE

    def shown(self) -> str:
        """The command as a shell line (``--dry-run``)."""
        return f"{shlex.join(self.command)} < {shlex.quote(str(self.script_path))}"


def ssh_command() -> list[str]:
    text = os.environ.get(SSH_ENV, "").strip()
    try:
        words = shlex.split(text) if text else ["ssh"]
    except ValueError as exc:
        raise IsobuildError(
            f"{SSH_ENV} is not a command line ({exc})", hint='e.g. ISOBUILD_SSH="ssh -F lab.config"'
        ) from None
    if not words:
        raise IsobuildError(f"{SSH_ENV} is empty", hint="unset it for ssh, or give a command line")
    found = shutil.which(words[0])
    if found is None:
        if "/" in words[0] and Path(words[0]).exists():
            raise IsobuildError(f"{words[0]} is not an executable file", hint=f"check {SSH_ENV}")
        raise IsobuildError(
            f"{words[0]} not found",
            hint=f"install OpenSSH's client (apt-get install openssh-client), or set {SSH_ENV}",
        )
    return words


def login(cluster: Cluster, node: Node, user: str | None) -> str:
    """``user@ip``: the user given, else Flatcar's ``core``, else the ssh config's (no user)."""
    if user is None and cluster.format_of(node) is Format.IGNITION:
        user = "core"
    return f"{user}@{node.ip}" if user else node.ip


def plan(
    ctx: Context, names: Sequence[str], *, every: bool, user: str | None, check: bool, upgrade: bool = False
) -> list[Push]:
    """Each node's push, controllers first, read under the lock: the folder must be built from
    cluster.yaml as it is now (else its apply.sh would install an older state). ``upgrade``: its
    upgrade.sh, then its apply.sh, in the skew policy's order, for the nodes that have one."""
    if user is not None and not _LOGIN.fullmatch(user):
        raise IsobuildError(f"--user {user!r} is not a login name", hint="e.g. --user debian")
    if every and names:
        raise IsobuildError("--all and node names go separately", hint="name nodes, or give --all alone")
    ssh = ssh_command()
    inv = ctx.inventory
    with inv.locked():
        cluster = load_cluster(inv)
        nodes = _named(cluster, names, every)
        if upgrade:
            nodes = _upgrade_order(cluster, nodes, running_versions(inv, cluster))
        authority_ = load_authority(ctx)
        pushes = []
        for node in sorted(nodes, key=lambda n: not n.role.is_controller):  # stable: as named, controllers first
            folder = inv.node_dir(node.folder)
            refuse_symlink(folder, "a node folder")
            state = NodeState.parse(read_file(folder / STATE))
            if not (folder / APPLY).is_file() or state.inputs != inputs_digest(cluster, node, authority_):
                raise IsobuildError(
                    f"{node.folder}/ is not built from cluster.yaml as it is now",
                    hint=f"run isobuild build {node.name} first (then push: its apply.sh carries the change)",
                )
            target = login(cluster, node, user)
            if upgrade:
                moving = _script(folder, UPGRADE, node)
                pushes.append(
                    Push(node, target, folder / UPGRADE, moving, (*ssh, "-T", target, REMOTE.format(args="")))
                )
            command = (*ssh, "-T", target, REMOTE.format(args="--check" if check else ""))
            pushes.append(Push(node, target, folder / APPLY, _script(folder, APPLY, node), command))
    return pushes


def _named(cluster: Cluster, names: Sequence[str], every: bool) -> list[Node]:
    if every:
        return list(cluster.nodes)
    nodes = []
    for name in unique(names):
        node = cluster.node(name)
        if node is None:
            known = ", ".join(n.name for n in cluster.nodes) or "none"
            raise IsobuildError(f"no node {name!r} in cluster.yaml", hint=f"known nodes: {known}")
        nodes.append(node)
    if not nodes:
        raise IsobuildError("no node to push to", hint="name nodes, e.g. isobuild push worker1, or --all")
    return nodes


def _upgrade_order(cluster: Cluster, nodes: list[Node], running: dict[str, str]) -> list[Node]:
    """The named nodes that run an older version, in the skew policy's order; none may overtake
    a controller that is not among them, or goes after it."""
    target = cluster.kubernetes_version
    behind = [n for n in nodes if running.get(n.name, target) != target]
    if not behind:
        raise IsobuildError(
            f"{', '.join(n.name for n in nodes)}: at {target} already, no upgrade.sh",
            hint="isobuild upgrade --to VERSION writes them; isobuild list shows what each node runs",
        )
    ordered = [step.node for step in skew.order(cluster, behind)]
    after = dict(running)
    for node in ordered:  # as each will have moved when the next one goes
        skew.refuse_out_of_order(cluster, node, after)
        after[node.name] = target
    return ordered


def _script(folder: Path, name: str, node: Node) -> bytes:
    refuse_symlink(folder / name, f"{node.folder}/{name}")
    script = read_file(folder / name)
    if script is None:
        raise IsobuildError(f"{node.folder}/{name} not found", hint=f"run isobuild build {node.name}")
    return script


def run(push: Push) -> int:
    """ssh's exit code: apply.sh's on the node, 255 when ssh itself failed. Its output streams
    through (the node's log lines on stderr; ``--check``'s list on stdout)."""
    try:
        return subprocess.run(push.command, input=push.script, check=False).returncode
    except OSError as exc:
        raise IsobuildError(f"cannot run {push.command[0]}: {exc.strerror or exc}", hint=f"check {SSH_ENV}") from None


def run_all(ctx: Context, pushes: Sequence[Push], started: Callable[[Push], None] = lambda p: None) -> None:
    """Each push in turn (``started`` is told before each), stopping at the first failure; a node
    whose upgrade.sh and apply.sh both ran is recorded as upgraded (``upgrade.mark_done``)."""
    from isobuilder.ops.upgrade import mark_done

    for done, push in enumerate(pushes):
        started(push)
        code = run(push)
        if code != 0:
            rest = list(dict.fromkeys(q.node.name for q in pushes[done + 1 :] if q.node.name != push.node.name))
            cause = "ssh could not connect or log in" if code == 255 else f"{push.script_path.name} exited {code}"
            raise IsobuildError(
                f"push: {push.node.name} failed: {cause}" + (f"; not pushed: {', '.join(rest)}" if rest else ""),
                hint=f"fix it and push again: {push.script_path.name} is safe to run twice",
            )
        if done > 0 and pushes[done - 1].upgrades and pushes[done - 1].node == push.node:
            mark_done(ctx, [push.node.name])
