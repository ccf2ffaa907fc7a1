"""What a command loads: an `isobuild node` is mostly its start-up (docs/ARCHITECTURE.md,
"Start-up"), so the modules it has no use for stay unloaded. The time itself is measured by
scripts/bench.py, not asserted here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def test_ctrl_c_at_any_point_of_the_start_up_is_one_error_line(tmp_path: Path) -> None:
    """SIGINT while the CLI and a command's module load, or later: `Error: interrupted` and exit
    130 (or the command finished first), never a traceback."""
    inv = str(tmp_path / "inv")
    modules_loaded_by("-q", "--inventory", inv, "node", "c1", "10.0.0.1", cwd=tmp_path)
    # The console script, telling when it has imported its first line of isobuild.
    script = "import sys, isobuilder.__main__ as m; print(flush=True); m.run()"
    outcomes = []
    for i, delay in enumerate(range(2, 122, 8)):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, "--inventory", inv, "node", f"w{i}", f"10.0.1.{i + 1}", "--master", "c1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH},
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"\n"
        time.sleep(delay / 1000)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        lines = err.decode().splitlines()
        if proc.returncode == 0:
            continue
        assert proc.returncode == 130, err.decode()
        assert lines[0] == "Error: interrupted" and lines[1].startswith("Hint: ") and len(lines) == 2, lines
        outcomes.append(delay)
    assert outcomes, "no run was interrupted"
    listed = subprocess.run(
        [sys.executable, "-m", "isobuilder", "--inventory", inv, "list"], capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr  # the inventory is whole


def test_no_thread_to_make_keys_in_is_no_failure(tmp_path: Path) -> None:
    """Threads that cannot start (a process or memory limit): the keys are made when asked."""
    script = "import sys, threading; threading.stack_size(1 << 40); from isobuilder.cli import main; sys.exit(main())"
    for args in (("node", "c1", "10.0.0.1", "--key-type", "rsa-2048"), ("node", "w1", "10.0.0.2", "--master", "c1")):
        proc = subprocess.run(
            [sys.executable, "-c", script, "-q", "--inventory", str(tmp_path / "inv"), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (proc.returncode, proc.stderr) == (0, "")


def test_a_console_script_made_before_the_program_module_still_runs(tmp_path: Path) -> None:
    """`isobuilder.cli:run` was the entry point: a script an editable install made then runs on."""
    proc = subprocess.run(
        [sys.executable, "-c", "from isobuilder.cli import run; run()", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout.startswith("isobuild "), proc.stderr) == (0, True, "")
