"""keyscan finds a private key however a consumer (cloud-init, Ignition) or a reader could decode it."""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import json
import urllib.parse

import pytest

from isobuilder import keys, keyscan, pki
from isobuilder.model import KeyType


@functools.cache
def _key() -> tuple[bytes, bytes]:
    key = keys.generate_key(KeyType.ECDSA_P256)
    return pki.key_to_pem(key), pki.public_id(key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _encodings(pem: bytes) -> dict[str, bytes]:
    gz = _b64(gzip.compress(pem))
    entry = "#cloud-config\nwrite_files:\n- path: /x\n  encoding: {enc}\n  content: {body}\n"
    ignition = {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/x", "contents": {}}]}}

    def ign(contents: dict[str, str]) -> bytes:
        ignition["storage"]["files"][0]["contents"] = contents  # type: ignore[index]
        return json.dumps(ignition).encode()

    return {
        "plain": pem,
        "b64": entry.format(enc="b64", body=_b64(pem)).encode(),
        "base64": entry.format(enc="base64", body=_b64(pem)).encode(),
        "gz+b64": entry.format(enc="gz+b64", body=gz).encode(),
        "gzip+base64": entry.format(enc="gzip+base64", body=gz).encode(),
        "GZ+B64 with spaces": entry.format(enc=" GZ+B64 ", body=gz).encode(),
        "!!binary": f"#cloud-config\nwrite_files:\n- path: /x\n  content: !!binary |\n    {_b64(pem)}\n".encode(),
        "ignition data URL": ign({"source": "data:," + urllib.parse.quote(pem)}),
        "ignition base64": ign({"source": "data:;base64," + _b64(pem)}),
        "ignition gzip": ign({"source": "data:;base64," + gz, "compression": "gzip"}),
        "gzipped user data": gzip.compress(
            b"#cloud-config\nwrite_files:\n- content: |\n    " + pem.replace(b"\n", b"\n    ")
        ),
        "kubeconfig": f"users:\n- name: u\n  user:\n    client-key-data: {_b64(pem)}\n".encode(),
        "comment, gzip+base64": b"#cloud-config\nhostname: x\n# " + gz.encode() + b"\n",
        "comment, percent-encoded": b"#cloud-config\n# data:," + urllib.parse.quote(pem).encode() + b"\n",
        "comment, double base64": b"#cloud-config\n# " + base64.b64encode(base64.b64encode(pem)) + b"\n",
        "comment, hex": b"#cloud-config\n# " + binascii.hexlify(pem) + b"\n",
    }


@pytest.mark.parametrize("name", list(_encodings(b"k")))
def test_every_encoding_is_seen_through(name: str) -> None:
    pem, public = _key()
    blob = _encodings(pem)[name]
    assert keyscan.holds_private_key(blob)
    if name != "kubeconfig":  # the marker tells it; the key's id needs the base64 decoded, which it is
        assert public in keyscan.private_key_ids(blob), name


def test_text_without_a_key_is_clean() -> None:
    clean = (
        b"#cloud-config\nhostname: x\nwrite_files:\n- path: /y\n  encoding: b64\n  content: aGVsbG8=\n# " + b"A" * 300
    )
    assert not keyscan.holds_private_key(clean) and keyscan.private_key_ids(clean) == set()


def test_a_gzip_bomb_is_cut_short() -> None:
    bomb = gzip.compress(b"\0" * (200 << 20))
    assert all(len(p) <= keyscan.MAX_BYTES for p in keyscan.payloads(bomb))


def _wrapped(text: str, width: int, prefix: str = "") -> str:
    return "".join(f"{prefix}{text[i : i + width]}\n" for i in range(0, len(text), width))


def _der(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _free_text(pem: bytes) -> dict[str, bytes]:
    """Keys pasted into free text the way a second hostile pass found getting through."""
    body = "".join(pem.decode().splitlines()[1:-1])
    der = _der(pem)
    b64 = _b64(pem)
    unit = {
        "systemd": {
            "units": [{"name": "x.service", "contents": "".join(f"# {ln}\n" for ln in pem.decode().splitlines())}]
        }
    }
    return {
        "PEM commented out line by line": b"#cloud-config\n" + b"".join(b"# " + ln + b"\n" for ln in pem.splitlines()),
        "PEM with CRLF": b"#cloud-config\n" + pem.replace(b"\n", b"\r\n"),
        "base64 wrapped at 76, commented": ("#cloud-config\n" + _wrapped(b64, 76, "# ")).encode(),
        "base64 wrapped at 60": ("#cloud-config\n" + _wrapped(b64, 60)).encode(),
        "heredoc script": (
            "#cloud-config\nruncmd:\n- |\n  base64 -d <<EOF\n" + _wrapped(b64, 76, "  ") + "  EOF\n"
        ).encode(),
        "xxd -p hex": ("#cloud-config\n" + _wrapped(pem.hex(), 60, "# ")).encode(),
        "colon hex": ("# " + ":".join(f"{c:02x}" for c in pem) + "\n").encode(),
        "bare PEM body": ("#cloud-config\n" + _wrapped(body, 64, "# ")).encode(),
        "DER base64 on one line": ("# " + _b64(der) + "\n").encode(),
        "Ignition unit, commented PEM": json.dumps(unit).encode(),
        "Ignition data URL of DER": json.dumps(
            {"storage": {"files": [{"contents": {"source": "data:;base64," + _b64(der)}}]}}
        ).encode(),
    }


@pytest.mark.parametrize("name", list(_free_text(_key()[0])))
def test_keys_in_free_text_are_seen_through(name: str) -> None:
    pem, public = _key()
    blob = _free_text(pem)[name]
    assert public in keyscan.private_key_ids(blob), name
    assert keyscan.holds_private_key(blob), name
