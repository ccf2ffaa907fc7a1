"""What kubeadm and the kubelet read, and the add-ons a controller applies, as data. Pure.

kubeadm's Init/Cluster/Join configurations (one bootstrap controller inits; the others join by
admin.conf discovery, no token), the KubeletConfiguration and kubeadm-flags.env of a joining node, the
kube-vip static pod, RBAC bindings and the flannel, Contour and ingress-nginx kustomizations: each is
built as a mapping and serialised by ``serialize``, never pasted into text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from isobuilder import serialize
from isobuilder.files import File
from isobuilder.model import API_PORT, Cluster, Cni, Format, Ingress, Node, Role, bracket, is_ipv6, sorted_labels

ADDONS_DIR = "/etc/kubernetes/isobuild"
FLATCAR_VOLUME_PLUGIN_DIR = "/opt/libexec/kubernetes/kubelet-plugins/volume/exec/"  # /usr is read-only there
PKI_DIR = "/etc/kubernetes/pki"
KUBELET_PKI_DIR = "/var/lib/kubelet/pki"
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
INSTANCE_CONFIG = "/var/lib/kubelet/instance-config.yaml"  # kubeadm's KubeletInstanceConfigurationFileName
CRI_SOCKET_ANNOTATION = "kubeadm.alpha.kubernetes.io/cri-socket"  # kubeadm's AnnotationKubeadmCRISocket
KUBEADM_API = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
# kubeadm v1beta4's waits (defaults in cmd/kubeadm/app/constants/constants.go: 4 min for the
# control plane). Image pulls on a slow link take longer; a timeout here is a failed install.
TIMEOUTS = {"controlPlaneComponentHealthCheck": "15m0s", "kubeletHealthCheck": "10m0s"}


HostFiles = dict[str, File]  # absolute path on the node -> file


def _args(flags: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """kubeadm v1beta4's ``[]Arg`` (cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go: name, value)."""
    pairs = flags.items() if isinstance(flags, Mapping) else flags
    return [{"name": k, "value": v} for k, v in pairs]


# Edge routers carry this taint, as controllers carry node-role.kubernetes.io/control-plane: only
# what tolerates it (the ingress, flannel's and kube-proxy's DaemonSets) runs on the node that
# faces the internet. The kubelet registers with it: pkg/kubelet/kubelet_node_status.go,
# initialNode (registerWithTaints, at the first registration only: never reconciled after), and
# NodeRestriction lets a kubelet set taints when it creates its Node, never change them later
# (plugin/pkg/admission/noderestriction/admission.go, admitNode: "is not allowed to modify
# taints"). As a flag, as kubeadm passes a joining node's taints (phases/kubelet/flags.go): a
# `kubeadm upgrade node` rewrites config.yaml, not kubeadm-flags.env.
EDGE_TAINT = {"key": "node-role.kubernetes.io/edge", "effect": "NoSchedule"}


def kubelet_flags(node: Node) -> dict[str, str]:
    flags = {"node-ip": node.ip, "hostname-override": node.name}
    labels = sorted_labels(node.all_labels())
    if labels:
        flags["node-labels"] = ",".join(f"{k}={v}" for k, v in labels.items())
    if node.role is Role.EDGE:
        flags["register-with-taints"] = f"{EDGE_TAINT['key']}:{EDGE_TAINT['effect']}"
    return flags


def kubelet_args(cluster: Cluster, node: Node) -> list[tuple[str, str]]:
    """The kubelet's flags: isobuild's (:func:`kubelet_flags`), then cluster.yaml's extra ones
    (never one of isobuild's: ``customchecks.OWNED_ARGS``)."""
    return [*kubelet_flags(node).items(), *cluster.kubelet_extra_args_of(node)]


def kubelet_configuration(cluster: Cluster, node: Node, *, full: bool) -> dict[str, Any]:
    """The KubeletConfiguration; ``full`` adds what kubeadm fills in itself on a controller."""
    config: dict[str, Any] = {
        "apiVersion": KUBELET_API,
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        # The pre-issued system:node:NAME certificate is also the serving certificate, signed by
        # the cluster CA: metrics-server and kubectl logs verify it without --kubelet-insecure-tls.
        "tlsCertFile": f"{KUBELET_PKI_DIR}/kubelet.crt",
        "tlsPrivateKeyFile": f"{KUBELET_PKI_DIR}/kubelet.key",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }
    if cluster.format_of(node) is Format.IGNITION:
        config["volumePluginDir"] = FLATCAR_VOLUME_PLUGIN_DIR
    if full:
        config |= {
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": f"{PKI_DIR}/ca.crt"},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDNS": [cluster.dns_service_ip()],
            "clusterDomain": cluster.domain,
            "staticPodPath": "/etc/kubernetes/manifests",
            "containerRuntimeEndpoint": CRI_SOCKET,
        }
    return config


