"""user_data and install.sh as their real consumers see them: cloud-init and shellcheck."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isobuilder.cli import main
from tests.helpers import SYSTEM_PYTHON, Run, node_folders, require_tool

USER_DATA = "cloud-config/openstack/latest/user_data"

READER = """
import json, sys
from cloudinit.sources.helpers.openstack import ConfigDriveReader
result = ConfigDriveReader(sys.argv[1]).read_v2()
json.dump({"userdata": result["userdata"].decode(), "metadata": result["metadata"]}, sys.stdout)
"""


def _cloud_init() -> str:
    path = require_tool("cloud-init")
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail("cloud-init's Python is missing")
    return path


def test_cloud_init_schema_accepts_every_user_data(shared_example: Path) -> None:
    cloud_init = _cloud_init()
    for folder in node_folders(shared_example):
        result = subprocess.run(
            [cloud_init, "schema", "--config-file", str(folder / USER_DATA)], capture_output=True, text=True
        )
        assert result.returncode == 0, f"{folder.name}: {result.stdout}{result.stderr}"
        assert "Valid schema" in result.stdout + result.stderr or "Valid cloud-config" in result.stdout


def test_config_drive_reader_returns_our_data(shared_example: Path, tmp_path: Path) -> None:
    _cloud_init()
    xorriso = require_tool("xorriso")
    for folder in node_folders(shared_example):
        out = tmp_path / folder.name
        subprocess.run(
            [xorriso, "-osirrox", "on", "-indev", str(folder / "config.iso"), "-extract", "/", str(out)],
            capture_output=True,
            check=True,
        )
        read = subprocess.run(
            [SYSTEM_PYTHON, "-c", READER, str(out)], capture_output=True, text=True, check=True
        ).stdout
        data = json.loads(read)
        assert data["userdata"] == (folder / USER_DATA).read_text()
        meta = json.loads((folder / "cloud-config/openstack/latest/meta_data.json").read_text())
        assert data["metadata"]["uuid"] == meta["uuid"]
        assert data["metadata"]["hostname"] == folder.name.removeprefix("node-")


def test_node_uuid_is_stable_and_unique(shared_example: Path) -> None:
    uuids = [
        json.loads((f / "cloud-config/openstack/latest/meta_data.json").read_text())["uuid"]
        for f in node_folders(shared_example)
    ]
    assert len(set(uuids)) == len(uuids) == 4


def test_shellcheck_passes_on_every_install_script(shared_example: Path) -> None:
    shellcheck = require_tool("shellcheck")
    scripts = [str(f / "install.sh") for f in node_folders(shared_example)]
    result = subprocess.run([shellcheck, "--shell=bash", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_install_script_is_the_one_inside_user_data(shared_example: Path) -> None:
    for folder in node_folders(shared_example):
        data = yaml.safe_load((folder / USER_DATA).read_text())
        files = {f["path"]: f for f in data["write_files"]}
        install = files["/opt/isobuild/install.sh"]
        assert install["content"] == (folder / "install.sh").read_text()
        assert install["permissions"] == "0700"
        # runcmd only starts the unit; the unit runs install.sh until it succeeds once
        assert data["runcmd"] == [
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "--no-block", "isobuild-install.service"],
        ]
        unit = files["/etc/systemd/system/isobuild-install.service"]["content"]
        assert "ExecStart=/opt/isobuild/install.sh\n" in unit and "Restart=on-failure\n" in unit
        assert "ConditionPathExists=!/var/lib/isobuild/install.done\n" in unit
        assert "DONE=/var/lib/isobuild/install.done" in install["content"]


def test_systemd_analyze_verifies_the_install_unit(shared_example: Path, tmp_path: Path) -> None:
    """The unit cloud-init writes and enables, checked by systemd itself (Type=oneshot with
    Restart=on-failure, no start limit, no timeout) against a root holding it and install.sh."""
    analyze = require_tool("systemd-analyze")
    root = tmp_path / "root"
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    data = yaml.safe_load((shared_example / "node-worker1" / USER_DATA).read_text())
    for entry in data["write_files"]:
        if entry["path"] in ("/etc/systemd/system/isobuild-install.service", "/opt/isobuild/install.sh"):
            target = root / entry["path"].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(entry["content"])
            target.chmod(int(entry["permissions"], 8))
    result = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={root}", "/etc/systemd/system/isobuild-install.service"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_user_data_places_kubeadm_files_with_secret_modes(shared_example: Path) -> None:
    data = yaml.safe_load((shared_example / "node-controller" / USER_DATA).read_text())
    files = {f["path"]: f["permissions"] for f in data["write_files"]}
    for path in (
        "/etc/kubernetes/pki/ca.key",
        "/etc/kubernetes/pki/apiserver.key",
        "/etc/kubernetes/pki/etcd/server.key",
        "/etc/kubernetes/pki/sa.key",
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/controller-manager.conf",
        "/etc/kubernetes/scheduler.conf",
        "/etc/kubernetes/kubelet.conf",
        "/var/lib/kubelet/pki/kubelet.key",
    ):
        assert files[path] == "0600", path
    assert files["/etc/kubernetes/pki/ca.crt"] == "0644"
    worker = yaml.safe_load((shared_example / "node-worker1" / USER_DATA).read_text())
    worker_paths = {f["path"] for f in worker["write_files"]}
    assert not any(p.endswith("ca.key") or p.endswith("sa.key") for p in worker_paths)
    assert "/var/lib/kubelet/config.yaml" in worker_paths


def test_edge_router_registers_its_label_and_the_controller_deploys_ingress(shared_example: Path) -> None:
    edge = yaml.safe_load((shared_example / "node-example.com" / USER_DATA).read_text())
    files = {f["path"]: f["content"] for f in edge["write_files"]}
    assert "--node-labels=role=edge-router" in files["/var/lib/kubelet/kubeadm-flags.env"]
    assert edge["hostname"] == "example" and edge["fqdn"] == "example.com"
    controller = yaml.safe_load((shared_example / "node-controller" / USER_DATA).read_text())
    cfiles = {f["path"]: f["content"] for f in controller["write_files"]}
    kustomization = yaml.safe_load(cfiles["/etc/kubernetes/isobuild/contour/kustomization.yaml"])
    envoy = next(
        p for p in map(yaml.safe_load, (p["patch"] for p in kustomization["patches"])) if p["kind"] == "DaemonSet"
    )
    assert envoy["metadata"] == {"name": "envoy", "namespace": "projectcontour"}
    assert envoy["spec"]["template"]["spec"]["nodeSelector"]["role"] == "edge-router"
    assert "/etc/isobuild/firewall.nft" in files and "/etc/isobuild/firewall.nft" not in cfiles


HOSTILE_COMMENTS = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\x85\u2028\u2029"),
    max_size=60,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(comment=HOSTILE_COMMENTS)
def test_an_ssh_key_comment_cannot_inject_keys(tmp_path_factory: pytest.TempPathFactory, comment: str) -> None:
    root = tmp_path_factory.mktemp("inject")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsbTdJzNbbDHbxL2eGJc0ZqCdOMd4ky7AJJLYl9o6Lp " + comment
    key_file = root / "k.pub"
    key_file.write_text(key + "\n", encoding="utf-8")
    code = main(["-q", "--inventory", str(root / "inv"), "node", "c1", "10.0.0.1", "--ssh-key", str(key_file)])
    if code != 0:  # refused as a whole (e.g. a comment that is only spaces): fine, and nothing written
        assert not (root / "inv").exists()
        return
    data = yaml.safe_load((root / "inv" / "node-c1" / USER_DATA).read_text())
    assert set(data) == {
        "hostname",
        "manage_etc_hosts",
        "ssh_pwauth",
        "disable_root",
        "ssh_authorized_keys",
        "write_files",
        "runcmd",
    }
    assert data["ssh_authorized_keys"] == [key.strip()]


@pytest.mark.parametrize(
    "payload",
    [
        'x"\nruncmd: [["rm", "-rf", "/"]]',
        "x\n  - path: /etc/evil",
        "x: y",
        "$(reboot)",
        "`id`; echo pwned",
    ],
)
def test_injection_attempts_in_values_are_refused_or_inert(run: Run, inv: Path, payload: str) -> None:
    for args in (("node", payload, "10.0.0.1"), ("node", "c1", "10.0.0.1", "--label", f"a={payload}")):
        result = run(*args)
        assert result.code == 1
        assert result.err.startswith("Error: ") and "invalid " in result.err.splitlines()[0]
        assert not inv.exists()


# -- `image` refuses what cloud-init would ignore or misread ---------------------------------------
def _edit_user_data(example: Path, edit: Callable[[bytes], bytes]) -> tuple[Path, bytes]:
    folder = example / "node-worker1"
    user_data = folder / "cloud-config/openstack/latest/user_data"
    user_data.write_bytes(edit(user_data.read_bytes()))
    return folder, (folder / "config.iso").read_bytes()


@pytest.mark.parametrize(
    ("edit", "first_line"),
    [
        (lambda d: d.replace(b"#cloud-config", b"#cloud-confg", 1),
         "starts with '#cloud-confg', no kind of user data cloud-init knows: it would ignore the whole file"),
        (lambda d: d + b"write_files: []\n",
         ": 'write_files' is given twice in one mapping (line "),
        (lambda d: d.replace(b"\nhostname:", b"\nhostname: a\nhostname:", 1),
         ": 'hostname' is given twice in one mapping (line "),
        (lambda d: d + b"runcmd_typo: 5\nntp: {enabled: maybe}\n",
         ": cloud-init schema (cloud-init on this machine) rejects it: Cloud config schema errors: ntp.enabled: "),
        (lambda d: d.replace(b"#cloud-config", b"#Cloud-Config", 1),
         ': cloud-init schema (cloud-init on this machine) rejects it: Cloud config schema errors: format-l1.c1: '),
        (lambda d: d + b"# " + b"x" * (5 << 20) + b"\n", " is 5 MiB, over the 4 MiB a first-boot config may have"),
        (lambda d: gzip.compress(d + b"# " + b"x" * (64 << 20) + b"\n", mtime=0), " decompresses to over the 4 MiB a first-boot config may have"),
    ],
    ids=["misspelt header", "duplicate top-level key", "duplicate key", "schema", "header case", "huge", "gzip bomb"],
)  # fmt: skip
def test_image_refuses_user_data_cloud_init_would_ignore_or_misread(
    run: Run, example: Path, edit: Callable[[bytes], bytes], first_line: str
) -> None:
    require_tool("cloud-init")
    folder, iso = _edit_user_data(example, edit)
    result = run("image", str(folder))
    assert result.code == 1
    lines = result.err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), result.err
    assert first_line in lines[0], lines[0]
    assert (folder / "config.iso").read_bytes() == iso  # nothing written


def test_image_packages_a_script_or_gzip_user_data_as_cloud_init_takes_them(run: Run, example: Path) -> None:
    folder, _ = _edit_user_data(example, lambda d: b"#!/bin/sh\necho hello\n")
    assert run("image", str(folder)).code == 0
    folder, _ = _edit_user_data(example, lambda d: gzip.compress(b"#cloud-config\nhostname: w1\n", mtime=0))
    assert run("image", str(folder)).code == 0


def test_image_checks_gzip_mime_and_links_as_cloud_init_reads_them(run: Run, example: Path) -> None:
    import gzip as gz

    dup = b"#cloud-config\nruncmd: []\nruncmd: []\n"
    folder, iso = _edit_user_data(example, lambda d: gz.compress(dup, mtime=0))
    result = run("image", str(folder))
    assert result.code == 1 and "'runcmd' is given twice" in result.err.splitlines()[0], result.err
    assert (folder / "config.iso").read_bytes() == iso
    ignored = b"MIME-Version: 1.0\nContent-Type: text/plain\n\n#cloud-confg\nhostname: x\n"
    folder, _ = _edit_user_data(example, lambda d: ignored)
    result = run("image", str(folder))
    assert result.code == 1 and "a MIME message with no part cloud-init knows" in result.err.splitlines()[0]
    mime = b"MIME-Version: 1.0\nContent-Type: text/cloud-config\n\nhostname: x\n"
    folder, _ = _edit_user_data(example, lambda d: mime)
    assert run("image", str(folder)).code == 0
    link = folder / "cloud-config/openstack/latest/vendor_data.json"
    link.symlink_to("/etc/hostname")
    result = run("image", str(folder))
    assert result.code == 1 and result.err.splitlines()[0] == f"Error: {link} is a symbolic link"
    link.unlink()
