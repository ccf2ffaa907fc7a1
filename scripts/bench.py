#!/usr/bin/env python3
"""Benchmark `isobuild build` and print a table (numbers, not assertions).

For 10, 100 and 1000 nodes (one controller, the rest workers; ECDSA P-256) in a temp folder:
wall time, CPU time (user+sys, all processes) and peak RSS (the largest process) of a first
build and of a no-change re-build; the cold start of one `isobuild node` (new process, existing
cluster; median and mean of 41); and, side by side in the same run, 100 nodes with rsa-2048 against the 2017 shell
pipeline doing the same crypto work per node: openssl genrsa 2048, openssl req, openssl x509 -req
with SANs from a config file, a sed-templated user_data, genisoimage -R -V config-2; there, one
`isobuild node` adding a worker (rsa-2048 too) in turn with the pipeline making one worker.

Run: .venv/bin/python scripts/bench.py [--sizes 10,100,1000] [--json]
Targets (2 cores): 1000 nodes <= 3 s and <= 200 MiB; no-change 1000 <= 1 s; one `isobuild node`
(rsa-2048, cold) under the pipeline making one worker, side by side (the machine's speed moves
by a third between runs: compare within one run); rsa-2048 x100 >= 8x faster than the pipeline
(which issues as many keypairs as isobuild: one per worker, kubeadm's eleven for the controller).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

# The console script pip installs, as a user runs it (`python -m` adds runpy's start-up).
_SCRIPT = Path(sys.executable).with_name("isobuild")
ISOBUILD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "isobuilder"]
COLD_RUNS = 41  # the pipeline's time spreads (openssl genrsa: 40-400 ms): its median needs runs
# The floor of a cold start: a new interpreter importing only the libraries `isobuild node` needs
# (the user's chosen dependencies), no line of isobuild's own, no work done.
LIBRARIES_ALONE = [sys.executable, "-c", "import typer, yaml, jinja2, cryptography.x509, pycdlib"]
PACKAGE = Path(__file__).resolve().parent.parent / "isobuilder"
SHELL_PIPELINE = r"""
set -euo pipefail
cd "$1"
count=$2
controller_keys=$3   # the controller gets as many keypairs as isobuild issues it (kubeadm's set)
issue() {  # NAME IP STEM: a key, a CSR and a CA-signed certificate with SANs from a config file
  openssl genrsa -out "$1/$3.key" 2048 2>/dev/null
  printf '%s\n' '[req]' 'distinguished_name=dn' '[dn]' '[ext]' "subjectAltName=DNS:$1,IP:$2" \
    'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth,clientAuth' >"$1/openssl.cnf"
  openssl req -new -key "$1/$3.key" -subj "/O=system:nodes/CN=system:node:$1" \
    -config "$1/openssl.cnf" -out "$1/$3.csr"
  openssl x509 -req -in "$1/$3.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
    -extensions ext -extfile "$1/openssl.cnf" -out "$1/$3.crt" 2>/dev/null
}
for i in $(seq 1 "$count"); do
  name=node$i
  ip=10.1.$((i / 250)).$((i % 250 + 1))
  mkdir -p "$name/cloud-config/openstack/latest"
  keys=1
  if ((i == 1)); then keys=$controller_keys; fi
  for k in $(seq 1 "$keys"); do issue "$name" "$ip" "id$k"; done
  sed -e "s/@NAME@/$name/g" -e "s/@IP@/$ip/g" \
    -e "/@CERT@/r $name/id1.crt" -e "/@KEY@/r $name/id1.key" -e "/@CERT@/d" -e "/@KEY@/d" \
    user_data.tmpl >"$name/cloud-config/openstack/latest/user_data"
  genisoimage -quiet -R -V config-2 -o "$name/config.iso" "$name/cloud-config"
done
"""
USER_DATA_TEMPLATE = """#cloud-config
hostname: @NAME@
write_files:
  - path: /etc/kubernetes/node-ip
    content: "@IP@"
  - path: /var/lib/kubelet/pki/kubelet.crt
    content: |
@CERT@
  - path: /var/lib/kubelet/pki/kubelet.key
    content: |
@KEY@
"""


def timed(cmd: list[str], **kw: Any) -> dict[str, float]:
    """Wall, CPU (user+sys of the process and its children) and peak RSS of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{stderr}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024}


def make_cluster(root: Path, nodes: int, key_type: str) -> Path:
    inventory = root / "inventory"
    subprocess.run([*ISOBUILD, "-q", "--inventory", str(inventory), "init", "--name", "bench",
                    "--key-type", key_type], check=True)  # fmt: skip
    lines = ["nodes:", "- {name: ctrl, ip: 10.0.0.1, role: controller}"]
    lines += [f"- {{name: w{i}, ip: 10.1.{i // 250}.{i % 250 + 1}, role: worker}}" for i in range(1, nodes)]
    text = (inventory / "cluster.yaml").read_text().replace("nodes: []", "\n".join(lines))
    (inventory / "cluster.yaml").write_text(text + "\n")
    return inventory


def bench_size(nodes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="isobuild-bench-") as tmp:
        inventory = make_cluster(Path(tmp), nodes, "ecdsa-p256")
        build = [*ISOBUILD, "-q", "--inventory", str(inventory), "build"]
        first = timed(build)
        again = timed(build)
        return {"nodes": nodes, "build": first, "no_change": again, "node_cold_start": cold_start(inventory)}