def _node_registration(cluster: Cluster, node: Node, ignore: list[str]) -> dict[str, Any]:
    registration: dict[str, Any] = {
        "name": node.name,
        "criSocket": CRI_SOCKET,
        "kubeletExtraArgs": _args(kubelet_args(cluster, node)),
    }
    if ignore:
        registration["ignorePreflightErrors"] = ignore
    return registration


def kubeadm_configuration(cluster: Cluster, node: Node) -> bytes:
    """``kubeadm init``'s config, for the bootstrap controller only (:meth:`Cluster.init_controller`).

    What it holds becomes the cluster's: init uploads the ClusterConfiguration to
    kube-system/kubeadm-config (phases/uploadconfig/uploadconfig.go, ``UploadConfiguration``) and
    every later join reads it from there, never from its own file. So it carries only cluster-wide
    values: certSANs are :meth:`Cluster.cluster_sans`, and the components' extraArgs from
    cluster.yaml. kubeadm starts etcd as a one-member cluster here and adds each joining
    controller as a member itself (phases/etcd/local.go, ``CreateStackedEtcdStaticPodManifestFile``);
    an ``initial-cluster`` in extraArgs would override the member list it computes for every
    later join, so etcd's may name no membership flag (``customchecks.OWNED_ARGS``)."""
    host, port = cluster.endpoint_host_port()
    # kube-vip's manifest sits in /etc/kubernetes/manifests before kubeadm init runs.
    ignore = ["DirAvailable--etc-kubernetes-manifests"] if cluster.vip else []
    init = {
        "apiVersion": KUBEADM_API,
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": node.ip, "bindPort": API_PORT},
        "nodeRegistration": _node_registration(cluster, node, ignore),
        "timeouts": TIMEOUTS,
    }
    cluster_config: dict[str, Any] = {
        "apiVersion": KUBEADM_API,
        "kind": "ClusterConfiguration",
        "clusterName": cluster.name,
        "kubernetesVersion": f"v{cluster.kubernetes_version.removeprefix('v')}",
        # Always set: kubeadm join --control-plane refuses a cluster without one
        # (cmd/kubeadm/app/cmd/phases/join/preflight.go, checkIfReadyForAdditionalControlPlane).
        "controlPlaneEndpoint": f"{bracket(host)}:{port}",
        "certificatesDir": PKI_DIR,
        "encryptionAlgorithm": _kubeadm_algorithm(cluster),
        "networking": {
            "serviceSubnet": cluster.service_cidr,
            "podSubnet": cluster.pod_cidr,
            "dnsDomain": cluster.domain,
        },
        "apiServer": {"certSANs": list(cluster.cluster_sans())},
    }
    # cluster.yaml's extraArgs: kubeadm puts them on the component's command line after its own
    # flags, replacing those of the same name (util/arguments.go, ArgumentsToCommand).
    components = {
        "apiServer": cluster.apiserver_extra_args,
        "controllerManager": cluster.controller_manager_extra_args,
        "scheduler": cluster.scheduler_extra_args,
    }
    for key, args in components.items():
        if args:
            cluster_config.setdefault(key, {})["extraArgs"] = _args(args)
    if cluster.etcd_extra_args:
        cluster_config["etcd"] = {"local": {"extraArgs": _args(cluster.etcd_extra_args)}}
    return serialize.yaml_documents(init, cluster_config, kubelet_configuration(cluster, node, full=False))


def kubeadm_join_configuration(cluster: Cluster, node: Node) -> bytes:
    """``kubeadm join --control-plane``'s config, for every controller: the others join the
    bootstrap controller, and the bootstrap controller itself joins when it is set up again on a
    running cluster. Discovery is admin.conf (pre-issued, naming the endpoint): a discovery file
    with client credentials is used with them (cmd/kubeadm/app/discovery/file/file.go,
    ValidateConfigInfo), so no bootstrap token and no certificate key; kubeadm finds every
    certificate in place and adds the etcd member."""
    join = {
        "apiVersion": KUBEADM_API,
        "kind": "JoinConfiguration",
        # kubelet.conf is pre-issued (system:node:NAME): the kubelet needs no TLS bootstrap.
        "nodeRegistration": _node_registration(
            cluster, node, ["FileAvailable--etc-kubernetes-kubelet.conf", "FileAvailable--etc-kubernetes-pki-ca.crt"]
        ),
        "discovery": {"file": {"kubeConfigPath": "/etc/kubernetes/admin.conf"}},
        "controlPlane": {"localAPIEndpoint": {"advertiseAddress": node.ip, "bindPort": API_PORT}},
        "timeouts": TIMEOUTS,
    }
    return serialize.yaml_documents(join)


