"""cluster.yaml's patches: a cloud-config fragment merged into a node's user_data, an Ignition
fragment merged into its Ignition config. Pure.

**cloud-config**: merged the way cloud-init merges a second ``#cloud-config`` part into the
first (cloudinit/mergers/m_dict.py, m_list.py, m_str.py and handlers/cloud_config.py,
``_extract_mergers``): the patch's own ``merge_how`` (or ``merge_type``), as a string
(``dict(recurse_array,no_replace)+list(append)``) or a list, else cloud-init's default
``dict(replace)+list()+str()``, under which a key the patch gives replaces isobuild's. The
mergers dispatch on the type of the value merged into; a type no merger is named for keeps its
value; a merge cloud-init's mergers fail on (it would skip the whole part) is refused. The tests
run cloud-init's own CloudConfigPartHandler on the same inputs and compare.

**Ignition**: not merged here. The fragment rides in the config as ``ignition.config.merge``,
a data URL, and Ignition merges it itself at boot with its own rules (child over parent, lists
keyed by path or name); the tests run Ignition's fetch and files stages.

Either way a patch may add, never take away or replace: what isobuild writes (a file, a unit,
a key's value) must come through the merge as it was, else the patch is refused, by name.
"""

from __future__ import annotations

import copy
import json
import math
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from isobuilder.errors import IsobuildError

_NAME = re.compile(r"(^[a-zA-Z_][A-Za-z0-9_]*)\((.*?)\)$")  # cloudinit/mergers/__init__.py NAME_MTCH
DEFAULT_MERGE = "dict(replace)+list()+str()"  # cloudinit/handlers/cloud_config.py DEF_MERGERS
APPEND_HINT = (
    "to add to isobuild's lists, start the patch with merge_how: 'dict(recurse_array,no_replace)+list(append)'"
)
Mergers = list[tuple[str, list[str] | str]]


MAX_BYTES = 1 << 20  # as JSON: a first-boot config is no place for a big file
MAX_VALUES = 100_000


def check_patch(value: dict[Any, Any]) -> dict[str, Any]:
    """A patch as cluster.yaml may hold it: JSON's types only (what cloud-init and Ignition read
    back; an unquoted date is YAML's timestamp), string keys, nested at most 32 deep, 1 MiB."""
    if _check_data(value, 0, MAX_VALUES) < 0:
        raise IsobuildError(
            f"holds over {MAX_VALUES} values (YAML aliases count each time)", hint="a patch is plain data"
        )
    size = len(json.dumps(value))
    if size > MAX_BYTES:
        raise IsobuildError(
            f"is {size >> 10} KiB as JSON, over {MAX_BYTES >> 10} KiB",
            hint="serve big files over HTTP and fetch them at boot (cloud-init's runcmd, Ignition's remote sources)",
        )
    return value


def check_cloud_config_patch(value: dict[Any, Any]) -> dict[str, Any]:
    """:func:`check_patch`, and its merge_how as cloud-init reads it."""
    merge_how(check_patch(value))
    return value


def _check_data(value: Any, depth: int, budget: int) -> int:
    """What is left of ``budget`` (values still allowed) after ``value``; below 0: too many (an
    alias bomb: aliases nested nine deep stand for a billion values, and JSON would write them)."""
    if depth > 32:
        raise IsobuildError("nests too deep (or refers to itself)", hint="a patch is plain data")
    budget -= 1
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise IsobuildError(f"key {key!r} is not a string", hint="quote it")
            budget = _check_data(item, depth + 1, budget) if budget >= 0 else budget
    elif isinstance(value, list):
        for item in value:
            budget = _check_data(item, depth + 1, budget) if budget >= 0 else budget
    elif isinstance(value, float) and not math.isfinite(value):
        raise IsobuildError(f"{value} is no JSON number", hint="quote it, or give a number")
    elif not isinstance(value, str | int | float | bool | type(None)):
        raise IsobuildError(f"{str(value)!r} is a {type(value).__name__}, not text", hint="quote it")
    return budget


