"""Network-boot exports of a cluster: matchbox data, DHCP static mappings, inventories. Pure.

The same cluster.yaml that makes the ISOs drives a PXE site. In: the cluster and each built
node's user data (as its drive carries it, hand edits included). Out: one file tree:

    matchbox/groups/ID.json      one group per stage, selected by the node's MAC
    matchbox/profiles/ID.json    boot settings and the config a stage is served
    matchbox/ignition/ID.ign     Ignition configs, served as they are
    matchbox/cloud/ID.yaml       cloud-configs (matchbox renders these as Go templates)
    dnsmasq-hosts.conf           dhcp-host= lines (and iPXE chain-loading with --next-server)
    dhcpd-hosts.conf             ISC dhcpd host {} blocks, to include from dhcpd.conf
    inventory.csv, inventory.json, ansible-inventory.yaml

Ignition (Flatcar) nodes install in two stages, as matchbox's own examples do: the group
``mac`` boots the Flatcar PXE image with an install config that fetches the node's config
(group ``mac`` + ``os=installed``) and runs flatcar-install with it; the installed system
applies it on its first boot. Cloud-config nodes get a group and a profile with ``cloud_id``
(cloud-init reads it from the ``cloud-config-url=`` kernel argument).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

import yaml

from isobuilder import checks, ignition, keyscan, model, render, serialize
from isobuilder.errors import IsobuildError
from isobuilder.files import File
from isobuilder.model import Cluster, Format, Node, Role

INSTALL_SCRIPT = "/opt/isobuild/pxe-install.sh"
INSTALL_UNIT = "isobuild-pxe-install.service"
FLATCAR_KERNEL = "flatcar_production_pxe.vmlinuz"
FLATCAR_INITRD = "flatcar_production_pxe_image.cpio.gz"
_URL_SAFE = re.compile(r"[A-Za-z0-9._~:/\[\]%-]+")  # no quotes, spaces, commas, '&', '?', '#': it lands in configs
_DISK = re.compile(r"/dev/[A-Za-z0-9._:/-]+")


@dataclasses.dataclass(frozen=True)
class PxeOptions:
    """How the PXE site serves the nodes: matchbox's endpoint, the Flatcar release, the disk."""

    http_endpoint: str  # matchbox's HTTP endpoint, e.g. http://matchbox.lab:8080
    os_version: str  # Flatcar release of the PXE image and of the installed system
    install_disk: str = "/dev/sda"
    next_server: str | None = None  # TFTP server for iPXE chain-loading (undionly.kpxe, ipxe.efi)
    secrets: bool = True  # False: private keys stay out of every served config

    def checked(self) -> PxeOptions:
        return dataclasses.replace(
            self,
            http_endpoint=check_http_endpoint(self.http_endpoint),
            os_version=checks.check_flatcar_version(self.os_version),
            install_disk=check_disk(self.install_disk),
            next_server=checks.check_ip(self.next_server, "--next-server IP") if self.next_server else None,
        )


def check_http_endpoint(value: str) -> str:
    url = urllib.parse.urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise model.bad_value(
            "--http-endpoint", value, "give matchbox's HTTP address, e.g. --http-endpoint http://10.10.10.254:8080"
        )
    if not _URL_SAFE.fullmatch(value):
        raise model.bad_value("--http-endpoint", value, "use a plain URL: no spaces, quotes, commas or queries")
    return value.rstrip("/")


def check_disk(value: str) -> str:
    if not _DISK.fullmatch(value) or "/../" in value + "/":
        raise model.bad_value("--install-disk", value, "give the target disk's device path, e.g. /dev/sda or /dev/vda")
    return value


@dataclasses.dataclass(frozen=True)
class Exported:
    """A node that network-boots: its id in matchbox and what its served config leaves out."""

    node: Node
    format: Format
    matchbox_id: str
    withheld: tuple[str, ...]  # paths on the node whose files hold a private key (--no-secrets)


@dataclasses.dataclass(frozen=True)
class Export:
    """The PXE files of every node with a MAC, the nodes left out (and why), notes for the user."""

    tree: dict[str, File]
    exported: list[Exported]
    skipped: list[tuple[str, str]]  # (node, why)
    notes: list[str]


def matchbox_id(cluster: Cluster, node: Node, stage: str = "") -> str:
    """Unique across clusters sharing one matchbox: '_' is in neither a cluster's nor a node's name."""
    return f"{cluster.name}_{node.name}" + (f"_{stage}" if stage else "")


