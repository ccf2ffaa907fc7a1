"""apply.sh: a running node brought to what its folder holds, run for real into a scratch root
(ISOBUILD_ROOT): byte for byte what first boot writes, only what differs, a second run idle, the
restarts it plans, the endpoint's hosts entry, containerd's config through the real containerd."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml

from tests.helpers import CONFIG_2_USER_DATA, Run, require_tool, shell_function

HOSTS_MARKER = "# isobuild: the cluster's API endpoint"


def apply(script: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "ISOBUILD_ROOT": str(root)},
        timeout=120,
    )


def installed(result: subprocess.CompletedProcess[str]) -> list[str]:
    match = re.search(r"installed: (.*)", result.stderr)
    return match.group(1).split() if match else []


def planned_restarts(result: subprocess.CompletedProcess[str]) -> list[str]:
    match = re.search(r"would restart: ([^(;\n]*)", result.stderr)
    assert match, result.stderr
    return [] if match.group(1).strip() == "nothing" else match.group(1).split()


def test_apply_sh_installs_what_first_boot_writes_and_only_what_changed(
    run: Run, example: Path, tmp_path: Path
) -> None:
    node = example / "node-controller"
    script = node / "apply.sh"
    assert script.stat().st_mode & 0o777 == 0o700  # it holds private keys
    check = subprocess.run([require_tool("shellcheck"), "--shell=bash", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    root = tmp_path / "node-root"
    first = apply(script, root)
    assert first.returncode == 0, first.stderr
    # byte for byte, mode for mode, what first boot writes (cloud-init's write_files)
    written = {f["path"]: f for f in yaml.safe_load((node / CONFIG_2_USER_DATA).read_text())["write_files"]}
    on_root = {
        "/" + p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith("var/lib/isobuild/")  # its lock
    }
    assert {"/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/admin.conf", "/var/lib/kubelet/pki/kubelet.key",
            "/etc/kubernetes/pki/etcd/peer.key", "/opt/isobuild/install.sh"} <= set(on_root)  # fmt: skip
    computed_on_the_node = {"/etc/containerd/config.toml", "/etc/hosts"}
    for path, file in on_root.items():
        if path in computed_on_the_node:
            continue
        assert file.read_text() == written[path]["content"], path
        assert f"{file.stat().st_mode & 0o7777:04o}" == written[path]["permissions"], path
    assert not any(p.startswith("/etc/kubernetes/pki/ca.") for p in on_root)  # a CA is never re-made
    assert set(installed(first)) == set(on_root) - {"/etc/hosts"}  # no VIP: no hosts entry, none made
    assert {"etcd", "kube-apiserver", "kubelet", "containerd"} <= set(planned_restarts(first))

    second = apply(script, root)
    assert second.returncode == 0 and "nothing to do" in second.stderr, second.stderr

    assert run("certs", "renew", "controller").code == 0
    check = apply(script, root, "--check")
    assert check.returncode == 0, check.stderr
    differs = check.stdout.split()
    assert "/etc/kubernetes/pki/apiserver.crt" in differs
    assert "/etc/kubernetes/pki/apiserver.key" not in differs  # same key
    assert (
        not installed(check)
        and (root / "etc/kubernetes/pki/apiserver.crt").read_bytes() != (node / "ssl/apiserver.crt").read_bytes()
    )  # --check changes nothing
    third = apply(script, root)
    assert sorted(installed(third)) == sorted(differs)
    assert (root / "etc/kubernetes/pki/apiserver.crt").read_bytes() == (node / "ssl/apiserver.crt").read_bytes()
    assert "containerd" not in planned_restarts(third)  # what reads a changed file, nothing else


def test_a_label_reaches_the_running_kubelet_and_only_the_kubelet_restarts(
    run: Run, example: Path, tmp_path: Path
) -> None:
    script = example / "node-worker1" / "apply.sh"
    root = tmp_path / "node-root"
    assert apply(script, root).returncode == 0
    result = run("node", "worker1", "--label", "zone=rack9", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["to_apply"] == ["/var/lib/kubelet/kubeadm-flags.env"]
    assert "isobuild push worker1 (its apply.sh: kubeadm-flags.env)" in result.err
    applied = apply(script, root)
    assert applied.returncode == 0, applied.stderr
    assert installed(applied) == ["/var/lib/kubelet/kubeadm-flags.env"]
    assert planned_restarts(applied) == ["kubelet"]
    assert "zone=rack9" in (root / "var/lib/kubelet/kubeadm-flags.env").read_text()
    assert "nothing to do" in apply(script, root).stderr


def test_an_unchanged_rebuild_asks_nothing_of_a_running_node(run: Run, example: Path) -> None:
    result = run("build", "--json")
    assert result.code == 0, result.err
    assert "apply.sh" not in result.err and "isobuild push" not in result.err


def test_the_endpoint_hosts_entry_is_replaced_never_duplicated(run: Run, inv: Path, tmp_path: Path) -> None:
    assert run("node", "c1", "10.0.0.11", "--vip", "10.0.0.50", "--endpoint", "api.lab.test").code == 0
    assert run("node", "w1", "10.0.0.21", "--master", "c1").code == 0
    root = tmp_path / "node-root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n{HOSTS_MARKER}\n10.0.0.99 api.lab.test\n10.1.1.1 db\n")
    script = inv / "node-w1" / "apply.sh"
    first = apply(script, root)
    assert first.returncode == 0, first.stderr
    assert (root / "etc/hosts").read_text() == (
        f"127.0.0.1\tlocalhost\n10.1.1.1 db\n{HOSTS_MARKER}\n10.0.0.50 api.lab.test\n"
    )  # the operator's own lines kept
    assert "/etc/hosts" in installed(first)
    assert "nothing to do" in apply(script, root).stderr


def test_apply_installs_the_containerd_config_install_sh_would_and_containerd_reads_it(
    example: Path, tmp_path: Path
) -> None:
    containerd = require_tool("containerd")
    root = tmp_path / "node-root"
    result = apply(example / "node-worker1" / "apply.sh", root)
    assert result.returncode == 0, result.stderr
    config = root / "etc/containerd/config.toml"
    assert "SystemdCgroup = true" in config.read_text()
    dump = subprocess.run([containerd, "--config", str(config), "config", "dump"], capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    assert "SystemdCgroup = true" in dump.stdout
    assert 'config_path = "/etc/containerd/certs.d"' in dump.stdout  # the registry hosts folder, as containerd reads it


# containerd 2.x's `config default`, the parts the script edits (its layout: version 3, single quotes,
# the CRI plugins split; the transfer service has a config_path of its own, which stays).
CONTAINERD_2_DEFAULT = """version = 3
[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = ''
  [plugins.'io.containerd.cri.v1.runtime']
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins.'io.containerd.transfer.v1.local']
    config_path = ''
