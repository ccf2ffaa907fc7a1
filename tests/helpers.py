"""Shared test helpers: running the CLI, example clusters, real tools (etcd, kubectl) and
readers of what isobuild writes. Test modules import from here, never from each other."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gzip
import json
import os
import shutil
import socket
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

EPOCH = "1700000000"  # SOURCE_DATE_EPOCH for reproducible ISOs in tests


CONFIG_2_USER_DATA = "cloud-config/openstack/latest/user_data"
NOCLOUD_USER_DATA = "cloud-config/user-data"


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


def require_tool(name: str) -> str:
    """The path of a real tool the tests need; scripts/test.sh installs them all."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run ./scripts/test.sh (as root it installs the test tools)")
    return path


SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsbTdJzNbbDHbxL2eGJc0ZqCdOMd4ky7AJJLYl9o6Lp test@isobuild"


def build_example(run: Run, ssh_key_file: Path) -> None:
    """The README's example cluster."""
    for args in (
        ("node", "controller", "10.10.10.1", "--ssh-key", str(ssh_key_file)),
        ("node", "worker1", "10.10.10.2", "--master", "10.10.10.1"),
        ("node", "worker2", "10.10.10.3", "--master", "10.10.10.1"),
        ("node", "example.com", "123.234.234.123", "--master", "10.10.10.1", "--role", "edge"),
        ("kubeconfig",),
    ):
        result = run(*args)
        assert result.code == 0, result.err


@contextlib.contextmanager
def _fixed_epoch() -> Iterator[None]:
    """SOURCE_DATE_EPOCH for session fixtures (monkeypatch is per test)."""
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        yield
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old


# The issue's mixed cluster: a Flatcar controller (Ignition), Ubuntu workers (cloud-config), NoCloud
# drives, static addresses on three nodes (one of them IPv6-free Flatcar on NoCloud: Proxmox's path).
MIXED = (
    ["node", "ctrl", "10.10.10.1/24", "--format", "ignition", "--mac", "52:54:00:00:00:01",
     "--gateway", "10.10.10.254", "--dns", "1.1.1.1", "--dns", "9.9.9.9", "--mtu", "9000"],
    ["node", "worker1", "10.10.10.2/24", "--master", "10.10.10.1", "--mac", "52:54:00:00:00:02",
     "--gateway", "10.10.10.254", "--dns", "10.10.10.53"],
    ["node", "worker2", "10.10.10.3", "--master", "10.10.10.1", "--media", "nocloud"],
    ["node", "worker3", "10.10.10.4/24", "--master", "10.10.10.1", "--format", "ignition", "--media", "nocloud",
     "--mac", "52:54:00:00:00:04", "--gateway", "10.10.10.254"],
    ["node", "edge", "192.0.2.10/28", "--master", "10.10.10.1", "--role", "edge", "--media", "nocloud",
     "--mac", "52:54:00:00:00:05", "--gateway", "192.0.2.1", "--dns", "192.0.2.2"],
)  # fmt: skip


def node_folders(inventory: Path) -> list[Path]:
    return sorted(p for p in inventory.glob("node-*") if p.is_dir())


Snapshot = dict[str, tuple[bytes, int, int]]


def snapshot(root: Path) -> Snapshot:
    """Every file's bytes, mode and mtime (the lock file aside)."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "lock"
    }


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


IGNITION_NODES = {"ctrl": CONFIG_2_USER_DATA, "worker3": NOCLOUD_USER_DATA}


def decode(contents: dict[str, Any]) -> bytes:
    """A file's bytes from its Ignition ``contents`` (data URL, optionally gzip)."""
    header, _, payload = contents["source"].partition(",")
    assert header in ("data:", "data:;base64"), header
    data = base64.b64decode(payload) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
    return gzip.decompress(data) if contents.get("compression") == "gzip" else data


def config_of(inventory: Path, node: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((inventory / f"node-{node}" / IGNITION_NODES[node]).read_text())
    return data


def files_of(config: dict[str, Any]) -> dict[str, tuple[int, bytes]]:
    return {f["path"]: (f["mode"], decode(f["contents"])) for f in config["storage"]["files"]}


SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's cloud-init package lives in the system Python


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tool_env(**extra: str) -> dict[str, str]:
    """The test's environment without proxies (loopback only), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(extra)
    return env


# -- etcd --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Etcd:
    url: str
    pki: Path  # the controller's ssl/ folder (kubeadm's /etc/kubernetes/pki)
    log: Path

    def ctl(
        self, *args: str, cert: Path, key: Path, ca: Path | None = None, timeout: str = "5s"
    ) -> subprocess.CompletedProcess[str]:
        """etcdctl; a refused handshake makes it retry until ``timeout``, so refusal tests pass a short one."""
        command = [
            require_tool("etcdctl"),
            "--endpoints",
            self.url,
            "--cacert",
            str(ca or self.pki / "etcd" / "ca.crt"),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--dial-timeout",
            timeout,
            "--command-timeout",
            timeout,
            *args,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=tool_env(ETCDCTL_API="3"))

    def ctl_as(self, stem: str, *args: str, timeout: str = "5s") -> subprocess.CompletedProcess[str]:
        return self.ctl(*args, cert=self.pki / f"{stem}.crt", key=self.pki / f"{stem}.key", timeout=timeout)

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def etcd_command(name: str, pki: Path, client: str, peer: str, initial_cluster: str, data_dir: Path) -> list[str]:
    """etcd as kubeadm's static pod runs it: TLS for clients and peers, each side's certificate checked."""
    return [
        require_tool("etcd"),
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={initial_cluster}",
        "--initial-cluster-state=new",
        f"--listen-metrics-urls=http://127.0.0.1:{free_port()}",
        f"--cert-file={pki / 'etcd/server.crt'}",
        f"--key-file={pki / 'etcd/server.key'}",
        "--client-cert-auth",
        f"--trusted-ca-file={pki / 'etcd/ca.crt'}",
        f"--peer-cert-file={pki / 'etcd/peer.crt'}",
        f"--peer-key-file={pki / 'etcd/peer.key'}",
        "--peer-client-cert-auth",
        f"--peer-trusted-ca-file={pki / 'etcd/ca.crt'}",
    ]


def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    home = Path(os.environ["HOME"])  # conftest points HOME into tmp_path
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [require_tool("kubectl"), "--request-timeout=10s", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=tool_env(HOME=str(home)),
    )


def set_settings(inventory: Path, text: str) -> None:
    """Top-level settings of ``text`` (YAML) in place of cluster.yaml's one-line ones."""
    cluster = inventory / "cluster.yaml"
    keys = {line.split(":", 1)[0] for line in text.splitlines() if line and not line.startswith((" ", "-"))}
    body = "".join(line for line in cluster.read_text().splitlines(keepends=True) if line.split(":", 1)[0] not in keys)
    cluster.write_text(body.replace("\nnodes:", "\n" + text + "nodes:", 1))


def shell_function(script: str, name: str) -> str:
    """The definition of shell function ``name`` in ``script`` (up to its closing brace)."""
    start = script.index(f"{name}() {{")
    return script[start : script.index("\n}\n", start) + 3]