def export(cluster: Cluster, user_data: Mapping[str, bytes | None], options: PxeOptions) -> Export:
    """The whole PXE export; ``user_data`` maps each node to its drive's user data (None: not built)."""
    tree: dict[str, File] = {}
    exported: list[Exported] = []
    skipped: list[tuple[str, str]] = []
    for node in cluster.nodes:
        data = user_data.get(node.name)
        if node.mac is None:
            skipped.append((node.name, "no MAC in cluster.yaml (isobuild node NAME IP --mac MAC)"))
        elif data is None:
            skipped.append((node.name, f"not built yet: no user data in {node.folder}/ (run isobuild node)"))
        else:
            fmt = cluster.format_of(node)
            config, withheld = served_config(data, fmt, secrets=options.secrets, where=node.name)
            tree.update(_matchbox(cluster, node, fmt, config, options))
            exported.append(Exported(node, fmt, matchbox_id(cluster, node), withheld))
    notes = [
        f"{e.node.name}: IPv6 address, left out of dhcpd-hosts.conf (dnsmasq-hosts.conf has it)"
        for e in exported
        if model.is_ipv6(e.node.ip)
    ]
    tree["dnsmasq-hosts.conf"] = File(dnsmasq_hosts(cluster, exported, options))
    tree["dhcpd-hosts.conf"] = File(dhcpd_hosts(cluster, exported, options))
    tree["inventory.csv"] = File(inventory_csv(cluster))
    tree["inventory.json"] = File(inventory_json(cluster, {e.node.name for e in exported}))
    tree["ansible-inventory.yaml"] = File(ansible_inventory(cluster))
    return Export(tree, exported, skipped, notes)


# -- what matchbox serves --------------------------------------------------------------------
def served_config(data: bytes, fmt: Format, *, secrets: bool, where: str) -> tuple[bytes, tuple[str, ...]]:
    """The node's config as matchbox serves it, and the paths left out for holding a private key."""
    if secrets:
        return data, ()
    if fmt is Format.IGNITION:
        return _without_secrets_ignition(data, where)
    return _without_secrets_cloud_config(data, where)


def _cannot_filter(where: str, what: str) -> IsobuildError:
    return IsobuildError(
        f"node {where!r}: cannot leave the keys out of its user data: {what}",
        hint="fix the hand edit, or export without --no-secrets",
    )


def _without_secrets_cloud_config(data: bytes, where: str) -> tuple[bytes, tuple[str, ...]]:
    if not data.startswith(b"#cloud-config"):
        if keyscan.holds_private_key(data):
            raise _cannot_filter(where, "it is not a cloud-config and holds a private key")
        return data, ()
    try:
        config = yaml.safe_load(data)
    except (yaml.YAMLError, ValueError):
        raise _cannot_filter(where, "it is not valid YAML") from None
    entries = config.get("write_files") if isinstance(config, dict) else None
    if not isinstance(config, dict) or not isinstance(entries or [], list):
        raise _cannot_filter(where, "it is not a cloud-config mapping with a write_files list")
    kept, withheld = [], []
    for entry in entries or []:
        if keyscan.value_holds_private_key(entry):  # b64, gz+b64 and !!binary decoded
            withheld.append(str(entry.get("path")) if isinstance(entry, dict) else "?")
        else:
            kept.append(entry)
    config["write_files"] = kept
    rest = b"#cloud-config\n" + yaml.safe_dump(config, sort_keys=False).encode()
    if keyscan.holds_private_key(rest):
        raise _cannot_filter(where, "a private key sits outside write_files")
    return rest, tuple(withheld)


def _without_secrets_ignition(data: bytes, where: str) -> tuple[bytes, tuple[str, ...]]:
    try:
        config = json.loads(data)
        files = config.get("storage", {}).get("files", [])
    except (ValueError, AttributeError):
        raise _cannot_filter(where, "it is not an Ignition JSON config") from None
    if not isinstance(files, list):
        raise _cannot_filter(where, "storage.files is not a list")
    kept, withheld = [], []
    for entry in files:
        if keyscan.value_holds_private_key(entry):  # data URLs, base64 and gzip decoded
            withheld.append(str(entry.get("path")) if isinstance(entry, dict) else "?")
        else:
            kept.append(entry)
    config["storage"]["files"] = kept
    rest = ignition.dumps(config)
    if keyscan.holds_private_key(rest):
        raise _cannot_filter(where, "a private key sits outside storage.files")
    return rest, tuple(withheld)


def go_template_literal(text: bytes) -> bytes:
    """``text`` as a Go text/template that renders to itself: matchbox templates cloud/ files,
    so every ``{{`` becomes an action printing ``{{``."""
    return text.replace(b"{{", b'{{"{{"}}')


