"""Keys and X.509 certificates, built in memory on ``cryptography``.

Pure: every function takes what it needs (the clock included) and returns values.
Writing PEM bytes to disk is ``inventory``'s job. Shaped after trustme: one shared
builder for the common fields, CA and leaf add only what differs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from functools import cached_property
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from isobuilder.errors import IsobuildError
from isobuilder.keys import KeySource, PrivateKey, generate_key
from isobuilder.model import KeyType, is_ip

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

# Tolerate a few minutes of clock skew between the workstation and fresh nodes.
BACKDATE = dt.timedelta(minutes=5)


def key_type_of(key: PrivateKey | PublicKey) -> KeyType:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return KeyType(f"rsa-{key.key_size}") if key.key_size in (2048, 3072, 4096) else KeyType.RSA_2048
    return KeyType.ECDSA_P384 if key.curve.name == "secp384r1" else KeyType.ECDSA_P256


def key_to_pem(key: PrivateKey) -> bytes:
    # kubeadm writes "EC PRIVATE KEY" / "RSA PRIVATE KEY" (keyutil.MarshalPrivateKeyToPEM); so do we.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def public_key_to_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def is_encrypted(pem: bytes) -> bool:
    return pem.lstrip().startswith(ENCRYPTED_PEM)


def encrypt_key_pem(key: PrivateKey, passphrase: bytes) -> bytes:
    """PKCS#8, encrypted (PBKDF2 and AES-256, cryptography's best available): what
    ``openssl pkey -passin`` reads too."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase)
    )


def load_key(pem: bytes, what: str, passphrase: bytes | None = None) -> PrivateKey:
    try:
        # Our own keys, from the inventory: skip OpenSSL's RSA consistency check (~25 ms a key);
        # a key that does not match its certificate is refused by the callers (key_matches).
        key = serialization.load_pem_private_key(
            pem, password=passphrase if is_encrypted(pem) else None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError) as exc:
        if is_encrypted(pem):
            raise IsobuildError(
                f"wrong passphrase for {what}",
                hint="set ISOBUILD_CA_PASSPHRASE to the CA passphrase (or unset it to be asked); nothing was changed",
            ) from None
        raise IsobuildError(f"{what} is not a readable private key ({exc})", hint=_CORRUPT_HINT) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise IsobuildError(f"{what} is not an RSA or ECDSA key", hint=_CORRUPT_HINT)
    return key


def load_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise IsobuildError(f"{what} is not a readable certificate ({exc})", hint=_CORRUPT_HINT) from None