def kube_vip_manifest(cluster: Cluster, kubeconfig: str) -> bytes:
    """kube-vip as a static pod on every controller (ARP, leader election over a Lease): one
    controller at a time answers for the VIP. ``kubeconfig``: the host file it authenticates with
    (super-admin.conf while kubeadm init runs: admin.conf is bound to cluster-admin only at its end)."""
    assert cluster.vip is not None
    env = {
        "vip_arp": "true",
        "port": str(API_PORT),
        "vip_subnet": "128" if is_ipv6(cluster.vip) else "32",
        "cp_enable": "true",
        "cp_namespace": "kube-system",
        "vip_leaderelection": "true",
        "vip_leasename": "plndr-cp-lock",
        "vip_leaseduration": "5",
        "vip_renewdeadline": "3",
        "vip_retryperiod": "1",
        "address": cluster.vip,
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system"},
        "spec": {
            "containers": [
                {
                    "name": "kube-vip",
                    "image": f"ghcr.io/kube-vip/kube-vip:{cluster.kube_vip_version}",
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["manager"],
                    "env": [
                        *({"name": k, "value": v} for k, v in env.items()),
                        {"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    ],
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
                    "volumeMounts": [{"name": "kubeconfig", "mountPath": "/etc/kubernetes/admin.conf"}],
                }
            ],
            # kube-vip talks to the local apiserver as https://kubernetes:6443 (a SAN of it).
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}],
            "hostNetwork": True,
            "volumes": [{"name": "kubeconfig", "hostPath": {"path": f"/etc/kubernetes/{kubeconfig}", "type": "File"}}],
        },
    }
    return serialize.yaml_documents(pod)


def _kubeadm_algorithm(cluster: Cluster) -> str:
    return {"ecdsa-p256": "ECDSA-P256", "ecdsa-p384": "ECDSA-P384"}.get(
        cluster.key_type.value, cluster.key_type.value.upper()
    )


def rbac_manifest() -> bytes:
    """Bindings kubeadm init creates too; applied again so they exist whatever happened."""

    def binding(name: str, role: str, kind: str, subject: str) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
        }

    return serialize.yaml_documents(
        binding("kubeadm:cluster-admins", "cluster-admin", "Group", "kubeadm:cluster-admins"),
        binding(
            "kubeadm:apiserver-kubelet-client", "system:kubelet-api-admin", "User", "kube-apiserver-kubelet-client"
        ),
    )


def flannel_net_conf(cluster: Cluster) -> dict[str, Any]:
    """flannel's net-conf.json for the pod network (flannel-io/flannel pkg/subnet/config.go,
    ``ParseConfig``: EnableIPv4 defaults to true and then needs ``Network``; an IPv6 network is
    ``IPv6Network`` with ``EnableIPv6``, and IPv6 alone turns IPv4 off). The backend is one for
    the whole cluster (a node skips peers of another type): VXLAN, or WireGuard once a node's
    address is on the internet (:meth:`Cluster.pod_network_encrypted`)."""
    if is_ipv6(cluster.pod_cidr.partition("/")[0]):
        family: dict[str, Any] = {"EnableIPv4": False, "EnableIPv6": True, "IPv6Network": cluster.pod_cidr}
    else:
        family = {"Network": cluster.pod_cidr}
    return {**family, "EnableNFTables": False, "Backend": flannel_backend(cluster)}


# flannel-io/flannel pkg/backend/wireguard/wireguard.go, RegisterNetwork: the options and their
# defaults (ListenPort 51820, ListenPortV6 51821, keepalive off); PersistentKeepaliveInterval is a
# number of seconds (the value is multiplied by time.Second). A node behind NAT keeps its mapping
# open with it, so that the edge router on the internet reaches it back.
WIREGUARD_KEEPALIVE_S = 25


def flannel_backend(cluster: Cluster) -> dict[str, Any]:
    if cluster.pod_network_encrypted:
        return {"Type": "wireguard", "PersistentKeepaliveInterval": WIREGUARD_KEEPALIVE_S}
    return {"Type": "vxlan"}


