"""The generated certificates in real TLS handshakes: a real etcd with etcdctl, and kubectl
against a local TLS server standing in for kube-apiserver (same certificate, same client-cert check).
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from isobuilder.cli import main
from tests.fake_apiserver import FakeApiserver, serving
from tests.helpers import Etcd, Run, etcd_command, free_port, kubectl, require_tool, stop, tool_env


def other_cluster(run: Run, root: Path) -> Path:
    """A second, unrelated cluster: same layout, different CAs."""
    result = run("node", "other", "10.0.0.9", inventory=root)
    assert result.code == 0, result.err
    result = run("kubeconfig", inventory=root)
    assert result.code == 0, result.err
    return root


@pytest.fixture(scope="module")
def etcd(shared_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    """A one-member etcd on loopback, configured like kubeadm's static pod (TLS everywhere)."""
    require_tool("etcdctl")
    pki = shared_example / "node-controller" / "ssl"
    root = tmp_path_factory.mktemp("etcd")
    client, peer = f"https://127.0.0.1:{free_port()}", f"https://127.0.0.1:{free_port()}"
    command = etcd_command("controller", pki, client, peer, f"controller={peer}", root / "data")
    log = root / "etcd.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=tool_env())
    server = Etcd(client, pki, log)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"etcd exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            health = server.ctl_as("etcd/healthcheck-client", "endpoint", "health", timeout="1s")
            if health.returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"etcd not healthy after 20 s: {health.stderr}\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield server
    finally:
        stop(process)


def test_etcd_apiserver_client_can_write_and_read(etcd: Etcd) -> None:
    put = etcd.ctl_as("apiserver-etcd-client", "put", "/isobuild/test", "hello")
    assert put.returncode == 0, put.stderr
    assert put.stdout.strip() == "OK"
    get = etcd.ctl_as("apiserver-etcd-client", "get", "/isobuild/test")
    assert get.returncode == 0, get.stderr
    assert get.stdout.splitlines() == ["/isobuild/test", "hello"]


def test_etcd_healthcheck_client(etcd: Etcd) -> None:
    health = etcd.ctl_as("etcd/healthcheck-client", "endpoint", "health")
    assert health.returncode == 0, health.stderr
    assert "is healthy" in health.stdout + health.stderr


def test_etcd_peer_cert_is_a_valid_client_too(etcd: Etcd) -> None:
    """kubeadm's etcd peer and server certs carry clientAuth: etcd dials peers and itself with them."""
    status = etcd.ctl_as("etcd/peer", "member", "list")
    assert status.returncode == 0, status.stderr
    assert "controller" in status.stdout
    assert etcd.url in status.stdout


def test_etcd_refuses_another_clusters_client_cert(etcd: Etcd, run: Run, tmp_path: Path) -> None:
    other = other_cluster(run, tmp_path / "other") / "node-other" / "ssl"
    offset = etcd.log_size()
    refused = etcd.ctl(
        "put",
        "/isobuild/intruder",
        "x",
        cert=other / "apiserver-etcd-client.crt",
        key=other / "apiserver-etcd-client.key",
        timeout="1s",
    )
    assert refused.returncode != 0, refused.stdout
    # etcd itself refused the handshake (not, say, a timeout on the client side only)
    log = etcd.log_since(offset)
    assert "rejected connection" in log
    assert "failed to verify client certificate" in log
    # and nothing was written
    get = etcd.ctl_as("apiserver-etcd-client", "get", "/isobuild/intruder")
    assert get.returncode == 0, get.stderr
    assert get.stdout == ""


def test_etcd_refuses_kubernetes_ca_client_cert(etcd: Etcd) -> None:
    """Signed by the cluster's main CA, not etcd's: the admin certificate does not open etcd."""
    offset = etcd.log_size()
    refused = etcd.ctl_as("admin", "get", "/isobuild/test", timeout="1s")
    assert refused.returncode != 0, refused.stdout
    assert "failed to verify client certificate" in etcd.log_since(offset)


def test_etcdctl_refuses_etcd_with_wrong_ca(etcd: Etcd, shared_example: Path) -> None:
    """etcdctl checks etcd's serving cert: the kubernetes CA did not sign it."""
    refused = etcd.ctl(
        "get",
        "/isobuild/test",
        cert=etcd.pki / "apiserver-etcd-client.crt",
        key=etcd.pki / "apiserver-etcd-client.key",
        ca=shared_example / "ssl" / "ca.crt",
        timeout="1s",
    )
    assert refused.returncode != 0, refused.stdout


