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


def renamed(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A one-cluster kubeconfig of ours with its cluster, user and context all named ``name``
    (``kubeconfig --context``: two clusters of one name side by side in one file)."""
    cluster, user, context = config["clusters"][0], config["users"][0], config["contexts"][0]
    return {
        **config,
        "clusters": [{**cluster, "name": name}],
        "users": [{**user, "name": name}],
        "contexts": [{"name": name, "context": {**context["context"], "cluster": name, "user": name}}],
        "current-context": name,
    }


def merge_conflicts(existing: dict[str, Any], new: dict[str, Any], ca_pem: bytes) -> list[str]:
    """What merging ``new`` (one cluster of ours, its CA ``ca_pem``) into ``existing`` would
    replace that is another cluster's: a cluster of the same name with another server or CA, a
    context of the same name for another cluster or user, a user of the same name whose client
    certificate this CA did not sign. The same cluster's entries (a renewal) replace freely."""
    from isobuilder import pki

    found = []
    ours = {key: new[key][0] for key in ("clusters", "users", "contexts")}

    def same_name(key: str) -> dict[str, Any] | None:
        return next(
            (e for e in existing.get(key) or [] if isinstance(e, dict) and e.get("name") == ours[key]["name"]), None
        )

    cluster = same_name("clusters")
    if cluster is not None:
        entry = cluster.get("cluster")
        theirs: dict[str, Any] = entry if isinstance(entry, dict) else {}
        mine = ours["clusters"]["cluster"]
        if theirs.get("server") != mine["server"]:
            found.append(f"a cluster named {ours['clusters']['name']!r} with server {theirs.get('server')!r}")
        elif _decoded(theirs.get("certificate-authority-data")) != ca_pem:
            found.append(f"a cluster named {ours['clusters']['name']!r} with another CA")
    context = same_name("contexts")
    entry = context.get("context") if context is not None else None
    theirs_ctx: dict[str, Any] = entry if isinstance(entry, dict) else {}
    mine_ctx = ours["contexts"]["context"]
    if context is not None and (theirs_ctx.get("cluster"), theirs_ctx.get("user")) != (
        mine_ctx["cluster"],
        mine_ctx["user"],
    ):
        found.append(f"a context named {ours['contexts']['name']!r} for another cluster or user")
    user = same_name("users")
    if user is not None and user.get("user") != ours["users"]["user"]:
        cert = _decoded(
            (user.get("user") or {}).get("client-certificate-data") if isinstance(user.get("user"), dict) else None
        )
        try:
            signed = cert is not None and pki.signed_by(pki.load_cert(cert, "user"), pki.load_cert(ca_pem, "ca.crt"))
        except IsobuildError:
            signed = False
        if not signed:
            found.append(f"a user named {ours['users']['name']!r} whose certificate another CA signed")
    return found


def _decoded(value: object) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except ValueError:
        return None


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


def merge(existing: dict[str, Any], new: dict[str, Any], *, use: bool, replace: bool = False) -> dict[str, Any]:
    """``existing`` with ``new``'s cluster, user and context added, or updated by name: an entry
    of the same name keeps what the user added to it (a namespace, a proxy-url) and takes our
    fields; with ``replace`` (another cluster's, --force) it is replaced whole.

    Every other entry and setting is kept; ``current-context`` changes only with ``use``.
    """
    merged = dict(existing)
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    inner = {"clusters": "cluster", "users": "user", "contexts": "context"}
    for key, field in inner.items():
        ours = {entry["name"]: entry for entry in new[key]}
        entries = []
        for entry in existing.get(key) or []:
            name = entry.get("name") if isinstance(entry, dict) else None
            if name not in ours:
                entries.append(entry)
                continue
            theirs = entry.get(field) if isinstance(entry.get(field), dict) and not replace else {}
            entries.append({**(entry if not replace else {}), "name": name, field: {**theirs, **ours.pop(name)[field]}})
        merged[key] = entries + list(ours.values())
    if use or not existing.get("current-context"):
        merged["current-context"] = new["current-context"]
    return merged
