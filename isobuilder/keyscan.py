"""Private keys in anything a node or a PXE client reads, found the way the consumers decode it.

A private key can hide from a plain text search: cloud-init's ``write_files`` decodes ``b64``,
``gz+b64`` (and their spellings, ``cc_write_files.canonicalize_extraction``) and YAML
``!!binary``; Ignition decodes ``data:`` URLs, base64 and gzip (``compression: gzip``); cloud-init
decompresses gzipped user data; kubeconfigs carry keys base64-encoded (``client-key-data``). Every
"does this carry secrets" check of isobuild goes through :func:`payloads`. Pure, and bounded: no
decompression past ``MAX_BYTES``, no nesting past ``MAX_DEPTH``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
import zlib
from collections.abc import Iterator
from typing import Any

import yaml

from isobuilder import pki, serialize

MARKERS = (b"PRIVATE KEY-----", b"client-key-data:")  # PEM private keys; a kubeconfig embedding one
MAX_BYTES = 64 << 20
MAX_DEPTH = 4
_GZIP = b"\x1f\x8b"
_GZIP_ENCODINGS = {"gz", "gzip"}
_GZIP_B64_ENCODINGS = {"gz+base64", "gzip+base64", "gz+b64", "gzip+b64"}
_B64_ENCODINGS = {"b64", "base64"}
_B64_TEXT = re.compile(rb"[A-Za-z0-9+/=\s]{24,}")
_B64_RUN = re.compile(rb"[A-Za-z0-9+/]{64,}={0,2}")  # a key's base64 is ~160 characters or more
_HEX_RUN = re.compile(rb"[0-9A-Fa-f]{128,}")
_WRAPPED_LINE = re.compile(rb"[A-Za-z0-9+/=:]{16,}")  # a line of wrapped base64 or (colon) hex
_PEM_BLOCK = re.compile(rb"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.DOTALL)
_MAX_RUNS = 4096


def holds_private_key(blob: bytes) -> bool:
    return any(_holds(data) for data in payloads(blob))


def _holds(data: bytes) -> bool:
    return any(m in data for m in MARKERS) or pki.der_private_key_id(data) is not None


def value_holds_private_key(value: Any) -> bool:
    """The same, for a parsed document or part of one (a write_files entry, an Ignition file)."""
    return any(_holds(data) for item in _in_value(value) for data in payloads(item, 1))


def private_key_ids(blob: bytes) -> set[bytes]:
    """The public ids (``pki.public_id``) of every unencrypted private key inside ``blob``."""
    found: set[bytes] = set()
    for data in payloads(blob):
        found |= pki.private_keys_in(data)
        der = pki.der_private_key_id(data)
        if der is not None:
            found.add(der)
    return found


def payloads(blob: bytes, depth: int = 0) -> Iterator[bytes]:
    """``blob`` and every payload a consumer would decode out of it, recursively."""
    yield blob
    if depth >= MAX_DEPTH or not blob:
        return
    for inner in _decodings(blob):
        yield from payloads(inner, depth + 1)


def _decodings(blob: bytes) -> Iterator[bytes]:
    if blob.startswith(_GZIP):
        yield _gunzip(blob)
        return
    if not _texty(blob):  # binary (a DER certificate, random bytes): nothing more a consumer decodes
        return
    yield from _embedded(blob)
    stripped = blob.lstrip()
    if stripped.startswith((b"{", b"[")):
        try:
            yield from _in_value(json.loads(blob))
            return
        except ValueError:
            pass
    if stripped.startswith((b"#cloud-config", b"apiVersion", b"---")) or b":" in blob[:4096]:
        try:
            yield from _in_value(yaml.load(blob, Loader=serialize.Loader))
            return
        except (yaml.YAMLError, ValueError):
            pass
    if _B64_TEXT.fullmatch(blob):
        decoded = _b64(blob)
        if decoded:
            yield decoded


_TEXT_BYTES = bytes([9, 10, 13, *range(32, 127)])


def _texty(blob: bytes) -> bool:
    head = blob[:4096]
    return len(head.translate(None, _TEXT_BYTES)) <= 0.1 * len(head)  # at most 10% not printable


def _embedded(blob: bytes) -> Iterator[bytes]:
    """Keys pasted into free text (a comment, a unit, a script) in an encoding: base64 or
    gzip+base64 runs, percent-encoding (a data URL's), hex. Bounded by ``_MAX_RUNS``. PEM blocks
    are left out of the runs: ``pki.private_keys_in`` reads them as they are."""
    blob = _PEM_BLOCK.sub(b"", blob)
    joined = _joined_lines(blob)  # base64 or hex wrapped over lines, maybe commented out line by line
    for count, run in enumerate([*_B64_RUN.finditer(blob), *_B64_RUN.finditer(joined)]):
        if count >= _MAX_RUNS:
            break
        decoded = _b64(run.group(0))
        yield _gunzip(decoded) if decoded.startswith(_GZIP) else decoded
    if b"%" in blob:
        yield urllib.parse.unquote_to_bytes(blob)
    for count, run in enumerate(
        [*_HEX_RUN.finditer(blob.replace(b":", b"")), *_HEX_RUN.finditer(joined.replace(b":", b""))]
    ):
        if count >= _MAX_RUNS:
            break
        yield binascii.unhexlify(run.group(0)[: len(run.group(0)) // 2 * 2])


def _joined_lines(blob: bytes) -> bytes:
    """Consecutive lines that are base64 or hex (after a comment mark) joined into one line each run."""
    runs: list[bytes] = []
    current: list[bytes] = []
    for line in blob.splitlines():
        text = line.strip().lstrip(b"#;").strip()
        if text and _WRAPPED_LINE.fullmatch(text):
            current.append(text)
            continue
        if len(current) > 1:
            runs.append(b"".join(current))
        current = []
    if len(current) > 1:
        runs.append(b"".join(current))
    return b"\n".join(runs)


def _in_value(value: Any) -> Iterator[bytes]:
    """Every string, bytes (YAML ``!!binary``) and encoded payload inside a parsed document."""
    if isinstance(value, dict):
        yield from _entry(value)
        for item in value.values():
            yield from _in_value(item)
    elif isinstance(value, list):
        for item in value:
            yield from _in_value(item)
    elif isinstance(value, bytes):
        yield value
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogateescape")
        if value.startswith("data:"):
            yield _data_url(value)
        elif len(data) > 1:
            yield data


def _entry(value: dict[Any, Any]) -> Iterator[bytes]:
    """A cloud-init write_files entry (content + encoding) or an Ignition contents (source +
    compression), decoded as their consumer decodes it."""
    content, encoding = value.get("content"), value.get("encoding")
    if isinstance(content, str) and isinstance(encoding, str):
        kind = encoding.lower().strip()
        raw = content.encode("utf-8", "surrogateescape")
        if kind in _B64_ENCODINGS:
            yield _b64(raw)
        elif kind in _GZIP_B64_ENCODINGS:
            yield _gunzip(_b64(raw))
        elif kind in _GZIP_ENCODINGS:
            yield _gunzip(raw)
    source = value.get("source")
    if isinstance(source, str) and source.startswith("data:") and value.get("compression") == "gzip":
        yield _gunzip(_data_url(source))


def decoded(entry: dict[Any, Any]) -> bytes | None:
    """What a write_files entry (content, encoding) or an Ignition contents (source, compression)
    writes, decoded as its consumer decodes it; None when neither."""
    content = entry.get("content")
    if isinstance(content, str) and not entry.get("encoding"):
        return content.encode()
    source = entry.get("source")
    if isinstance(source, str) and source.startswith("data:") and not entry.get("compression"):
        return _data_url(source)
    return next(_entry(entry), None)


def _data_url(url: str) -> bytes:
    header, _, payload = url[5:].partition(",")
    if header.endswith(";base64"):
        return _b64(payload.encode("ascii", "ignore"))
    return urllib.parse.unquote_to_bytes(payload)


def _b64(data: bytes) -> bytes:
    try:
        return base64.b64decode(b"".join(data.split()) + b"==", validate=False)
    except (binascii.Error, ValueError):
        return b""


def _gunzip(data: bytes) -> bytes:
    """At most MAX_BYTES of a gzip stream (a bomb stops there); b"" when it is not gzip."""
    try:
        return zlib.decompressobj(wbits=31).decompress(data, MAX_BYTES)
    except zlib.error:
        return b""