# -- kubectl against a TLS server holding the apiserver certificate ---------------------------
@pytest.fixture
def apiserver(shared_example: Path) -> Iterator[FakeApiserver]:
    pki = shared_example / "node-controller" / "ssl"
    with serving(pki / "apiserver.crt", pki / "apiserver.key", shared_example / "ssl" / "ca.crt") as server:
        yield server


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path) -> Path:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": "u", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "u@c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "u@c",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def assert_version(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["gitVersion"] == "v1.37.1"


def client_cn(server: FakeApiserver) -> list[str]:
    return [
        value for peer in server.clients for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"
    ]


def test_kubectl_with_generated_kubeconfig(apiserver: FakeApiserver, shared_example: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(shared_example, inventory, symlinks=True)
    target = tmp_path / "kubeconfig"
    assert main(["-q", "--inventory", str(inventory), "kubeconfig", "--server", apiserver.url, "-o", str(target)]) == 0
    result = kubectl("--kubeconfig", str(target), "get", "--raw", "/version")
    assert_version(result)
    assert "/version" in apiserver.paths
    assert not apiserver.refused
    assert set(client_cn(apiserver)) == {"kubernetes-admin"}


def test_kubectl_with_inventory_kubeconfig_and_server_override(apiserver: FakeApiserver, shared_example: Path) -> None:
    """The shipped kubeconfig (server 10.10.10.1) reaches the apiserver by its SAN ``kubernetes``."""
    result = kubectl(
        "--kubeconfig",
        str(shared_example / "kubeconfig"),
        "--server",
        apiserver.url,
        "--tls-server-name",
        "kubernetes",
        "get",
        "--raw",
        "/version",
    )
    assert_version(result)
    assert not apiserver.refused


def test_kubectl_tls_server_name_must_be_a_san(apiserver: FakeApiserver, shared_example: Path) -> None:
    result = kubectl(
        "--kubeconfig",
        str(shared_example / "kubeconfig"),
        "--server",
        apiserver.url,
        "--tls-server-name",
        "not-the-apiserver",
        "get",
        "--raw",
        "/version",
    )
    assert result.returncode != 0
    assert "x509: certificate is valid for" in result.stderr
    assert "not not-the-apiserver" in result.stderr
    assert "/version" not in apiserver.paths


def test_kubectl_client_cert_from_another_cluster_is_refused(
    apiserver: FakeApiserver, shared_example: Path, run: Run, tmp_path: Path
) -> None:
    other = other_cluster(run, tmp_path / "other")
    config = write_kubeconfig(
        tmp_path / "intruder.conf",
        apiserver.url,
        shared_example / "ssl" / "ca.crt",  # trusts our apiserver...
        other / "ssl" / "admin.crt",  # ...but authenticates with the other cluster's admin
        other / "ssl" / "admin.key",
    )
    result = kubectl("--kubeconfig", str(config), "get", "--raw", "/version")
    assert result.returncode != 0, result.stdout
    # TLS 1.3 checks the client's certificate after the client has sent its request: kubectl
    # reads the server's alert, or, when the server closes first, a reset. The server's side
    # (below) is what shows the refusal.
    assert "unknown certificate authority" in result.stderr or "connection reset by peer" in result.stderr
    assert "/version" not in apiserver.paths
    assert apiserver.refused, "the server never saw a refused handshake"
    assert any(isinstance(e, ssl.SSLError) and e.reason == "CERTIFICATE_VERIFY_FAILED" for e in apiserver.refused), (
        apiserver.refused
    )


def test_kubectl_with_another_clusters_ca_refuses_the_server(
    apiserver: FakeApiserver, shared_example: Path, run: Run, tmp_path: Path
) -> None:
    other = other_cluster(run, tmp_path / "other")
    config = write_kubeconfig(
        tmp_path / "wrong-ca.conf",
        apiserver.url,
        other / "ssl" / "ca.crt",
        shared_example / "ssl" / "admin.crt",
        shared_example / "ssl" / "admin.key",
    )
    result = kubectl("--kubeconfig", str(config), "get", "--raw", "/version")
    assert result.returncode != 0, result.stdout
    assert "certificate signed by unknown authority" in result.stderr
    assert "/version" not in apiserver.paths
    # kubectl hung up, not the server: our admin certificate was never the problem
    assert not any(getattr(e, "reason", None) == "CERTIFICATE_VERIFY_FAILED" for e in apiserver.refused)


def test_kubectl_sees_two_clusters_of_one_name_merged_side_by_side(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = tmp_path / "config"
    monkeypatch.setenv("KUBECONFIG", str(kube))
    for inv, extra in ((tmp_path / "a", ()), (tmp_path / "b", ("--context", "lab-b"))):
        assert run("node", "c1", "10.0.0.1", "--name", "lab", inventory=inv).code == 0
        assert run("kubeconfig", "--merge", *extra, inventory=inv).code == 0
    contexts = kubectl("--kubeconfig", str(kube), "config", "get-contexts", "-o", "name")
    assert contexts.returncode == 0, contexts.stderr
    assert contexts.stdout.split() == ["kubernetes-admin@lab", "lab-b"]
    view = kubectl("--kubeconfig", str(kube), "config", "view", "--raw", "-o", "json", "--context", "lab-b", "--minify")
    assert json.loads(view.stdout)["clusters"][0]["name"] == "lab-b"