def install_ignition(cluster: Cluster, node: Node, options: PxeOptions) -> bytes:
    """Stage 1: the Flatcar PXE image's config, which installs the node's config to disk."""
    assert node.mac is not None
    config_url = f"{options.http_endpoint}/ignition?mac={node.mac}&os=installed"
    script = render.render_template(
        "pxe-install.sh.j2",
        node_name=node.name,
        config_url=config_url,
        install_disk=options.install_disk,
        flatcar_channel=cluster.flatcar_channel,
        flatcar_version=options.os_version,
    ).encode()
    unit = (
        "[Unit]\n"
        "Description=isobuild: install Flatcar with this node's Ignition config, then reboot\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={INSTALL_SCRIPT}\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
    spec = ignition.Butane(
        hostname=node.name,
        ssh_keys=model.merged_ssh_keys(cluster, node),
        files={INSTALL_SCRIPT: File(script, 0o700)},
        units=[ignition.Unit(INSTALL_UNIT, unit, enabled=True)],
    )
    return ignition.dumps(ignition.translate(spec))


def _json(value: Any) -> bytes:
    return serialize.json_bytes(value)


def _matchbox(cluster: Cluster, node: Node, fmt: Format, config: bytes, options: PxeOptions) -> dict[str, File]:
    assert node.mac is not None
    ident = matchbox_id(cluster, node)
    mode = 0o600 if keyscan.holds_private_key(config) else 0o644
    meta = {"cluster": cluster.name, "node": node.name, "role": node.role.value}
    files: dict[str, File] = {}
    if fmt is Format.IGNITION:
        install = matchbox_id(cluster, node, "install")
        assets = f"/assets/flatcar/{options.os_version}"
        files[f"matchbox/profiles/{install}.json"] = File(
            _json(
                {
                    "id": install,
                    "name": f"Flatcar {options.os_version} install to {options.install_disk}: {node.name}",
                    "boot": {
                        "kernel": f"{assets}/{FLATCAR_KERNEL}",
                        "initrd": [f"{assets}/{FLATCAR_INITRD}"],
                        "args": [
                            f"initrd={FLATCAR_INITRD}",
                            f"flatcar.config.url={options.http_endpoint}/ignition?uuid=${{uuid}}&mac=${{mac:hexhyp}}",
                            "flatcar.first_boot=yes",
                            "console=tty0",
                            "console=ttyS0",
                        ],
                    },
                    "ignition_id": f"{install}.ign",
                }
            )
        )
        files[f"matchbox/ignition/{install}.ign"] = File(install_ignition(cluster, node, options))
        files[f"matchbox/groups/{install}.json"] = File(
            _json(
                {
                    "id": install,
                    "name": f"{node.name}: network install",
                    "profile": install,
                    "selector": {"mac": node.mac},
                    "metadata": {**meta, "stage": "install"},
                }
            )
        )
        selector = {"mac": node.mac, "os": "installed"}
        profile = {"id": ident, "name": f"{node.name}: installed {node.role}", "ignition_id": f"{ident}.ign"}
        files[f"matchbox/ignition/{ident}.ign"] = File(config, mode)
    else:
        selector = {"mac": node.mac}
        profile = {"id": ident, "name": f"{node.name}: {node.role} (cloud-init)", "cloud_id": f"{ident}.yaml"}
        files[f"matchbox/cloud/{ident}.yaml"] = File(go_template_literal(config), mode)
    files[f"matchbox/profiles/{ident}.json"] = File(_json(profile))
    group = {"id": ident, "name": f"{node.name}: {node.role}", "profile": ident, "selector": selector}
    files[f"matchbox/groups/{ident}.json"] = File(_json({**group, "metadata": {**meta, "stage": "installed"}}))
    return files


# -- DHCP --------------------------------------------------------------------------------------
def _header(cluster: Cluster, comment: str, use: str) -> list[str]:
    return [
        f"{comment} isobuild: DHCP static mappings of cluster {cluster.name}, made from cluster.yaml by",
        f"{comment} `isobuild pxe`; edit cluster.yaml, not this file. {use}",
    ]


def dnsmasq_hosts(cluster: Cluster, exported: list[Exported], options: PxeOptions) -> bytes:
    lines = _header(cluster, "#", "Use: conf-file=THIS_FILE in dnsmasq.conf.")
    for e in exported:
        ip = f"[{e.node.ip}]" if model.is_ipv6(e.node.ip) else e.node.ip
        lines.append(f"dhcp-host={e.node.mac},set:isobuild,{ip},{e.node.name}")
    if options.next_server and exported:
        lines += [
            "# iPXE chain-loading for these hosts: BIOS gets undionly.kpxe, UEFI ipxe.efi, from the TFTP",
            "# server below; iPXE then loads matchbox's boot script, which picks each host's profile.",
            "dhcp-userclass=set:isobuild-ipxe,iPXE",
            "dhcp-match=set:isobuild-efi64,option:client-arch,7",
            "dhcp-match=set:isobuild-efi64,option:client-arch,9",
            f"dhcp-boot=tag:isobuild,tag:!isobuild-ipxe,tag:isobuild-efi64,ipxe.efi,,{options.next_server}",
            f"dhcp-boot=tag:isobuild,tag:!isobuild-ipxe,tag:!isobuild-efi64,undionly.kpxe,,{options.next_server}",
            f"dhcp-boot=tag:isobuild,tag:isobuild-ipxe,{options.http_endpoint}/boot.ipxe",
        ]
    return ("\n".join(lines) + "\n").encode()


def dhcpd_hosts(cluster: Cluster, exported: list[Exported], options: PxeOptions) -> bytes:
    lines = _header(cluster, "#", 'Use: include "THIS_FILE"; in dhcpd.conf.')
    for e in exported:
        if model.is_ipv6(e.node.ip):
            lines.append(f"# {e.node.name}: IPv6 ({e.node.ip}) is for dhcpd -6, not this file")
            continue
        lines += [
            f"host {matchbox_id(cluster, e.node)} {{",
            f"  hardware ethernet {e.node.mac};",
            f"  fixed-address {e.node.ip};",
            f"  option host-name {json.dumps(e.node.name)};",
        ]
        if options.next_server:
            lines += [
                f"  next-server {options.next_server};",
                '  if exists user-class and option user-class = "iPXE" {',
                f"    filename {json.dumps(options.http_endpoint + '/boot.ipxe')};",
                "  } elsif option pxe-system-type = 00:07 or option pxe-system-type = 00:09 {",
                '    filename "ipxe.efi";',
                "  } else {",
                '    filename "undionly.kpxe";',
                "  }",
            ]
        lines.append("}")
    return ("\n".join(lines) + "\n").encode()


# -- inventories for other tools -------------------------------------------------------------
def inventory_csv(cluster: Cluster) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "role", "mac", "ip", "format", "media"])
    for n in cluster.nodes:
        writer.writerow([n.name, n.role.value, n.mac or "", n.ip, cluster.format_of(n), cluster.media_of(n)])
    return out.getvalue().encode()


