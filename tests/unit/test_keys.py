"""Keys made on demand or ahead in a thread (isobuilder.keys), and cluster.yaml's key-type hint
that tells the CLI which keys to make ahead. Pure, no tools."""

from __future__ import annotations

import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from isobuilder import clusterfile, keys, schema
from isobuilder.model import KeyType, Node, Role

CLUSTER_ID = "6f1c3f8e-8a4e-4c35-9d5e-0d4b3f0f4a11"


def _public(key: keys.PrivateKey) -> object:
    return key.public_key().public_numbers()


def test_keys_made_ahead_are_of_the_type_asked_and_each_one_new() -> None:
    with keys.KeysAhead(KeyType.RSA_2048, 2) as ahead:
        made = [ahead(KeyType.RSA_2048) for _ in range(4)]  # two more than made ahead: made here
    assert all(isinstance(k, rsa.RSAPrivateKey) and k.key_size == 2048 for k in made)
    assert len({str(_public(k)) for k in made}) == 4


def test_a_key_of_another_type_is_made_on_the_spot() -> None:
    with keys.KeysAhead(KeyType.RSA_2048, 1) as ahead:
        key = ahead(KeyType.ECDSA_P384)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"


def test_a_ready_key_is_taken_not_made_again() -> None:
    with keys.KeysAhead(KeyType.RSA_2048, 1) as ahead:
        deadline = time.monotonic() + 30
        while ahead._made.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        ready = ahead._made.qsize()
        ahead(KeyType.RSA_2048)
        assert (ready, ahead._made.qsize()) == (1, 0)


def test_closed_the_thread_stops_after_the_key_it_is_making() -> None:
    ahead = keys.KeysAhead(KeyType.RSA_2048, 1000)
    ahead.close()
    deadline = time.monotonic() + 30
    while any(t.name == "keys-ahead" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "keys-ahead" for t in threading.enumerate())
    assert ahead._made.qsize() <= 1


def test_ahead_only_where_it_pays() -> None:
    for key_type, count in ((KeyType.ECDSA_P256, 5), (KeyType.RSA_2048, 0), (None, 5)):
        with keys.ahead(key_type, count) as source:
            assert source is keys.generate_key
    with keys.ahead(KeyType.RSA_3072, 1) as source:  # the machines here have two cores
        assert isinstance(source, keys.KeysAhead) and source.key_type is KeyType.RSA_3072


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread each key search runs in (keys.generate_key, the real one, recorded)."""
    made: list[str] = []
    real = keys.generate_key

    def recorded(key_type: KeyType) -> keys.PrivateKey:
        made.append(threading.current_thread().name)
        return real(key_type)

    monkeypatch.setattr(keys, "generate_key", recorded)
    return made


def test_a_key_not_ready_is_the_first_of_two_searches(searches: list[str]) -> None:
    with keys.KeysAhead(KeyType.RSA_4096, 1) as ahead:  # a 4096-bit search: not ready at once
        key = ahead(KeyType.RSA_4096)
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 4096
        deadline = time.monotonic() + 60
        while ahead._made.qsize() < 1 and time.monotonic() < deadline:  # the other search's key
            time.sleep(0.01)
        other = ahead(KeyType.RSA_4096)
    assert str(_public(other)) != str(_public(key))
    assert searches == ["keys-ahead", "keys-ahead"]  # two threads searched; the caller only waited


def test_a_failing_thread_leaves_the_error_to_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(key_type: KeyType) -> keys.PrivateKey:
        time.sleep(0.05)
        raise RuntimeError("no entropy")

    monkeypatch.setattr(keys, "generate_key", fail)
    errors: list[BaseException] = []

    def take() -> None:
        with keys.KeysAhead(KeyType.RSA_2048, 3) as ahead:
            for _ in range(2):
                try:
                    ahead(KeyType.RSA_2048)
                except RuntimeError as exc:
                    errors.append(exc)

    caller = threading.Thread(target=take, daemon=True)
    caller.start()
    caller.join(timeout=30)
    assert not caller.is_alive() and [str(e) for e in errors] == ["no entropy"] * 2  # never waits forever


def test_no_thread_to_race_in_is_a_key_made_here(searches: list[str]) -> None:
    with keys.KeysAhead(KeyType.RSA_4096, 1) as ahead:  # a 4096-bit search: not ready at once
        threading.stack_size(1 << 40)  # a stack no mmap can give: thread creation fails for real
        try:
            key = ahead(KeyType.RSA_4096)
        finally:
            threading.stack_size(0)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 4096
    assert threading.current_thread().name in searches  # made here, beside the thread's search


def test_no_thread_at_all_is_keys_made_when_asked() -> None:
    threading.stack_size(1 << 40)
    try:
        with keys.ahead(KeyType.RSA_2048, 3) as source:
            key = source(KeyType.RSA_2048)
    finally:
        threading.stack_size(0)
    assert source is keys.generate_key and isinstance(key, rsa.RSAPrivateKey)


def _hint(text: bytes) -> KeyType | None:
    return keys.key_type_hint(text, KeyType.ECDSA_P256)


def test_the_key_type_hint_reads_the_settings_of_a_dumped_cluster() -> None:
    for key_type in KeyType:
        nodes = (Node("c1", "10.0.0.1", Role.CONTROLLER),)
        cluster = schema.cluster_of({"name": "c", "cluster_id": CLUSTER_ID, "key_type": key_type}, nodes)
        text = clusterfile.dump(cluster)
        assert _hint(text) is key_type is clusterfile.parse(text).key_type
        for spelt in (b"key_type: 'KT'", b'key_type: "KT"  # mine', b"key_type:   KT\r"):
            line = spelt.replace(b"KT", key_type.value.encode())
            edited = text.replace(f"key_type: {key_type.value}".encode(), line)
            assert _hint(edited) is key_type, edited


def test_the_key_type_hint_says_nothing_where_it_cannot_tell() -> None:
    assert _hint(b"name: c\n") is KeyType.ECDSA_P256  # the default
    assert _hint(b"key_type: rsa-2048\nnodes: []\n") is KeyType.RSA_2048
    assert _hint(b"nodes:\n- name: a\nkey_type: rsa-2048\n") is KeyType.ECDSA_P256  # the settings come first
    for text in (
        b"key_type: [\n",
        b"key_type: dsa-1024\n",
        b"key_type: null\n",
        b"key_type: &k rsa-2048\n",
        b"key_type: rsa-2048\nkey_type: rsa-4096\n",
        b"key_type:\n  rsa-2048\n",
    ):
        assert _hint(text) is None, text
