"""A node's first-boot configuration: cloud-config or Ignition user data, the scripts, meta data.

Pure: cluster, node and PEM bytes in, bytes out. Structured content (kubeadm and kubelet
configs, kubeconfigs, manifests, the YAML values inside user_data) is built as data and
serialised; the Jinja templates (package resources, ``isobuilder/templates/``) only lay the pieces out.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from isobuilder import __version__, firewall, hostsettings, ignition, manifests, network, serialize
from isobuilder.files import File
from isobuilder.manifests import ADDONS_DIR, HostFiles
from isobuilder.model import Cluster, Format, Node, Role, is_ipv6, merged_ssh_keys

INSTALL_PATH = "/opt/isobuild/install.sh"
SETUP_PATH = "/opt/isobuild/setup.sh"  # Ignition nodes: the setup isobuild-install.service runs
INSTALL_UNIT = "isobuild-install.service"  # runs install.sh (setup.sh) at boot until it succeeds once
INSTALL_UNIT_PATH = f"/etc/systemd/system/{INSTALL_UNIT}"
INSTALL_DONE = "/var/lib/isobuild/install.done"  # written by the script's last step
HOSTS = "/etc/hosts"
HOSTS_COMMENT = "# isobuild: the cluster's API endpoint\n"  # a line of its own: cloud-init re-renders entries


COMPILED = "compiled"  # templates/compiled/: the templates as Python modules (Jinja's compile_templates)
_DIGEST_FILE = "DIGEST"  # the templates_digest() they were compiled from


def environment(loader: Any = None) -> Any:
    """Jinja with ``StrictUndefined`` (a missing value is an error, never an empty string) and
    our two filters; ``loader`` defaults to the package's templates."""
    import jinja2

    env = jinja2.Environment(
        loader=loader or jinja2.PackageLoader("isobuilder", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["yaml"] = serialize.yaml_value
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    return env


@functools.cache
def _environment() -> Any:
    """The precompiled templates when they are those of the sources (compiling them costs ~70 ms
    of every command's start), else the sources themselves: never a stale template."""
    import jinja2

    compiled = resources.files("isobuilder").joinpath("templates", COMPILED)
    try:
        fresh = compiled.joinpath(_DIGEST_FILE).read_text().strip() == templates_digest()
    except OSError:
        fresh = False
    if fresh and isinstance(compiled, Path):
        return environment(jinja2.ModuleLoader(str(compiled)))
    return environment()


def compile_templates(target: Path) -> None:
    """Write the precompiled templates and their digest into ``target`` (scripts/compile-templates)."""
    environment().compile_templates(
        str(target),
        zip=None,
        ignore_errors=False,
        filter_func=lambda name: "/" not in name,  # not compiled/ itself
    )
    (target / _DIGEST_FILE).write_text(templates_digest() + "\n")


def _templates() -> list[Traversable]:
    folder = resources.files("isobuilder").joinpath("templates")
    return sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.name)


@functools.cache
def templates_digest() -> str:
    """Changes when any template does (an upgraded isobuild rebuilds what it renders differently)."""
    digest = hashlib.sha256()
    for path in _templates():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def render_template(name: str, **values: Any) -> str:
    return str(_environment().get_template(name).render(**values))


# -- the node documents ----------------------------------------------------------------------
def _script_values(cluster: Cluster, node: Node) -> dict[str, Any]:
    """What install.sh and Flatcar's setup.sh both know of their node."""
    return {
        "node_name": node.name,
        "node_ip": node.ip,
        "role": node.role.value,
        "is_controller": node.role.is_controller,
        "kubernetes_version": cluster.kubernetes_version.removeprefix("v"),
        "addons_dir": ADDONS_DIR,
        "endpoint": cluster.server_url(),
        "vip": cluster.vip or "",
        "bootstrap": int(cluster.is_bootstrap(node)),
        "init_controller": init.name if (init := cluster.init_controller()) else "",
        "done": INSTALL_DONE,
        "ipv6_pods": is_ipv6(cluster.pod_cidr.partition("/")[0]),  # flannel routes them: IPv6 forwarding on
        "cri_socket_annotation": "" if cluster.node_local_cri_socket() else manifests.CRI_SOCKET_ANNOTATION,
        "cri_socket": manifests.CRI_SOCKET,
        "cni": cluster.cni.value,
        "pod_cidr": cluster.pod_cidr,
        "ingress": cluster.ingress.value,
        "wireguard": cluster.pod_network_encrypted,  # flannel's WireGuard backend: the kernel module
        "firewall_unit": firewall.UNIT if node.role is Role.EDGE else "",
    }


def install_script(cluster: Cluster, node: Node) -> bytes:
    return render_template(
        "install.sh.j2",
        **_script_values(cluster, node),
        kubernetes_minor=cluster.kubernetes_minor(),
        containerd_version=cluster.containerd_version,
    ).encode()


def flatcar_setup_script(cluster: Cluster, node: Node) -> bytes:
    return render_template(
        "flatcar-setup.sh.j2", **_script_values(cluster, node), cni_plugins_version=cluster.cni_plugins_version
    ).encode()


def flatcar_install_script(cluster: Cluster, node: Node, config_path: str) -> bytes:
    """install.sh of an Ignition node: the disk installer run from a Flatcar live boot."""
    return render_template(
        "flatcar-install.sh.j2",
        node_name=node.name,
        flatcar_channel=cluster.flatcar_channel,
        flatcar_version=cluster.flatcar_version,
        label=cluster.media_of(node).label,
        config_path=config_path,
    ).encode()


def install_unit(script: str) -> str:
    return render_template("isobuild-install.service.j2", unit=INSTALL_UNIT, script=script, done=INSTALL_DONE)


def apply_script(cluster: Cluster, node: Node, files: HostFiles) -> bytes:
    """apply.sh: what the node's first boot wrote, installed in place on the running node where
    it differs, restarting what reads it (``files``: the host files; the endpoint's hosts line
    and, on cloud-config nodes, containerd's config are added here)."""
    import base64

    payload = [
        {"path": path, "mode": f.mode, "b64": base64.b64encode(f.content).decode("ascii")}
        for path, f in sorted(files.items())
    ]
    vip = files.get(f"{ADDONS_DIR}/kube-vip.yaml") if node.role.is_controller else None
    host = cluster.endpoint_host_port()[0] if cluster.endpoint or cluster.vip or cluster.controllers() else ""
    return render_template(
        "apply.sh.j2",
        node_name=node.name,
        is_controller=node.role.is_controller,
        login=f"core@{node.ip}" if cluster.format_of(node) is Format.IGNITION else node.ip,
        files=payload,
        hosts_line=cluster.hosts_entry_line() or "",
        endpoint_host=host,
        containerd=cluster.format_of(node) is Format.CLOUD_CONFIG,  # Flatcar's comes with the OS
        vip_b64=base64.b64encode(vip.content).decode("ascii") if vip else "",
        firewall_unit=firewall.UNIT if node.role is Role.EDGE else "",
        firewall_paths=[firewall.RULESET_PATH, firewall.UNIT_PATH],
    ).encode()


def upgrade_script(cluster: Cluster, node: Node, running: str, how: str) -> bytes:
    """upgrade.sh: the node from ``running`` to the cluster's version, by kubeadm's procedure
    (``how``: kubeadm upgrade apply on the bootstrap controller, upgrade node elsewhere)."""
    return render_template(
        "upgrade.sh.j2",
        node_name=node.name,
        from_version=running,
        to_version=cluster.kubernetes_version,
        to_minor=cluster.kubernetes_minor(),
        how=how,
        flatcar=cluster.format_of(node) is Format.IGNITION,
    ).encode()


@functools.cache
def _static_text(name: str) -> str:
    return resources.files("isobuilder").joinpath("templates", name).read_text()


def ignition_config(cluster: Cluster, node: Node, files: HostFiles) -> bytes:
    """The node's Ignition config: its files, the kubelet unit and the first-boot setup unit."""
    host = dict(files)
    if node.static:
        host[network.NETWORKD_PATH] = File(network.networkd_file(node), 0o644)
    hosts_line = cluster.hosts_entry_line()
    if hosts_line:
        # The whole file, replacing whatever the image has there (a link into /usr included).
        hosts = f"127.0.0.1\tlocalhost\n::1\tlocalhost\n{HOSTS_COMMENT}{hosts_line}\n"
        host[HOSTS] = File(hosts.encode(), 0o644)
    units = [
        ignition.Unit("containerd.service", enabled=True),
        ignition.Unit(
            "kubelet.service",
            _static_text("kubelet.service"),
            enabled=True,
            dropins=(("10-kubeadm.conf", _static_text("10-kubeadm.conf")),),
        ),
        ignition.Unit(INSTALL_UNIT, install_unit(SETUP_PATH), enabled=True),
    ]
    if firewall.UNIT_PATH in host:  # an edge router: Ignition enables it; its file is among the others
        units.append(ignition.Unit(firewall.UNIT, enabled=True))
    spec = ignition.Butane(hostname=node.name, ssh_keys=merged_ssh_keys(cluster, node), files=host, units=units)
    return ignition.dumps(ignition.translate(spec))


def user_data(cluster: Cluster, node: Node, files: HostFiles) -> bytes:
    write_files: list[dict[str, Any]] = [
        {
            "path": path,
            "owner": "root:root",
            "permissions": f"{f.mode:04o}",  # cloud-init's schema wants a string: '0600'
            "content": f.content.decode(),
        }
        for path, f in sorted(files.items())
    ]
    hosts_line = cluster.hosts_entry_line()
    if hosts_line:
        # Appended once (write_files runs before update_etc_hosts); "manage_etc_hosts: localhost"
        # then edits only the 127.0.1.1 line at each boot (cloudinit/distros/__init__.py,
        # Distro.update_etc_hosts), where "true" would re-render the file from a template.
        write_files.append({"path": HOSTS, "append": True, "content": f"{HOSTS_COMMENT}{hosts_line}\n"})
    hostname, _, _ = node.name.partition(".")
    return render_template(
        "cloud-config.yaml.j2",
        version=__version__,
        hostname=hostname,
        fqdn=node.name if "." in node.name else "",
        ssh_keys=merged_ssh_keys(cluster, node),
        write_files=write_files,
        manage_etc_hosts="localhost" if hosts_line else True,
        ntp=hostsettings.cloud_config_ntp(cluster, node),
        # runcmd runs once per instance; the unit it starts runs install.sh until it succeeds.
        runcmd=[["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "--no-block", INSTALL_UNIT]],
    ).encode()


def nocloud_meta_data(cluster: Cluster, node: Node) -> bytes:
    """NoCloud's ``meta-data``: an instance-id stable per node (cloud-init runs once per id)."""
    data = {"instance-id": f"iid-{cluster.node_uuid(node)}", "local-hostname": node.name}
    return serialize.yaml_text(dict(sorted(data.items()))).encode()


def meta_data(cluster: Cluster, node: Node) -> bytes:
    """config-2's meta_data.json; cloud-init requires it, with a ``uuid``."""
    keys = merged_ssh_keys(cluster, node)
    data = {
        "uuid": cluster.node_uuid(node),
        "hostname": node.name,
        "name": node.name,
        "launch_index": 0,
        "availability_zone": "isobuild",
        "public_keys": {f"key-{i}": key for i, key in enumerate(keys)},
        "meta": {"role": node.role.value, "cluster": cluster.name},
    }
    return serialize.json_bytes(data)
