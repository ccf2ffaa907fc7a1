"""The files a first-boot config writes, read back as cloud-init and Ignition would: so that a
hand edit isobuild keeps on the drive reaches a running node too (apply.sh). Pure, bounded."""

from __future__ import annotations

import json
from typing import Any

import yaml

from isobuilder import keyscan, serialize
from isobuilder.files import File

MAX_BYTES = 16 << 20


def files_written(user_data: bytes) -> dict[str, File] | None:
    """Path -> file of every whole file a cloud-config (``write_files``) or an Ignition config
    (``storage.files``) writes; appended ones are left out. None: not a config isobuild can read
    (a script, broken YAML), so the caller cannot tell what it writes."""
    if len(user_data) > MAX_BYTES:
        return None
    if user_data.lstrip().startswith(b"{"):
        return _ignition(user_data)
    if not user_data.startswith(b"#cloud-config"):
        return None
    try:
        config = serialize.load_yaml(user_data)
    except (yaml.YAMLError, ValueError):
        return None
    entries = config.get("write_files") if isinstance(config, dict) else None
    if not isinstance(entries, list):
        return {} if isinstance(config, dict) else None
    files = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("append") or not isinstance(entry.get("path"), str):
            continue
        content = keyscan.decoded(entry)
        if content is not None:
            files[entry["path"]] = File(content, _mode(entry.get("permissions"), 0o644))
    return files


def _ignition(user_data: bytes) -> dict[str, File] | None:
    try:
        config = json.loads(user_data)
    except ValueError:
        return None
    storage = config.get("storage") if isinstance(config, dict) else None
    entries = storage.get("files") if isinstance(storage, dict) else None
    files = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("append") or not isinstance(entry.get("path"), str):
            continue
        contents = entry.get("contents")
        content = keyscan.decoded(contents) if isinstance(contents, dict) else None
        if content is not None:
            mode = entry.get("mode")
            files[entry["path"]] = File(content, mode if isinstance(mode, int) and 0 <= mode <= 0o7777 else 0o644)
    return files


def _mode(value: Any, default: int) -> int:
    """cloud-init's ``permissions``: an octal string ('0600') or a YAML number."""
    try:
        mode = int(value, 8) if isinstance(value, str) else value if isinstance(value, int) else default
    except ValueError:
        return default
    return mode if 0 <= mode <= 0o7777 else default
