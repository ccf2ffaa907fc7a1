"""The generated PKI, checked by real tools: ``openssl verify`` and ``cryptography``'s parser.

Each certificate is held to kubeadm's expectations: subject, SANs, usages, chain to the
right one of the three CAs. Node folders and config drives are scanned for private keys
that must never leave the workstation.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.helpers import Run, node_folders, require_tool

SERVER = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH

APISERVER_SANS = frozenset(
    {
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "controller",
        "10.96.0.1",
        "10.10.10.1",
        "127.0.0.1",
    }
)
ETCD_SANS = frozenset({"controller", "localhost", "10.10.10.1", "127.0.0.1", "::1"})
NODE_IPS = {
    "controller": "10.10.10.1",
    "worker1": "10.10.10.2",
    "worker2": "10.10.10.3",
    "example.com": "123.234.234.123",
}
WORKERS = ("worker1", "worker2", "example.com")  # the edge router is a worker for PKI purposes

# CA file stems (under ssl/) and their subjects
CAS = {"ca": "kubernetes", "etcd/ca": "etcd-ca", "front-proxy-ca": "front-proxy-ca"}


@dataclasses.dataclass(frozen=True)
class Expect:
    """What one leaf certificate must say."""

    ca: str  # CA file stem under the workstation's ssl/
    cn: str
    orgs: tuple[str, ...] = ()
    sans: frozenset[str] = frozenset()
    server: bool = False
    client: bool = False


def kubelet_expect(name: str, *extra_sans: str) -> Expect:
    sans = frozenset({name, NODE_IPS[name], *extra_sans})
    return Expect("ca", f"system:node:{name}", ("system:nodes",), sans, server=True, client=True)


CONTROLLER_LEAVES: dict[str, Expect] = {
    "apiserver": Expect("ca", "kube-apiserver", sans=APISERVER_SANS, server=True),
    "apiserver-kubelet-client": Expect("ca", "kube-apiserver-kubelet-client", client=True),
    "apiserver-etcd-client": Expect("etcd/ca", "kube-apiserver-etcd-client", client=True),
    "front-proxy-client": Expect("front-proxy-ca", "front-proxy-client", client=True),
    "etcd/server": Expect("etcd/ca", "controller", sans=ETCD_SANS, server=True, client=True),
    "etcd/peer": Expect("etcd/ca", "controller", sans=ETCD_SANS, server=True, client=True),
    "etcd/healthcheck-client": Expect("etcd/ca", "kube-etcd-healthcheck-client", client=True),
    "admin": Expect("ca", "kubernetes-admin", ("kubeadm:cluster-admins",), client=True),
    "controller-manager": Expect("ca", "system:kube-controller-manager", client=True),
    "scheduler": Expect("ca", "system:kube-scheduler", client=True),
    "kubelet": kubelet_expect("controller", "127.0.0.1"),  # the node's --san goes on its kubelet cert too
}
WORKSTATION_ADMIN = Expect("ca", "kubernetes-admin", ("kubeadm:cluster-admins",), client=True)

# (cert path relative to the inventory, expectation): every leaf the example cluster holds
LEAVES: list[tuple[str, Expect]] = [
    *((f"node-controller/ssl/{stem}.crt", e) for stem, e in CONTROLLER_LEAVES.items()),
    *((f"node-{name}/ssl/kubelet.crt", kubelet_expect(name)) for name in WORKERS),
    ("ssl/admin.crt", WORKSTATION_ADMIN),
]
LEAF_IDS = [rel.removesuffix(".crt").replace("/ssl/", ":") for rel, _ in LEAVES]


# -- helpers -----------------------------------------------------------------------------------
def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def subject(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    cn = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    assert len(cn) == 1, cert.subject
    return cn[0], orgs


def san_set(cert: x509.Certificate) -> frozenset[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset()
    assert not san.critical  # the subject is not empty, so SAN is not critical (RFC 5280 4.2.1.6)
    dns = [str(n) for n in san.value.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)]
    assert len(dns) + len(ips) == len(san.value), "only DNS and IP SANs are expected"
    assert len(set(dns + ips)) == len(dns) + len(ips), "duplicate SANs"
    return frozenset(dns + ips)


def key_usage(cert: x509.Certificate) -> x509.KeyUsage:
    ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ext.critical
    return ext.value


def ski(cert: x509.Certificate) -> bytes:
    ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not ext.critical
    assert ext.value.digest == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return ext.value.digest


def aki(cert: x509.Certificate) -> bytes:
    ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert not ext.critical
    assert ext.value.key_identifier is not None
    return ext.value.key_identifier


def lifetime(cert: x509.Certificate) -> dt.timedelta:
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def assert_days(cert: x509.Certificate, days: int) -> None:
    assert abs(lifetime(cert) - dt.timedelta(days=days)) < dt.timedelta(hours=1), lifetime(cert)


def openssl_verify(ca: Path, cert: Path, purpose: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("openssl"), "verify", "-x509_strict", "-CAfile", str(ca), "-purpose", purpose, str(cert)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_verifies(ca: Path, cert: Path, purpose: str) -> None:
    result = openssl_verify(ca, cert, purpose)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{cert}: OK"


def pem_body_lines(pem: bytes) -> list[bytes]:
    """The base64 lines of a PEM file: what a config drive carries when it embeds the file."""
    lines = [line.strip() for line in pem.splitlines()]
    body = [line for line in lines if line and not line.startswith(b"-----")]
    assert body, pem
    return body


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def node_leaves(folder: Path) -> list[Path]:
    ssl = folder / "ssl"
    cas = {ssl / f"{stem}.crt" for stem in CAS}
    return sorted(p for p in ssl.rglob("*.crt") if p not in cas)


# -- openssl verify ----------------------------------------------------------------------------
@pytest.mark.parametrize(("rel", "expect"), LEAVES, ids=LEAF_IDS)
def test_openssl_verifies_leaf_against_its_ca(shared_example: Path, rel: str, expect: Expect) -> None:
    cert = shared_example / rel
    ca = shared_example / "ssl" / f"{expect.ca}.crt"
    purposes = [p for p, on in (("sslserver", expect.server), ("sslclient", expect.client)) if on]
    assert purposes
    for purpose in purposes:
        assert_verifies(ca, cert, purpose)


def test_example_leaves_are_all_covered(shared_example: Path) -> None:
    """Every leaf certificate on disk is one LEAVES checks (a new identity must be added there)."""
    on_disk = {
        str(p.relative_to(shared_example)) for folder in node_folders(shared_example) for p in node_leaves(folder)
    }
    on_disk.add("ssl/admin.crt")
    assert on_disk == {rel for rel, _ in LEAVES}


def test_openssl_refuses_wrong_ca_and_wrong_purpose(shared_example: Path) -> None:
    ssl = shared_example / "ssl"
    kubelet = shared_example / "node-worker1" / "ssl" / "kubelet.crt"
    wrong_ca = openssl_verify(ssl / "etcd" / "ca.crt", kubelet, "sslclient")
    assert wrong_ca.returncode != 0
    assert "unable to get local issuer certificate" in wrong_ca.stdout + wrong_ca.stderr

    controller = shared_example / "node-controller" / "ssl"
    # the etcd client cert is not accepted by the kubernetes CA, nor as a server
    assert openssl_verify(ssl / "ca.crt", controller / "apiserver-etcd-client.crt", "sslclient").returncode != 0
    assert (
        openssl_verify(ssl / "etcd" / "ca.crt", controller / "apiserver-etcd-client.crt", "sslserver").returncode != 0
    )
    # the apiserver's serving cert is no client cert
    refused = openssl_verify(ssl / "ca.crt", controller / "apiserver.crt", "sslclient")
    assert refused.returncode != 0
    assert "unsuitable certificate purpose" in refused.stdout + refused.stderr


def test_openssl_checks_key_matches_certificate(shared_example: Path) -> None:
    """Each .key belongs to its .crt (openssl compares the public keys)."""
    openssl = require_tool("openssl")
    for folder in [shared_example, *node_folders(shared_example)]:
        for crt in sorted((folder / "ssl").rglob("*.crt")):
            key = crt.with_suffix(".key")
            if crt == folder / "ssl" / "ca.crt" and folder.name.removeprefix("node-") in WORKERS:
                assert not key.exists()
                continue
            assert key.is_file(), key
            from_cert = subprocess.run(
                [openssl, "x509", "-noout", "-pubkey", "-in", str(crt)], capture_output=True, text=True, timeout=60
            )
            from_key = subprocess.run(
                [openssl, "pkey", "-pubout", "-in", str(key)], capture_output=True, text=True, timeout=60
            )
            assert from_cert.returncode == 0, from_cert.stderr
            assert from_key.returncode == 0, from_key.stderr
            assert from_cert.stdout == from_key.stdout, crt


# -- certificate contents ----------------------------------------------------------------------
@pytest.mark.parametrize("stem", list(CAS))
def test_ca_certificates(shared_example: Path, stem: str) -> None:
    cert = load_cert(shared_example / "ssl" / f"{stem}.crt")
    assert subject(cert) == (CAS[stem], ())
    assert cert.issuer == cert.subject
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca is True
    ku = key_usage(cert)
    assert ku.digital_signature
    assert ku.key_cert_sign
    assert not ku.key_encipherment  # ECDSA
    assert aki(cert) == ski(cert)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert_days(cert, 3650)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    # the node folders carry the very same CA certificates
    for folder in node_folders(shared_example):
        copy = folder / "ssl" / f"{stem}.crt"
        if copy.exists():
            assert copy.read_bytes() == (shared_example / "ssl" / f"{stem}.crt").read_bytes()


def check_leaf(inventory: Path, cert_path: Path, expect: Expect) -> None:
    cert = load_cert(cert_path)
    ca = load_cert(inventory / "ssl" / f"{expect.ca}.crt")
    assert subject(cert) == (expect.cn, expect.orgs)
    assert cert.issuer == ca.subject
    assert san_set(cert) == expect.sans
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical
    assert set(eku.value) == {u for u, on in ((SERVER, expect.server), (CLIENT, expect.client)) if on}
    ku = key_usage(cert)
    assert ku.digital_signature
    assert not ku.key_encipherment  # ECDSA: no key transport (RFC 5480)
    assert not ku.key_cert_sign
    assert not ku.crl_sign
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca is False
    assert ski(cert)
    assert aki(cert) == ski(ca)
    assert_days(cert, 365)
    assert cert.not_valid_after_utc < ca.not_valid_after_utc
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"


@pytest.mark.parametrize(
    ("rel", "expect"),
    LEAVES,
    ids=[rel.removesuffix(".crt").replace("/ssl/", ":") for rel, _ in LEAVES],
)
def test_leaf_certificate_contents(shared_example: Path, rel: str, expect: Expect) -> None:
    check_leaf(shared_example, shared_example / rel, expect)


def test_kubeconfig_embeds_workstation_admin_cert(shared_example: Path) -> None:
    config = yaml.safe_load((shared_example / "kubeconfig").read_text())
    (cluster,) = config["clusters"]
    (user,) = config["users"]
    assert cluster["cluster"]["server"] == "https://10.10.10.1:6443"
    assert (
        base64.b64decode(cluster["cluster"]["certificate-authority-data"])
        == (shared_example / "ssl/ca.crt").read_bytes()
    )
    assert base64.b64decode(user["user"]["client-certificate-data"]) == (shared_example / "ssl/admin.crt").read_bytes()
    assert base64.b64decode(user["user"]["client-key-data"]) == (shared_example / "ssl/admin.key").read_bytes()


# -- other key types ---------------------------------------------------------------------------
def test_rsa_cluster(run: Run, inv: Path) -> None:
    assert run("init", "--key-type", "rsa-2048").code == 0
    result = run("node", "c1", "10.0.0.1")
    assert result.code == 0, result.err
    ssl = inv / "node-c1" / "ssl"
    leaves = node_leaves(inv / "node-c1")
    assert len(leaves) == len(CONTROLLER_LEAVES)
    for crt in leaves:
        cert = load_cert(crt)
        public = cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey), crt
        assert public.key_size == 2048
        ku = key_usage(cert)
        assert ku.digital_signature, crt
        assert ku.key_encipherment, crt  # RSA key transport (TLS 1.2 RSA kex) needs it
        assert not ku.key_cert_sign, crt
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        key = serialization.load_pem_private_key(crt.with_suffix(".key").read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.public_key().public_numbers() == public.public_numbers()
        expect = CONTROLLER_LEAVES[str(crt.relative_to(ssl).with_suffix(""))]
        ca = inv / "ssl" / f"{expect.ca}.crt"
        for purpose, on in (("sslserver", expect.server), ("sslclient", expect.client)):
            if on:
                assert_verifies(ca, crt, purpose)
    for stem in CAS:
        ca_cert = load_cert(inv / "ssl" / f"{stem}.crt")
        assert isinstance(ca_cert.public_key(), rsa.RSAPublicKey)
        assert key_usage(ca_cert).key_cert_sign


def test_ecdsa_p384_cluster(run: Run, tmp_path: Path) -> None:
    inventory = tmp_path / "p384"
    assert run("init", "--key-type", "ecdsa-p384", inventory=inventory).code == 0
    assert run("node", "c1", "10.0.0.1", inventory=inventory).code == 0
    assert run("node", "w1", "10.0.0.2", "--master", "10.0.0.1", inventory=inventory).code == 0
    keys = sorted(inventory.rglob("*.key"))
    assert len(keys) >= 4 + len(CONTROLLER_LEAVES) + 1
    for key_path in keys:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey), key_path
        assert key.curve.name == "secp384r1", key_path
    for crt in sorted(inventory.rglob("*.crt")):
        cert = load_cert(crt)
        public = cert.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey), crt
        assert public.curve.name == "secp384r1", crt
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA384), crt
    assert_verifies(inventory / "ssl" / "ca.crt", inventory / "node-w1" / "ssl" / "kubelet.crt", "sslserver")
    assert_verifies(
        inventory / "ssl" / "etcd" / "ca.crt", inventory / "node-c1" / "ssl" / "etcd" / "peer.crt", "sslserver"
    )


# -- secrets stay where they belong ------------------------------------------------------------
def workstation_keys(inventory: Path) -> dict[str, bytes]:
    keys = {str(p.relative_to(inventory)): p.read_bytes() for p in sorted((inventory / "ssl").rglob("*.key"))}
    assert {"ssl/ca.key", "ssl/etcd/ca.key", "ssl/front-proxy-ca.key", "ssl/sa.key"} <= set(keys)
    return keys


def node_keys(inventory: Path) -> dict[str, dict[str, bytes]]:
    """Each node's own leaf keys (CA keys copied to controllers excluded)."""
    shared = set(workstation_keys(inventory).values())
    return {
        folder.name: {
            str(p.relative_to(inventory)): p.read_bytes()
            for p in sorted((folder / "ssl").rglob("*.key"))
            if p.read_bytes() not in shared
        }
        for folder in node_folders(inventory)
    }


