"""``build``: every node of cluster.yaml (or the named ones), incremental and parallel.

Every problem in cluster.yaml is reported before anything is written. A node whose recorded
inputs digest and files still hold is skipped without computing anything; the others are built
by a process pool (fork: workers inherit the loaded cluster and CAs), each staging its folder
below the transaction's scratch area; the one transaction then swaps every changed folder in.
``certs renew`` stages its nodes through :func:`stage_nodes` inside its own transaction.
"""

from __future__ import annotations

import dataclasses
import enum
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from isobuilder import pki, skew
from isobuilder.authority import Authority
from isobuilder.context import Context
from isobuilder.errors import IsobuildError
from isobuilder.inventory import Inventory, Transaction, stage_tree
from isobuilder.model import Cluster, Node
from isobuilder.nodefolder import UPGRADE, build_node
from isobuilder.ops import (
    check_versions,
    load_authority,
    load_cluster,
    node_is_current,
    out_of_step,
    read_node,
    transaction,
)


class Status(enum.StrEnum):
    BUILT = "built"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One node of a build: what became of it (built, up to date, failed) and what it asks of a running node."""

    name: str
    status: Status
    changed: int = 0  # files written
    error: str = ""
    kept_edits: tuple[str, ...] = ()  # hand-edited files kept as they are
    to_apply: tuple[str, ...] = ()  # paths on the (running) node its apply.sh now changes
    upgrades: bool = False  # its folder now holds an upgrade.sh


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What ``isobuild build`` did: every node's outcome, the folders no node owns, the time taken."""

    outcomes: list[Outcome]
    orphans: list[str]
    pruned: bool
    seconds: float
    jobs: int
    caught_up: list[str] = dataclasses.field(default_factory=list)  # unnamed nodes rebuilt: ops.out_of_step
    upgrades: list[skew.Step] = dataclasses.field(default_factory=list)  # nodes rebuilt with an upgrade.sh

    def count(self, status: Status) -> int:
        return sum(o.status is status for o in self.outcomes)

    def as_json(self) -> dict[str, Any]:
        return {
            **{s.value: self.count(s) for s in Status},
            "seconds": round(self.seconds, 3),
            "jobs": self.jobs,
            "nodes": [dataclasses.asdict(o) | {"status": o.status.value} for o in self.outcomes],
            "orphans": self.orphans,
            "pruned": self.pruned,
            "caught_up": self.caught_up,
        }


def orphans(inv: Inventory, cluster: Cluster) -> list[str]:
    """Node folders whose node is no longer in cluster.yaml."""
    known = {n.folder for n in cluster.nodes}
    return sorted(p.name for p in inv.root.glob("node-*") if p.is_dir() and p.name not in known)