def flannel_kustomization(cluster: Cluster) -> bytes:
    """flannel's release manifest, pinned, with our pod network patched in as data, and flanneld
    told to use the node's own address (the kubelet's --node-ip): without ``--iface`` it takes
    the interface of the default route (pkg/ipmatch/match.go, ``LookupExtIface``), which on an
    edge router with a private and a public address is the public one. ``status.hostIP`` is the
    first of the Node's host IPs, InternalIP first, which --node-ip sets (kubernetes
    pkg/kubelet/kubelet_pods.go, ``podFieldSelectorRuntimeValue``; pkg/util/node/node.go,
    ``GetNodeHostIPs``), and the kubelet expands ``$(NODE_IP)`` in args
    (pkg/kubelet/container/helpers.go, ``ExpandContainerCommandAndArgs``)."""
    net_conf = json.dumps(flannel_net_conf(cluster), indent=2)
    url = f"https://github.com/flannel-io/flannel/releases/download/{cluster.flannel_version}/kube-flannel.yml"
    node_ip = [
        {
            "op": "add",
            "path": "/spec/template/spec/containers/0/env/-",
            "value": {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        },
        {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--iface=$(NODE_IP)"},
    ]
    return serialize.yaml_documents(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [url],
            "patches": [
                {
                    "target": {"kind": "ConfigMap", "name": "kube-flannel-cfg"},
                    "patch": serialize.yaml_documents(
                        [{"op": "replace", "path": "/data/net-conf.json", "value": net_conf + "\n"}]
                    ).decode(),
                },
                {
                    "target": {"kind": "DaemonSet", "name": "kube-flannel-ds"},
                    "patch": serialize.yaml_documents(node_ip).decode(),
                },
            ],
        }
    )


def _on_edge_routers() -> dict[str, Any]:
    """A pod spec's placement on edge routers: their label, and a toleration of their taint."""
    return {
        "nodeSelector": {"kubernetes.io/os": "linux", **Role.EDGE.builtin_labels()},
        "tolerations": [{**EDGE_TAINT, "operator": "Exists"}],
    }


def contour_kustomization(cluster: Cluster) -> bytes:
    """Contour's all-in-one manifest at its release tag (projectcontour/contour,
    examples/render/contour.yaml): its Envoy DaemonSet already serves hostPorts 80 and 443
    (examples/contour/03-envoy.yaml); here it runs on the edge routers only. Its Service
    ``envoy`` is a LoadBalancer, which bare metal never provisions: a ClusterIP here
    (externalTrafficPolicy goes: the API refuses it on a ClusterIP)."""
    url = (
        f"https://raw.githubusercontent.com/projectcontour/contour/{cluster.contour_version}"
        "/examples/render/contour.yaml"
    )
    envoy = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "envoy", "namespace": "projectcontour"},
        "spec": {"template": {"spec": _on_edge_routers()}},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "envoy", "namespace": "projectcontour"},
        "spec": {"type": "ClusterIP", "externalTrafficPolicy": None},
    }
    return serialize.yaml_documents(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [url],
            "patches": [
                {"patch": serialize.yaml_documents(envoy).decode()},
                {"patch": serialize.yaml_documents(service).decode()},
            ],
        }
    )


def ingress_kustomization(cluster: Cluster) -> bytes:
    """ingress-nginx's bare-metal release manifest, its Deployment swapped for the seed's design:
    a DaemonSet on ``role=edge-router`` nodes serving ports 80/443 on the host network."""
    tag = f"controller-{cluster.ingress_nginx_version}"
    url = (
        f"https://raw.githubusercontent.com/kubernetes/ingress-nginx/{tag}/deploy/static/provider/baremetal/deploy.yaml"
    )
    delete_deployment = serialize.yaml_documents(
        {
            "$patch": "delete",
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
        }
    ).decode()
    return serialize.yaml_documents(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [url, "daemonset.yaml"],
            "patches": [{"patch": delete_deployment}],
        }
    )


