"""The ``isobuild`` command line: a thin layer over :mod:`isobuilder.ops`.

Human output goes to stderr, data (``--json``) to stdout. :func:`main` is the one place
where errors become ``Error: ...`` lines and exit codes.
"""

# No `from __future__ import annotations` here: typer reads every command's signature at start-up,
# and string annotations would cost an eval each (~30 ms of every command's start).

import dataclasses
import functools
import importlib
import inspect
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.exceptions import TyperException

from isobuilder import __version__, schema
from isobuilder.context import PASSPHRASE_ENV
from isobuilder.errors import IsobuildError
from isobuilder.model import Format, Role

app = typer.Typer(
    name="isobuild",
    help="Per-node TLS, first-boot config and config-drive ISOs for Kubernetes clusters.\n\n"
    "\b\nExample:\n  isobuild node controller 10.10.10.1\n  isobuild node worker1 10.10.10.2 --master 10.10.10.1\n"
    "  isobuild kubeconfig",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# The commands defined in the other CLI modules, in the order --help lists them (after this
# module's init, node and image). Each module is imported when one of its commands is looked up:
# to run it, or to list it in help or completion, so that `isobuild node` loads neither.
ELSEWHERE = {
    **dict.fromkeys(("build", "remove", "push", "upgrade", "list", "verify", "pxe"), "isobuilder.cli_fleet"),
    **dict.fromkeys(("usb", "kubeconfig", "completion"), "isobuilder.cli_tools"),
    "certs": "isobuilder.cli_fleet",
}


def commands_app(**kwargs: Any) -> typer.Typer:
    """The Typer a CLI module registers its commands on (:data:`ELSEWHERE`), set up as the root's."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None, **kwargs)


class _Commands(MutableMapping[str, Any]):
    """The root group's subcommands (typer's ``commands`` mapping): this module's, built by typer,
    and those of :data:`ELSEWHERE`, listed by name and built the first time one is looked up."""

    def __init__(self, own: Mapping[str, Any]) -> None:
        self._built = dict(own)
        self._order = [*own, *(name for name in ELSEWHERE if name not in own)]

    def __getitem__(self, name: str) -> Any:
        if name not in self._built and name in ELSEWHERE:
            module = importlib.import_module(ELSEWHERE[name])
            self._built.update(typer.main.get_group(module.app).commands)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command
        if name not in self._order:
            self._order.append(name)

    def __delitem__(self, name: str) -> None:
        del self._built[name]
        self._order.remove(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


def root_command() -> Any:
    """The ``isobuild`` click group, every command in it (those of :data:`ELSEWHERE` built lazily)."""
    command = typer.main.get_command(app)
    command.commands = _Commands(command.commands)  # type: ignore[attr-defined]
    return command


@dataclasses.dataclass
class Settings:
    """The global options of this command: where the inventory is, how much to say."""

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
        str, typer.Option("--inventory", envvar="ISOBUILD_INVENTORY", help="Inventory folder.", metavar="<path>")
    ] = "inventory",
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    settings.quiet, settings.debug = quiet, debug
    if not inventory:  # Path("") would be the current folder
        raise IsobuildError("--inventory is empty", hint="give the inventory folder, e.g. --inventory ./inventory")
    settings.inventory = Path(inventory)


def _context() -> Any:
    from isobuilder.context import Context

    return Context.create(settings.inventory, prompt=_ask_passphrase)


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
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
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
        emit_json({"name": created.name, "cluster_id": created.cluster_id, "inventory": str(settings.inventory)})
    say(f"Created cluster {created.name} in {settings.inventory} (Kubernetes {created.kubernetes_version}, "
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
        say(f"Created a new cluster in {settings.inventory} (CA in {settings.inventory / 'ssl'}: back it up).")
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


COMPLETE_VAR = "_ISOBUILD_COMPLETE"  # click's protocol: the script calls isobuild with it set


class Interrupted(BaseException):
    """Ctrl-C, raised past typer (which would print 'Aborted!') to the one place errors are printed."""


def _interrupted(signum: int, frame: object) -> None:
    raise Interrupted


GLOBAL_FLAGS = ("-q", "--quiet", "--debug", "--version")  # the root's switches; --inventory takes a value


def hoist_global_options(command: Any, argv: list[str]) -> list[str]:
    """``isobuild node w1 10.0.0.2 -q`` as ``isobuild -q node w1 10.0.0.2``: the root's options
    (-q, --debug, --inventory DIR) moved before the command when given after it, as kubectl
    takes its global flags anywhere. A token is moved only where it is an option: not the value
    of the command's own option (``--label -q``), not after ``--``, and not when the command has
    an option of that name itself."""
    out: list[str] = []
    hoisted: list[str] = []
    current = command
    at = 0  # where the command's name is: the root's options before it, the hoisted last (they win)
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            out += [token, *tokens]
            break
        sub = current.commands.get(token) if hasattr(current, "commands") else None
        if sub is not None:
            if current is command:
                at = len(out)
            current = sub
            out.append(token)
            continue
        own = {name: p for p in current.params for name in (*p.opts, *p.secondary_opts)}
        if current is not command and token not in own:
            if token in GLOBAL_FLAGS:
                hoisted.append(token)
                continue
            if token == "--inventory" or token.startswith("--inventory="):
                hoisted.append(token)
                if token == "--inventory":
                    hoisted.append(next(tokens, ""))
                continue
        out.append(token)
        option = own.get(token)
        if option is not None and not getattr(option, "is_flag", False) and not getattr(option, "count", False):
            out.append(next(tokens, ""))  # its value, whatever it looks like
    return [*out[:at], *hoisted, *out[at:]] if hoisted else argv


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code. Tests call this with an argv list."""
    global settings
    command = root_command()
    settings = Settings()  # fresh for each in-process call (tests call main() many times)
    handler = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _interrupted) if handler else None
    # A umask may restrict group and others, never the owner: under 0277 a key made 0600 would be
    # 0400 and the staging folders unwritable. Every mode isobuild sets is explicit anyway.
    umask = os.umask(0o077)
    os.umask(umask & 0o077)
    args = sys.argv[1:] if argv is None else argv
    if not args:
        args = ["--help"]  # `isobuild` alone: the overview
    try:
        return _run(command, hoist_global_options(command, args))
    finally:
        os.umask(umask)
        if handler:
            signal.signal(signal.SIGINT, previous)


