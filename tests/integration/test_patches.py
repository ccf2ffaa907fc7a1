"""cluster.yaml's cloud_config_patch as cloud-init itself merges it: cloud-init's own
CloudConfigPartHandler (handlers/cloud_config.py, ``_merge_part``: merge_how read from the part,
cloud-init's default, its mergers) on the same inputs as isobuilder.patches, and the merged
user_data through ``cloud-init schema``."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from isobuilder import patches, serialize
from tests.helpers import SYSTEM_PYTHON, Run, require_tool, set_settings

pytestmark = pytest.mark.integration

USER_DATA = "node-worker1/cloud-config/openstack/latest/user_data"
CLOUD_INIT_MERGE = """
import json, sys
from cloudinit.handlers.cloud_config import CloudConfigPartHandler
from cloudinit.helpers import Paths
handler = CloudConfigPartHandler(Paths({}))
out = []
for base, payload in json.load(sys.stdin):
    handler._reset()
    handler.cloud_buf = base
    try:
        handler._merge_part(payload, {})
        out.append(handler.cloud_buf)
    except Exception as exc:  # handle_part logs it and skips the part
        out.append(type(exc).__name__)
json.dump(out, sys.stdout)
"""
HOWS = [
    None,
    "dict(replace)+list()+str()",
    "dict(recurse_array,no_replace)+list(append)",
    "list(prepend)+dict(no_replace)",
    "dict(no_replace,recurse_str,recurse_list)+list(replace,recurse_dict,recurse_str)+str(append)",
    "dict(allow_delete,no_replace)+list(no_replace)",
    "str(append)+dict(replace)",
    "list(append)",
    [{"name": "list", "settings": ["append"]}, {"name": "dict", "settings": ["no_replace", "recurse_array"]}],
    [["dict", "replace"], ["list", "prepend"]],
    "dict()+list()+str()",
    "dict(recurse_array)+list()",
    "dict(recurse_list)+list(recurse_array,recurse_str)+str()",
    "str()+list(recurse_dict)+dict(recurse_array)",
]  # fmt: skip  (settings left out: each merger's default method)


def _cloud_init_merges(cases: list[tuple[Any, str]]) -> list[Any]:
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", CLOUD_INIT_MERGE], input=json.dumps(cases), capture_output=True, text=True, check=True
    )
    return list(json.loads(result.stdout))


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.choice(["dict", "list", "str", "int", "bool", "none"] if depth < 3 else ["str", "int", "none"])
    if kind == "dict":
        return {rng.choice("abcd"): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if kind == "list":
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {"str": rng.choice("xyz"), "int": rng.randint(0, 3), "bool": rng.random() < 0.5, "none": None}[kind]


def test_our_merge_is_cloud_inits_on_a_thousand_cases() -> None:
    rng = random.Random(2026)
    cases = []
    for _ in range(1000):
        base = {rng.choice("abcd"): _value(rng, 1) for _ in range(rng.randint(1, 4))}
        patch = {rng.choice("abcd"): _value(rng, 1) for _ in range(rng.randint(1, 4))}
        how = rng.choice(HOWS)
        if how is not None:
            patch[rng.choice(["merge_how", "merge_type"])] = how
        cases.append((base, patch))
    theirs = _cloud_init_merges([(base, "#cloud-config\n" + json.dumps(patch)) for base, patch in cases])
    for (base, patch), expected in zip(cases, theirs, strict=True):
        body = patches._body(patch)  # what cloud-init pops: merge_how, and merge_type when read
        try:
            ours = patches.merge(base, body, patches.merge_how(patch))
        except (TypeError, KeyError) as exc:
            ours = type(exc).__name__
        assert json.loads(json.dumps(ours)) == expected, (base, patch)


def test_a_patched_user_data_is_what_cloud_init_makes_of_the_two_parts(run: Run, example: Path) -> None:
    plain = serialize.load_yaml((example / USER_DATA).read_bytes())
    patch = (
        "cloud_config_patch:\n"
        "  merge_how: 'dict(recurse_array,no_replace)+list(append)'\n"
        "  packages: [htop, jq]\n"
        "  runcmd:\n  - [sh, -c, 'echo patched >/run/patched']\n"
        '  write_files:\n  - {path: /etc/motd, content: "lab cluster\\n"}\n'
        "  timezone: Europe/Paris\n"
    )
    set_settings(example, patch)
    assert run("build").code == 0
    text = (example / USER_DATA).read_bytes()
    assert text.startswith(b"#cloud-config\n")
    given = serialize.load_yaml(patch)["cloud_config_patch"]
    (expected,) = _cloud_init_merges([(plain, "#cloud-config\n" + json.dumps(given))])
    assert serialize.load_yaml(text) == expected
    cloud_init = require_tool("cloud-init")
    checked = subprocess.run([cloud_init, "schema", "-c", str(example / USER_DATA)], capture_output=True, text=True)
    assert checked.returncode == 0 and "Valid cloud-config" in checked.stdout, checked.stdout + checked.stderr


def test_a_patch_that_replaces_isobuilds_runcmd_is_refused_and_nothing_written(run: Run, example: Path) -> None:
    before = (example / USER_DATA).read_bytes()
    set_settings(example, "cloud_config_patch:\n  runcmd: [[reboot]]\n")
    result = run("build")
    assert result.code == 1
    refused = (
        "cluster.yaml: cloud_config_patch would change runcmd, which isobuild writes (" + patches.APPEND_HINT + ")"
    )
    assert f"  failed worker1: {refused}" in result.err.splitlines(), result.err
    assert (example / USER_DATA).read_bytes() == before
