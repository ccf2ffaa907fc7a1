"""Keys made on demand or ahead in a thread (isobuilder.keys), and cluster.yaml's key-type hint
that tells the CLI which keys to make ahead. Pure, no tools."""

from __future__ import annotations

import threading
import time

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


def test_the_key_type_hint_reads_the_settings_of_a_dumped_cluster() -> None:
    for key_type in KeyType:
        nodes = (Node("c1", "10.0.0.1", Role.CONTROLLER),)
        cluster = schema.cluster_of({"name": "c", "cluster_id": CLUSTER_ID, "key_type": key_type}, nodes)
        assert clusterfile.key_type_hint(clusterfile.dump(cluster)) is key_type


def test_the_key_type_hint_says_nothing_where_it_cannot_tell() -> None:
    assert clusterfile.key_type_hint(b"name: c\n") is KeyType.ECDSA_P256  # the default
    assert clusterfile.key_type_hint(b"key_type: rsa-2048\nnodes: []\n") is KeyType.RSA_2048
    for text in (b"key_type: [\n", b"key_type: dsa-1024\n", b"- a list\n", b"key_type: null\n", b"\xff\xfe"):
        assert clusterfile.key_type_hint(text) is None, text