def merge_how(patch: Mapping[str, Any], where: str = "merge_how") -> Mergers:
    """The patch's mergers, read as cloud-init reads them (``dict_extract_mergers``; none given,
    or an empty list: its default, as ``_extract_mergers`` falls back)."""
    raw = patch.get("merge_how")
    if raw is None:
        raw = patch.get("merge_type")
    mergers: Mergers = []
    if isinstance(raw, str):
        mergers = _from_string(raw, where)
    elif isinstance(raw, list):
        for entry in raw:
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("name"), str)
                and isinstance(entry.get("settings"), list | str)
            ):  # settings as a string: cloud-init's `in` then matches within it, and so does ours
                settings = entry["settings"]
                mergers.append((entry["name"].replace("-", "_").strip(), settings))
            elif isinstance(entry, list) and entry and all(isinstance(s, str) for s in entry):
                mergers.append((entry[0], list(entry[1:])))
            else:
                raise IsobuildError(f"{where}: {entry!r} is no merger", hint="e.g. {name: list, settings: [append]}")
    elif raw is not None:
        raise IsobuildError(f"{where} must be a string or a list", hint=APPEND_HINT)
    return _known([m for m in mergers if m[0]] or _from_string(DEFAULT_MERGE, where), where)


def _body(patch: Mapping[str, Any]) -> dict[str, Any]:
    """The patch less what cloud-init pops from it: merge_how, and merge_type when that is read."""
    popped = {"merge_how"} if patch.get("merge_how") is not None else {"merge_how", "merge_type"}
    return {k: copy.deepcopy(v) for k, v in patch.items() if k not in popped}


def _from_string(text: str, where: str) -> Mergers:
    mergers: Mergers = []
    for part in text.split("+"):
        part = part.lower().strip().replace("-", "_")
        if not part:
            continue
        match = _NAME.match(part)
        if not match:
            raise IsobuildError(f"{where}: {part!r} is not NAME(SETTINGS)", hint=APPEND_HINT)
        name, settings = match.groups()
        mergers.append((name, [s.strip().lower() for s in settings.split(",") if s.strip()]))
    return mergers


def _known(mergers: Mergers, where: str) -> Mergers:
    for name, _ in mergers:
        if name.removeprefix("m_") not in ("dict", "list", "str"):
            raise IsobuildError(f"{where}: cloud-init has no merger {name!r}", hint="dict, list or str")
    return [(name.removeprefix("m_"), settings) for name, settings in mergers]


def merge(value: Any, patch: Any, mergers: Mergers) -> Any:
    """``patch`` merged into ``value`` with cloud-init's mergers (its ``LookupMerger``: the first
    merger for the type of ``value`` acts; none, and ``value`` stays)."""
    for name, settings in mergers:
        kind, merger = _MERGERS[name]
        if isinstance(value, kind):
            return merger(value, patch, settings, lambda a, b: merge(a, b, mergers))
    return value


def _dict(value: dict[Any, Any], patch: Any, opts: list[str] | str, again: Callable[[Any, Any], Any]) -> Any:
    if not isinstance(patch, dict):
        return value
    method = next((m for m in ("replace", "no_replace") if m in opts), "no_replace")
    recurse_array = "recurse_array" in opts or "recurse_list" in opts
    merged = dict(value)
    for key, new in patch.items():
        if key not in merged:
            merged[key] = new
        elif new is None and "allow_delete" in opts:
            merged.pop(key)
        elif method == "replace":
            merged[key] = new
        elif (
            (isinstance(new, list | tuple) and recurse_array)
            or (isinstance(new, str) and "recurse_str" in opts)
            or isinstance(new, dict)  # recurse_dict: always on, for backwards compatibility
        ):
            merged[key] = again(merged[key], new)
    return merged


def _list(value: Sequence[Any], patch: Any, opts: list[str] | str, again: Callable[[Any, Any], Any]) -> Any:
    method = next((m for m in ("append", "prepend", "replace", "no_replace") if m in opts), "replace")
    if method == "replace" and not isinstance(patch, list | tuple):
        return patch
    if method == "prepend":
        merged = [*patch, *value]
    elif method == "append":
        merged = [*value, *patch]
    else:
        merged = list(value)
        for i in range(min(len(merged), len(patch))):  # patch[i] as cloud-init indexes it (a dict: KeyError)
            new = patch[i]
            if method == "no_replace":
                continue
            if (
                (isinstance(new, list | tuple) and ("recurse_array" in opts or "recurse_list" in opts))
                or (isinstance(new, str) and "recurse_str" in opts)
                or (isinstance(new, dict) and "recurse_dict" in opts)
            ):
                merged[i] = again(merged[i], new)
            else:
                merged[i] = new
    return tuple(merged) if isinstance(value, tuple) else merged


def _str(value: str, patch: Any, opts: list[str] | str, again: Callable[[Any, Any], Any]) -> Any:
    return value + patch if "append" in opts else patch


