"""The ``isobuild`` command line: a thin layer over :mod:`isobuilder.ops`.

This module is the root: the global options, the table of commands (each defined in a CLI
module loaded when it is needed: ``cli_nodes``, ``cli_fleet``, ``cli_tools``) and the one place,
:func:`main`, where errors become ``Error: ...`` lines and exit codes. Human output goes to
stderr, data (``--json``) to stdout.
"""

# No `from __future__ import annotations` here: typer reads every command's signature at start-up,
# and string annotations would cost an eval each (~30 ms of every command's start).

import dataclasses
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.exceptions import TyperException

from isobuilder import __version__
from isobuilder.context import PASSPHRASE_ENV
from isobuilder.errors import INTERRUPTED_HINT, IsobuildError

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

# Every command, by the CLI module that defines it, in the order --help lists them. A module is
# imported when one of its commands is looked up: to run it, or to list it in help or completion,
# so that `isobuild node` loads only cli_nodes.
COMMAND_MODULES = {
    **dict.fromkeys(("init", "node", "image"), "isobuilder.cli_nodes"),
    **dict.fromkeys(("build", "remove", "push", "upgrade", "list", "verify", "pxe"), "isobuilder.cli_fleet"),
    **dict.fromkeys(("usb", "kubeconfig", "completion"), "isobuilder.cli_tools"),
    "certs": "isobuilder.cli_fleet",
}


def commands_app(**kwargs: Any) -> typer.Typer:
    """The Typer a CLI module registers its commands on (:data:`COMMAND_MODULES`), set up as the root's."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None, **kwargs)


class _Commands(Mapping[str, Any]):
    """The root group's subcommands (typer's ``commands`` mapping): those of
    :data:`COMMAND_MODULES`, listed by name, each module's built the first time one is looked up."""

    def __init__(self, own: Mapping[str, Any]) -> None:
        self._built = dict(own)
        self._order = (*own, *(name for name in COMMAND_MODULES if name not in own))

    def __getitem__(self, name: str) -> Any:
        if name not in self._built and name in COMMAND_MODULES:
            module = importlib.import_module(COMMAND_MODULES[name])
            self._built.update(typer.main.get_group(module.app).commands)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


def root_command() -> Any:
    """The ``isobuild`` click group, every command in it (those of :data:`COMMAND_MODULES` built lazily)."""
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


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


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
        return _run(args)
    finally:
        os.umask(umask)
        if handler:
            signal.signal(signal.SIGINT, previous)


def run() -> None:
    """The console script's entry before isobuilder.__main__ (a script that an editable install
    made then still works after a pull)."""
    from isobuilder.__main__ import run as program

    program()


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


def _run(argv: list[str]) -> int:
    as_json = _wants_json(argv)
    try:
        command = root_command()
        argv = hoist_global_options(command, argv)  # loads the command's module: Ctrl-C is caught here too
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
        _error("interrupted", INTERRUPTED_HINT, as_json)
        return 130
    except Exception as exc:  # a bug: one line, not a traceback, unless --debug
        if settings.debug:
            raise
        hint = "re-run with --debug for a traceback and report it"
        _error(f"internal error: {type(exc).__name__}: {exc}", hint, as_json)
        return 1
    return 0
