from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = '_kubernetes.sh.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_is_controller = resolve('is_controller')
    l_0_vip = resolve('vip')
    l_0_cni = resolve('cni')
    l_0_ingress = resolve('ingress')
    l_0_pod_cidr = resolve('pod_cidr')
    l_0_cri_socket_annotation = resolve('cri_socket_annotation')
    l_0_cri_socket = resolve('cri_socket')
    try:
        t_1 = environment.filters['shquote']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'shquote' found.")
    pass
    if (undefined(name='is_controller') if l_0_is_controller is missing else l_0_is_controller):
        pass
        yield '\napi() {  # kubectl as the cluster admin, through the endpoint admin.conf names\n  kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=10s "$@"\n}\n\nwait_for_api() {  # until the API server answers at the endpoint; the reason, once a minute\n  local waited=0 reason\n  until reason=$(api "$@" 2>&1 >/dev/null); do\n    ((waited % 60 == 0)) && log "waiting for the API server at ${ENDPOINT}: ${reason##*$\'\\n\'}"\n    sleep 10\n    waited=$((waited + 10))\n  done\n}\n\ninit_control_plane() {\n  require_files /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/admin.conf\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n  if [[ -f "$CONTROL_PLANE_DONE" ]]; then\n    log "this controller is part of the control plane"\n  elif [[ $BOOTSTRAP == 1 ]] && ! api -n kube-system get configmap kubeadm-config >/dev/null 2>&1; then\n    bootstrap_control_plane\n  else\n    join_control_plane\n  fi\n  wait_for_api get --raw /readyz'
        if (undefined(name='vip') if l_0_vip is missing else l_0_vip):
            pass
            yield '\n  install_manifest kube-vip.yaml kube-vip.yaml'
        yield '\n  install -d -m 0700 "$(dirname "$CONTROL_PLANE_DONE")"\n  touch "$CONTROL_PLANE_DONE"\n}\n\nbootstrap_control_plane() {\n  # kubeadm\'s HA flow: this one controller runs kubeadm init; every other one waits for it and\n  # joins. kubeadm finds our certificates in place and keeps them when they chain to the CA and\n  # carry the names it computes (phases/certs/certs.go, writeCertificateFilesIfNotExist,\n  # validateCertificateWithConfig): docs/KUBEADM.md.\n  local config="${ADDONS_DIR}/kubeadm.yaml"\n  require_files "$config"\n  if [[ ! -f /etc/kubernetes/manifests/kube-apiserver.yaml ]]; then'
        if (undefined(name='vip') if l_0_vip is missing else l_0_vip):
            pass
            yield '\n    # kube-vip needs super-admin.conf until kubeadm init has bound admin.conf to cluster-admin.\n    install_manifest kube-vip-init.yaml kube-vip.yaml'
        yield '\n    log "kubeadm init (${NODE_NAME} bootstraps the control plane; the other controllers join it)"\n    if kubeadm init --config "$config" --skip-token-print; then\n      return\n    fi\n    log "kubeadm init failed; finishing its steps once the API server answers"\n  else\n    log "an earlier kubeadm init stopped part-way; finishing its steps once the API server answers"\n  fi\n  # The phases after wait-control-plane, each idempotent: kubeadm-config is uploaded, this node\n  # is marked control plane (label and taint), the bootstrap RBAC and the add-ons set up.\n  wait_for_api get --raw /readyz\n  kubeadm init phase upload-config all --config "$config"\n  kubeadm init phase mark-control-plane --config "$config"\n  kubeadm init phase bootstrap-token --config "$config" --skip-token-print\n  kubeadm init phase addon all --config "$config"\n}\n\njoin_control_plane() {\n  local config="${ADDONS_DIR}/kubeadm-join.yaml"\n  require_files "$config"\n  if [[ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]]; then\n    # kubeadm join wrote the control plane\'s static pods, then stopped: its last phases remain.\n    # kubeadm adds the etcd member only once: a member already added is found and kept\n    # (cmd/kubeadm/app/util/etcd/etcd.go, addMember).\n    log "an earlier kubeadm join stopped part-way; finishing it"\n    kubeadm join phase control-plane-join all --config "$config"\n    return\n  fi\n  # kubeadm join reads the ClusterConfiguration kubeadm init uploaded (kube-system/kubeadm-config):\n  # wait for it as long as the bootstrap controller takes. Controllers boot in any order.\n  wait_for_api -n kube-system get configmap kubeadm-config\n  log "kubeadm join --control-plane (${INIT_CONTROLLER} has bootstrapped the control plane at ${ENDPOINT})"\n  kubeadm join --config "$config" || die "kubeadm join failed; see the log above"\n}\n'
        if (undefined(name='vip') if l_0_vip is missing else l_0_vip):
            pass
            yield '\ninstall_manifest() {  # source in ADDONS_DIR, static pod file name: kubelet (re)starts it when it changes\n  local source="${ADDONS_DIR}/$1" target="/etc/kubernetes/manifests/$2"\n  if ! cmp -s "$source" "$target"; then\n    log "static pod $2 from $1"\n    install -D -m 0600 "$source" "$target"\n  fi\n}\n'
        yield '\napply_addons() {\n  log "applying RBAC bindings'
        yield str((', CNI (flannel)' if ((undefined(name='cni') if l_0_cni is missing else l_0_cni) == 'flannel') else cond_expr_undefined("the inline if-expression on line 90 in '_kubernetes.sh.j2' evaluated to false and no else section was defined.")))
        yield str((str_join((', the edge ingress controller (', (undefined(name='ingress') if l_0_ingress is missing else l_0_ingress), ')', )) if ((undefined(name='ingress') if l_0_ingress is missing else l_0_ingress) != 'none') else cond_expr_undefined("the inline if-expression on line 90 in '_kubernetes.sh.j2' evaluated to false and no else section was defined.")))
        yield '"\n  kubectl apply -f "${ADDONS_DIR}/rbac.yaml"'
        if ((undefined(name='cni') if l_0_cni is missing else l_0_cni) == 'flannel'):
            pass
            yield '\n  kubectl apply -k "${ADDONS_DIR}/flannel"'
        else:
            pass
            yield '\n  log "cni: none in cluster.yaml: install your CNI now (with pod CIDR '
            yield str((undefined(name='pod_cidr') if l_0_pod_cidr is missing else l_0_pod_cidr))
            yield '); until it runs, nodes stay NotReady and CoreDNS Pending"'
        if ((undefined(name='ingress') if l_0_ingress is missing else l_0_ingress) != 'none'):
            pass
            yield '\n  kubectl apply -k "${ADDONS_DIR}/'
            yield str((undefined(name='ingress') if l_0_ingress is missing else l_0_ingress))
            yield '"'
        yield '\n}\n'
    else:
        pass
        yield '\nstart_kubelet() {\n  # As kubeadm does on nodes it sets up: with systemd-resolved, pods must not inherit the\n  # 127.0.0.53 stub resolver (CoreDNS would forward to itself and loop).\n  if systemctl is-active --quiet systemd-resolved; then\n    printf \'%s\\n\' \'KUBELET_EXTRA_ARGS=--resolv-conf=/run/systemd/resolve/resolv.conf\' >/etc/default/kubelet\n  fi\n  local inputs=(/etc/kubernetes/kubelet.conf /etc/kubernetes/pki/ca.crt /var/lib/kubelet/config.yaml\n    /var/lib/kubelet/kubeadm-flags.env /var/lib/kubelet/pki/kubelet.crt /var/lib/kubelet/pki/kubelet.key)\n  require_files "${inputs[@]}"\n  [[ -f /etc/default/kubelet ]] && inputs+=(/etc/default/kubelet)\n  # The kubelet joins with its pre-issued identity (system:node:NAME): no bootstrap token involved.\n  # It is restarted when it is down or any of its inputs changed since the last run.\n  local stamp=/var/lib/isobuild/kubelet-inputs.sha256 sums\n  sums=$(sha256sum "${inputs[@]}")\n  systemctl enable kubelet >/dev/null 2>&1\n  if systemctl is-active --quiet kubelet && [[ "$(cat "$stamp" 2>/dev/null)" == "$sums" ]]; then\n    log "kubelet running with current configuration"\n  else\n    log "(re)starting kubelet"\n    systemctl restart kubelet\n    install -d -m 0700 /var/lib/isobuild\n    printf \'%s\\n\' "$sums" >"$stamp"\n  fi'
        if (undefined(name='cri_socket_annotation') if l_0_cri_socket_annotation is missing else l_0_cri_socket_annotation):
            pass
            yield '\n  # What kubeadm join does before Kubernetes 1.34 (phases/patchnode/patchnode.go, AnnotateCRISocket):\n  # kubeadm\'s later commands read the node\'s CRI socket from this annotation.\n  local waited=0\n  until kubectl --kubeconfig /etc/kubernetes/kubelet.conf --request-timeout=10s annotate --overwrite \\\n    node "$NODE_NAME" '
            yield str(t_1(str_join(((undefined(name='cri_socket_annotation') if l_0_cri_socket_annotation is missing else l_0_cri_socket_annotation), '=', (undefined(name='cri_socket') if l_0_cri_socket is missing else l_0_cri_socket), ))))
            yield ' >/dev/null; do\n    ((waited % 60 == 0)) && log "waiting for node ${NODE_NAME} to register, to annotate its CRI socket"\n    sleep 10\n    waited=$((waited + 10))\n  done'
        yield '\n}\n'
    yield '\n'

blocks = {}
debug_info = '2=24&27=27&42=31&80=35&90=39&92=42&95=48&97=50&98=53&125=59&130=62'