def _error(message: str, hint: str, as_json: bool, details: tuple[str, ...] = ()) -> None:
    """The one way an error is told: ``Error:`` lines and a ``Hint:`` on stderr; with --json,
    the same as a JSON object on stdout too (scripts read one stream)."""
    for line in (message, *details):
        print(f"Error: {line}", file=sys.stderr)
    if hint:
        print(f"Hint: {hint}", file=sys.stderr)
    if as_json:
        emit_json({"error": message, "hint": hint, **({"details": list(details)} if details else {})})


def _usage_error(exc: TyperException, as_json: bool) -> int:
    if type(exc).__name__ == "NoArgsIsHelpError":  # `isobuild certs` alone: its help
        print(exc.format_message(), file=sys.stderr)
        return 0
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "isobuild"
    _error(exc.format_message().splitlines()[0][:300], f"see {where} --help", as_json)
    return 1


def _wants_json(argv: list[str]) -> bool:
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def _run(command: Any, argv: list[str]) -> int:
    as_json = _wants_json(argv)
    try:
        # Not standalone: typer's usage errors (an unknown option, a bad choice) come here and are
        # printed like every other error, one line, a hint and exit 1, not a usage banner and 2.
        code = command.main(args=argv, prog_name="isobuild", standalone_mode=False, complete_var=COMPLETE_VAR)
        return code if isinstance(code, int) else 0
    except TyperException as exc:
        return _usage_error(exc, as_json)
    except typer.Abort:
        _error("aborted", "", as_json)
        return 1
    except IsobuildError as exc:
        if settings.debug:
            raise
        _error(exc.message, exc.hint, as_json, tuple(exc.details))
        return 1
    except Interrupted:
        if settings.debug:
            raise
        hint = "the inventory is as it was, or as the command made it (never a mix); isobuild list tells"
        _error("interrupted", hint, as_json)
        return 130
    except Exception as exc:  # a bug: one line, not a traceback, unless --debug
        if settings.debug:
            raise
        hint = "re-run with --debug for a traceback and report it"
        _error(f"internal error: {type(exc).__name__}: {exc}", hint, as_json)
        return 1
    return 0
