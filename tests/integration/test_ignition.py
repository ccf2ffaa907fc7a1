"""Ignition configs as their real consumers see them: ignition-validate, Ignition's own files
stage writing into a scratch root, systemd-analyze on the units it installs, shellcheck."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    CONFIG_2_USER_DATA,
    IGNITION_NODES,
    SSH_KEY,
    Run,
    config_of,
    files_of,
    require_tool,
    set_settings,
)

IGNITION = "/usr/lib/dracut/modules.d/30ignition/ignition"  # Debian's ignition package ships it there


def test_ignition_validate_accepts_every_config(mixed_example: Path) -> None:
    validate = require_tool("ignition-validate")
    for node, path in IGNITION_NODES.items():
        result = subprocess.run([validate, str(mixed_example / f"node-{node}" / path)], capture_output=True, text=True)
        assert result.returncode == 0 and not result.stdout + result.stderr, f"{node}: {result.stdout}{result.stderr}"
        assert config_of(mixed_example, node)["ignition"]["version"] == "3.3.0"


def test_ignition_validate_rejects_a_broken_config(tmp_path: Path) -> None:
    """The validator is not a rubber stamp: a mode as a string is refused."""
    validate = require_tool("ignition-validate")
    bad = {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/etc/x", "mode": "0644"}]}}
    (tmp_path / "bad.ign").write_text(json.dumps(bad))
    assert subprocess.run([validate, str(tmp_path / "bad.ign")], capture_output=True).returncode != 0


@pytest.fixture
def scratch_root() -> Iterator[Path]:
    """What Ignition's files stage expects of a Flatcar root: the core user, an SELinux config.

    Outside pytest's private (0700) tmp dirs: Ignition writes the SSH keys as the core user.
    """
    parent = Path(tempfile.mkdtemp(prefix="isobuild-ignition-"))
    parent.chmod(0o755)
    root = parent / "root"
    (root / "etc/selinux").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\ncore:x:500:500:Core:/home/core:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\ncore:x:500:\n")
    (root / "etc/selinux/config").write_text("SELINUX=disabled\nSELINUXTYPE=targeted\n")
    (root / "home/core").mkdir(parents=True)
    os.chown(root / "home/core", 500, 500)
    yield root
    shutil.rmtree(parent)


def _apply(config: Path, root: Path, state: Path) -> str:
    """Run Ignition's fetch and files stages (platform ``file``) into ``root``; returns the log."""
    env = {**os.environ, "IGNITION_CONFIG_FILE": str(config)}
    log = ""
    for stage in ("fetch", "files"):
        result = subprocess.run(
            [IGNITION, "-platform", "file", "-stage", stage, "-root", str(root), "-log-to-stdout",
             "-config-cache", str(state / "cache.json"), "-state-file", str(state / "state")],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        log += result.stdout + result.stderr
        if stage == "fetch":
            assert result.returncode == 0, log
    return log


@pytest.mark.parametrize("node", sorted(IGNITION_NODES))
def test_ignition_files_stage_writes_every_file_and_unit(
    mixed_example: Path, scratch_root: Path, tmp_path: Path, node: str
) -> None:
    if not Path(IGNITION).exists():
        pytest.fail(f"{IGNITION} missing: scripts/test.sh installs Debian's ignition package")
    if os.geteuid() != 0:
        pytest.fail("Ignition's files stage sets owners: run the tests as root (CI does)")
    root = scratch_root
    state = tmp_path / "state"
    state.mkdir()
    log = _apply(mixed_example / f"node-{node}" / IGNITION_NODES[node], root, state)
    # Every file and unit is written; the one step left is SELinux relabelling, which needs
    # Flatcar's policy and setfiles, not present in a scratch root on Debian.
    critical = [line for line in log.splitlines() if line.startswith("CRITICAL")]
    assert critical and all("relabel" in line for line in critical), log[-3000:]

    config = config_of(mixed_example, node)
    for path, (mode, content) in files_of(config).items():
        target = root / path.lstrip("/")
        assert target.read_bytes() == content, path
        info = target.stat()
        assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (mode, 0, 0), path
    assert (root / "etc/hostname").read_text() == f"{node}\n"
    assert (root / "opt/isobuild/setup.sh").stat().st_mode & 0o777 == 0o700
    assert (root / "etc/kubernetes/kubelet.conf").stat().st_mode & 0o777 == 0o600
    keys = root / "home/core/.ssh/authorized_keys.d/ignition"
    assert keys.read_text().strip() == SSH_KEY
    units = root / "etc/systemd/system"
    assert (units / "kubelet.service.d/10-kubeadm.conf").exists()
    preset = (root / "etc/systemd/system-preset/20-ignition.preset").read_text().split("\n")
    assert {"enable containerd.service", "enable kubelet.service", "enable isobuild-install.service"} <= set(preset)
    network = root / "etc/systemd/network/00-isobuild.network"
    assert "MACAddress=52:54:00:00:00:0" in network.read_text()
    if node == "ctrl":
        assert (root / "etc/kubernetes/pki/ca.key").stat().st_mode & 0o777 == 0o600
    else:
        assert not (root / "etc/kubernetes/pki/ca.key").exists()


def test_systemd_analyze_verifies_the_units(mixed_example: Path, tmp_path: Path) -> None:
    """The units Ignition installs, checked by systemd itself against a root holding them."""
    analyze = require_tool("systemd-analyze")
    root = tmp_path / "root"
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    config = config_of(mixed_example, "ctrl")
    for unit in config["systemd"]["units"]:
        if "contents" not in unit:
            continue  # containerd.service: Flatcar ships it
        base = root / "etc/systemd/system"
        (base / unit["name"]).parent.mkdir(parents=True, exist_ok=True)
        (base / unit["name"]).write_text(unit["contents"])
        for dropin in unit.get("dropins", []):
            (base / f"{unit['name']}.d").mkdir(exist_ok=True)
            (base / f"{unit['name']}.d" / dropin["name"]).write_text(dropin["contents"])
    for path, (mode, content) in files_of(config).items():  # the programs the units start
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)
    (root / "opt/bin").mkdir(parents=True)
    shutil.copy("/bin/true", root / "opt/bin/kubelet")  # what setup.sh downloads
    for name in ("kubelet.service", "isobuild-install.service"):
        result = subprocess.run(
            [analyze, "verify", "--man=no", f"--root={root}", f"/etc/systemd/system/{name}"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0 and not result.stderr.strip(), f"{name}: {result.stderr}"


def test_shellcheck_passes_on_setup_and_disk_installer(mixed_example: Path, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    scripts = []
    for node in IGNITION_NODES:
        setup = tmp_path / f"{node}-setup.sh"
        setup.write_bytes(files_of(config_of(mixed_example, node))["/opt/isobuild/setup.sh"][1])
        scripts += [str(setup), str(mixed_example / f"node-{node}" / "install.sh")]
    result = subprocess.run([shellcheck, "--shell=bash", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_disk_installer_reads_the_config_from_its_own_drive(mixed_example: Path) -> None:
    """install.sh of an Ignition node travels on the drive and knows where the config sits on it."""
    for node, user_data in IGNITION_NODES.items():
        folder = mixed_example / f"node-{node}"
        script = (folder / "install.sh").read_text()
        assert (folder / "cloud-config/install.sh").read_text() == script
        label = "config-2" if user_data == CONFIG_2_USER_DATA else "cidata"
        assert f'LABEL="{label}"' in script
        assert f"CONFIG_PATH={user_data.removeprefix('cloud-config/')} " in script
        assert 'flatcar-install -d "$DISK" -C "$CHANNEL" -V "$VERSION" -i "$config"' in script


def test_disk_installer_refuses_bad_use(mixed_example: Path, tmp_path: Path) -> None:
    """Run for real (bash): usage errors come before anything touches a disk."""
    script = mixed_example / "node-ctrl" / "install.sh"
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    not_a_disk = subprocess.run(["bash", str(script), str(tmp_path)], capture_output=True, text=True)
    assert not_a_disk.returncode == 1
    assert "not a block device" in not_a_disk.stderr or "run as root" in not_a_disk.stderr


def test_flatcar_setup_pins_and_verifies_downloads(mixed_example: Path) -> None:
    setup = files_of(config_of(mixed_example, "worker3"))["/opt/isobuild/setup.sh"][1].decode()
    assert "K8S_VERSION=1.37.1" in setup and "CNI_VERSION=v1.8.0" in setup
    assert "sha256sum --check" in setup
    assert "start_kubelet\n" in setup and "kubeadm init" not in setup
    controller = files_of(config_of(mixed_example, "ctrl"))["/opt/isobuild/setup.sh"][1].decode()
    assert "init_control_plane\napply_addons\n" in controller
    kubelet = files_of(config_of(mixed_example, "worker3"))["/var/lib/kubelet/config.yaml"][1].decode()
    assert "volumePluginDir: /opt/libexec/kubernetes/kubelet-plugins/volume/exec/" in kubelet


def test_ignition_config_carries_no_cloud_config(mixed_example: Path) -> None:
    for node, path in IGNITION_NODES.items():
        text = (mixed_example / f"node-{node}" / path).read_text()
        assert not text.startswith("#cloud-config")
        assert "write_files" not in text


def test_hostile_values_stay_data_in_ignition(run: Run, inv: Path, tmp_path: Path) -> None:
    """An SSH key comment full of JSON and shell metacharacters stays one string in the config."""
    hostile = SSH_KEY + ' x"]},"storage":{"files":[{"path":"/etc/shadow"}]},"y":["$(reboot)'
    key = tmp_path / "hostile.pub"
    key.write_text(hostile + "\n")
    assert run("node", "c1", "10.0.0.1", "--format", "ignition", "--ssh-key", str(key)).code == 0
    config = json.loads((inv / "node-c1" / CONFIG_2_USER_DATA).read_text())
    assert set(config) == {"ignition", "passwd", "storage", "systemd"}
    assert config["passwd"]["users"] == [{"name": "core", "sshAuthorizedKeys": [hostile]}]
    assert "/etc/shadow" not in {f["path"] for f in config["storage"]["files"]}


def test_no_ca_key_in_a_worker_ignition_config(mixed_example: Path) -> None:
    """The contents are compressed inside the config, so a byte scan of the ISO proves nothing:
    decode every file of the worker's config and look for each CA and service-account key."""
    secrets = {p.name: p.read_bytes().strip() for p in (mixed_example / "ssl").rglob("*.key")}
    assert {"ca.key", "front-proxy-ca.key", "sa.key"} <= set(secrets)
    worker = b"".join(content for _mode, content in files_of(config_of(mixed_example, "worker3")).values())
    assert not [name for name, key in secrets.items() if key in worker]
    controller = b"".join(content for _mode, content in files_of(config_of(mixed_example, "ctrl")).values())
    assert secrets["ca.key"] in controller  # the scan finds a key where one belongs


def test_ignition_replaces_a_linked_etc_hosts_with_the_endpoint_entry(
    run: Run, inv: Path, scratch_root: Path, tmp_path: Path
) -> None:
    """A named endpoint with a VIP: the whole /etc/hosts, written by Ignition's files stage over
    what the image has there (here a link into the read-only /usr, as baselayouts ship it)."""
    if os.geteuid() != 0:
        pytest.fail("Ignition's files stage sets owners: run the tests as root (CI does)")
    args = ["--format", "ignition", "--endpoint", "api.lab.test", "--vip", "10.0.0.10"]
    assert run("node", "ctrl", "10.0.0.11", *args).code == 0
    (scratch_root / "usr/share/baselayout").mkdir(parents=True)
    (scratch_root / "usr/share/baselayout/hosts").write_text("127.0.0.1 localhost\n")
    (scratch_root / "etc/hosts").symlink_to("../usr/share/baselayout/hosts")
    state = tmp_path / "state"
    state.mkdir()
    _apply(inv / "node-ctrl" / CONFIG_2_USER_DATA, scratch_root, state)
    hosts = scratch_root / "etc/hosts"
    assert not hosts.is_symlink()
    lines = hosts.read_text().splitlines()
    assert "10.0.0.10 api.lab.test" in lines and "127.0.0.1\tlocalhost" in lines
    assert (scratch_root / "usr/share/baselayout/hosts").read_text() == "127.0.0.1 localhost\n"  # untouched


def test_an_ignition_patch_is_merged_by_ignition_itself(
    run: Run, inv: Path, scratch_root: Path, tmp_path: Path
) -> None:
    """cluster.yaml's ignition_patch rides as ``ignition.config.merge`` (a data URL): Ignition's
    fetch stage merges it (config/merge/merge.go), its files stage writes what it adds."""
    if os.geteuid() != 0:
        pytest.fail("Ignition's files stage sets owners: run the tests as root (CI does)")
    assert run("node", "ctrl", "10.0.0.11", "--format", "ignition").code == 0
    set_settings(
        inv,
        "ignition_patch:\n"
        "  storage:\n    files:\n    - {path: /etc/motd, mode: 420, contents: {source: 'data:,lab%20cluster%0A'}}\n"
        "  systemd:\n    units:\n    - name: containerd.service\n"
        '      dropins: [{name: 50-mine.conf, contents: "[Service]\\nLimitNOFILE=1048576\\n"}]\n',
    )
    assert run("build").code == 0
    config = inv / "node-ctrl" / CONFIG_2_USER_DATA
    checked = subprocess.run([require_tool("ignition-validate"), str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    state = tmp_path / "state"
    state.mkdir()
    _apply(config, scratch_root, state)
    assert (scratch_root / "etc/motd").read_text() == "lab cluster\n"
    dropin = scratch_root / "etc/systemd/system/containerd.service.d/50-mine.conf"
    assert dropin.read_text() == "[Service]\nLimitNOFILE=1048576\n"
    assert (scratch_root / "etc/kubernetes/kubelet.conf").exists()  # isobuild's own files too
    assert (scratch_root / "etc/systemd/system/kubelet.service.d/10-kubeadm.conf").exists()