def ingress_daemonset(cluster: Cluster) -> bytes:
    labels = {
        "app.kubernetes.io/component": "controller",
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/name": "ingress-nginx",
    }
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "LD_PRELOAD", "value": "/usr/local/lib/libmimalloc.so"},
    ]
    probe = {"httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1}
    container = {
        "name": "controller",
        "image": f"registry.k8s.io/ingress-nginx/controller:{cluster.ingress_nginx_version}",
        "args": [
            "/nginx-ingress-controller",
            "--election-id=ingress-nginx-leader",
            "--controller-class=k8s.io/ingress-nginx",
            "--ingress-class=nginx",
            "--configmap=$(POD_NAMESPACE)/ingress-nginx-controller",
            "--validating-webhook=:8443",
            "--validating-webhook-certificate=/usr/local/certificates/cert",
            "--validating-webhook-key=/usr/local/certificates/key",
            "--watch-ingress-without-class=true",
        ],
        "env": env,
        "ports": [
            {"name": "http", "containerPort": 80, "hostPort": 80, "protocol": "TCP"},
            {"name": "https", "containerPort": 443, "hostPort": 443, "protocol": "TCP"},
            {"name": "webhook", "containerPort": 8443, "protocol": "TCP"},
        ],
        "livenessProbe": probe | {"initialDelaySeconds": 10, "failureThreshold": 5},
        "readinessProbe": probe | {"initialDelaySeconds": 10, "failureThreshold": 3},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": False,
            "runAsNonRoot": True,
            "runAsUser": 101,
            "runAsGroup": 82,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "webhook-cert", "mountPath": "/usr/local/certificates/", "readOnly": True}],
    }
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx", "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    **_on_edge_routers(),
                    "serviceAccountName": "ingress-nginx",
                    "terminationGracePeriodSeconds": 300,
                    "containers": [container],
                    "volumes": [{"name": "webhook-cert", "secret": {"secretName": "ingress-nginx-admission"}}],
                },
            },
        },
    }
    return serialize.yaml_documents(daemonset)


def worker_configs(cluster: Cluster, node: Node) -> HostFiles:
    """What ``kubeadm join`` writes on a worker (cmd/kubeadm/app/cmd/phases/join/kubelet.go,
    ``runKubeletStartJoinPhase``), written by us: no join token needed, and a later ``kubeadm
    upgrade node`` finds what it reads (cmd/kubeadm/app/phases/upgrade/postupgrade.go,
    ``WriteKubeletConfigFiles``): config.yaml, kubeadm-flags.env and the CRI socket, which it
    keeps while it rewrites config.yaml from the cluster's kubelet-config ConfigMap."""
    flags = kubelet_args(cluster, node)
    files = {
        "/var/lib/kubelet/config.yaml": File(serialize.yaml_documents(kubelet_configuration(cluster, node, full=True)))
    }
    if cluster.node_local_cri_socket():
        # kubeadm's NodeLocalCRISocket (beta, on, from 1.34): the socket lives in instance-config.yaml,
        # applied as a patch to every config.yaml kubeadm writes (phases/kubelet/config.go,
        # WriteInstanceConfigToDisk, WriteConfigToDisk).
        instance = {"apiVersion": KUBELET_API, "kind": "KubeletConfiguration", "containerRuntimeEndpoint": CRI_SOCKET}
        files[INSTANCE_CONFIG] = File(serialize.yaml_documents(instance))
    else:
        # Before it, in kubeadm-flags.env (phases/kubelet/flags.go, buildKubeletArgs).
        flags = [("container-runtime-endpoint", CRI_SOCKET), *flags]
    # systemd's EnvironmentFile reads "..." with \" and \\ escapes, not JSON's \uXXXX: UTF-8 as it is.
    env = "KUBELET_KUBEADM_ARGS=" + json.dumps(" ".join(f"--{k}={v}" for k, v in flags), ensure_ascii=False) + "\n"
    files["/var/lib/kubelet/kubeadm-flags.env"] = File(env.encode())
    return files


def controller_configs(cluster: Cluster, node: Node) -> HostFiles:
    files = {f"{ADDONS_DIR}/kubeadm-join.yaml": File(kubeadm_join_configuration(cluster, node), 0o600)}
    if cluster.is_bootstrap(node):
        files[f"{ADDONS_DIR}/kubeadm.yaml"] = File(kubeadm_configuration(cluster, node), 0o600)
    files[f"{ADDONS_DIR}/rbac.yaml"] = File(rbac_manifest())
    if cluster.cni is Cni.FLANNEL:
        files[f"{ADDONS_DIR}/flannel/kustomization.yaml"] = File(flannel_kustomization(cluster))
    if cluster.ingress is Ingress.CONTOUR:
        files[f"{ADDONS_DIR}/contour/kustomization.yaml"] = File(contour_kustomization(cluster))
    if cluster.ingress is Ingress.INGRESS_NGINX:
        files[f"{ADDONS_DIR}/ingress-nginx/kustomization.yaml"] = File(ingress_kustomization(cluster))
        files[f"{ADDONS_DIR}/ingress-nginx/daemonset.yaml"] = File(ingress_daemonset(cluster))
    if cluster.vip:
        files[f"{ADDONS_DIR}/kube-vip.yaml"] = File(kube_vip_manifest(cluster, "admin.conf"), 0o600)
        if cluster.is_bootstrap(node):
            files[f"{ADDONS_DIR}/kube-vip-init.yaml"] = File(kube_vip_manifest(cluster, "super-admin.conf"), 0o600)
    return files
