"""The commands about one thing at a time: ``usb`` (a node's medium to a stick or an image
file), ``kubeconfig`` (the admin's or a user's, written, merged or printed), ``completion``.

Built on first use, by name (:data:`isobuilder.cli.COMMAND_MODULES`); a thin layer like the rest of the CLI.
"""

# No `from __future__ import annotations` here: typer reads every command's signature at start-up.

import enum
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from isobuilder import cli
from isobuilder.cli import COMPLETE_VAR, JsonOpt, _context, emit_json, say
from isobuilder.errors import IsobuildError

app = cli.commands_app()


@app.command()
def usb(
    node: Annotated[str | None, typer.Argument(help="The node whose medium to write.", show_default=False)] = None,
    device: Annotated[
        Path | None,
        typer.Argument(help="A USB stick's device (/dev/sdb), or an image file to write.", show_default=False),
    ] = None,
    list_devices: Annotated[bool, typer.Option("--list", help="List removable devices (name, size, model).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Write to a device that is not removable.")] = False,
    fat: Annotated[
        bool, typer.Option("--fat", help="An editable FAT drive of the same files instead of the ISO (GNU mtools).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write NODE's medium (its config.iso) to a USB stick or an image file, and read it back.

    A device is refused while it, or a partition of it, is mounted or in use, when it holds the
    running system, when it is smaller than the image, and unless removable or on USB (--force).
    The write is synced, read back and compared by SHA-256. Boot the node with the stick in:
    cloud-init finds the drive by its label (config-2 or cidata). With --fat the stick opens on
    any laptop, to fix e.g. an address in the field. See the README on sticks found late.

    \b
    Example:
      isobuild usb --list
      isobuild usb worker1 /dev/sdb
      isobuild usb worker1 worker1.img
      isobuild usb worker1 /dev/sdb --fat
    """
    from isobuilder import blockdev

    if list_devices:
        if node is not None or device is not None or force or fat:
            raise IsobuildError("--list goes alone", hint="isobuild usb --list, then isobuild usb NODE DEVICE")
        found = blockdev.candidates()
        if as_json:
            emit_json([{"path": str(d.path), "size": d.size, "model": d.model, "transport": d.transport,
                        "mounted": list(d.mounted)} for d in found])  # fmt: skip
            return
        if not found:
            say("No removable device found (plug a USB stick in; isobuild usb NODE FILE writes an image file).")
        for d in found:
            busy = f"  (mounted: {', '.join(d.mounted)})" if d.mounted else ""
            print(f"{d.path!s:<14} {blockdev.human(d.size):>9}  {d.transport or '-':<4} {d.model or '-'}{busy}")
        return
    if node is None or device is None:
        raise IsobuildError("usb takes a NODE and a DEVICE", hint="e.g. isobuild usb worker1 /dev/sdb (or --list)")
    from isobuilder.ops import usb as ops

    ctx = _context()
    medium = ops.medium(ctx, node, fat=fat)
    written = ops.write(ctx, medium, device, force=force, progress=_progress(f"writing {device}"))
    if as_json:
        emit_json({"node": node, "target": str(device), "device": written.device is not None, "fat": fat,
                   "bytes": len(medium.image), "sha256": written.sha256})  # fmt: skip
    what = written.device.describe() if written.device else str(device)
    say(f"Wrote {node}'s {medium.kind} ({blockdev.human(len(medium.image))}) to {what}; "
        f"read back, SHA-256 matches ({written.sha256[:16]}...)")  # fmt: skip
    if written.device:
        say(f"  next:    plug it into {node} and boot; cloud-init finds the drive labelled {medium.media.label}")
    else:
        say(f"  next:    write it to a stick (isobuild usb {node} /dev/sdX), or attach {device} to a VM as a USB disk")


def _progress(what: str) -> Any:
    """Progress on stderr: a line redrawn on a terminal, else nothing until the end."""
    if cli.settings.quiet or not sys.stderr.isatty():  # cli.main makes a fresh one per call
        return lambda done, total: None

    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        line = f"\r  {what}: {done * 100 // max(total, 1):3d}% of {total >> 10} KiB"
        print(line, end=end, file=sys.stderr, flush=True)

    return show


@app.command("kubeconfig")
def kubeconfig_cmd(
    server: Annotated[str | None, typer.Option("--server", help="API server URL (default: endpoint).")] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="<file>", help="Write here instead (-: stdout).")
    ] = None,
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
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            metavar="<name>",
            help="Name the cluster, user and context this (e.g. to merge a second cluster of the same name).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With --merge: replace entries of the same name from another cluster.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the admin kubeconfig (inventory/kubeconfig, certs embedded, 0600), or with --user a
    least-privilege one (inventory/users/NAME.kubeconfig).

    The admin kubeconfig is break-glass (group kubeadm:cluster-admins). A --user kubeconfig
    carries only its user and --group names: it can do nothing until RBAC binds a role to them.
    Context names are USER@CLUSTER. --merge refuses to replace another cluster's entries of
    the same name (another server or CA): --context NAME merges under another name, --force
    replaces them. It takes kubectl's lock on the file and keeps the file before as a backup.
    -o - prints the kubeconfig on stdout.

    \b
    Example:
      isobuild kubeconfig
      kubectl --kubeconfig inventory/kubeconfig get nodes
      isobuild kubeconfig --merge --use
      isobuild kubeconfig --merge --context lab-2      # a second cluster named lab
      isobuild kubeconfig -o - | ssh admin@bastion 'cat >~/.kube/lab.conf'
      isobuild kubeconfig --user alice --group developers --days 90
      kubectl create clusterrolebinding developers-view --clusterrole=view --group=developers
    """
    from isobuilder.ops.kubeconfigs import STDOUT, admin_kubeconfig
    from isobuilder.plan import UserRequest

    if use and not merge:
        raise IsobuildError("--use goes with --merge", hint="isobuild kubeconfig --merge --use")
    if merge and output:
        raise IsobuildError("--merge and --output exclude each other", hint="pick one target file")
    if force and not merge:
        raise IsobuildError("--force goes with --merge", hint="isobuild kubeconfig --merge --force")
    if as_json and output == Path("-"):
        raise IsobuildError("-o - and --json both write stdout", hint="pick one")
    if (group or days is not None) and user is None:
        raise IsobuildError("--group and --days go with --user", hint="isobuild kubeconfig --user alice --group dev")
    request = UserRequest(user, tuple(group or ()), days) if user is not None else None
    merge_into = _default_kubeconfig() if merge else None
    result = admin_kubeconfig(
        _context(), server=server, output=output, merge_into=merge_into, use=use, user=request, context=context,
        force=force,
    )  # fmt: skip
    if output == STDOUT:
        sys.stdout.buffer.write(result.text)
        sys.stdout.flush()
    where = "stdout" if output == STDOUT else result.path
    if as_json:
        emit_json({
            "path": str(result.path), "context": result.context, "server": result.server,
            "not_after": result.expiry.isoformat(), "backup": str(result.backup) if result.backup else None,
        })  # fmt: skip
    say(f"Wrote {where} (context {result.context}, server {result.server}, valid until {result.expiry:%Y-%m-%d})")
    if result.backup:
        say(f"  previous file saved as {result.backup}")
    if request is not None:
        subject = f"--group={request.groups[0]}" if request.groups else f"--user={request.name}"
        say(f"  rbac:    it may do nothing yet; e.g. kubectl create rolebinding {request.name}-view "
            f"--clusterrole=view {subject} -n NAMESPACE")  # fmt: skip


def _default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    if first:
        return Path(first)
    home = os.environ.get("HOME", "")
    if not home.startswith("/"):
        raise IsobuildError("HOME is not set to a folder", hint="set KUBECONFIG to the file to merge into")
    return Path(home) / ".kube" / "config"


class Shell(enum.StrEnum):
    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


@app.command()
def completion(shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.")]) -> None:
    """Print the shell completion script (commands, options and their choices) for SHELL.

    \b
    Example:
      source <(isobuild completion bash)                 # this shell; add it to ~/.bashrc
      isobuild completion zsh >"${fpath[1]}/_isobuild"   # zsh, then start a new shell
      isobuild completion fish >~/.config/fish/completions/isobuild.fish
    """
    from typer._click.shell_completion import get_completion_class

    complete = get_completion_class(shell.value)  # typer's classes, registered with add_completion
    if complete is None:
        raise IsobuildError(f"no completion for {shell.value}", hint="use bash, zsh or fish")
    print(complete(cli.root_command(), {}, "isobuild", COMPLETE_VAR).source())
