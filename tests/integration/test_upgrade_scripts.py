"""upgrade.sh through shellcheck, for each kind of node: the bootstrap controller (kubeadm
upgrade apply), another controller and a worker (kubeadm upgrade node), apt and Flatcar."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import Run, require_tool


def test_every_kind_of_upgrade_sh_passes_shellcheck(run: Run, inv: Path) -> None:
    for args in (
        ("node", "c1", "10.0.0.11", "--k8s-version", "1.36.2", "--vip", "10.0.0.50"),
        ("node", "c2", "10.0.0.12"),
        ("node", "f2", "10.0.0.13", "--role", "controller", "--format", "ignition"),
        ("node", "w1", "10.0.0.21", "--master", "c1"),
        ("node", "f1", "10.0.0.31", "--master", "c1", "--format", "ignition"),
        ("upgrade", "--to", "1.37.0"),
    ):
        result = run(*args)
        assert result.code == 0, result.err
    scripts = sorted(str(p) for p in inv.glob("node-*/upgrade.sh"))
    assert len(scripts) == 5
    check = subprocess.run([require_tool("shellcheck"), "--shell=bash", *scripts], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