def cold_start(inventory: Path, side_by_side: list[str] | None = None) -> dict[str, Any]:
    """One `isobuild node` adding a worker to an existing cluster, a new process each: the median
    run, and ``mean_s``. ``side_by_side``: a command timed in turn with each (the shell pipeline
    making one worker), so that both see the machine in the same state: ``side_by_side`` holds
    its median and mean. RSA key generation varies a lot (one `openssl genrsa 2048` takes 0.15 to
    1 s here), hence both figures, over COLD_RUNS runs."""
    node = [*ISOBUILD, "-q", "--inventory", str(inventory), "node"]
    adds, others, floor = [], [], []
    for i in range(1, COLD_RUNS + 1):
        adds.append(timed([*node, f"extra{i}", f"10.9.0.{i}", "--master", "ctrl"]))
        if side_by_side:
            others.append(timed(side_by_side)["wall_s"])
            floor.append(timed(LIBRARIES_ALONE)["wall_s"])
    result = {**sorted(adds, key=lambda t: t["wall_s"])[COLD_RUNS // 2], "mean_s": mean(t["wall_s"] for t in adds)}
    if others:
        result["side_by_side"] = {"wall_s": sorted(others)[COLD_RUNS // 2], "mean_s": mean(others)}
        result["libraries_alone"] = {"wall_s": sorted(floor)[COLD_RUNS // 2], "mean_s": mean(floor)}
    return result


def bench_rsa(nodes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="isobuild-bench-") as tmp:
        inventory = make_cluster(Path(tmp), nodes, "rsa-2048")
        ours = timed([*ISOBUILD, "-q", "--inventory", str(inventory), "build"])
        shell = Path(tmp) / "shell"
        shell.mkdir()
        (shell / "user_data.tmpl").write_text(USER_DATA_TEMPLATE)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                        "-out", "ca.crt", "-subj", "/CN=kubernetes", "-days", "3650"],
                       cwd=shell, check=True, capture_output=True)  # fmt: skip
        ca_keys = {"ca.key", "front-proxy-ca.key", "sa.key", "etcd/ca.key"}
        ssl = inventory / "node-ctrl" / "ssl"
        controller_keys = sum(p.relative_to(ssl).as_posix() not in ca_keys for p in ssl.rglob("*.key"))
        theirs = timed(["bash", "-c", SHELL_PIPELINE, "pipeline", str(shell), str(nodes), str(controller_keys)])
        one_worker = ["bash", "-c", SHELL_PIPELINE, "pipeline", str(shell), "1", "1"]
        ours_one = cold_start(inventory, side_by_side=one_worker)
        return {
            "nodes": nodes,
            "keys": nodes - 1 + controller_keys,
            "isobuild": ours,
            "shell_pipeline": theirs,
            "ratio": theirs["wall_s"] / ours["wall_s"],
            "node_cold_start": ours_one,
            "pipeline_per_node_s": theirs["wall_s"] / nodes,
            "pipeline_one_worker": ours_one["side_by_side"],
            "libraries_alone": ours_one["libraries_alone"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="cluster sizes (nodes)")
    parser.add_argument("--rsa-nodes", type=int, default=100, help="nodes in the rsa-2048 comparison (0: skip)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    for tool in ("openssl", "genisoimage"):
        if args.rsa_nodes and shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is needed for the shell pipeline (apt-get install {tool})")
    # As a user's install has them (pip byte-compiles a wheel; a source tree writes them on the
    # first run): without, every run compiles isobuild's modules again (PYTHONDONTWRITEBYTECODE).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PACKAGE)], check=True)
    sizes = [bench_size(int(n)) for n in args.sizes.split(",") if n]
    rsa = bench_rsa(args.rsa_nodes) if args.rsa_nodes else None
    if args.json:
        print(json.dumps({"cores": len(os.sched_getaffinity(0)), "sizes": sizes, "rsa": rsa}, indent=2))
        return
    print(f"isobuild build, ECDSA P-256, {len(os.sched_getaffinity(0))} cores")
    print(f"{'nodes':>6} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9} {'no-change s':>12} {'node cold s':>12}")
    for row in sizes:
        b = row["build"]
        print(f"{row['nodes']:>6} {b['wall_s']:>8.2f} {b['cpu_s']:>8.2f} {b['rss_mib']:>9.0f} "
              f"{row['no_change']['wall_s']:>12.2f} {row['node_cold_start']['wall_s']:>12.2f}")  # fmt: skip
    if rsa:
        ours, theirs = rsa["isobuild"], rsa["shell_pipeline"]
        print(f"\nrsa-2048, {rsa['nodes']} nodes ({rsa['keys']} keypairs each way), same run:")
        print(
            f"  isobuild build   {ours['wall_s']:7.2f} s wall  {ours['cpu_s']:7.2f} s cpu  {ours['rss_mib']:5.0f} MiB"
        )
        print(f"  shell pipeline   {theirs['wall_s']:7.2f} s wall  {theirs['cpu_s']:7.2f} s cpu")
        print(f"  isobuild is {rsa['ratio']:.1f}x faster")
        one = rsa["node_cold_start"]["wall_s"]
        pipe = rsa["pipeline_one_worker"]
        print(f"  one worker, {COLD_RUNS} times each in turn (median / mean): isobuild node (cold start) "
              f"{one:.2f} / {rsa['node_cold_start']['mean_s']:.2f} s, the pipeline {pipe['wall_s']:.2f} / "
              f"{pipe['mean_s']:.2f} s; its {rsa['nodes']} nodes: {rsa['pipeline_per_node_s']:.2f} s each")  # fmt: skip
        libs = rsa["libraries_alone"]
        print(f"  and in turn with them, importing typer, yaml, jinja2, cryptography.x509 and pycdlib, nothing "
              f"else: {libs['wall_s']:.2f} / {libs['mean_s']:.2f} s (the floor of a cold start)")  # fmt: skip


if __name__ == "__main__":
    main()
