"""Operations over every node of cluster.yaml: build (incremental, parallel), list, verify.

``build`` checks the whole cluster.yaml first and reports every problem before anything is
written. A node whose recorded inputs digest and files still hold is skipped without computing
anything; the others are computed by a process pool (fork: workers inherit the loaded cluster
and CAs), each writing its folder into the transaction's staging area; one transaction then
swaps every changed folder in. Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from isobuilder import clusterfile, ignition, pki
from isobuilder.cluster import (
    CLOUD_DIR,
    ISO,
    RENEW,
    STATE,
    Context,
    Pki,
    _changes,
    _drive_files,
    _sha256,
    _state,
    cluster_text,
    inputs_digest,
    is_current,
    node_tree,
)
from isobuilder.errors import IsobuildError
from isobuilder.identities import Signer, node_identities
from isobuilder.inventory import Inventory, read_tree, stage_tree
from isobuilder.model import Cluster, Format, Media, Node

BUILT, UNCHANGED, FAILED = "built", "unchanged", "failed"


def load_checked(inv: Inventory) -> Cluster:
    """cluster.yaml with every problem reported at once (one ``Error:`` line each)."""
    cluster, problems = clusterfile.parse_collecting(cluster_text(inv))
    if problems:
        raise IsobuildError(
            f"{len(problems)} problem(s) in {inv.cluster_file}; nothing was built",
            hint=problems[0].hint,
            details=tuple(p.message for p in problems),
        )
    return cluster


def orphans(inv: Inventory, cluster: Cluster) -> list[str]:
    """Node folders whose node is no longer in cluster.yaml."""
    known = {n.folder for n in cluster.nodes}
    return sorted(p.name for p in inv.root.glob("node-*") if p.is_dir() and p.name not in known)


# -- build -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # built, unchanged, failed
    changed: int = 0  # files written
    error: str = ""
    kept_hand_edit: bool = False


@dataclasses.dataclass(frozen=True)
class BuildResult:
    outcomes: list[Outcome]
    orphans: list[str]
    pruned: bool
    seconds: float
    jobs: int

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def as_json(self) -> dict[str, Any]:
        return {
            "built": self.count(BUILT),
            "unchanged": self.count(UNCHANGED),
            "failed": self.count(FAILED),
            "seconds": round(self.seconds, 3),
            "jobs": self.jobs,
            "nodes": [dataclasses.asdict(o) for o in self.outcomes],
            "orphans": self.orphans,
            "pruned": self.pruned,
        }


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every worker needs; a module global, so forked workers inherit it instead of unpickling."""

    ctx: Context
    cluster: Cluster
    authority: Pki
    force: bool
    scratch: Path
    renewal: pki.Renewal | None = None


_JOB: _Job | None = None


def _build_one(name: str) -> Outcome:
    job = _JOB
    assert job is not None
    node = job.cluster.node(name)
    assert node is not None
    folder = job.ctx.inventory.node_dir(node.folder)
    try:
        existing = read_tree(folder)
        tree, kept = node_tree(
            job.ctx, job.cluster, node, job.authority, existing, force=job.force, renewal=job.renewal
        )
        changed = _changes(folder, existing, tree)
        if changed:
            stage_tree(job.scratch / node.folder, folder, tree, sync=False)
    except IsobuildError as exc:
        return Outcome(name, FAILED, error=f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    except OSError as exc:
        return Outcome(name, FAILED, error=f"cannot write {node.folder}: {exc.strerror or exc}")
    return Outcome(name, BUILT if changed else UNCHANGED, len(changed), kept_hand_edit=kept)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0))


