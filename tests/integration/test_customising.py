"""cluster.yaml's host settings as their real readers take them: cloud-init's schema (the ntp
module), systemd-analyze (the proxy drop-ins on the units they change), apt-config (the apt
proxy), ignition-validate (timesyncd's drop-in on Flatcar)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from isobuilder.firstboot import files_written
from tests.helpers import CONFIG_2_USER_DATA, Run, require_tool, set_settings

SETTINGS = """\
ntp_servers: [ntp1.example.test, 10.0.0.123]
http_proxy: http://user:secret@proxy.example.test:3128
https_proxy: http://proxy.example.test:3128
no_proxy: [.corp.example.test, 192.168.0.0/16]
kubelet_extra_args:
- {name: max-pods, value: '200'}
"""


@pytest.fixture
def customised(run: Run, inv: Path) -> Path:
    assert run("init").code == 0
    set_settings(inv, SETTINGS)
    for args in (["c1", "10.0.0.1"], ["w1", "10.0.0.2", "--master", "c1"],
                 ["f1", "10.0.0.3", "--master", "c1", "--format", "ignition"]):  # fmt: skip
        result = run("node", *args)
        assert result.code == 0, result.err
    return inv


def test_cloud_init_schema_accepts_the_ntp_settings(customised: Path) -> None:
    for node in ("c1", "w1"):
        path = customised / f"node-{node}" / CONFIG_2_USER_DATA
        result = subprocess.run([require_tool("cloud-init"), "schema", "--config-file", str(path)],
                                capture_output=True, text=True)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


def test_systemd_reads_the_proxy_drop_ins_on_their_units(customised: Path, tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    files = files_written((customised / "node-w1" / CONFIG_2_USER_DATA).read_bytes())
    assert files is not None
    root = tmp_path / "root"
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for path, file in files.items():
        if path.startswith("/etc/systemd/system/"):
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.content)
    for unit in ("containerd.service", "isobuild-install.service"):
        unit_file = root / "etc/systemd/system" / unit
        if not unit_file.exists():  # containerd's own unit comes with its package: a stand-in
            unit_file.write_text("[Unit]\nDescription=stand-in\n[Service]\nExecStart=/usr/bin/true\n")
            (root / "usr/bin").mkdir(parents=True, exist_ok=True)
            shutil.copy("/usr/bin/true", root / "usr/bin/true")
        (root / "opt/isobuild").mkdir(parents=True, exist_ok=True)
        shutil.copy("/usr/bin/true", root / "opt/isobuild/install.sh")  # what the install unit runs
        show = subprocess.run([analyze, "verify", "--man=no", f"--root={root}", f"/etc/systemd/system/{unit}"],
                              capture_output=True, text=True)  # fmt: skip
        assert show.returncode == 0 and not show.stderr.strip(), f"{unit}: {show.stderr}"
    path = "/etc/systemd/system/containerd.service.d/isobuild-proxy.conf"
    assert files[path].mode == 0o600  # the URL carries a password
    dropin = (root / path.lstrip("/")).read_text()
    assert 'Environment="HTTP_PROXY=http://user:secret@proxy.example.test:3128"' in dropin


def test_apt_reads_the_proxy_file(customised: Path, tmp_path: Path) -> None:
    files = files_written((customised / "node-w1" / CONFIG_2_USER_DATA).read_bytes())
    assert files is not None
    conf = tmp_path / "90isobuild-proxy"
    conf.write_bytes(files["/etc/apt/apt.conf.d/90isobuild-proxy"].content)
    result = subprocess.run([require_tool("apt-config"), "-c", str(conf), "dump", "Acquire"], capture_output=True,
                            text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert 'Acquire::http::Proxy "http://user:secret@proxy.example.test:3128";' in result.stdout
    assert 'Acquire::https::Proxy "http://proxy.example.test:3128";' in result.stdout


def test_ignition_validate_accepts_the_flatcar_node_with_its_settings(customised: Path, tmp_path: Path) -> None:
    config = customised / "node-f1" / CONFIG_2_USER_DATA
    result = subprocess.run([require_tool("ignition-validate"), str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    paths = {f["path"] for f in json.loads(config.read_text())["storage"]["files"]}
    assert "/etc/systemd/timesyncd.conf.d/isobuild.conf" in paths
    assert "/etc/systemd/system/containerd.service.d/isobuild-proxy.conf" in paths
    assert "/etc/apt/apt.conf.d/90isobuild-proxy" not in paths  # no apt on Flatcar
