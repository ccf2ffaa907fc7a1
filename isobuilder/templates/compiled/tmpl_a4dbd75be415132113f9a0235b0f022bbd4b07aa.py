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
    pass
    if (undefined(name='is_controller') if l_0_is_controller is missing else l_0_is_controller):
        pass
        yield '\ninit_control_plane() {\n  require_files /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/admin.conf \\\n    "${ADDONS_DIR}/kubeadm.yaml" "${ADDONS_DIR}/kubeadm-join.yaml"\n  local config="${ADDONS_DIR}/kubeadm.yaml" joined=0\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n  if [[ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]]; then\n    log "control plane manifests present"\n  elif kubectl get --raw /readyz --request-timeout=10s >/dev/null 2>&1; then\n    # The control plane already runs at the endpoint: this controller was added later. kubeadm\n    # finds every certificate and kubeconfig in place (no token, no certificate key) and adds\n    # this node\'s etcd member; admin.conf is its discovery file.\n    log "kubeadm join --control-plane (the API at ${ENDPOINT} answers)"\n    kubeadm join --config "${ADDONS_DIR}/kubeadm-join.yaml" || die "kubeadm join failed; see the log above"\n    joined=1\n  else\n    # kubeadm finds our certificates and kubeconfigs in place and uses them instead of making its own.\n    # Every controller of cluster.yaml is in etcd\'s initial member list: boot them together; etcd\n    # (and so the API) answers once a majority of them runs.'
        if (undefined(name='vip') if l_0_vip is missing else l_0_vip):
            pass
            yield '\n    # kube-vip needs super-admin.conf until kubeadm init has bound admin.conf to cluster-admin.\n    install_manifest kube-vip-init.yaml kube-vip.yaml'
        yield '\n    log "kubeadm init"\n    kubeadm init --config "$config" --skip-token-print || log "kubeadm init failed; finishing its steps below"\n  fi\n  local i\n  for i in $(seq 1 60); do\n    kubectl get --raw /readyz >/dev/null 2>&1 && break\n    log "waiting for the API server at ${ENDPOINT} (${i}/60)"\n    sleep 5\n  done\n  kubectl get --raw /readyz >/dev/null || die "the API server did not become ready"'
        if (undefined(name='vip') if l_0_vip is missing else l_0_vip):
            pass
            yield '\n  install_manifest kube-vip.yaml kube-vip.yaml'
        yield '\n  # kubeadm-config is among the last things init uploads: without it, an earlier init stopped\n  # half-way (a timeout, a reboot). Its remaining phases are idempotent; run them again.\n  if [[ $joined == 0 ]] && ! kubectl -n kube-system get configmap kubeadm-config >/dev/null 2>&1; then\n    log "completing kubeadm init"\n    kubeadm init phase upload-config all --config "$config"\n    kubeadm init phase mark-control-plane --config "$config"\n    kubeadm init phase bootstrap-token --config "$config" --skip-token-print\n    kubeadm init phase addon all --config "$config"\n  fi\n}\n'
        if (undefined(name='vip') if l_0_vip is missing else l_0_vip):
            pass
            yield '\ninstall_manifest() {  # source in ADDONS_DIR, static pod file name: kubelet (re)starts it when it changes\n  local source="${ADDONS_DIR}/$1" target="/etc/kubernetes/manifests/$2"\n  if ! cmp -s "$source" "$target"; then\n    log "static pod $2 from $1"\n    install -D -m 0600 "$source" "$target"\n  fi\n}\n'
        yield '\napply_addons() {\n  log "applying RBAC bindings, CNI (flannel) and the edge ingress controller"\n  kubectl apply -f "${ADDONS_DIR}/rbac.yaml"\n  kubectl apply -k "${ADDONS_DIR}/flannel"\n  kubectl apply -k "${ADDONS_DIR}/ingress-nginx"\n}\n'
    else:
        pass
        yield '\nstart_kubelet() {\n  # As kubeadm does on nodes it sets up: with systemd-resolved, pods must not inherit the\n  # 127.0.0.53 stub resolver (CoreDNS would forward to itself and loop).\n  if systemctl is-active --quiet systemd-resolved; then\n    printf \'%s\\n\' \'KUBELET_EXTRA_ARGS=--resolv-conf=/run/systemd/resolve/resolv.conf\' >/etc/default/kubelet\n  fi\n  local inputs=(/etc/kubernetes/kubelet.conf /etc/kubernetes/pki/ca.crt /var/lib/kubelet/config.yaml\n    /var/lib/kubelet/kubeadm-flags.env /var/lib/kubelet/pki/kubelet.crt /var/lib/kubelet/pki/kubelet.key)\n  require_files "${inputs[@]}"\n  [[ -f /etc/default/kubelet ]] && inputs+=(/etc/default/kubelet)\n  # The kubelet joins with its pre-issued identity (system:node:NAME): no bootstrap token involved.\n  # It is restarted when it is down or any of its inputs changed since the last run.\n  local stamp=/var/lib/isobuild/kubelet-inputs.sha256 sums\n  sums=$(sha256sum "${inputs[@]}")\n  systemctl enable kubelet >/dev/null 2>&1\n  if systemctl is-active --quiet kubelet && [[ "$(cat "$stamp" 2>/dev/null)" == "$sums" ]]; then\n    log "kubelet running with current configuration"\n  else\n    log "(re)starting kubelet"\n    systemctl restart kubelet\n    install -d -m 0700 /var/lib/isobuild\n    printf \'%s\\n\' "$sums" >"$stamp"\n  fi\n}\n'
    yield '\n'

blocks = {}
debug_info = '2=13&21=16&35=20&48=24'