def build(
    ctx: Context,
    names: list[str],
    *,
    prune: bool = False,
    force: bool = False,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
    started: Callable[[int], None] | None = None,
    renewal: pki.Renewal | None = None,
) -> BuildResult:
    """Build the named nodes (all when empty). ``started(n)`` is told how many nodes need work,
    ``progress(1)`` after each. ``renewal``: re-issue every leaf certificate of those nodes."""
    global _JOB
    t0 = time.perf_counter()
    inv = ctx.inventory
    jobs = max(1, jobs or default_jobs())
    with inv.locked():
        cluster = load_checked(inv)
        unknown = [n for n in names if cluster.node(n) is None]
        if unknown:
            raise IsobuildError(
                f"node {unknown[0]!r} is not in {inv.cluster_file}",
                hint="add it to the nodes: list first, or build without names to build them all",
            )
        if not cluster.nodes:
            raise IsobuildError(
                f"{inv.cluster_file} lists no nodes",
                hint="add entries under nodes: (name, ip, role: controller|worker|edge), or use isobuild node",
            )
        authority = Pki.load(inv, ctx)
        selected = [n for n in cluster.nodes if not names or n.name in names]
        todo = [
            n.name
            for n in selected
            if force or renewal or not is_current(inv.node_dir(n.folder), inputs_digest(cluster, n, authority))
        ]
        if todo:
            authority.unlock()  # once, here: forked workers inherit the decrypted, checked CA keys
        stray = orphans(inv, cluster)
        with inv.transaction(bulk=True) as tx:
            outcomes = {n.name: Outcome(n.name, UNCHANGED) for n in selected}
            if started:
                started(len(todo))
            if todo:
                _JOB = _Job(ctx, cluster, authority, force, tx.scratch("nodes"), renewal)
                try:
                    for outcome in _run(todo, jobs):
                        outcomes[outcome.name] = outcome
                        if progress:
                            progress(1)
                finally:
                    _JOB = None
            for node in selected:
                if outcomes[node.name].status == BUILT:
                    tx.put_staged(node.folder, tx.scratch("nodes") / node.folder)
            if prune:
                for folder in stray:
                    tx.delete(folder)
            tx.commit()
    ordered = [outcomes[n.name] for n in selected]
    return BuildResult(ordered, stray, prune and bool(stray), time.perf_counter() - t0, jobs)