@pytest.mark.parametrize("name", WORKERS)
def test_worker_folder_holds_no_foreign_private_key(shared_example: Path, name: str) -> None:
    folder = shared_example / f"node-{name}"
    ssl_files = {str(p.relative_to(folder / "ssl")) for p in files_under(folder / "ssl")}
    assert ssl_files == {"ca.crt", "kubelet.crt", "kubelet.key"}
    own = (folder / "ssl" / "kubelet.key").read_bytes()
    foreign = dict(workstation_keys(shared_example))
    for other, keys in node_keys(shared_example).items():
        if other != folder.name:
            foreign |= keys
    assert own not in foreign.values()
    for path in files_under(folder):
        content = path.read_bytes()
        for what, pem in foreign.items():
            assert content != pem, f"{path} is {what}"
            leaked = [line for line in pem_body_lines(pem) if line in content]
            assert not leaked, f"{path} holds part of {what}"


@pytest.mark.parametrize("name", WORKERS)
def test_worker_config_drive_carries_own_key_but_no_ca_key(shared_example: Path, name: str) -> None:
    folder = shared_example / f"node-{name}"
    iso = (folder / "config.iso").read_bytes()
    assert iso[0x8001:0x8006] == b"CD001"  # ISO9660 primary volume descriptor
    # positive control: the drive stores PEM text as is, so a scan for body lines is meaningful
    own = pem_body_lines((folder / "ssl" / "kubelet.key").read_bytes())
    assert all(line in iso for line in own)
    for what, pem in workstation_keys(shared_example).items():
        assert not any(line in iso for line in pem_body_lines(pem)), f"{what} leaked into {folder.name}/config.iso"
    for other, keys in node_keys(shared_example).items():
        if other == folder.name:
            continue
        for what, pem in keys.items():
            assert not any(line in iso for line in pem_body_lines(pem)), f"{what} leaked into {folder.name}/config.iso"


def test_controller_config_drive_carries_the_ca_keys(shared_example: Path) -> None:
    folder = shared_example / "node-controller"
    iso = (folder / "config.iso").read_bytes()
    for rel in ("ssl/ca.key", "ssl/etcd/ca.key", "ssl/front-proxy-ca.key", "ssl/sa.key"):
        pem = (shared_example / rel).read_bytes()
        assert all(line in iso for line in pem_body_lines(pem)), rel
        assert (folder / rel).read_bytes() == pem  # the controller's ssl/ holds the same CA key
    for name in WORKERS:
        kubelet = (shared_example / f"node-{name}" / "ssl" / "kubelet.key").read_bytes()
        assert not any(line in iso for line in pem_body_lines(kubelet)), name


def test_private_key_files_are_owner_only(shared_example: Path) -> None:
    for key in sorted(shared_example.rglob("*.key")):
        assert key.stat().st_mode & 0o077 == 0, key
