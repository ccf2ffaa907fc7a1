"""The cluster's CA store: the workstation's ``ssl/``, created once, never re-made.

The three kubeadm CAs and the service-account key pair. Created in memory by :func:`create`;
loaded from the files of ``ssl/`` by :class:`Authority`, which decrypts CA keys only when
something is signed (the passphrase is asked for once). Pure: the caller reads and writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Mapping

from cryptography import x509

from isobuilder import context, keys, pki, serialize
from isobuilder.errors import IsobuildError
from isobuilder.files import File
from isobuilder.identities import Signer
from isobuilder.model import KeyType

CA_FILES = (*(f"{s.value}.{ext}" for s in Signer for ext in ("crt", "key")), "sa.key", "sa.pub")
SECRET_CA_FILES = tuple(n for n in CA_FILES if n.endswith(".key"))  # what a passphrase protects
PUBLIC_CA_FILES = tuple(n for n in CA_FILES if not n.endswith(".key"))
RESTORE_HINT = "restore ssl/ from your backup; isobuild never re-creates a CA by itself"


def create(
    key_type: KeyType,
    ca_days: int,
    now: dt.datetime,
    passphrase: bytes | None = None,
    new_key: keys.KeySource = keys.generate_key,
) -> dict[str, File]:
    """A new ``ssl/``: the three CAs and the service-account key pair, the private keys
    encrypted with ``passphrase`` when one is given; the keys from ``new_key``."""

    def key_file(key: keys.PrivateKey) -> File:
        return File(pki.encrypt_key_pem(key, passphrase) if passphrase else pki.key_to_pem(key), 0o600)

    tree: dict[str, File] = {}
    for signer in Signer:
        key = new_key(key_type)
        ca = pki.issue_ca(signer.common_name, key, now, ca_days)
        tree[f"{signer.value}.crt"] = File(ca.cert_pem, 0o644)
        tree[f"{signer.value}.key"] = key_file(key)
    sa = new_key(key_type)
    tree["sa.key"] = key_file(sa)
    tree["sa.pub"] = File(pki.public_key_to_pem(sa), 0o644)
    return tree


def _no_passphrase() -> bytes:
    return context.no_prompt(False).encode()  # raises: the one "no passphrase" error


@dataclasses.dataclass(frozen=True)
class Authority:
    """The CA material, as the files of ``ssl/`` (CA keys may be encrypted)."""

    files: Mapping[str, bytes]
    where: str = "ssl"
    ask: Callable[[], bytes] = dataclasses.field(default=_no_passphrase, compare=False)

    @classmethod
    def of(cls, files: Mapping[str, bytes], where: str = "ssl", ask: Callable[[], bytes] = _no_passphrase) -> Authority:
        missing = [n for n in CA_FILES if n not in files]
        if missing:
            raise IsobuildError(f"the cluster PKI is incomplete: {where}/{missing[0]} is missing", hint=RESTORE_HINT)
        return cls(files, where, ask)

    @functools.cached_property
    def digest(self) -> str:
        """Of the public CA material nodes are made from: no passphrase needed to tell whether a
        node is up to date."""
        return serialize.sha256(b"".join(n.encode() + b"\0" + self.files[n] for n in PUBLIC_CA_FILES))

    @property
    def encrypted(self) -> bool:
        return any(pki.is_encrypted(self.files[n]) for n in SECRET_CA_FILES)

    def ca(self, signer: Signer) -> pki.KeyPair:
        return self._cas[signer]

    def ca_cert(self, signer: Signer) -> x509.Certificate:
        """A CA's certificate alone: no key, no passphrase."""
        return pki.load_cert(self.files[f"{signer.value}.crt"], f"{self.where}/{signer.value}.crt")

    def plain(self, name: str) -> bytes:
        """A file of ssl/ as a node receives it: keys decrypted (kubeadm reads no encrypted key)."""
        return self._plain_keys.get(name) or self.files[name]

    def unlock(self) -> Authority:
        """Decrypt and check every CA key now (before forking workers, or before writing anything)."""
        self._cas  # noqa: B018
        return self

    @functools.cached_property
    def _plain_keys(self) -> dict[str, bytes]:
        if not self.encrypted:
            return {}
        passphrase = self.ask()
        return {
            n: pki.key_to_pem(pki.load_key(self.files[n], f"{self.where}/{n}", passphrase)) for n in SECRET_CA_FILES
        }

    @functools.cached_property
    def _cas(self) -> dict[Signer, pki.KeyPair]:  # one KeyPair each: its key is loaded once
        cas = {}
        for s in Signer:  # fail early and clearly on a corrupt CA, not deep inside a signature
            ca = pki.KeyPair(self.plain(f"{s.value}.key"), self.files[f"{s.value}.crt"], f"{self.where}/{s.value}")
            if not pki.key_matches(ca.cert, ca.key):
                raise IsobuildError(f"{self.where}/{s.value}.key does not belong to {s.value}.crt", hint=RESTORE_HINT)
            cas[s] = ca
        return cas
