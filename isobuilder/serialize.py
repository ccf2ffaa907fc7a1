"""Stable serialisation, written once: JSON with sorted keys, YAML through libyaml. Pure.

Same value, same bytes: every JSON document isobuild writes (meta_data.json, Ignition, the
node state record, matchbox files) goes through :func:`json_bytes`; every YAML document
through one of the two dumpers below.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

# libyaml's loader and emitter (PyYAML's wheels ship them) are ~10x faster than pure Python.
Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_WIDE = 1 << 30  # never fold a long line (an SSH key, a base64 blob)


# Strings Go's YAML 1.1 readers (gopkg.in/yaml.v2, under sigs.k8s.io/yaml: kubectl, kubeadm)
# take for booleans but PyYAML's resolver does not: written plain, kubectl would read `namespace: n`
# as false and refuse the whole kubeconfig. Quoted, they stay strings for both.
_GO_BOOLEANS = frozenset({"y", "Y", "n", "N"})


class GoSafeDumper(Dumper):  # type: ignore[valid-type,misc]
    """PyYAML's safe dumper, with the strings Go reads otherwise quoted."""


class BlockDumper(GoSafeDumper):
    """Block style with literal ``|`` for multi-line strings (PEMs, scripts): readable user_data."""


def _go_safe_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="'" if data in _GO_BOOLEANS else None)


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return _go_safe_str(dumper, data)


GoSafeDumper.add_representer(str, _go_safe_str)
BlockDumper.add_representer(str, _str_representer)


def json_bytes(value: Any) -> bytes:
    """Readable, stable JSON: indented, sorted keys, one trailing newline."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def digest_of(value: Any) -> str:
    """SHA-256 of a JSON-able value in a canonical form (compact, sorted keys)."""
    return sha256(json.dumps(value, sort_keys=True).encode())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def yaml_text(value: Any) -> str:
    """A mapping as a YAML block in the order given (cluster.yaml, kubeconfigs), UTF-8 as it is
    (line separators and control characters are still escaped)."""
    return str(
        yaml.dump(
            value, Dumper=GoSafeDumper, sort_keys=False, default_flow_style=False, width=_WIDE, allow_unicode=True
        )
    )


def yaml_documents(*documents: Any) -> bytes:
    """Kubernetes documents (``---`` between them), multi-line strings as literal blocks."""
    return yaml.dump_all(documents, Dumper=BlockDumper, default_flow_style=False, sort_keys=False).encode()


def yaml_value(value: Any, indent: int = 0) -> str:
    """``value`` as YAML to follow ``key:`` in a template: `` scalar`` inline, or an indented block."""
    if not isinstance(value, dict | list | tuple) or not value:
        text = yaml.dump(value, Dumper=BlockDumper, default_flow_style=True, width=_WIDE, allow_unicode=False)
        return " " + text.removesuffix("\n...\n").rstrip("\n")
    text = yaml.dump(value, Dumper=BlockDumper, default_flow_style=False, sort_keys=False, width=_WIDE)
    pad = " " * indent
    return "\n" + "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True)).rstrip("\n")


def load_yaml(text: bytes | str, *, unique_keys: bool = False) -> Any:
    """``unique_keys``: a key given twice is an error (YAML itself lets the last one win)."""
    return yaml.load(text, Loader=_UniqueKeyLoader if unique_keys else Loader)


class DuplicateKey(yaml.MarkedYAMLError):
    pass


class _UniqueKeyLoader(Loader):  # type: ignore[valid-type,misc]
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base`: YAML 1.1's merge key, flattened by the loader (explicit keys win)
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise DuplicateKey(problem=f"{key!r} is given twice", problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]
