"""Certificates over time and CA protection: expiry checks and renewal under an injected clock,
external-CA mode, encrypted CA keys, user kubeconfigs (apply.sh: test_apply)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from isobuilder import configdrive, ignition, kubeconfig, pki
from tests.fake_apiserver import serving
from tests.helpers import Run, kubectl

PASS_ENV = "ISOBUILD_CA_PASSPHRASE"


def snapshot(root: Path) -> dict[str, str]:
    """Every file of a folder by content hash (and mode): equal snapshots, nothing changed."""
    return {
        p.relative_to(root).as_posix(): f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.stat().st_mode:o}"
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".isobuild/")
    }


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def keys(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.key"))}


def at(monkeypatch: pytest.MonkeyPatch, when: dt.datetime) -> None:
    monkeypatch.setenv("ISOBUILD_NOW", when.isoformat())


def issued_now(example: Path) -> dt.datetime:
    """When the example's certificates were issued (their notBefore is backdated 5 minutes)."""
    return cert(example / "node-worker1/ssl/kubelet.crt").not_valid_before_utc + pki.BACKDATE


# -- certs check / renew under an injected clock --------------------------------------------------
def test_check_flags_a_certificate_ten_days_from_expiry(
    run: Run, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = issued_now(example)
    fine = run("certs", "check")
    assert fine.code == 0, fine.err
    assert "none expired, none expires within 30 days" in fine.err
    now = issued + dt.timedelta(days=355, hours=1)  # leaves (365 days) have 9 days and 23 hours left
    at(monkeypatch, now)
    result = run("certs", "check", "--json")
    assert result.code == 1
    data = json.loads(result.out)
    expiring = [c for c in data["certificates"] if c["days_left"] < 30]
    assert data["expiring"] == len(expiring) > 0 and data["expired"] == 0
    assert {c["days_left"] for c in expiring} == {9}  # whole days, rounded down
    assert not any(c["expired"] for c in data["certificates"])
    assert {c["where"] for c in expiring} >= {"workstation", "node-controller", "node-worker1", "node-example.com"}
    assert not any(c["ca"] for c in expiring)  # the CAs have ten years
    assert data["certificates"] == sorted(data["certificates"], key=lambda c: (c["not_after"], c["path"]))
    assert "isobuild certs renew --all" in result.err
    # a lower threshold lets it pass: the exit code is the threshold's
    assert run("certs", "check", "--warn-days", "5").code == 0
    table = run("certs", "check").out.splitlines()
    assert table[0].split() == ["EXPIRES", "LEFT", "WHERE", "FILE", "SUBJECT", "ISSUER"]
    assert "9d !" in table[1]


def test_check_list_and_verify_call_an_expired_certificate_expired(
    run: Run, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(monkeypatch, issued_now(example) + dt.timedelta(days=366))
    result = run("certs", "check", "--json")
    assert result.code == 1
    data = json.loads(result.out)
    leaves = [c for c in data["certificates"] if not c["ca"]]
    assert all(c["expired"] and c["days_left"] < 0 for c in leaves)
    assert data["expired"] == len(leaves) and data["expiring"] == 0
    text = run("certs", "check")
    assert text.code == 1
    assert text.err.startswith(f"certs: of {len(data['certificates'])} certificate(s), {len(leaves)} expired (first: ")
    assert "expire within" not in text.err
    assert [line.split()[1] for line in text.out.splitlines()[1 : len(leaves) + 1]] == ["expired"] * len(leaves)
    listed = json.loads(run("list", "--json").out)
    assert {n["status"] for n in listed["nodes"]} == {"certs expired"}
    assert "list: certificates expired on controller, worker1" in run("list").err
    findings = json.loads(run("verify", "--json").out)["findings"]
    assert any(f.startswith("kubeconfig: its client certificate expired on ") for f in findings), findings
    assert any(f.startswith("node-worker1/ssl/kubelet.crt: expired on ") for f in findings), findings


def test_verify_checks_the_user_kubeconfigs_mode_and_expiry(
    run: Run, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("kubeconfig", "--user", "alice", "--group", "developers", "--days", "90").code == 0
    user = example / "users" / "alice.kubeconfig"
    assert run("verify").code == 0
    assert run("certs", "check").code == 0  # the README's example passes the recommended check
    user.chmod(0o644)
    assert json.loads(run("verify", "--json").out)["findings"] == ["users/alice.kubeconfig: mode 0644, want 0600"]
    user.chmod(0o600)
    pair = kubeconfig.keypair(user.read_bytes(), "alice")
    assert pair is not None
    at(monkeypatch, issued_now(example) + dt.timedelta(days=91))
    assert json.loads(run("verify", "--json").out)["findings"] == [
        f"users/alice.kubeconfig: its client certificate expired on "
        f"{pair.cert.not_valid_after_utc:%Y-%m-%d} (run isobuild kubeconfig --user alice)"
    ]


def test_renew_all_clears_the_warning_keeps_keys_and_never_touches_a_ca(
    run: Run, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = issued_now(example)
    later = issued + dt.timedelta(days=355)
    at(monkeypatch, later)
    ca_before = {n: (example / "ssl" / n).read_bytes() for n in ("ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key",
                 "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub")}  # fmt: skip
    keys_before = keys(example)
    iso_before = (example / "node-worker1/config.iso").read_bytes()
    kubelet_before = cert(example / "node-worker1/ssl/kubelet.crt")
    assert run("certs", "check").code == 1

    result = run("certs", "renew", "--all")
    assert result.code == 0, result.err
    assert "the CAs are unchanged" in result.err
    assert run("certs", "check").code == 0
    assert {n: (example / "ssl" / n).read_bytes() for n in ca_before} == ca_before  # byte-identical CAs
    assert keys(example) == keys_before  # same keys: nothing to redistribute but certificates
    renewed = cert(example / "node-worker1/ssl/kubelet.crt")
    assert renewed.serial_number != kubelet_before.serial_number
    assert renewed.subject == kubelet_before.subject
    assert abs(renewed.not_valid_after_utc - (later + dt.timedelta(days=365))) < dt.timedelta(seconds=5)
    assert renewed.public_key() == kubelet_before.public_key()
    # the drive carries the renewed certificate; the admin kubeconfig was renewed too
    iso = (example / "node-worker1/config.iso").read_bytes()
    assert iso != iso_before
    user_data = configdrive.read_iso(iso)[1]["openstack/latest/user_data"]
    new_pem = (example / "node-worker1/ssl/kubelet.crt").read_bytes()
    assert new_pem.splitlines()[1] in user_data
    admin = yaml.safe_load((example / "kubeconfig").read_text())
    admin_cert = x509.load_pem_x509_certificate(base64.b64decode(admin["users"][0]["user"]["client-certificate-data"]))
    assert admin_cert.not_valid_after_utc > later + dt.timedelta(days=364)
    assert admin_cert == cert(example / "ssl/admin.crt")
    assert run("verify").code == 0


def test_renew_rotate_keys_replaces_only_the_named_nodes_keys(run: Run, example: Path) -> None:
    before = keys(example)
    ca = (example / "ssl/ca.key").read_bytes()
    result = run("certs", "renew", "worker1", "--rotate-keys")
    assert result.code == 0, result.err
    after = keys(example)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"node-worker1/ssl/kubelet.key"}
    assert (example / "ssl/ca.key").read_bytes() == ca
    assert run("verify").code == 0


def test_renew_refuses_a_leaf_that_would_outlive_its_ca(
    run: Run, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_end = cert(example / "ssl/ca.crt").not_valid_after_utc
    at(monkeypatch, ca_end - dt.timedelta(days=100))
    before = snapshot(example)
    result = run("certs", "renew", "--all")
    assert result.code == 1
    assert "would outlive its CA" in result.err
    assert snapshot(example) == before
    check = run("certs", "check", "--warn-days", "120")
    assert check.code == 1 and "plan a CA rotation" in check.err


def test_renew_needs_names_or_all(run: Run, example: Path) -> None:
    for args, message in (((), "name the nodes to renew"), (("worker1", "--all"), "not both"),
                          (("nosuch",), "node 'nosuch' is not in")):  # fmt: skip
        result = run("certs", "renew", *args)
        assert result.code == 1 and message in result.err, result.err


def test_cert_and_ca_days_on_init(run: Run, inv: Path) -> None:
    assert run("init", "--cert-days", "90", "--ca-days", "1000").code == 0
    assert run("node", "c1", "10.0.0.11").code == 0
    leaf, ca = cert(inv / "node-c1/ssl/apiserver.crt"), cert(inv / "ssl/ca.crt")
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 90
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days == 1000
    text = (inv / "cluster.yaml").read_text()
    assert "cert_days: 90" in text and "ca_days: 1000" in text
    result = run("init", "--cert-days", "400", "--ca-days", "300", inventory=inv.parent / "other")
    assert result.code == 1 and "longer than ca_days" in result.err


# -- external-CA mode ---------------------------------------------------------------------------------
def iso_blobs(iso: bytes) -> list[bytes]:
    """The ISO's bytes, plus every file inside an Ignition config on it (decoded)."""
    blobs = [iso]
    for content in configdrive.read_iso(iso)[1].values():
        if content.lstrip().startswith(b"{"):
            for entry in json.loads(content).get("storage", {}).get("files", []):
                raw = ignition.read_contents(entry.get("contents") or {})
                if raw is not None:
                    blobs.append(raw)
    return blobs


def test_external_ca_puts_no_ca_key_on_any_iso(run: Run, inv: Path) -> None:
    assert run("init", "--external-ca", "--endpoint", "api.lab.test").code == 0
    for args in (("node", "c1", "10.0.0.11"), ("node", "c2", "10.0.0.12", "--role", "controller", "--format", "ignition"),
                 ("node", "w1", "10.0.0.21", "--master", "10.0.0.11"), ("kubeconfig",)):  # fmt: skip
        result = run(*args)
        assert result.code == 0, result.err
    assert "external_ca: true" in (inv / "cluster.yaml").read_text()
    ca_keys = {n: (inv / "ssl" / n).read_bytes() for n in ("ca.key", "etcd/ca.key", "front-proxy-ca.key")}
    isos = sorted(inv.glob("node-*/config.iso"))
    assert len(isos) == 3
    for iso_path in isos:
        blobs = iso_blobs(iso_path.read_bytes())
        for name, key in ca_keys.items():
            body = key.strip().splitlines()
            for line in body[1:-1]:  # every base64 line of the key, wherever it might be pasted
                assert not any(line in blob for blob in blobs), (iso_path, name)
        ids = {k for blob in blobs for k in pki.private_keys_in(blob)}
        ca_ids = {pki.public_id(cert(inv / "ssl" / n.replace(".key", ".crt")).public_key()) for n in ca_keys}  # type: ignore[arg-type]
        assert not ids & ca_ids, iso_path
    # a controller gets every certificate and kubeconfig pre-issued, as kubeadm's external-CA mode wants
    c1 = inv / "node-c1"
    assert not list(c1.glob("ssl/**/ca.key")) and not (c1 / "ssl/front-proxy-ca.key").exists()
    written = {
        f["path"] for f in yaml.safe_load((c1 / "cloud-config/openstack/latest/user_data").read_text())["write_files"]
    }
    for conf in ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf"):
        assert f"/etc/kubernetes/{conf}" in written
    for leaf in ("apiserver", "apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-client",
                 "etcd/server", "etcd/peer", "etcd/healthcheck-client", "sa"):  # fmt: skip
        assert f"/etc/kubernetes/pki/{leaf}.key" in written
    assert "/etc/kubernetes/pki/ca.key" not in written
    super_admin = cert(c1 / "ssl/super-admin.crt")
    assert super_admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert run("verify").code == 0
    # image refuses a CA key planted on a controller's drive in this mode; verify tells one packed elsewhere
    (c1 / "cloud-config/extra.key").write_bytes(ca_keys["ca.key"])
    refused = run("image", str(c1))
    assert refused.code == 1 and refused.err.startswith(
        "Error: node-c1/cloud-config/extra.key holds a private key that is not this node's own"
    )
    drive = {p.relative_to(c1 / "cloud-config").as_posix(): p.read_bytes()
             for p in (c1 / "cloud-config").rglob("*") if p.is_file()}  # fmt: skip
    (c1 / "config.iso").write_bytes(configdrive.build_iso(drive, "config-2", 1700000000))
    findings = run("verify")
    assert findings.code == 1 and "node-c1/config.iso: carries the ca key (external-CA mode)" in findings.err


# -- CA keys encrypted at rest -------------------------------------------------------------------------
def test_encrypted_ca_keys_need_the_passphrase(run: Run, inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASS_ENV, "correct horse battery staple")
    assert run("init", "--encrypt-ca").code == 0
    for name in ("ca.key", "etcd/ca.key", "front-proxy-ca.key", "sa.key"):
        assert (inv / "ssl" / name).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), name
    # openssl reads it with the passphrase, and the key is the CA certificate's
    opened = subprocess.run(
        ["openssl", "pkey", "-in", str(inv / "ssl/ca.key"), "-passin", f"env:{PASS_ENV}", "-pubout"],
        capture_output=True, text=True, env={**os.environ},
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    expected = subprocess.run(["openssl", "x509", "-in", str(inv / "ssl/ca.crt"), "-noout", "-pubkey"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    assert opened.stdout == expected.stdout
    assert run("node", "c1", "10.0.0.11").code == 0
    # the controller receives a key kubeadm can read: decrypted
    assert b"ENCRYPTED" not in (inv / "node-c1/ssl/ca.key").read_bytes()
    assert pki.key_matches(cert(inv / "ssl/ca.crt"), pki.load_key((inv / "node-c1/ssl/ca.key").read_bytes(), "k"))

    before = snapshot(inv)
    monkeypatch.setenv(PASS_ENV, "wrong")
    result = run("node", "w1", "10.0.0.21", "--master", "10.0.0.11")
    assert result.code == 1
    assert result.err.splitlines()[0].startswith("Error: wrong passphrase for ")
    assert "Traceback" not in result.err
    assert snapshot(inv) == before  # nothing written: no folder, no cluster.yaml change
    monkeypatch.delenv(PASS_ENV)
    result = run("kubeconfig")
    assert result.code == 1 and "no terminal to ask" in result.err and "ISOBUILD_CA_PASSPHRASE" in result.err
    assert snapshot(inv) == before
    # what needs no CA key works without the passphrase
    assert run("list").code == 0 and run("certs", "check").code == 0 and run("verify").code == 0
    monkeypatch.setenv(PASS_ENV, "correct horse battery staple")
    assert run("node", "w1", "10.0.0.21", "--master", "10.0.0.11").code == 0


def test_encrypt_ca_needs_a_new_cluster_and_a_passphrase(run: Run, inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run("init", "--encrypt-ca")  # no env, no terminal (pytest's stdin)
    assert result.code == 1 and "no terminal to ask" in result.err
    assert not inv.exists() or not (inv / "cluster.yaml").exists()
    monkeypatch.setenv(PASS_ENV, "")
    assert "passphrase is empty" in run("init", "--encrypt-ca").err
    monkeypatch.delenv(PASS_ENV)
    assert run("node", "c1", "10.0.0.11").code == 0
    result = run("node", "c2", "10.0.0.12", "--encrypt-ca")
    assert result.code == 1 and "goes with a new cluster" in result.err


# -- least-privilege user kubeconfigs -------------------------------------------------------------------
def test_user_kubeconfig_is_least_privilege_and_works_with_kubectl(run: Run, example: Path) -> None:
    result = run("kubeconfig", "--user", "alice", "--group", "developers", "--days", "30")
    assert result.code == 0, result.err
    path = example / "users" / "alice.kubeconfig"
    assert path.stat().st_mode & 0o777 == 0o600
    config = yaml.safe_load(path.read_text())
    assert config["current-context"].startswith("alice@")
    user_cert = x509.load_pem_x509_certificate(base64.b64decode(config["users"][0]["user"]["client-certificate-data"]))
    assert user_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert [a.value for a in user_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["developers"]
    assert (user_cert.not_valid_after_utc - user_cert.not_valid_before_utc - pki.BACKDATE).days == 30
    assert "kubectl create rolebinding" in result.err
    again = run("kubeconfig", "--user", "alice", "--group", "developers", "--days", "30")
    assert again.code == 0, again.err
    assert yaml.safe_load(path.read_text()) == config  # same inputs: nothing re-issued
    listed = json.loads(run("certs", "check", "--json").out)["certificates"]
    assert any(c["path"] == "users/alice.kubeconfig" and c["subject"] == "alice (developers)" for c in listed)

    pki_dir = example / "node-controller" / "ssl"
    with serving(pki_dir / "apiserver.crt", pki_dir / "apiserver.key", example / "ssl" / "ca.crt") as server:
        answer = kubectl("--kubeconfig", str(path), "--server", server.url, "--tls-server-name", "kubernetes",
                         "get", "--raw", "/version")  # fmt: skip
        assert answer.returncode == 0, answer.stderr
    subjects = [dict(x[0] for x in peer["subject"]) for peer in server.clients]
    assert {"commonName": "alice", "organizationName": "developers"} in subjects


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--user", "mallory", "--group", "system:masters"), "more than least privilege"),
        (("--user", "mallory", "--group", "kubeadm:cluster-admins"), "more than least privilege"),
        (("--user", "system:node:w1"), "is reserved"),
        (("--user", "kubernetes-admin"), "is reserved"),
        (("--user", "bad name"), "invalid user name"),
        (("--group", "dev"), "go with --user"),
        (("--user", "bob", "--days", "0"), "--days: 0 is not a number of days"),
        (("--user", "bob", "--days", "4000"), "would outlive its CA"),
    ],
)
def test_user_kubeconfig_refusals(run: Run, example: Path, args: tuple[str, ...], message: str) -> None:
    before = snapshot(example)
    result = run("kubeconfig", *args)
    assert result.code == 1, result.err
    assert message in result.err
    assert snapshot(example) == before


def test_renew_all_renews_user_kubeconfigs_with_their_lifetime(run: Run, example: Path) -> None:
    assert run("kubeconfig", "--user", "bob", "--group", "ops", "--days", "7").code == 0
    path = example / "users" / "bob.kubeconfig"
    first = yaml.safe_load(path.read_text())
    assert run("certs", "renew", "--all").code == 0
    second = yaml.safe_load(path.read_text())
    old, new = (x509.load_pem_x509_certificate(base64.b64decode(c["users"][0]["user"]["client-certificate-data"]))
                for c in (first, second))  # fmt: skip
    assert new.serial_number != old.serial_number
    assert (new.not_valid_after_utc - new.not_valid_before_utc).days == 7
    assert first["users"][0]["user"]["client-key-data"] == second["users"][0]["user"]["client-key-data"]


def test_a_user_kubeconfig_without_a_client_certificate_is_one_clean_error(run: Run, example: Path) -> None:
    users = example / "users"
    users.mkdir()
    (users / "eve.kubeconfig").write_text("apiVersion: v1\nkind: Config\nusers: []\n")
    before = snapshot(example)
    for args in (("certs", "check"), ("certs", "renew", "--all")):
        result = run(*args)
        assert result.code == 1, result.err
        assert result.err.splitlines()[0] == "Error: users/eve.kubeconfig holds no client certificate"
        assert "Traceback" not in result.err
    assert snapshot(example) == before  # renew --all stopped before renewing any node
