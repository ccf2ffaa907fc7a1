"""The commands about nodes: ``init`` (the cluster and its CAs), ``node`` (add or update one and
build its folder) and ``image`` (re-package a folder after a hand edit).

Built on first use, by name (:data:`isobuilder.cli.COMMAND_MODULES`); like the rest of the CLI,
a thin layer that parses, calls one operation and prints its result. ``init`` and ``node`` take their
cluster and node flags from :mod:`isobuilder.schema`, so that cluster.yaml and the command line
cannot drift apart.
"""

# No `from __future__ import annotations` here: typer reads every command's signature at start-up.

import functools
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from isobuilder import cli, schema
from isobuilder.cli import JsonOpt, _context, emit_json, say
from isobuilder.context import PASSPHRASE_ENV
from isobuilder.errors import IsobuildError
from isobuilder.model import Format, Role

app = cli.commands_app()


def _keys_ahead(inv: Any, name: str, key_type_flag: Any) -> Any:
    """A new node's keys, made in a thread from here on while the command loads the CA, the
    renderer and the ISO writer (an RSA-2048 key: ~30 ms off ``isobuild node``'s cold start).
    A new cluster's first controller needs some fifteen (the CAs' and its own): both cores make
    them. Speed only: the key type is read ahead of the lock, and a wrong guess costs nothing."""
    from isobuilder import keys
    from isobuilder.model import KeyType

    key_type: KeyType | None = None
    count = 1
    default = KeyType(schema.SETTING["key_type"].default)
    try:
        if not inv.node_dir(f"node-{name}").exists():  # an existing node keeps its keys
            text = inv.read(inv.cluster_file.name)
            if text is None:
                key_type, count = KeyType(key_type_flag or default), 16
            else:
                key_type = keys.key_type_hint(text, default)
    except (OSError, ValueError, IsobuildError):
        pass  # the command itself says what is wrong
    return keys.ahead(key_type, count)


def _flag_type(field: schema.Field) -> Any:
    """The type typer parses a schema field's flag as (left out: None, or False for a switch)."""
    if field.key == "ssh_keys":
        return list[Path] | None  # files, read by _read_ssh_keys
    if field.kind is bool:
        return bool
    if field.kind in (list, dict):
        return list[str] | None  # repeatable; labels as k=v
    if field.choices is not None:
        return field.choices | None
    return str | None  # numbers too: plan reads them with a bound (click would echo 5000 digits back)


def _schema_params(fields: Iterable[schema.Field], prefix: str) -> list[inspect.Parameter]:
    return [
        inspect.Parameter(
            prefix + f.key,
            inspect.Parameter.KEYWORD_ONLY,
            default=False if f.kind is bool else None,
            annotation=Annotated[
                _flag_type(f),
                typer.Option(
                    f.flag, help=f.flag_help(), show_default=False, metavar="<int>" if f.kind is int else None
                ),
            ],
        )
        for f in fields
        if f.flag
    ]


