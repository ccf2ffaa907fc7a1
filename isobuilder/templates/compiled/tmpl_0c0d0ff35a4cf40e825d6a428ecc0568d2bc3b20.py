from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = '_apt.sh.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    pass
    yield '# Wait for the dpkg lock (unattended-upgrades may hold it at first boot) instead of failing:\n# apt\'s DPkg::Lock::Timeout (apt-pkg/deb/debsystem.cc, debSystem::Lock).\nAPT=(apt-get -q -o DPkg::Lock::Timeout=600)\n\napt_update() {  # `apt-get update` takes the lists lock without waiting (apt-pkg/acquire.cc): retry\n  local try\n  for try in 1 2 3 4 5 6 7 8 9 10; do\n    "${APT[@]}" update && return\n    log "apt-get update failed (try ${try}/10; apt-daily may hold its lock): again in 15 s"\n    sleep 15\n  done\n  die "apt-get update keeps failing; see the log above"\n}\n'

blocks = {}
debug_info = ''