def inventory_json(cluster: Cluster, network_booted: set[str]) -> bytes:
    return _json(
        {
            "cluster": {
                "name": cluster.name,
                "cluster_id": cluster.cluster_id,
                "api_server": cluster.server_url() if cluster.controllers() or cluster.endpoint else None,
                "kubernetes_version": cluster.kubernetes_version,
            },
            "nodes": [
                {
                    "name": n.name,
                    "role": n.role.value,
                    "ip": n.ip,
                    "mac": n.mac,
                    "format": cluster.format_of(n).value,
                    "media": cluster.media_of(n).value,
                    "labels": model.sorted_labels(n.all_labels()),
                    "network_boot": n.name in network_booted,
                    "folder": n.folder,
                }
                for n in cluster.nodes
            ],
        }
    )


def ansible_inventory(cluster: Cluster) -> bytes:
    """A YAML inventory: one group per role, the node's IP as ansible_host."""
    children: dict[str, Any] = {}
    for role in Role:
        group = role.ansible_group
        hosts = {}
        for n in (n for n in cluster.nodes if n.role is role):
            hostvars: dict[str, Any] = {"ansible_host": n.ip}
            if cluster.format_of(n) is Format.IGNITION:
                hostvars["ansible_user"] = "core"  # Flatcar's login user; cloud images have their own
            hostvars |= {"isobuild_role": role.value, "isobuild_format": cluster.format_of(n).value}
            if n.mac:
                hostvars["isobuild_mac"] = n.mac
            hosts[n.name] = hostvars
        if hosts:
            children[group] = {"hosts": hosts}
    document = {"all": {"vars": {"isobuild_cluster": cluster.name}, "children": children}}
    header = f"# Ansible inventory of cluster {cluster.name}, made by `isobuild pxe` from cluster.yaml.\n"
    return header.encode() + yaml.safe_dump(document, sort_keys=False).encode()
