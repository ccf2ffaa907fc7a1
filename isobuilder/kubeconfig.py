"""Kubeconfig files as data: build, serialise, merge. Pure."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from isobuilder import serialize
from isobuilder.errors import IsobuildError
from isobuilder.pki import KeyPair


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build(cluster_name: str, server: str, ca_pem: bytes, user: str, keypair: KeyPair) -> dict[str, Any]:
    """One cluster, one user, one context; names carry the cluster name so merging never collides."""
    context = f"{user}@{cluster_name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [
            {
                "name": context,
                "user": {
                    "client-certificate-data": _b64(keypair.cert_pem),
                    "client-key-data": _b64(keypair.key_pem),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": context}}],
        "current-context": context,
        "preferences": {},
    }


def dump(config: dict[str, Any]) -> bytes:
    return serialize.yaml_text(config).encode()


def parse(text: bytes, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise IsobuildError(
            f"{what} is not valid YAML ({_first_line(exc)})", hint="fix or move the file away"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise IsobuildError(f"{what} is not a kubeconfig (not a mapping)", hint="fix or move the file away")
    for key in ("clusters", "users", "contexts"):
        if not isinstance(data.get(key) or [], list):
            raise IsobuildError(f"{what}: {key} is not a list", hint="fix or move the file away")
    return data


def keypair(text: bytes | None, what: str) -> KeyPair | None:
    """The client key pair a one-user kubeconfig of ours embeds (to renew it with the same key);
    None when there is none to reuse."""
    if not text:
        return None
    users = parse(text, what).get("users") or []
    user = users[0].get("user") if users and isinstance(users[0], dict) else None
    if not isinstance(user, dict):
        return None
    try:
        key = base64.b64decode(user["client-key-data"], validate=True)
        cert = base64.b64decode(user["client-certificate-data"], validate=True)
    except (KeyError, TypeError, ValueError):
        return None
    return KeyPair(key, cert, what)


def server_of(text: bytes, what: str) -> str | None:
    clusters = parse(text, what).get("clusters") or []
    cluster = clusters[0].get("cluster") if clusters and isinstance(clusters[0], dict) else None
    server = cluster.get("server") if isinstance(cluster, dict) else None
    return server if isinstance(server, str) else None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def merge(existing: dict[str, Any], new: dict[str, Any], *, use: bool) -> dict[str, Any]:
    """``existing`` with ``new``'s cluster, user and context added or replaced by name.

    Every other entry and setting is kept; ``current-context`` changes only with ``use``.
    """
    merged = dict(existing)
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    for key in ("clusters", "users", "contexts"):
        ours = {entry["name"] for entry in new[key]}
        kept = [e for e in existing.get(key) or [] if not (isinstance(e, dict) and e.get("name") in ours)]
        merged[key] = kept + list(new[key])
    if use or not existing.get("current-context"):
        merged["current-context"] = new["current-context"]
    return merged
