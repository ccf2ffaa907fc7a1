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


def check_user_data(data: bytes, path: Path) -> None:
    """Catch a broken hand edit before it ships: Ignition must stay JSON with its version;
    cloud-config a YAML mapping with no key given twice (YAML keeps the last one, silently),
    that ``cloud-init schema`` accepts where cloud-init is installed; and anything else a kind
    of user data cloud-init knows (a misspelt header makes it ignore the whole file)."""
    hint = "fix the edit; the node would boot without its configuration"
    if len(data) > MAX_USER_DATA:
        raise IsobuildError(
            f"{path} is {len(data) >> 20} MiB, over the {MAX_USER_DATA >> 20} MiB a first-boot config may have",
            hint="move large files out of user_data (the node can fetch them), then run isobuild image",
        )
    if data[:2] == b"\x1f\x8b" and len(_gunzip(data)) > MAX_USER_DATA:
        raise IsobuildError(
            f"{path} decompresses to over {MAX_USER_DATA >> 20} MiB", hint="cloud-init decompresses it whole at boot"
        )
    if data.lstrip().startswith(b"{"):
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise IsobuildError(f"{path} is not valid JSON{where}", hint=hint) from None
        section = parsed.get("ignition") if isinstance(parsed, dict) else None
        version = section.get("version") if isinstance(section, dict) else None
        if not isinstance(version, str):
            raise IsobuildError(f"{path} is not an Ignition config (no ignition.version)", hint=hint)
        return
    kind = cloud_init_kind(data)
    if kind is None:
        first = data.split(b"\n", 1)[0][:60].decode(errors="replace")
        raise IsobuildError(
            f"{path} starts with {first!r}, no kind of user data cloud-init knows: it would ignore the whole file",
            hint="the first line of a cloud-config is exactly #cloud-config",
        )
    if kind != "#cloud-config" or data[:2] == b"\x1f\x8b":
        return  # a script, an include, a MIME multipart, gzip: cloud-init decides
    try:
        parsed = serialize.load_yaml(data, unique_keys=True)
    except serialize.DuplicateKey as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise IsobuildError(
            f"{path}: {exc.problem} in one mapping (line {line}): cloud-init would keep the last and drop the others",
            hint="merge them into one key",
        ) from None
    except yaml.YAMLError as exc:
        raise IsobuildError(f"{path} is not valid YAML{clusterfile.yaml_error_line(exc)}", hint=hint) from None
    except ValueError:
        raise IsobuildError(f"{path} is not UTF-8 text", hint=hint) from None
    if not isinstance(parsed, dict):
        raise IsobuildError(f"{path} is not a cloud-config mapping", hint=hint)
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
        except (OSError, subprocess.TimeoutExpired):
            return  # a cloud-init that cannot run checks nothing
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