def _run(todo: list[str], jobs: int) -> Iterator[Outcome]:
    """Serial for small batches (a pool costs more than it saves), else a fork pool."""
    if jobs == 1 or len(todo) < 4 * jobs:
        yield from map(_build_one, todo)
        return
    chunk = max(1, min(8, len(todo) // (jobs * 16)))  # small: RSA-heavy nodes (a controller) balance out
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap_unordered(_build_one, todo, chunksize=chunk)


# -- list --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Row:
    node: Node
    format: Format
    media: Media
    expiry: dt.datetime | None
    status: str  # up to date, stale, not built, not in cluster.yaml
    hand_edited: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.node.name,
            "role": self.node.role.value,
            "ip": self.node.ip,
            "mac": self.node.mac,
            "format": self.format.value,
            "media": self.media.value,
            "cert_expiry": self.expiry.isoformat() if self.expiry else None,
            "status": self.status,
            "hand_edited": self.hand_edited,
        }


def list_nodes(ctx: Context) -> tuple[list[Row], list[str]]:
    """One row per node of cluster.yaml, and the folders of nodes no longer in it."""
    inv = ctx.inventory
    with inv.locked():
        cluster = load_checked(inv)
        authority = Pki.load(inv)
        rows = []
        for node in cluster.nodes:
            folder = inv.node_dir(node.folder)
            cert = folder / "ssl" / "kubelet.crt"
            expiry = pki.load_cert(cert.read_bytes(), str(cert)).not_valid_after_utc if cert.is_file() else None
            if not (folder / STATE).is_file():
                status = "not built"
            elif is_current(folder, inputs_digest(cluster, node, authority)):
                status = "up to date"
            else:
                status = "stale"
            state = _state(_read(folder / STATE))
            user_data = _read(folder / CLOUD_DIR / cluster.media_of(node).user_data_path)
            edited = user_data is not None and _sha256(user_data) != state.get("user_data_sha256")
            rows.append(Row(node, cluster.format_of(node), cluster.media_of(node), expiry, status, edited))
        return rows, orphans(inv, cluster)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


# -- verify ------------------------------------------------------------------------------------
def verify(ctx: Context) -> list[str]:
    """Every finding in the inventory, one line each (empty: all is well)."""
    inv = ctx.inventory
    with inv.locked():
        cluster = load_checked(inv)
        authority = Pki.load(inv)
        findings = list(_verify_workstation(inv))
        cas = {s: pki.load_cert(authority.files[f"{s.value}.crt"], s.value) for s in Signer}
        # Secret keys are told by their public half: no passphrase needed, and encrypted CA keys
        # on disk are still recognised once decrypted onto a drive.
        ca_ids = {pki.public_id(c.public_key()): f"the {s.value} key" for s, c in cas.items()}  # type: ignore[arg-type]
        sa_id = pki.public_id(serialization.load_pem_public_key(authority.files["sa.pub"]))  # type: ignore[arg-type]
        for node in cluster.nodes:
            forbidden = dict(ca_ids) if cluster.external_ca or not node.role.is_control_plane else {}
            if not node.role.is_control_plane:
                forbidden[sa_id] = "the service-account key"
            findings += _verify_node(ctx, cluster, node, cas, forbidden)
        return findings


def _mode_finding(path: Path, want: int, root: Path) -> Iterator[str]:
    try:
        mode = path.lstat().st_mode & 0o777
    except OSError:
        return
    if mode != want:
        yield f"{path.relative_to(root)}: mode {mode:04o}, want {want:04o}"


def _verify_workstation(inv: Inventory) -> Iterator[str]:
    yield from _mode_finding(inv.ssl, 0o700, inv.root)
    for path in sorted(inv.ssl.rglob("*.key")):
        yield from _mode_finding(path, 0o600, inv.root)
    yield from _mode_finding(inv.root / "kubeconfig", 0o600, inv.root)


def _verify_node(
    ctx: Context, cluster: Cluster, node: Node, cas: dict[Signer, Any], forbidden: dict[bytes, str]
) -> Iterator[str]:
    root = ctx.inventory.root
    folder = ctx.inventory.node_dir(node.folder)
    if not folder.is_dir():
        yield f"{node.folder}: not built (run isobuild build {node.name})"
        return
    files = read_tree(folder)
    rel = node.folder
    for ident in node_identities(cluster, node):
        cert_pem, key_pem = files.get(f"ssl/{ident.name}.crt"), files.get(f"ssl/{ident.name}.key")
        where = f"{rel}/ssl/{ident.name}"
        if cert_pem is None or key_pem is None:
            yield f"{where}.crt/.key: missing"
            continue
        try:
            cert = pki.load_cert(cert_pem, where + ".crt")
            key = pki.load_key(key_pem, where + ".key")
        except IsobuildError as exc:
            yield exc.message
            continue
        try:
            cert.verify_directly_issued_by(cas[ident.signer])
        except (InvalidSignature, ValueError, TypeError) as exc:  # a signature, or an issuer name, that differs
            yield f"{where}.crt: not signed by the cluster's {ident.signer.value} ({type(exc).__name__})"
        if not pki.key_matches(cert, key):
            yield f"{where}.key: does not match {ident.name}.crt"
        if cert.not_valid_after_utc <= ctx.now:
            yield f"{where}.crt: expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        missing = sorted(set(ident.spec.sans) - set(_sans(cert)))
        if missing:
            yield f"{where}.crt: SANs lack {', '.join(missing)} (cluster.yaml changed? run isobuild build {node.name})"
    for path in sorted(folder.rglob("*")):
        if path.is_file() and (path.suffix == ".key" or path.name in ("user_data", "user-data", ISO)):
            yield from _mode_finding(path, 0o600, root)
    drive = {k.removeprefix(CLOUD_DIR + "/"): v for k, v in files.items() if k.startswith(CLOUD_DIR + "/")}
    iso = files.get(ISO)
    on_iso = _drive_files(iso) if iso is not None else None
    if on_iso is None:
        yield f"{rel}/{ISO}: missing or unreadable"
    elif on_iso != drive:
        differ = sorted(k for k in set(on_iso) | set(drive) if on_iso.get(k) != drive.get(k))
        yield f"{rel}/{ISO}: differs from {CLOUD_DIR}/ ({', '.join(differ)}; run isobuild image {folder})"
    why = "external-CA mode" if node.role.is_control_plane else f"a {node.role} must not"
    contents = [*(on_iso or {}).values(), *_decoded_ignition(on_iso or {})]
    on_drive = {what for blob in contents for key in pki.private_keys_in(blob) if (what := forbidden.get(key))}
    for what in sorted(on_drive):
        yield f"{rel}/{ISO}: carries {what} ({why})"
    for path in sorted(folder.rglob("*.key")):
        what = next((forbidden[k] for k in pki.private_keys_in(path.read_bytes()) if k in forbidden), None)
        if what:
            yield f"{path.relative_to(root)}: {what} in a node folder ({why})"
    yield from _mode_finding(folder / RENEW, 0o700, root)


def _sans(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in ext.get_values_for_type(x509.DNSName) + ext.get_values_for_type(x509.IPAddress)]


def _decoded_ignition(drive: dict[str, bytes]) -> list[bytes]:
    """The files inside an Ignition config on the drive (data URLs decoded, gzip undone)."""
    import json

    out = []
    for data in drive.values():
        if not data.lstrip().startswith(b"{"):
            continue
        try:
            entries = json.loads(data).get("storage", {}).get("files", [])
        except (ValueError, AttributeError):
            continue
        out += [raw for entry in entries if (raw := ignition.read_contents(entry.get("contents") or {})) is not None]
    return out