_Merger = Callable[[Any, Any, list[str] | str, Callable[[Any, Any], Any]], Any]
_MERGERS: dict[str, tuple[type | tuple[type, ...], _Merger]] = {
    "dict": (dict, _dict),
    "list": ((list, tuple), _list),
    "str": (str, _str),
}


# -- cloud-config ------------------------------------------------------------------------------
# Keys isobuild leaves unset but relies on: the name the node registers with, the login.
_RELIED_ON = {
    "fqdn": "the node's name", "prefer_fqdn_over_hostname": "the node's name",
    "preserve_hostname": "the node's name", "disable_root_opts": "the SSH login",
}  # fmt: skip


def merge_cloud_config(ours: dict[str, Any], patches: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """isobuild's cloud-config with each ``(where, patch)`` merged in, in order; refused when a
    patch would replace or take away what isobuild wrote."""
    merged: dict[str, Any] = copy.deepcopy(ours)
    for where, patch in patches:
        mergers = merge_how(patch, f"{where}: merge_how")
        body = _body(patch)
        _refuse_what_isobuild_relies_on(ours, body, where)
        try:
            merged = merge(merged, body, mergers)
        except (TypeError, KeyError):  # cloud-init fails alike (and then skips the whole patch)
            raise IsobuildError(f"{where} does not merge: a value of the wrong type", hint=APPEND_HINT) from None
        lost = _first_loss(ours, merged, ())
        if lost is not None:
            raise IsobuildError(
                f"{where} would change {'.'.join(lost)}, which isobuild writes",
                hint=APPEND_HINT if isinstance(_at(ours, lost), list) else "patch only what isobuild leaves unset",
            )
        _check_write_files(merged.get("write_files", [])[len(ours.get("write_files", [])) :], where)
    return merged


def _refuse_what_isobuild_relies_on(ours: Mapping[str, Any], patch: Mapping[str, Any], where: str) -> None:
    for key, what in _RELIED_ON.items():
        if key in patch and key not in ours:
            raise IsobuildError(f"{where} sets {key}, which would change {what}", hint="leave it to isobuild")
    users = patch.get("users")
    if users is not None and not (isinstance(users, list) and "default" in users):
        raise IsobuildError(
            f"{where} sets users without the default user, who gets the SSH keys",
            hint="list it first: users: [default, {name: alice, ...}]",
        )
    owned = [_simplified(f.get("path", "")) for f in ours.get("write_files", ()) if isinstance(f, dict)]
    entries = patch.get("write_files", ())
    for entry in entries if isinstance(entries, list) else ():
        path = entry.get("path") if isinstance(entry, dict) else None
        clash = next((p for p in owned if _overlaps(_simplified(path), p)), None) if isinstance(path, str) else None
        if clash is not None:
            raise IsobuildError(
                f"{where} writes {path}, where isobuild writes {clash}",
                hint="change it through cluster.yaml's settings, or pick another path",
            )


def _simplified(path: str) -> str:
    """A path as cloud-init writes it (cc_write_files: ``os.path.abspath``; its cwd is /)."""
    return posixpath.normpath(posixpath.join("/", path))


def _overlaps(path: str, owned: str) -> bool:
    """The same file, a folder it is in (a file there replaces the folder), or one inside it."""
    return path == owned or owned.startswith(path.rstrip("/") + "/") or path.startswith(owned + "/")


def _check_write_files(added: list[Any], where: str) -> None:
    """What cloud-init's write_files loop needs of every entry a patch adds after isobuild's (the
    loss check made sure those come first, in a list): one it trips over stops the whole module,
    and no file of isobuild's would be written."""
    for entry in added:
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str) and entry["path"].strip("/")):
            raise IsobuildError(
                f"{where}: write_files entry {entry!r} has no path", hint="- {path: /etc/motd, content: ...}"
            )
        for key in ("content", "encoding", "owner", "permissions"):
            if key in entry and not isinstance(entry[key], str):
                raise IsobuildError(f"{where}: write_files {entry['path']}: {key} must be a string", hint="quote it")