def select(inv: Inventory, cluster: Cluster, names: Sequence[str]) -> list[Node]:
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
    return [n for n in cluster.nodes if not names or n.name in names]


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every worker needs; a module global, so forked workers inherit it instead of unpickling."""

    ctx: Context
    cluster: Cluster
    authority: Authority
    force: bool
    scratch: Path
    renewal: pki.Renewal | None = None
    running: Mapping[str, str] = dataclasses.field(default_factory=dict)  # the version each node runs


_JOB: _Job | None = None


def _build_one(name: str) -> Outcome:
    job = _JOB
    assert job is not None
    node = job.cluster.node(name)
    assert node is not None
    inv = job.ctx.inventory
    try:
        existing = read_node(inv, node)
        built = build_node(
            job.cluster, node, job.authority, existing,
            now=job.ctx.now, iso_epoch=job.ctx.iso_epoch, force=job.force, renewal=job.renewal,
            running=job.running.get(name),
        )  # fmt: skip
        if built.changed:
            stage_tree(job.scratch / node.folder, inv.node_dir(node.folder), built.tree, sync=False)
    except IsobuildError as exc:
        return Outcome(name, Status.FAILED, error=f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    except OSError as exc:
        return Outcome(name, Status.FAILED, error=f"cannot write {node.folder}: {exc.strerror or exc}")
    status = Status.BUILT if built.changed else Status.UNCHANGED
    return Outcome(
        name,
        status,
        len(built.changed),
        kept_edits=built.kept_edits,
        to_apply=built.to_apply,
        upgrades=UPGRADE in built.tree,
    )


def default_jobs() -> int:
    return len(os.sched_getaffinity(0))


@dataclasses.dataclass(frozen=True)
class Progress:
    """``started(n)`` is told how many nodes need work, ``step(1)`` after each."""

    started: Callable[[int], None] = lambda n: None
    step: Callable[[int], None] = lambda n: None


def stage_nodes(
    ctx: Context,
    tx: Transaction,
    cluster: Cluster,
    authority: Authority,
    selected: list[Node],
    *,
    force: bool = False,
    renewal: pki.Renewal | None = None,
    jobs: int = 1,
    progress: Progress = Progress(),
    running: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """Build ``selected`` into ``tx``: the nodes that need it, in parallel; ``renewal`` re-issues
    every leaf certificate of each; ``running``: the Kubernetes version nodes run, where their
    state record does not say (``upgrade``). Outcomes in ``selected``'s order."""
    global _JOB
    inv = ctx.inventory
    todo = [n.name for n in selected if force or renewal or not node_is_current(inv, cluster, n, authority)]
    outcomes = {n.name: Outcome(n.name, Status.UNCHANGED) for n in selected}
    progress.started(len(todo))
    if todo:
        authority.unlock()  # once, here: forked workers inherit the decrypted, checked CA keys
        _JOB = _Job(ctx, cluster, authority, force, tx.scratch("nodes"), renewal, running or {})
        try:
            for outcome in _run(todo, jobs):
                outcomes[outcome.name] = outcome
                progress.step(1)
        finally:
            _JOB = None
    for node in selected:
        if outcomes[node.name].status is Status.BUILT:
            tx.put_staged(node.folder, tx.scratch("nodes") / node.folder)
    return [outcomes[n.name] for n in selected]


def build(
    ctx: Context,
    names: list[str],
    *,
    prune: bool = False,
    force: bool = False,
    jobs: int | None = None,
    progress: Progress = Progress(),
) -> BuildResult:
    """Build the named nodes (all when empty); one transaction."""
    t0 = time.perf_counter()
    jobs = max(1, jobs or default_jobs())
    with transaction(ctx, bulk=True) as tx:
        cluster = load_cluster(ctx.inventory)
        selected = select(ctx.inventory, cluster, names)
        authority = load_authority(ctx)
        check_versions(ctx.inventory, cluster, authority)  # all or nothing: build commits what it built
        extra = out_of_step(ctx.inventory, cluster, authority, {n.name for n in selected}) if names else []
        stray = orphans(ctx.inventory, cluster)
        wanted = {n.name for n in (*selected, *extra)}
        everything = [n for n in cluster.nodes if n.name in wanted]
        outcomes = stage_nodes(ctx, tx, cluster, authority, everything, force=force, jobs=jobs, progress=progress)
        if prune:
            for folder in stray:
                tx.delete(folder)
    seconds = time.perf_counter() - t0
    # kubernetes_version edited by hand: the nodes rebuilt with an upgrade.sh, in the order to run them
    moving = {o.name for o in outcomes if o.upgrades}
    steps = skew.order(cluster, [n for n in cluster.nodes if n.name in moving])
    return BuildResult(outcomes, stray, prune and bool(stray), seconds, jobs, [n.name for n in extra], steps)


def _run(todo: list[str], jobs: int) -> Iterator[Outcome]:
    """Serial for small batches (a pool costs more than it saves), else a fork pool."""
    if jobs == 1 or len(todo) < 4 * jobs:
        yield from map(_build_one, todo)
        return
    chunk = max(1, min(8, len(todo) // (jobs * 16)))  # small: RSA-heavy nodes (a controller) balance out
    # Workers ignore Ctrl-C: the parent alone handles it (one line, the transaction rolled back).
    with multiprocessing.get_context("fork").Pool(jobs, signal.signal, (signal.SIGINT, signal.SIG_IGN)) as pool:
        yield from pool.imap_unordered(_build_one, todo, chunksize=chunk)