"""


def test_the_containerd_config_script_edits_a_2x_layout_in_the_right_sections(example: Path, tmp_path: Path) -> None:
    """The script's containerd_config() against a stand-in `containerd config default` of 2.x."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "containerd").write_text(f"#!/bin/sh\ncat <<'EOF'\n{CONTAINERD_2_DEFAULT}EOF\n")
    (bin_dir / "containerd").chmod(0o755)
    script = (example / "node-worker1" / "apply.sh").read_text()
    function = shell_function(script, "containerd_config") + shell_function(script, "registry_config_path")
    result = subprocess.run(["bash", "-c", 'die() { echo "die: $*"; exit 1; }\n' + function + "containerd_config"],
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "      config_path = '/etc/containerd/certs.d'" in lines
    assert lines[lines.index("  [plugins.'io.containerd.transfer.v1.local']") + 1] == "    config_path = ''"
    assert "      SystemdCgroup = true" in lines


def test_an_ignition_node_s_apply_sh_leaves_containerd_to_flatcar(run: Run, inv: Path, tmp_path: Path) -> None:
    assert run("node", "c1", "10.0.0.11").code == 0
    assert run("node", "f1", "10.0.0.31", "--master", "c1", "--format", "ignition").code == 0
    script = inv / "node-f1" / "apply.sh"
    assert "core@10.0.0.31" in script.read_text() and "containerd config" not in script.read_text()
    check = subprocess.run([require_tool("shellcheck"), "--shell=bash", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    root = tmp_path / "node-root"
    result = apply(script, root)
    assert result.returncode == 0, result.stderr
    assert "/var/lib/kubelet/pki/kubelet.crt" in installed(result)
    assert "/etc/containerd/config.toml" not in installed(result)


def test_an_older_folder_s_renew_sh_gives_way_to_apply_sh(run: Run, example: Path) -> None:
    folder = example / "node-worker1"
    state = json.loads((folder / ".isobuild.json").read_text())
    del state["applied"]  # as a folder made by an isobuild before apply.sh (other templates)
    state["inputs"] = "made-by-an-older-isobuild"
    (folder / ".isobuild.json").write_text(json.dumps(state))
    (folder / "renew.sh").write_text("#!/bin/sh\n")
    result = run("build", "--json")
    assert result.code == 0, result.err
    assert not (folder / "renew.sh").exists()
    assert "worker1: a running node needs its apply.sh" in result.err  # it never had one: run it once


def test_apply_sh_refuses_unknown_arguments(example: Path) -> None:
    script = example / "node-worker1/apply.sh"
    result = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage:" in result.stderr


def test_a_run_cut_short_is_finished_by_the_next(example: Path, tmp_path: Path) -> None:
    """A run killed while a static pod's manifest was moved aside, or before its restarts: the next
    run puts the manifest back first and still restarts what the first one planned."""
    script = example / "node-controller" / "apply.sh"
    root = tmp_path / "node-root"
    assert apply(script, root).returncode == 0
    (root / "etc/kubernetes/manifests").mkdir(parents=True)
    parked = root / "etc/kubernetes/isobuild-parked"
    parked.mkdir(parents=True)
    (parked / "etcd.yaml").write_text("kind: Pod\n")
    (root / "var/lib/isobuild/apply-restarts").write_text("kube-apiserver\n")
    again = apply(script, root)
    assert again.returncode == 0, again.stderr
    assert "putting back etcd" in again.stderr
    assert (root / "etc/kubernetes/manifests/etcd.yaml").read_text() == "kind: Pod\n"
    assert planned_restarts(again) == ["kube-apiserver"]  # nothing differs, but its restart was owed
    assert not (root / "var/lib/isobuild/apply-restarts").exists()  # a scratch root restarts nothing


def test_a_vip_set_later_starts_kube_vip_on_the_running_controller(run: Run, inv: Path, tmp_path: Path) -> None:
    assert run("node", "c1", "10.0.0.11").code == 0
    root = tmp_path / "node-root"
    assert apply(inv / "node-c1/apply.sh", root).returncode == 0
    (root / "etc/kubernetes/manifests").mkdir(parents=True)
    (root / "etc/kubernetes/manifests/kube-apiserver.yaml").write_text("kind: Pod\n")  # it runs
    assert run("node", "c1", "--vip", "10.0.0.50").code == 0
    result = apply(inv / "node-c1/apply.sh", root)
    assert result.returncode == 0, result.stderr
    running = (root / "etc/kubernetes/manifests/kube-vip.yaml").read_bytes()
    assert running == (root / "etc/kubernetes/isobuild/kube-vip.yaml").read_bytes()
    assert b"10.0.0.50" in running and "kube-apiserver" in planned_restarts(result)  # its certificate has the VIP


def test_a_kept_hand_edit_of_user_data_reaches_the_running_node(run: Run, example: Path, tmp_path: Path) -> None:
    folder = example / "node-worker1"
    user_data = folder / CONFIG_2_USER_DATA
    config = yaml.safe_load(user_data.read_text())
    for entry in config["write_files"]:
        if entry["path"] == "/var/lib/kubelet/config.yaml":
            entry["content"] += "maxPods: 250\n"
    user_data.write_text("#cloud-config\n" + yaml.safe_dump(config))
    result = run("node", "worker1", "10.10.10.2", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["kept_edits"] == [CONFIG_2_USER_DATA]
    assert "/var/lib/kubelet/config.yaml" in json.loads(result.out)["to_apply"]
    root = tmp_path / "node-root"
    applied = apply(folder / "apply.sh", root)
    assert applied.returncode == 0, applied.stderr
    assert "maxPods: 250" in (root / "var/lib/kubelet/config.yaml").read_text()


def test_a_folder_where_a_file_belongs_is_one_error(example: Path, tmp_path: Path) -> None:
    root = tmp_path / "node-root"
    (root / "etc/kubernetes/kubelet.conf").mkdir(parents=True)
    result = apply(example / "node-worker1/apply.sh", root)
    assert result.returncode == 1
    assert "error: /etc/kubernetes/kubelet.conf is a folder where a file belongs" in result.stderr
    assert not list((root / "etc/kubernetes").glob("kubelet.conf*/*"))  # nothing dropped inside it


def test_hosts_keeps_the_operator_s_lines_after_the_marker_and_reads_crlf(run: Run, inv: Path, tmp_path: Path) -> None:
    assert run("node", "c1", "10.0.0.11", "--vip", "10.0.0.50", "--endpoint", "api.lab.test").code == 0
    root = tmp_path / "node-root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_bytes(
        f"127.0.0.1 localhost\r\n{HOSTS_MARKER}\r\n10.0.0.9 api.lab.test\r\n{HOSTS_MARKER}\n192.168.1.1 mybox\n".encode()
    )
    assert apply(inv / "node-c1/apply.sh", root).returncode == 0
    assert (root / "etc/hosts").read_bytes() == (
        f"127.0.0.1 localhost\r\n192.168.1.1 mybox\n{HOSTS_MARKER}\n10.0.0.50 api.lab.test\n".encode()
    )


def test_a_change_to_first_boot_scripts_alone_asks_nothing_of_running_nodes(run: Run, example: Path) -> None:
    cluster_yaml = example / "cluster.yaml"
    text = cluster_yaml.read_text()
    assert "containerd_version: '2.'" in text
    cluster_yaml.write_text(text.replace("containerd_version: '2.'", "containerd_version: 2.1.4"))
    result = run("build")
    assert result.code == 0, result.err
    assert "4 built" in result.err and "CONTAINERD_VERSION=2.1.4" in (example / "node-worker1/install.sh").read_text()
    assert "apply.sh" not in result.err and "isobuild push" not in result.err  # only install.sh changed
