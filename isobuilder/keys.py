"""Private keys: made on demand, or ahead in a thread while the command goes on.

This module imports only cryptography's key primitives (a few ms), not its X.509 layer nor a
YAML parser, so a command can start making keys before it loads the rest. OpenSSL releases the
GIL while it searches for RSA primes (a 2048-bit key takes 5-100 ms, about 30 ms typically, with
cryptography's OpenSSL). On a second core, the keys of ``isobuild node`` are made while it loads
the CA, the renderer and the ISO writer.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from isobuilder.model import KeyType

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KeySource = Callable[[KeyType], PrivateKey]  # where a new leaf's key comes from


def generate_key(key_type: KeyType) -> PrivateKey:
    if key_type.is_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=key_type.rsa_bits)
    curve = ec.SECP384R1() if key_type is KeyType.ECDSA_P384 else ec.SECP256R1()
    return ec.generate_private_key(curve)


class KeysAhead:
    """Up to ``count`` keys of ``key_type``, made one after another in a daemon thread until
    :meth:`close`. Calling the object (a :data:`KeySource`) takes a key made ahead if one is
    ready, else races the thread with a second one: never slower than making keys in turn, and
    both cores work. Keys not asked for are thrown away."""

    def __init__(self, key_type: KeyType, count: int) -> None:
        self.key_type = key_type
        self._closed = threading.Event()
        self._made: queue.SimpleQueue[PrivateKey | None] = queue.SimpleQueue()  # None: a thread failed
        self._making = threading.Thread(target=self._make, args=(count,), name="keys-ahead", daemon=True)
        self._racing: threading.Thread | None = None
        self._making.start()

    def _make(self, count: int) -> None:
        try:
            for _ in range(count):
                if self._closed.is_set():
                    return
                self._made.put(generate_key(self.key_type))
        except Exception:  # the caller makes its keys itself, and meets the error there
            self._closed.set()
            self._made.put(None)

    def __call__(self, key_type: KeyType) -> PrivateKey:
        """A key made ahead; else, while the thread is still at one, the first of it and of a
        second thread started now (a prime search's time varies tenfold: two searches at once
        end sooner than one, and the caller would only wait); else one made here."""
        if key_type is self.key_type:
            try:
                key = self._made.get_nowait()
            except queue.Empty:
                key = self._race() if self._making.is_alive() and not self._closed.is_set() else None
            if key is not None:
                return key
        return generate_key(key_type)

    def _race(self) -> PrivateKey | None:
        """The next key made: the thread's, or a second search's (one at a time). None when no
        thread could start (a process or memory limit): the caller makes the key itself."""
        if self._racing is None or not self._racing.is_alive():
            racing = threading.Thread(target=self._make, args=(1,), name="keys-ahead", daemon=True)
            try:
                racing.start()
            except RuntimeError:  # can't start new thread
                return None
            self._racing = racing
        return self._made.get()

    def close(self) -> None:
        """No more keys: the thread stops after the one it is making (if any)."""
        self._closed.set()

    def __enter__(self) -> KeysAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ahead(key_type: KeyType | None, count: int) -> contextlib.AbstractContextManager[KeySource]:
    """Keys made ahead where that pays: RSA (an EC key takes 0.1 ms) with a second core to make
    them on; else (or with no key type) :func:`generate_key` itself."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if key_type is not None and key_type.is_rsa and count > 0 and cores > 1:
        try:
            return KeysAhead(key_type, count)
        except RuntimeError:  # can't start new thread (a process or memory limit): made when asked
            pass
    return contextlib.nullcontext(generate_key)


# A top-level `key_type: VALUE` line, as clusterfile.dump writes it (quotes and a comment allowed).
_KEY_TYPE_LINE = re.compile(rb"""^key_type:[ \t]*(["']?)([a-z0-9-]+)\1[ \t\r]*(?:#.*)?$""", re.MULTILINE)


def key_type_hint(text: bytes, default: KeyType) -> KeyType | None:
    """The key type a cluster.yaml names, read without a YAML parser (speed: the keys start
    before PyYAML loads) from the settings before its ``nodes:``: a hint for making keys ahead,
    never a check (clusterfile.parse is). ``default`` when no line sets it; None when the one
    line that does is not plainly a key type (the keys are then made when needed)."""
    head = (b"\n" + text[: 1 << 20]).split(b"\nnodes:", 1)[0]
    found = [m.group(2) for m in _KEY_TYPE_LINE.finditer(head)]
    if not found:
        return None if re.search(rb"^key_type\b", head, re.MULTILINE) else default
    try:
        return KeyType(found[0].decode()) if len(found) == 1 else None
    except ValueError:
        return None
