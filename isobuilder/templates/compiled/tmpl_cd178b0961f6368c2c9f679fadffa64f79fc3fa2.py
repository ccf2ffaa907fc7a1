from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = '_containerd.sh.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    pass
    yield 'containerd_config() {  # the config.toml the kubelet needs (install.sh and apply.sh alike), on stdout\n  # The kubelet uses the systemd cgroup driver; containerd must match. Some containerd 2.x\n  # releases leave SystemdCgroup out of `config default` (containerd#12101): add it then.\n  local wanted\n  wanted=$(containerd config default | sed -E \'s/SystemdCgroup = false/SystemdCgroup = true/\')\n  if ! grep -q \'SystemdCgroup = true\' <<<"$wanted"; then\n    wanted=$(sed -E "/^( *)\\[plugins\\.\'io\\.containerd\\.cri\\.v1\\.runtime\'\\.containerd\\.runtimes\\.runc\\.options\\]/a\\\\            SystemdCgroup = true" <<<"$wanted")\n  fi\n  grep -q \'SystemdCgroup = true\' <<<"$wanted" || die "cannot enable SystemdCgroup in containerd\'s configuration"\n  registry_config_path <<<"$wanted"\n}\n\n'
    template = environment.get_template('_registry.sh.j2', '_containerd.sh.j2')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {}))
    try:
        for event in gen:
            yield event
    finally: gen.close()

blocks = {}
debug_info = '13=12'