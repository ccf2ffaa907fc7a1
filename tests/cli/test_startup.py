"""What a command loads: an `isobuild node` is mostly its start-up (docs/ARCHITECTURE.md,
"Start-up"), so the modules it has no use for stay unloaded. The time itself is measured by
scripts/bench.py, not asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import EPOCH

# As the console script runs it (isobuilder.__main__, then cli.main), in a new interpreter.
_LOADED_BY = """
import json, sys
import isobuilder.__main__
from isobuilder.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

# Other commands' CLI and operations, network boot, block devices, the build's fork pool, and
# libraries isobuild does not use (typer >= 0.29 brought pydantic: +150 ms a command).
NOT_FOR_NODE = {
    "isobuilder.cli_fleet",
    "isobuilder.cli_tools",
    "isobuilder.ops.build",
    "isobuilder.ops.certs",
    "isobuilder.ops.inspect",
    "isobuilder.ops.kubeconfigs",
    "isobuilder.ops.push",
    "isobuilder.ops.pxe_export",
    "isobuilder.ops.remove",
    "isobuilder.ops.upgrade",
    "isobuilder.ops.usb",
    "isobuilder.pxe",
    "isobuilder.blockdev",
    "isobuilder.fatdrive",
    "isobuilder.outside",
    "multiprocessing",
    "concurrent.futures",
    "netaddr",
    "pydantic",
    "rich",
}


def modules_loaded_by(*args: str, cwd: Path) -> set[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    proc = subprocess.run(
        [sys.executable, "-c", _LOADED_BY, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["code"] == 0, proc.stderr
    return set(result["modules"])


def test_a_new_worker_loads_only_what_node_needs(tmp_path: Path) -> None:
    inv = str(tmp_path / "inv")
    modules_loaded_by("-q", "--inventory", inv, "node", "c1", "10.0.0.1", cwd=tmp_path)
    loaded = modules_loaded_by("-q", "--inventory", inv, "node", "w1", "10.0.0.2", "--master", "c1", cwd=tmp_path)
    assert {"isobuilder.cli_nodes", "isobuilder.ops.node", "pycdlib", "jinja2"} <= loaded  # the test can fail
    assert loaded & NOT_FOR_NODE == set()


def test_the_other_commands_load_their_module_when_run(tmp_path: Path) -> None:
    inv = str(tmp_path / "inv")
    modules_loaded_by("-q", "--inventory", inv, "node", "c1", "10.0.0.1", cwd=tmp_path)
    assert "isobuilder.cli_fleet" in modules_loaded_by("-q", "--inventory", inv, "list", cwd=tmp_path)
    assert "isobuilder.cli_tools" in modules_loaded_by("-q", "--inventory", inv, "kubeconfig", cwd=tmp_path)