def _first_loss(ours: Any, merged: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where ``merged`` no longer holds ``ours``: a mapping keeps each of our keys (and what it
    held), a list keeps our items first, in their order (others come after: a command or a
    file before isobuild's could stop it), any other value stays equal."""
    if isinstance(ours, dict):
        if not isinstance(merged, dict):
            return path
        for key, value in ours.items():
            if key not in merged:
                return (*path, str(key))
            lost = _first_loss(value, merged[key], (*path, str(key)))
            if lost is not None:
                return lost
        return None
    if isinstance(ours, list):
        return None if isinstance(merged, list | tuple) and list(merged[: len(ours)]) == ours else path
    return None if ours == merged and type(ours) is type(merged) else path


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


# -- Ignition ----------------------------------------------------------------------------------
_UNIT = re.compile(r"[^/\s]+\.(service|socket|device|mount|automount|swap|target|path|timer|slice|scope)")


def ignition_merges(config: dict[str, Any], patches: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """``config`` with each patch in ``ignition.config.merge`` (Ignition merges them in order,
    child over parent); refused when a patch names a file, link or directory where isobuild
    writes one (or a folder holding one), or a unit isobuild writes (a drop-in of a name of its
    own is welcome). What Ignition's own validation refuses of a path, a unit name or a type is
    refused here, so that a node does not stop at boot on it."""
    from isobuilder import ignition

    owned_paths = [f["path"] for f in config.get("storage", {}).get("files", [])]
    units = config.get("systemd", {}).get("units", [])
    owned_units = {u["name"]: {d["name"] for d in u.get("dropins", [])} for u in units}
    sources = []
    for where, patch in patches:
        child = copy.deepcopy(dict(patch))
        head = _mapping(child, "ignition", where)
        version = head.setdefault("version", ignition.SPEC_VERSION)
        if not (isinstance(version, str) and re.fullmatch(r"3\.[0-3]\.0", version)):
            raise IsobuildError(f"{where}: ignition.version {version!r}", hint="3.0.0 to 3.3.0, or leave it out")
        if head.get("config"):
            raise IsobuildError(f"{where}: ignition.config in a patch", hint="merge fragments here, not from a URL")
        _check_storage(_mapping(child, "storage", where), owned_paths, where)
        _check_units(_mapping(child, "systemd", where), owned_units, where)
        sources.append(ignition.data_url(ignition.dumps(child)))
    if sources:
        config = {**config, "ignition": {**config["ignition"], "config": {"merge": sources}}}
    return config


def _check_storage(storage: dict[str, Any], owned_paths: list[str], where: str) -> None:
    for kind in ("files", "links", "directories"):
        for entry in _entries(storage, kind, f"storage.{kind}", where):
            path = entry.get("path")
            if not (isinstance(path, str) and path.startswith("/") and posixpath.normpath(path) == path):
                raise IsobuildError(
                    f"{where}: storage.{kind} path {path!r} is not absolute and simplified",
                    hint="as Ignition wants it: /etc/motd, not /etc//motd or etc/motd",
                )
            clash = next((p for p in owned_paths if _overlaps(path, p)), None)
            if clash is not None:
                raise IsobuildError(
                    f"{where}: storage.{kind} {path}, where isobuild writes {clash}",
                    hint="change it through cluster.yaml's settings, or pick another path",
                )


def _check_units(systemd: dict[str, Any], owned_units: dict[str, set[str]], where: str) -> None:
    for unit in _entries(systemd, "units", "systemd.units", where):
        name = unit.get("name")
        if not (isinstance(name, str) and _UNIT.fullmatch(name)):
            raise IsobuildError(f"{where}: systemd unit name {name!r}", hint="a unit file name: NAME.service, ...")
        dropins = _entries(unit, "dropins", f"systemd unit {name}: dropins", where)
        if not all(isinstance(d.get("name"), str) for d in dropins):
            raise IsobuildError(f"{where}: systemd unit {name}: a drop-in without a name", hint="name: 50-mine.conf")
        replaced = set(unit) - {"name", "dropins"} or {d["name"] for d in dropins} & owned_units.get(name, set())
        if name in owned_units and replaced:
            raise IsobuildError(
                f"{where}: systemd unit {name}, which isobuild writes",
                hint=f"add a drop-in of your own instead: {{name: {name}, dropins: [{{name: 50-mine.conf, ...}}]}}",
            )


def _mapping(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.setdefault(key, {}) if key == "ignition" else parent.get(key, {})
    if not isinstance(value, dict):
        raise IsobuildError(f"{where}: {key} must be a mapping", hint="Ignition's config spec 3.3.0")
    return value


def _entries(parent: Mapping[str, Any], key: str, what: str, where: str) -> list[dict[str, Any]]:
    value = parent.get(key, [])
    if not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
        raise IsobuildError(f"{where}: {what} must be a list of mappings", hint="Ignition's config spec 3.3.0")
    return value
