"""``image``: re-package a node folder's ``cloud-config/`` into its ``config.iso`` after a hand
edit; nothing else changes. Inside an inventory it runs under the lock, in one transaction."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from isobuilder import clusterfile, configdrive, serialize
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.files import File, contents
from isobuilder.handedits import refuse_foreign_keys
from isobuilder.inventory import Inventory, read_file, read_tree, refuse_symlink
from isobuilder.model import Media
from isobuilder.nodefolder import CLOUD_DIR, INSTALL, ISO
from isobuilder.outside import write_outside
from isobuilder.staterecord import STATE, NodeState

# What cloud-init takes user data for, by its start (canonical/cloud-init,
# cloudinit/handlers/__init__.py: INCLUSION_TYPES_MAP, and type_from_starts_with, which lowercases
# and strips leading whitespace first); cloudinit/user_data.py convert_string decompresses gzip
# and takes "mime-version:" in the first 4 KiB for a MIME multipart. Anything else it logs as
# unhandled and ignores: the node boots unconfigured.
CLOUD_INIT_STARTS = (
    "#include", "#include-once", "#!", "#cloud-config", "#part-handler", "#cloud-boothook",
    "#cloud-config-archive", "#cloud-config-jsonp", "## template: jinja",
)  # fmt: skip
# isobuild's own user data is ~10-200 KB (a controller's certificates and keys included); cloud-init
# reads and parses all of it at every boot. Bigger is a mistake (a log pasted in), and checking it
# (YAML, cloud-init schema) would take minutes and gigabytes.
MAX_USER_DATA = 4 << 20


def _gunzip(data: bytes) -> bytes:
    """At most MAX_USER_DATA + 1 bytes of gzipped data (a bomb stops there); b"" if corrupt."""
    try:
        return gzip.GzipFile(fileobj=io.BytesIO(data)).read(MAX_USER_DATA + 1)
    except (OSError, EOFError):
        return b""


# The content types cloud-init's handlers take (cloudinit/handlers/__init__.py, INCLUSION_TYPES_MAP's
# values; a part of another type, text/plain included, is looked at by its start).
_HANDLED_TYPES = frozenset(
    {
        "text/x-include-url", "text/x-include-once-url", "text/x-shellscript", "text/cloud-config",
        "text/part-handler", "text/cloud-boothook", "text/cloud-config-archive", "text/cloud-config-jsonp",
        "text/jinja2", "text/x-shellscript-per-boot", "text/x-shellscript-per-instance",
        "text/x-shellscript-per-once",
    }
)  # fmt: skip


def _mime_has_a_known_part(data: bytes) -> bool:
    """Whether a MIME message has a part cloud-init handles, by its type or by its start
    (cloudinit/user_data.py, UserDataProcessor._process_msg)."""
    import email

    for part in email.message_from_bytes(data).walk():
        if part.is_multipart():
            continue
        if part.get_content_type() in _HANDLED_TYPES:
            return True
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and cloud_init_kind(payload) not in (None, "mime"):
            return True
    return False


def cloud_init_kind(data: bytes) -> str | None:
    """The start cloud-init recognises ``data`` by (``mime`` for a multipart), or None: it would
    ignore the file. Gzipped data is looked at decompressed."""
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data)
    if b"mime-version:" in data[:4096].lower():
        return "mime"
    try:
        text = data.decode().lower().lstrip()
    except UnicodeDecodeError:
        return None
    return max((start for start in CLOUD_INIT_STARTS if text.startswith(start)), key=len, default=None)


_HINT = "fix the edit; the node would boot without its configuration"


def check_user_data(data: bytes, path: Path) -> None:
    """Catch a broken hand edit before it ships: Ignition must stay JSON with its version;
    cloud-config a YAML mapping with no key given twice (YAML keeps the last one, silently),
    that ``cloud-init schema`` accepts where cloud-init is installed; and anything else a kind
    of user data cloud-init knows (a misspelt header makes it ignore the whole file)."""
    data = _unpacked(data, path)
    if data.lstrip().startswith(b"{"):
        _check_ignition(data, path)
    elif _check_kind(data, path) == "#cloud-config":
        _check_cloud_config(data, path)


def _unpacked(data: bytes, path: Path) -> bytes:
    """The user data as cloud-init reads it, gzip undone (user_data.py, convert_string), bounded."""
    too_big = f"over the {MAX_USER_DATA >> 20} MiB a first-boot config may have"
    hint = "move large files out of user_data (the node can fetch them), then run isobuild image"
    if len(data) > MAX_USER_DATA:
        raise IsobuildError(f"{path} is {len(data) >> 20} MiB, {too_big}", hint=hint)
    if data[:2] != b"\x1f\x8b":
        return data
    unzipped = _gunzip(data)
    if len(unzipped) > MAX_USER_DATA:
        raise IsobuildError(f"{path} decompresses to {too_big}", hint="cloud-init decompresses it whole at boot")
    if not unzipped:
        raise IsobuildError(f"{path} is gzip that does not decompress", hint=_HINT)
    return unzipped


def _check_ignition(data: bytes, path: Path) -> None:
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise IsobuildError(f"{path} is not valid JSON{where}", hint=_HINT) from None
    section = parsed.get("ignition") if isinstance(parsed, dict) else None
    if not isinstance(section.get("version") if isinstance(section, dict) else None, str):
        raise IsobuildError(f"{path} is not an Ignition config (no ignition.version)", hint=_HINT)


def _check_kind(data: bytes, path: Path) -> str:
    kind = cloud_init_kind(data)
    if kind == "mime" and not _mime_has_a_known_part(data):
        raise IsobuildError(
            f"{path} is a MIME message with no part cloud-init knows: it would ignore the whole file",
            hint="give each part a Content-Type cloud-init handles (text/cloud-config, text/x-shellscript, ...) "
            "or a known first line",
        )
    if kind is None:
        first = data.split(b"\n", 1)[0][:60].decode(errors="replace")
        raise IsobuildError(
            f"{path} starts with {first!r}, no kind of user data cloud-init knows: it would ignore the whole file",
            hint="the first line of a cloud-config is exactly #cloud-config",
        )
    return kind


def _check_cloud_config(data: bytes, path: Path) -> None:
    try:
        parsed = serialize.load_yaml(data, unique_keys=True)
    except serialize.DuplicateKey as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise IsobuildError(
            f"{path}: {exc.problem} in one mapping (line {line}): cloud-init would keep the last and drop the others",
            hint="merge them into one key",
        ) from None
    except yaml.YAMLError as exc:
        raise IsobuildError(f"{path} is not valid YAML{clusterfile.yaml_error_line(exc)}", hint=_HINT) from None
    except ValueError:
        raise IsobuildError(f"{path} is not UTF-8 text", hint=_HINT) from None
    if not isinstance(parsed, dict):
        raise IsobuildError(f"{path} is not a cloud-config mapping", hint=_HINT)
    _cloud_init_schema(data, path)


def _cloud_init_schema(data: bytes, path: Path) -> None:
    """``cloud-init schema`` on the edit, where cloud-init is installed (the workstation may
    not have it: then only the checks above hold). Its own words in the error."""
    tool = shutil.which("cloud-init")
    if tool is None:
        return
    with tempfile.NamedTemporaryFile(prefix="isobuild-user-data-") as scratch:  # 0600: it holds keys
        scratch.write(data)
        scratch.flush()
        try:
            result = subprocess.run(
                [tool, "schema", "--config-file", scratch.name], capture_output=True, text=True, timeout=120
            )
        except subprocess.TimeoutExpired:
            raise IsobuildError(
                f"{path}: cloud-init schema did not finish in 120 s", hint="run cloud-init schema --config-file on it"
            ) from None
        except OSError:
            return  # a cloud-init that cannot start checks nothing
    if result.returncode == 0:
        return
    said = " ".join((result.stderr + result.stdout).replace(scratch.name, str(path)).split())
    said = said.removeprefix("Error: ").strip()
    raise IsobuildError(
        f"{path}: cloud-init schema (cloud-init on this machine) rejects it: {said[:400]}",
        hint=f"fix the edit; cloud-init schema --config-file {path} shows the same",
    )


def refuse_install_edit(folder: Path) -> None:
    """The folder's install.sh is a copy: the drive carries the one a node runs. Packaging the drive
    after an edit of the copy would ship without it, silently."""
    refuse_symlink(folder / INSTALL, "a node folder's install.sh")
    recorded = NodeState.parse(read_file(folder / STATE)).generated.get(INSTALL)
    script = read_file(folder / INSTALL)
    if recorded is None or script is None or serialize.sha256(script) == recorded:
        return
    raise IsobuildError(
        f"{folder / INSTALL} was edited by hand, but config.iso never carries this copy",
        hint=f"make the edit in the drive's copy under {folder / CLOUD_DIR}/ (user_data's write_files, or "
        "install.sh on an Ignition drive), restore install.sh, then run isobuild image",
    )


def image(ctx: Context, folder: Path) -> tuple[Path, bool]:
    """Re-package ``folder/cloud-config/`` into ``folder/config.iso``; nothing else changes.
    The ISO's path, and whether it was written (False: it held these files already)."""
    refuse_symlink(folder, "a node folder")
    parent = Inventory(folder.resolve().parent)
    # Inside an inventory, wait for any other isobuild command on it; a lone folder needs no lock.
    inside = parent.has_cluster()
    with parent.locked() if inside else contextlib.nullcontext():
        source = folder / CLOUD_DIR
        for path in (source, folder / ISO, folder / "ssl"):
            refuse_symlink(path, "a node folder, its cloud-config/, ssl/ and config.iso")
        if not source.is_dir():
            raise IsobuildError(
                f"{source} not found",
                hint="give a node folder made by `isobuild node`, e.g. isobuild image inventory/node-worker1",
            )
        for link in (p for p in source.rglob("*") if p.is_symlink()):
            raise IsobuildError(
                f"{link} is a symbolic link", hint="a drive holds files only: copy the file there instead"
            )
        files = contents(read_tree(source))
        media = Media.of_drive(files)
        if media is None:
            raise IsobuildError(
                f"{source} holds no user data",
                hint="a config-2 drive needs openstack/latest/user_data, a NoCloud drive user-data",
            )
        check_user_data(files[media.user_data_path], source / media.user_data_path)
        refuse_install_edit(folder)
        ssl = read_tree(folder / "ssl")
        refuse_foreign_keys(folder.name, CLOUD_DIR, files, {r: f.content for r, f in ssl.items() if r.endswith(".key")})
        target = folder / ISO
        if configdrive.drive_files(read_file(target)) == files:
            return target, False  # the same files: keep the image (and its mtime)
        iso = File(configdrive.build_iso(files, media.label, ctx.iso_epoch), 0o600)
        if inside:
            with parent.transaction() as tx:
                tx.put_file(f"{folder.resolve().name}/{ISO}", iso)
                tx.commit()
        else:
            write_outside(target, iso.content, iso.mode)
    return target, True
