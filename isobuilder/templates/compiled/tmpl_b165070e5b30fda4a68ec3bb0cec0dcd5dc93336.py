from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = '_common.sh.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_wireguard = resolve('wireguard')
    l_0_ipv6_pods = resolve('ipv6_pods')
    pass
    yield 'LOG=/var/log/isobuild-install.log\nlog() { printf \'%s isobuild[%s]: %s\\n\' "$(date -u +%FT%TZ)" "$NODE_NAME" "$*" >&2; }\ndie() { log "ERROR: $*"; exit 1; }\n\n[[ ${EUID} -eq 0 ]] || die "run as root (sudo $0)"\n[[ -e "$LOG" ]] || install -m 0600 /dev/null "$LOG"\nexec > >(tee -a "$LOG") 2>&1\n# A command that fails stops this try, and the log says which (the unit tries again in 30 s).\nset -o errtrace\ntrap \'log "ERROR: \\"${BASH_COMMAND}\\" failed with status $? (line ${LINENO})"\' ERR\ninstall -d -m 0700 /var/lib/isobuild\nATTEMPT=$(($(cat /var/lib/isobuild/attempts 2>/dev/null || echo 0) + 1))\nprintf \'%s\\n\' "$ATTEMPT" >/var/lib/isobuild/attempts\nlog "setting up ${ROLE} ${NODE_NAME} (${NODE_IP}), Kubernetes ${K8S_VERSION}: try ${ATTEMPT}"\n\nfinish() {\n  touch "$DONE"\n  log "done"\n}\n\nrequire_files() {\n  local f\n  for f in "$@"; do\n    [[ -s "$f" ]] || die "missing $f: boot with this node\'s config.iso attached: its first-boot config writes it"\n  done\n}\n\ndisable_swap() {\n  # The kubelet refuses to start with swap on unless configured otherwise.\n  if [[ -n "$(swapon --noheadings --show 2>/dev/null)" ]]; then\n    log "disabling swap"\n    swapoff -a\n  fi\n  if grep -Eq \'^[^#].*[[:space:]]swap[[:space:]]\' /etc/fstab; then\n    sed -i -E \'s/^([^#].*[[:space:]]swap[[:space:]].*)$/# \\1  # disabled by isobuild/\' /etc/fstab\n  fi\n}\n\nkernel_prerequisites() {'
    if (undefined(name='wireguard') if l_0_wireguard is missing else l_0_wireguard):
        pass
        yield "\n  # flannel's WireGuard backend creates a kernel WireGuard link (no userspace fallback).\n  printf 'overlay\\nbr_netfilter\\nwireguard\\n' >/etc/modules-load.d/isobuild-k8s.conf\n  modprobe wireguard"
    else:
        pass
        yield "\n  printf 'overlay\\nbr_netfilter\\n' >/etc/modules-load.d/isobuild-k8s.conf"
    yield "\n  modprobe overlay\n  modprobe br_netfilter\n  printf '%s\\n' 'net.bridge.bridge-nf-call-iptables = 1' 'net.bridge.bridge-nf-call-ip6tables = 1' \\"
    if (undefined(name='ipv6_pods') if l_0_ipv6_pods is missing else l_0_ipv6_pods):
        pass
        yield "\n    'net.ipv6.conf.all.forwarding = 1' \\"
    yield "\n    'net.ipv4.ip_forward = 1' >/etc/sysctl.d/99-isobuild-k8s.conf\n  sysctl --quiet --system\n}\n\n"

blocks = {}
debug_info = '41=14&51=21'