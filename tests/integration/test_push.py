"""``isobuild push`` against a real OpenSSH server in a network namespace the test made: the node's
address exists only there, so no traffic leaves the machine. sshd's SetEnv points apply.sh at a
scratch root (ISOBUILD_ROOT), the one concession to running it on the test machine itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Run, require_tool, stop

NODE_IP = "10.77.0.2"  # the worker, as sshd in the namespace answers for it


@pytest.fixture
def node_root(tmp_path: Path) -> Path:
    return tmp_path / "node-root"


@pytest.fixture
def sshd(tmp_path: Path, node_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real sshd answering for NODE_IP inside a new network namespace, root login by key only;
    ISOBUILD_SSH is the real ssh client, run in that namespace. Yields the folder of its keys."""
    require_tool("ip")
    daemon = shutil.which("sshd") or "/usr/sbin/sshd"  # /usr/sbin may not be on a user's PATH
    if not Path(daemon).exists():
        require_tool("sshd")  # fails, naming the package
    keygen, ssh = require_tool("ssh-keygen"), require_tool("ssh")
    if os.geteuid() != 0:
        pytest.fail("network namespaces and sshd need root: run ./scripts/test.sh as root, as CI does")
    keys = tmp_path / "ssh"
    keys.mkdir(mode=0o700)
    for name in ("host", "id"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "id.pub").read_text())
    config = keys / "sshd_config"
    config.write_text(
        f"ListenAddress {NODE_IP}:22\nHostKey {keys / 'host'}\nPidFile none\nAuthorizedKeysFile {keys}/authorized_keys\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nStrictModes no\nSetEnv ISOBUILD_ROOT={node_root}\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    ns = f"isobuild-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    server = None
    log = (keys / "sshd.log").open("wb")
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{NODE_IP}/32", "dev", "lo"], check=True, capture_output=True)
        server = subprocess.Popen(["ip", "netns", "exec", ns, daemon, "-D", "-e", "-f", str(config)], stderr=log)
        client = (
            f"ip netns exec {ns} {ssh} -F /dev/null -i {keys / 'id'} -o BatchMode=yes -o ConnectTimeout=5 "
            f"-o UserKnownHostsFile={keys / 'known_hosts'} -o StrictHostKeyChecking=accept-new"
        )
        monkeypatch.setenv("ISOBUILD_SSH", client)
        for _ in range(50):  # until sshd listens
            probe = subprocess.run([*client.split(), f"root@{NODE_IP}", "true"], capture_output=True)
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"sshd did not answer: {(keys / 'sshd.log').read_text()}")
        yield keys
    finally:
        if server is not None:
            stop(server)
        log.close()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def push(inv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """isobuild push in a process of its own: ssh and the node's apply.sh write to its stdout/stderr."""
    command = [sys.executable, "-m", "isobuilder", "--inventory", str(inv), "push", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture
def cluster(run: Run, inv: Path) -> Path:
    assert run("node", "c1", "10.77.0.1").code == 0
    assert run("node", "w1", NODE_IP, "--master", "c1").code == 0
    return inv


def test_push_runs_apply_sh_on_the_node_over_ssh_and_a_second_push_finds_nothing(
    run: Run, cluster: Path, sshd: Path, node_root: Path
) -> None:
    result = push(cluster, "w1", "--user", "root")
    assert result.returncode == 0, result.stderr
    assert "apply[w1]: installed:" in result.stderr  # the node's own log lines, through ssh
    assert "would restart: containerd kubelet (a scratch root)" in result.stderr
    assert "push: 1 node(s) applied" in result.stderr
    installed = (node_root / "var/lib/kubelet/pki/kubelet.crt").read_bytes()
    assert installed == (cluster / "node-w1/ssl/kubelet.crt").read_bytes()

    assert run("node", "w1", "--label", "zone=z1").code == 0
    check = push(cluster, "w1", "--user", "root", "--check")
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["/var/lib/kubelet/kubeadm-flags.env"]  # --check: the list, nothing done
    assert "zone=z1" not in (node_root / "var/lib/kubelet/kubeadm-flags.env").read_text()
    assert push(cluster, "w1", "--user", "root").returncode == 0
    assert "zone=z1" in (node_root / "var/lib/kubelet/kubeadm-flags.env").read_text()
    again = push(cluster, "w1", "--user", "root")
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_a_login_that_fails_is_one_error_line_naming_the_node(cluster: Path, sshd: Path) -> None:
    result = push(cluster, "w1", "c1", "--user", "nobody")
    assert result.returncode == 1
    assert "Error: push: c1 failed: ssh could not connect or log in; not pushed: w1" in result.stderr


def test_dry_run_prints_the_commands_controllers_first_and_runs_nothing(run: Run, cluster: Path) -> None:
    result = run("push", "w1", "c1", "--dry-run")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [line.split()[2] for line in lines] == ["10.77.0.1", f"{NODE_IP}"]  # ssh -T TARGET ...
    assert lines[1].endswith(f"< {cluster / 'node-w1' / 'apply.sh'}")
    assert "sudo -n bash -s" in lines[0]


def test_a_folder_behind_cluster_yaml_is_not_pushed(run: Run, cluster: Path) -> None:
    text = (cluster / "cluster.yaml").read_text().replace("  master: c1\n", "  master: c1\n  labels: {zone: z9}\n")
    (cluster / "cluster.yaml").write_text(text)
    result = run("push", "w1", "--dry-run")
    assert result.code == 1
    assert "node-w1/ is not built from cluster.yaml as it is now" in result.err
    assert "isobuild build w1 first" in result.err


def test_push_refuses_unknown_nodes_bad_users_and_a_missing_ssh(
    run: Run, cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "Error: no node 'w9' in cluster.yaml" in run("push", "w9").err
    assert "is not a login name" in run("push", "w1", "--user", "-oProxyCommand=x").err
    monkeypatch.setenv("ISOBUILD_SSH", "/nonexistent/ssh")
    result = run("push", "w1")
    assert result.code == 1 and "Error: /nonexistent/ssh not found" in result.err


def test_push_refuses_all_with_names_odd_logins_and_a_non_executable_ssh(
    run: Run, cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "Error: --all and node names go separately" in run("push", "w1", "--all", "--dry-run").err
    for user in ("a\x01", "root@evil", "a b", "-oProxyCommand=x", "9lives"):
        result = run("push", "w1", "--user", user, "--dry-run")
        assert result.code == 1 and "is not a login name" in result.err, user
    monkeypatch.setenv("ISOBUILD_SSH", str(cluster))  # a folder
    result = run("push", "w1", "--dry-run")
    assert result.code == 1 and "is not an executable file" in result.err
