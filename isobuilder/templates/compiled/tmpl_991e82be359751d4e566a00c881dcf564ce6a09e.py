from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = '_registry.sh.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    pass
    yield 'registry_config_path() {  # a containerd config.toml on stdin -> on stdout, reading registry hosts from certs.d\n  # Registry hosts (mirrors: cluster.yaml\'s registry_mirrors, or your own) from certs.d/REGISTRY/hosts.toml:\n  # the CRI registry section\'s config_path (containerd 1.x: "io.containerd.grpc.v1.cri", 2.x:\n  # \'io.containerd.cri.v1.images\'), one folder (a colon-joined list is ignored by some 2.x\n  # releases, containerd#12636), and not the transfer service\'s config_path of the same name.\n  local wanted\n  wanted=$(sed -E "/^ *\\[plugins\\.[\\"\']io\\.containerd\\.(grpc\\.v1\\.cri|cri\\.v1\\.images)[\\"\']\\.registry\\]/,/config_path/ s#^( *config_path = ).*#\\1\'/etc/containerd/certs.d\'#")\n  grep -q "config_path = \'/etc/containerd/certs.d\'" <<<"$wanted" || die "cannot set the registry config_path in containerd\'s configuration"\n  printf \'%s\\n\' "$wanted"\n}\n'

blocks = {}
debug_info = ''