def with_schema_flags(
    *groups: tuple[str, Iterable[schema.Field]],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the flags of schema fields: one keyword parameter ``PREFIX + key`` each,
    collected by the command's ``**flags``. The flags, their help and defaults come from the
    schema, so cluster.yaml and the command line cannot drift apart."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
        extra = [p for prefix, fields in groups for p in _schema_params(fields, prefix)]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> None:
            command(**kwargs)

        wrapper.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _flags(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}


EncryptCaOpt = Annotated[
    bool,
    typer.Option("--encrypt-ca", help=f"Encrypt the CA keys in ssl/ with a passphrase ({PASSPHRASE_ENV} or a prompt)."),
]
_MAX_KEY_FILE = 1 << 20  # an authorized_keys file of some thousand keys; /dev/zero is refused


def _read_ssh_keys(paths: list[Path] | None) -> tuple[str, ...]:
    keys: list[str] = []
    for path in paths or []:
        hint = "pass a public key file, e.g. --ssh-key ~/.ssh/id_ed25519.pub"
        try:
            if path.exists() and not path.is_file():
                raise IsobuildError(f"SSH key file {path} is not a regular file", hint=hint)
            with path.open("rb") as f:
                data = f.read(_MAX_KEY_FILE + 1)
            if len(data) > _MAX_KEY_FILE:
                raise IsobuildError(f"SSH key file {path} is over {_MAX_KEY_FILE >> 20} MiB", hint=hint)
            text = data.decode()
        except (OSError, UnicodeDecodeError) as exc:
            raise IsobuildError(
                f"cannot read SSH key file {path}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}", hint=hint
            ) from None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        if not lines:
            raise IsobuildError(
                f"SSH key file {path} is empty", hint="pass a public key file such as ~/.ssh/id_ed25519.pub"
            )
        keys += lines
    return tuple(keys)


def _cluster_request(flags: dict[str, Any]) -> Any:
    from isobuilder.plan import ClusterRequest

    return ClusterRequest.from_flags(flags)


@app.command()
@with_schema_flags(("c_", schema.SETTINGS))
def init(encrypt_ca: EncryptCaOpt = False, as_json: JsonOpt = False, **flags: Any) -> None:
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
    from isobuilder.ops import node as ops

    cluster_flags = _flags(flags, "c_")
    cluster_flags["ssh_keys"] = list(_read_ssh_keys(cluster_flags["ssh_keys"]))
    created = ops.init(_context(), _cluster_request(cluster_flags), encrypt_ca=encrypt_ca)
    if as_json:
        emit_json({"name": created.name, "cluster_id": created.cluster_id, "inventory": str(cli.settings.inventory)})
    say(f"Created cluster {created.name} in {cli.settings.inventory} (Kubernetes {created.kubernetes_version}, "
        f"{created.key_type} keys). Next: isobuild node NAME IP")  # fmt: skip


# --format, --media and --ssh-key of `node` are the node's (the first node's keys go to the cluster)
_NODE_CLUSTER_FLAGS = [f for f in schema.SETTINGS if not (f.key in schema.NODE_FIELD and schema.NODE_FIELD[f.key].flag)]


@app.command()
@with_schema_flags(("n_", schema.NODE_FIELDS), ("c_", _NODE_CLUSTER_FLAGS))
def node(
    name: Annotated[str, typer.Argument(help="Node name (RFC 1123), also its hostname.")],
    ip: Annotated[
        str | None,
        typer.Argument(help="The node's IP address, or IP/PREFIX for a static address [an existing node's]."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a hand-edited user_data.")] = False,
    encrypt_ca: EncryptCaOpt = False,
    as_json: JsonOpt = False,
    **flags: Any,
) -> None:
    """Add or update a node and build its folder: certs, user_data, config.iso, install.sh, apply.sh.

    No --master makes a controller; --master makes a worker; --role edge an edge router
    (tainted, firewalled; --public-ip: its internet address beside a private IP).
    The first node creates the cluster (the cluster options apply then). Options not
    given keep the node's current values, its IP included. --label k=v adds or changes a
    label and --label k- removes it; --san NAME adds an extra SAN and --san NAME- removes it.
    --ssh-key on the first node goes to the cluster.
    A static address (IP/PREFIX or --prefix) needs --mac: the NIC it is set on.
    Several controllers (HA) share an --endpoint or a --vip, given with the first of them
    (or set later, when cluster.yaml has none); adding one also rebuilds the others and
    says which ISOs matter.

    \b
    Example:
      isobuild node controller 10.10.10.1
      isobuild node worker1 10.10.10.2 --master 10.10.10.1 --label zone=rack1
      isobuild node example.com 123.234.234.123 --master 10.10.10.1 --role edge
      isobuild node edge1 10.10.10.5 --public-ip 203.0.113.5 --master 10.10.10.1 --role edge
      isobuild node worker3 10.10.10.4/24 --master 10.10.10.1 --mac 52:54:00:00:00:04 \\
          --gateway 10.10.10.254 --dns 1.1.1.1 --format ignition --media nocloud
      isobuild node ctrl1 10.10.10.11 --endpoint api.example.test --vip 10.10.10.10
      isobuild node ctrl2 10.10.10.12 --role controller
      isobuild node worker1 --label zone- --label disk=ssd --san w1.example.test
    """
    node_flags, cluster_flags = _flags(flags, "n_"), _flags(flags, "c_")
    node_flags["ssh_keys"] = list(_read_ssh_keys(node_flags.get("ssh_keys")))
    ctx = _context()
    with _keys_ahead(ctx.inventory, name, cluster_flags.get("key_type")) as new_key:
        from isobuilder import keys, nodefolder
        from isobuilder.ops import node as ops  # loaded while the keys are made
        from isobuilder.plan import NodeRequest

        if isinstance(new_key, keys.KeysAhead):  # and, for a new node, all it will need
            nodefolder.load_libraries()
        if not ctx.inventory.has_cluster():  # the first node's SSH keys are the cluster's
            cluster_flags["ssh_keys"], node_flags["ssh_keys"] = node_flags["ssh_keys"], []
        request = NodeRequest(name, ip, node_flags, force=force)
        result = ops.add_node(ctx, request, _cluster_request(cluster_flags), encrypt_ca=encrypt_ca, new_key=new_key)
    if as_json:
        emit_json(result.as_json())
    if result.cluster_created:
        say(f"Created a new cluster in {cli.settings.inventory} (CA in {cli.settings.inventory / 'ssl'}: back it up).")
    n = result.node
    status = f"{len(result.changed)} files written" if result.changed else "up to date, nothing written"
    say(f"{n.role} {n.name} ({n.ip}): {status}")
    for rel in result.kept_edits:
        say(f"  kept:    your hand edit of {rel} (nothing isobuild generates for it changed)")
    say(f"  folder:  {result.folder}/  (config.iso, install.sh, apply.sh, ssl/, cloud-config/)")
    network = f", static {n.ip}/{n.prefix} on {n.mac}" if n.static else ""
    say(f"  drive:   {result.format} on a {result.media.label} drive{network}")
    days = round((result.cert_expiry - ctx.now).total_seconds() / 86400)
    say(f"  certs:   valid until {result.cert_expiry:%Y-%m-%d} ({days} days; isobuild certs check tells them all)")
    for removed in result.removed:
        say(f"  removed: {removed}")
    for path in result.kubeconfigs:
        say(f"  kubeconfig: {path}: re-issued for the cluster's new address")
    for other in result.others:
        say(f"  rebuilt: {other.folder}: {other.advice()}")
    for warning in result.warnings:
        say(f"  warning: {warning}")
    if result.to_apply:
        from isobuilder.ops.node import apply_summary

        say(f"  running: if {n.name} runs already: isobuild push {n.name} (its apply.sh: "
            f"{apply_summary(result.to_apply)})")  # fmt: skip
    if result.format is Format.IGNITION:
        nxt = "attach config.iso to a Flatcar image and boot it (bare metal: run install.sh from the live image)"
    else:
        nxt = "attach config.iso to the machine and boot it"
    say(f"  next:    {nxt}; then `isobuild kubeconfig`" if n.role is Role.CONTROLLER else f"  next:    {nxt}")


@app.command()
def image(
    folder: Annotated[Path, typer.Argument(help="A node folder, e.g. inventory/node-worker1.")],
    as_json: JsonOpt = False,
) -> None:
    """Re-package FOLDER/cloud-config/ into FOLDER/config.iso after a hand edit.

    Nothing else in the folder changes. SOURCE_DATE_EPOCH makes the image reproducible.
    Refused: user data cloud-init would ignore (a misspelt #cloud-config header) or misread
    (a key given twice), what `cloud-init schema` rejects where cloud-init is installed, and
    an Ignition config without ignition.version.

    \b
    Example:
      vi inventory/node-worker1/cloud-config/openstack/latest/user_data
      isobuild image inventory/node-worker1
    """
    from isobuilder.ops.image import image as repackage

    target, written = repackage(_context(), folder)
    if as_json:
        emit_json({"iso": str(target), "written": written})
    say(f"Wrote {target}" if written else f"{target} holds these files already; nothing written")
