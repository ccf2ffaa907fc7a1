"""The precompiled templates are exactly what the sources compile to, and render the same."""

from __future__ import annotations

from pathlib import Path

from isobuilder import render, schema
from isobuilder.model import Node, Role

COMPILED = Path(render.__file__).parent / "templates" / render.COMPILED


def test_the_compiled_templates_are_fresh(tmp_path: Path) -> None:
    render.compile_templates(tmp_path)
    fresh = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in COMPILED.iterdir() if p.is_file()}
    assert committed == fresh, "stale: run scripts/compile-templates.py and commit isobuilder/templates/compiled/"


def test_isobuild_renders_from_the_compiled_copies_and_they_match_the_sources() -> None:
    import jinja2

    assert isinstance(render._environment().loader, jinja2.ModuleLoader)
    cluster = schema.cluster_of(
        {"name": "lab", "cluster_id": "6f1c3f8e-8a4e-4c35-9d5e-0d4b3f0f4a11"},
        (Node("c1", "10.0.0.1", Role.CONTROLLER),),
    )
    node = cluster.nodes[0]
    compiled = render.install_script(cluster, node)
    render._environment.cache_clear()
    try:
        sources = render.environment()
        values = {**render._script_values(cluster, node), "kubernetes_minor": "v1.37", "containerd_version": "2."}
        assert sources.get_template("install.sh.j2").render(**values).encode() == compiled
    finally:
        render._environment.cache_clear()