_CORRUPT_HINT = "restore the file from your backup of the inventory; isobuild never re-creates a CA by itself"


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A private key and its certificate, as PEM bytes."""

    key_pem: bytes
    cert_pem: bytes
    name: str = dataclasses.field(default="", compare=False)  # e.g. ssl/kubelet, for error messages

    @cached_property
    def key(self) -> PrivateKey:  # loaded once: loading an RSA key checks it, which costs ~20 ms
        return load_key(self.key_pem, f"{self.name}.key" if self.name else "private key")

    @cached_property
    def cert(self) -> x509.Certificate:
        return load_cert(self.cert_pem, f"{self.name}.crt" if self.name else "certificate")


def pair_of(key_pem: bytes | None, cert_pem: bytes | None, name: str) -> KeyPair | None:
    """The keypair of two PEM files, None when either is missing; both are loaded now, so a
    corrupt file is reported here, by ``name``."""
    if key_pem is None or cert_pem is None:
        return None
    pair = KeyPair(key_pem, cert_pem, name)
    pair.key, pair.cert  # noqa: B018
    return pair


class CertSpec(NamedTuple):
    """What a certificate asserts; two specs are equal when the certs would be interchangeable."""

    common_name: str
    organizations: tuple[str, ...] = ()
    sans: tuple[str, ...] = ()
    server: bool = False
    client: bool = False

    def dns_names(self) -> list[str]:
        return [s for s in self.sans if not is_ip(s)]

    def ip_addresses(self) -> list[str]:
        return [s for s in self.sans if is_ip(s)]


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _base(
    subject: x509.Name, public_key: PublicKey, issuer: x509.Name, now: dt.datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, rsa_key: bool, ca: bool) -> x509.KeyUsage:
    # RFC 5480: keyEncipherment is meaningless for ECDSA keys; only RSA key transport uses it.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue_ca(common_name: str, key: PrivateKey, now: dt.datetime, days: int) -> KeyPair:
    name = _name(common_name)
    public = key.public_key()
    cert = (
        _base(name, public, name, now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(rsa_key=isinstance(key, rsa.RSAPrivateKey), ca=True), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, _hash_for(key))
    )
    return KeyPair(key_to_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def issue_leaf(spec: CertSpec, key: PrivateKey, ca: KeyPair, now: dt.datetime, days: int) -> KeyPair:
    not_after = now + dt.timedelta(days=days)
    if not_after > ca.cert.not_valid_after_utc:
        raise IsobuildError(
            f"a {days}-day certificate for {spec.common_name!r} would outlive its CA "
            f"({ca.cert.subject.rfc4514_string()} expires {ca.cert.not_valid_after_utc:%Y-%m-%d})",
            hint="lower cert_days in cluster.yaml, or plan a CA rotation",
        )
    public = key.public_key()
    usages = [
        u
        for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, spec.server), (ExtendedKeyUsageOID.CLIENT_AUTH, spec.client))
        if on
    ]
    builder = (
        _base(_name(spec.common_name, spec.organizations), public, ca.cert.subject, now, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(rsa_key=isinstance(key, rsa.RSAPrivateKey), ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if spec.sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_general_names(spec)), critical=False)
    cert = builder.sign(ca.key, _hash_for(ca.key))
    return KeyPair(key_to_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def _general_names(spec: CertSpec) -> list[x509.GeneralName]:
    import ipaddress

    names: list[x509.GeneralName] = [x509.DNSName(n) for n in spec.dns_names()]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ip_addresses()]
    return names


# -- reading certificates back ---------------------------------------------------------------
def spec_of(cert: x509.Certificate) -> CertSpec:
    """The CertSpec a certificate satisfies; compared with the wanted one to decide on re-issue."""
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(
            [str(n) for n in san.get_values_for_type(x509.DNSName)]
            + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        sans = ()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = x509.ExtendedKeyUsage([])
    return CertSpec(
        common_name=str(cn[0]) if cn else "",
        organizations=orgs,
        sans=sans,
        server=ExtendedKeyUsageOID.SERVER_AUTH in eku,
        client=ExtendedKeyUsageOID.CLIENT_AUTH in eku,
    )


def same_spec(a: CertSpec, b: CertSpec) -> bool:
    return a._replace(sans=tuple(sorted(a.sans)), organizations=tuple(sorted(a.organizations))) == (
        b._replace(sans=tuple(sorted(b.sans)), organizations=tuple(sorted(b.organizations)))
    )


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Issued by ``ca``: its subject as issuer and its signature (any of RSA, ECDSA)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):  # a signature, or an issuer name, that differs
        return False
    return True


_PEM_KEY = re.compile(rb"-----BEGIN ((?:EC |RSA )?)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL)


def public_id(key: PrivateKey | PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo: equal for a private key and its certificate's public key."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_keys_in(blob: bytes) -> set[bytes]:
    """The public ids of every unencrypted PEM private key pasted anywhere in ``blob``
    (indented, as in a YAML block, or not)."""
    found = set()
    for match in _PEM_KEY.finditer(blob):
        # Each line as a reader would see it: indented, CRLF, or commented out ("# ", "; ").
        pem = b"\n".join(line.strip().lstrip(b"#;").strip() for line in match.group(0).splitlines()) + b"\n"
        try:
            key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError):
            continue
        if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            found.add(public_id(key))
    return found


def der_private_key_id(blob: bytes) -> bytes | None:
    """The public id of ``blob`` when it is a DER private key (PKCS#1, SEC1 or PKCS#8), else None."""
    if not blob.startswith(b"\x30") or len(blob) > 16384:
        return None
    try:
        key = serialization.load_der_private_key(blob, password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        return None
    return public_id(key) if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else None


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    return cert.public_key() == key.public_key()


def reusable(existing: KeyPair, spec: CertSpec, ca: KeyPair, now: dt.datetime) -> bool:
    """Keep an existing certificate when it still says exactly what we want, from this CA, in date."""
    cert = existing.cert
    return (
        same_spec(spec_of(cert), spec)
        and signed_by(cert, ca.cert)
        and key_matches(cert, existing.key)
        and cert.not_valid_after_utc > now
    )


class Renewal(NamedTuple):
    """``certs renew``: re-issue even a reusable certificate; ``rotate`` with a fresh key."""

    rotate: bool = False


def ensure_leaf(
    spec: CertSpec,
    ca: KeyPair,
    existing: KeyPair | None,
    key_type: KeyType,
    now: dt.datetime,
    days: int,
    renewal: Renewal | None = None,
    new_key: KeySource = generate_key,
) -> KeyPair:
    """The keypair for ``spec``: the existing one when reusable (and no renewal asked), else a
    re-issue that keeps the key (unless the cluster's key type changed or the renewal rotates),
    else a fresh key from ``new_key``."""
    if existing is not None and renewal is None and reusable(existing, spec, ca, now):
        return existing
    keep = existing is not None and not (renewal and renewal.rotate) and key_type_of(existing.key) is key_type
    key = existing.key if keep and existing is not None else new_key(key_type)
    return issue_leaf(spec, key, ca, now, days)
