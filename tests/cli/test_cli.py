"""The CLI end to end, in-process: exact exit codes, exact error lines, invariants on disk."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isobuilder.cli import main, root_command
from tests.helpers import SSH_KEY, Run, cert, snapshot


def sans(path: Path) -> set[str]:
    ext = cert(path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    }


# -- help and version ---------------------------------------------------------------------------
def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    groups = root_command().commands
    names = [
        [name, *([sub] if sub else [])]
        for name in sorted(groups)
        for sub in (sorted(groups[name].commands) if hasattr(groups[name], "commands") else [""])
    ]
    assert {"init", "node", "image", "kubeconfig"} <= {n[0] for n in names}
    assert ["certs", "check"] in names and ["certs", "renew"] in names
    for name in names:
        assert main([*name, "--help"]) == 0
        out = capsys.readouterr().out
        assert "Example:" in out, name
        assert f"isobuild {' '.join(name)}" in out.split("Example:")[1], name


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("isobuild ")


# -- the everyday workflow ------------------------------------------------------------------------
def test_first_node_creates_the_cluster_with_kubeadm_defaults(run: Run, inv: Path) -> None:
    result = run("node", "controller", "10.10.10.1")
    assert result.code == 0, result.err
    assert "Created a new cluster" in result.err
    data = yaml.safe_load((inv / "cluster.yaml").read_text())
    assert data["service_cidr"] == "10.96.0.0/12"
    assert data["domain"] == "cluster.local"
    assert data["nodes"] == [{"name": "controller", "ip": "10.10.10.1", "role": "controller"}]
    assert stat.S_IMODE((inv / "ssl").stat().st_mode) == 0o700
    assert stat.S_IMODE((inv / "ssl" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((inv / "node-controller" / "config.iso").stat().st_mode) == 0o600


def test_cluster_yaml_is_commented_and_lists_nodes_in_order(example: Path) -> None:
    text = (example / "cluster.yaml").read_text()
    assert text.startswith("# isobuild cluster settings")
    assert text.count("\n# ") >= 10
    nodes = yaml.safe_load(text)["nodes"]
    assert [(n["name"], n["role"]) for n in nodes] == [
        ("controller", "controller"),
        ("worker1", "worker"),
        ("worker2", "worker"),
        ("example.com", "edge"),
    ]
    assert nodes[1]["master"] == "controller"  # by name: a controller's IP may change
    assert yaml.safe_load(text)["ssh_keys"] == [SSH_KEY]


def test_json_output_goes_to_stdout(run: Run) -> None:
    result = run("node", "c1", "10.0.0.1", "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["name"] == "c1" and data["role"] == "controller" and data["cluster_created"] is True
    assert "config.iso" in data["changed"]


def test_rerun_with_the_same_inputs_changes_nothing(run: Run, example: Path) -> None:
    before = snapshot(example)
    result = run("node", "worker1", "10.10.10.2", "--master", "10.10.10.1")
    assert result.code == 0
    assert "up to date, nothing written" in result.err
    assert run("kubeconfig").code == 0
    assert snapshot(example) == before


def test_a_new_ip_reissues_only_that_nodes_certs_and_keeps_keys(run: Run, example: Path) -> None:
    ca_before = (example / "ssl" / "ca.key").read_bytes(), (example / "ssl" / "ca.crt").read_bytes()
    other_before = snapshot(example / "node-worker2")
    key_before = (example / "node-worker1/ssl/kubelet.key").read_bytes()
    result = run("node", "worker1", "10.10.10.22", "--master", "10.10.10.1")
    assert result.code == 0, result.err
    assert sans(example / "node-worker1/ssl/kubelet.crt") == {"worker1", "10.10.10.22"}
    assert (example / "node-worker1/ssl/kubelet.key").read_bytes() == key_before
    assert ((example / "ssl" / "ca.key").read_bytes(), (example / "ssl" / "ca.crt").read_bytes()) == ca_before
    assert snapshot(example / "node-worker2") == other_before


def test_an_update_without_role_options_keeps_the_role(run: Run, example: Path) -> None:
    result = run("node", "example.com", "123.234.234.124")
    assert result.code == 0, result.err
    entry = next(
        n for n in yaml.safe_load((example / "cluster.yaml").read_text())["nodes"] if n["name"] == "example.com"
    )
    assert entry == {"name": "example.com", "ip": "123.234.234.124", "role": "edge", "master": "controller"}


def test_operator_files_and_comments_survive_an_update(run: Run, example: Path) -> None:
    (example / "cluster.yaml").write_text((example / "cluster.yaml").read_text() + "# my note\n")
    notes = example / "node-worker1" / "ssl" / "NOTES.txt"
    notes.write_text("rack 4, slot 2\n")
    extra = example / "node-worker1" / "cloud-config" / "openstack" / "latest" / "vendor_data.json"
    extra.write_text("{}")
    extra.chmod(0o600)
    assert run("node", "worker1", "10.10.10.2", "--master", "10.10.10.1").code == 0
    assert (example / "cluster.yaml").read_text().endswith("# my note\n")  # nothing changed: not rewritten
    assert run("node", "worker1", "10.10.10.23").code == 0
    assert notes.read_text() == "rack 4, slot 2\n"
    assert stat.S_IMODE(extra.stat().st_mode) == 0o600


def test_every_command_that_writes_cluster_yaml_keeps_its_comments(run: Run, example: Path) -> None:
    path = example / "cluster.yaml"
    text = path.read_text().replace("\nnodes:\n", "\n# ask #infra first\nnodes:   # rack 4\n")
    text = text.replace("cert_days: ", "cert_days:   # policy: 90 at most\n  ").replace(
        "- name: worker1\n", "# the GPU box\n- name: worker1   # serial 1234\n"
    )
    path.write_text(text)
    assert run("node", "worker1", "10.10.10.2", "--label", "gpu=yes").code == 0
    assert run("node", "worker3", "10.10.10.4", "--master", "controller").code == 0
    assert run("upgrade", "--to", "1.38.0").code == 0
    assert run("remove", "worker2").code == 0
    worker2 = re.search(r"\n- name: worker2\n(  .*\n)*", text)
    assert worker2 is not None
    expected = (
        text.replace(worker2.group(0), "\n")
        .replace("kubernetes_version: 1.37.1", "kubernetes_version: 1.38.0")
        .replace("- name: worker1   # serial 1234\n  ip: 10.10.10.2\n  role: worker\n  master: controller\n",
                 "- name: worker1   # serial 1234\n  ip: 10.10.10.2\n  role: worker\n  master: controller\n"
                 "  labels:\n    gpu: 'yes'\n")
    )  # fmt: skip
    assert path.read_text() == expected + "- name: worker3\n  ip: 10.10.10.4\n  role: worker\n  master: controller\n"


def test_an_extra_san_lands_in_the_apiserver_cert(run: Run, example: Path) -> None:
    result = run("node", "controller", "10.10.10.1", "--san", "api.example.com", "--san", "192.0.2.10")
    assert result.code == 0, result.err
    assert {"api.example.com", "192.0.2.10", "kubernetes.default.svc.cluster.local", "10.96.0.1"} <= sans(
        example / "node-controller/ssl/apiserver.crt"
    )
    # Options not given keep the node's current values.
    assert run("node", "controller", "10.10.10.1").code == 0
    assert "api.example.com" in sans(example / "node-controller/ssl/apiserver.crt")


def test_labels_reach_the_kubelet(run: Run, example: Path) -> None:
    assert run("node", "worker2", "10.10.10.3", "--master", "10.10.10.1", "--label", "zone=rack1").code == 0
    text = (example / "node-worker2/cloud-config/openstack/latest/user_data").read_text()
    assert "--node-labels=zone=rack1" in text


def test_a_hand_edit_is_kept_and_never_overwritten_without_force(run: Run, example: Path) -> None:
    user_data = example / "node-worker1/cloud-config/openstack/latest/user_data"
    edited = user_data.read_bytes() + b"\npackages: [htop]\n"
    user_data.write_bytes(edited)
    assert run("image", str(example / "node-worker1")).code == 0

    same = run("node", "worker1", "10.10.10.2", "--master", "10.10.10.1")
    assert same.code == 0
    assert "kept:    your hand edit of cloud-config/openstack/latest/user_data" in same.err
    assert user_data.read_bytes() == edited

    before = snapshot(example)
    changed = run("node", "worker1", "10.10.10.2", "--master", "10.10.10.1", "--label", "a=b")
    assert changed.code == 1
    assert changed.err.splitlines() == [
        "Error: node-worker1/cloud-config/openstack/latest/user_data was edited by hand and this change would "
        "overwrite it",
        "Hint: re-run with --force to replace it (your edit is lost), or `isobuild image` to ship your edit as is",
    ]
    assert snapshot(example) == before

    forced = run("node", "worker1", "10.10.10.2", "--master", "10.10.10.1", "--label", "a=b", "--force")
    assert forced.code == 0
    assert b"packages: [htop]" not in user_data.read_bytes()


def test_init_then_node_uses_the_cluster_settings(run: Run, inv: Path) -> None:
    result = run("init", "--name", "lab", "--endpoint", "api.lab.test:8443", "--key-type", "ecdsa-p384")
    assert result.code == 0, result.err
    assert run("node", "c1", "10.0.0.1").code == 0
    apiserver = inv / "node-c1/ssl/apiserver.crt"
    assert "api.lab.test" in sans(apiserver)
    assert cert(apiserver).public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    assert run("kubeconfig").code == 0
    config = yaml.safe_load((inv / "kubeconfig").read_text())
    assert config["clusters"][0] == {
        "name": "lab",
        "cluster": {
            "server": "https://api.lab.test:8443",
            "certificate-authority-data": config["clusters"][0]["cluster"]["certificate-authority-data"],
        },
    }
    assert config["current-context"] == "kubernetes-admin@lab"


def test_init_refuses_an_existing_cluster(run: Run, inv: Path) -> None:
    assert run("init").code == 0
    before = snapshot(inv)
    result = run("init", "--name", "again")
    assert result.code == 1
    assert result.err.splitlines() == [
        f"Error: a cluster already exists in {inv}",
        f"Hint: change its settings by editing {inv / 'cluster.yaml'}; the CA is never re-made",
    ]
    assert snapshot(inv) == before


def test_cluster_options_on_a_later_node_must_match(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.1", "--name", "lab").code == 0
    assert run("node", "c1", "10.0.0.1", "--name", "lab").code == 0  # same inputs: fine
    result = run("node", "w1", "10.0.0.2", "--master", "10.0.0.1", "--domain", "other.local")
    assert result.code == 1
    assert result.err.splitlines()[0] == "Error: the cluster exists; --domain differs from cluster.yaml"


def test_a_missing_cluster_yaml_with_a_ca_is_never_silently_replaced(run: Run, example: Path) -> None:
    (example / "cluster.yaml").unlink()
    before = snapshot(example)
    for args in (("node", "c2", "10.0.0.1"), ("init",)):
        result = run(*args)
        assert result.code == 1
        assert (
            result.err.splitlines()[0]
            == f"Error: {example / 'ssl'} holds a PKI but {example / 'cluster.yaml'} is missing"
        )
    assert snapshot(example) == before


# -- bad input: one line, a hint, exit 1, nothing written ------------------------------------------
BAD_NODE_ARGS = [
    (("node", "c1", "10.0.0"), "Error: invalid node IP '10.0.0'"),
    (("node", "c1", "10.0.0.256"), "Error: invalid node IP '10.0.0.256'"),
    (("node", "C1", "10.0.0.1"), "Error: invalid node name 'C1'"),
    (("node", "c_1", "10.0.0.1"), "Error: invalid node name 'c_1'"),
    (("node", "-c1", "10.0.0.1"), "Error: No such option: -c"),  # looks like an option: the parser's error
    (("node", "c1", "127.0.0.1"), "Error: invalid node IP '127.0.0.1'"),
    (("node", "c1", "::ffff:10.0.0.9"), "Error: invalid node IP '::ffff:10.0.0.9'"),
    (("node", "n" * 53, "10.0.0.1"), f"Error: invalid node name '{'n' * 53}'"),
    (("node", "c1", "10.0.0.1", "--endpoint", "api:\u00b2"), "Error: --endpoint: invalid endpoint"),
    (("node", "c1", "10.96.0.5"), "Error: IP 10.96.0.5 of node 'c1' is inside the service CIDR 10.96.0.0/12"),
    (("node", "c1", "10.244.3.4"), "Error: IP 10.244.3.4 of node 'c1' is inside the pod CIDR 10.244.0.0/16"),
    (("node", "w1", "10.0.0.2", "--master", "10.0.0.1"), "Error: --master: 10.0.0.1 is not a controller of this cluster"),
    (("node", "w1", "10.0.0.2", "--role", "worker"), "Error: node 'w1': a worker needs a controller to join"),
    (("node", "c1", "10.0.0.1", "--label", "novalue"), "Error: --label: 'novalue' is not key=value"),
    (("node", "c1", "10.0.0.1", "--label", "node-role.kubernetes.io/master="), "Error: --label: invalid label 'node-role.kubernetes.io/master='"),
    (("node", "c1", "10.0.0.1", "--san", "bad_name!"), "Error: --san: invalid SAN 'bad_name!'"),
    (("node", "c1", "10.0.0.1", "--endpoint", "api:99999"), "Error: --endpoint: invalid endpoint 'api:99999'"),
    (("node", "c1", "10.0.0.1", "--service-cidr", "10.96.0.1/12"), "Error: --service-cidr: invalid service CIDR '10.96.0.1/12'"),
    (("node", "c1", "10.0.0.1", "--pod-cidr", "10.96.0.0/16"), "Error: the service CIDR 10.96.0.0/12 overlaps the pod CIDR 10.96.0.0/16"),
    (("node", "c1", "10.0.0.1", "--k8s-version", "1.20.0"), "Error: --k8s-version: invalid Kubernetes version '1.20.0'"),
    (("node", "c1", "10.0.0.1", "--ssh-key", "/nonexistent/id.pub"), "Error: cannot read SSH key file /nonexistent/id.pub: No such file or directory"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "first_line"), BAD_NODE_ARGS)
def test_bad_input_on_a_new_inventory(run: Run, inv: Path, args: tuple[str, ...], first_line: str) -> None:
    result = run(*args)
    if first_line is None:
        assert result.code == 2
    else:
        assert result.code == 1
        lines = result.err.splitlines()
        assert lines[0].startswith(first_line), lines
        assert len(lines) == 2 and lines[1].startswith("Hint: "), lines
        assert "Traceback" not in result.err
    assert not inv.exists()


BAD_ON_EXAMPLE = [
    (("node", "worker3", "10.10.10.2", "--master", "10.10.10.1"), "Error: IP 10.10.10.2 of node 'worker3' is already used by node 'worker1'"),
    (("node", "controller", "10.10.10.1", "--master", "10.10.10.1"), "Error: node 'controller' is a controller; refusing to turn it into a worker"),
    (("node", "c2", "10.10.10.8", "--master", "10.10.10.1", "--role", "controller"), "Error: node 'c2': --master goes with workers"),
    (("node", "controller", "10.10.10.9", "--role", "worker"), "Error: node 'controller' is a controller; refusing to turn it into a worker"),
    (("node", "worker1", "10.10.10.2", "--role", "controller"), "Error: node 'worker1' is a worker; refusing to turn it into a controller"),
    (("node", "c2", "10.10.10.8"), "Error: 2 controllers (controller, c2) but no API endpoint"),
    (("node", "c2", "10.10.10.8", "--vip", "10.10.10.2"), "Error: IP 10.10.10.2 of node 'worker1' is the cluster's VIP"),
    (("node", "w9", "10.10.10.9", "--master", "10.10.10.2"), "Error: --master: 10.10.10.2 is not a controller of this cluster"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "first_line"), BAD_ON_EXAMPLE)
def test_bad_input_on_an_existing_cluster(run: Run, example: Path, args: tuple[str, ...], first_line: str) -> None:
    before = snapshot(example)
    result = run(*args)
    assert result.code == 1
    assert result.err.splitlines()[0].startswith(first_line), result.err
    assert result.err.splitlines()[1].startswith("Hint: ")
    assert snapshot(example) == before


@pytest.mark.parametrize(
    ("path", "content", "first_line"),
    [
        ("cluster.yaml", b"nodes: [\n", "Error: cluster.yaml is not valid YAML at line 2"),
        ("cluster.yaml", b"- a\n- b\n", "Error: cluster.yaml is not a mapping of settings"),
        ("cluster.yaml", b"\xff\xfe", "Error: cluster.yaml is not"),
        ("ssl/ca.crt", b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n", "Error: "),
        ("ssl/ca.key", b"not a key", "Error: "),
        ("ssl/etcd/ca.key", None, "Error: the cluster PKI is incomplete"),
    ],
)
def test_corrupt_inventory_files(run: Run, example: Path, path: str, content: bytes | None, first_line: str) -> None:
    target = example / path
    if content is None:
        target.unlink()
    else:
        target.write_bytes(content)
    before = snapshot(example)
    for args in (("node", "w9", "10.10.10.9", "--master", "10.10.10.1"), ("kubeconfig",)):
        result = run(*args)
        assert result.code == 1, result.err
        assert result.err.startswith(first_line), result.err
        assert result.err.splitlines()[1].startswith("Hint: ")
    assert snapshot(example) == before


@pytest.mark.parametrize(
    ("old", "new", "first_line"),
    [
        ("cert_days: 365", "cert_days: 99999999", "Error: cluster.yaml: cert_days: 99999999 is not a number of days"),
        ("cert_days: 365", "cert_days: true", "Error: cluster.yaml: cert_days must be a whole number"),
        ("cert_days: 365", "cert_days: 4000", "Error: cert_days (4000) is longer than ca_days (3650)"),
        ("\nnodes:\n", "\nnodes: {}\nold_nodes:\n", "Error: 2 problems in cluster.yaml; nothing was written"),
        (
            "  master: controller\n",
            "  master: controller\n  labels: {zone: yes}\n",
            "Error: cluster.yaml: nodes[1].labels: True is not a string",
        ),
    ],
)
def test_cluster_yaml_with_wrong_types(run: Run, example: Path, old: str, new: str, first_line: str) -> None:
    text = (example / "cluster.yaml").read_text()
    assert old in text
    (example / "cluster.yaml").write_text(text.replace(old, new, 1))
    result = run("node", "w9", "10.10.10.9", "--master", "10.10.10.1")
    assert result.code == 1
    assert result.err.splitlines()[0].startswith(first_line), result.err


def test_cluster_yaml_nodes_not_a_list(run: Run, example: Path) -> None:
    text = (example / "cluster.yaml").read_text()
    (example / "cluster.yaml").write_text(text[: text.index("\nnodes:")] + "\nnodes: {}\n")
    result = run("kubeconfig")
    assert result.code == 1
    assert result.err.splitlines()[0] == "Error: cluster.yaml: nodes must be a list"


def test_bad_source_date_epoch_and_output(run: Run, example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "\u00b2")
    result = run("image", str(example / "node-worker1"))
    assert result.code == 1 and result.err.startswith("Error: SOURCE_DATE_EPOCH=")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result = run("kubeconfig", "-o", str(example))
    assert result.code == 1 and result.err.startswith(f"Error: {example} is a folder")


def test_cluster_yaml_with_an_unknown_setting(run: Run, example: Path) -> None:
    text = (example / "cluster.yaml").read_text().replace("domain:", "domian:")
    (example / "cluster.yaml").write_text(text)
    result = run("kubeconfig")
    assert result.code == 1
    assert result.err.splitlines()[0] == "Error: cluster.yaml: unknown setting 'domian'"


def test_unwritable_inventory(run: Run, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run("node", "c1", "10.0.0.1", inventory=blocker / "inventory")
    assert result.code == 1
    assert result.err.splitlines()[0].startswith(f"Error: cannot create {blocker / 'inventory'}: ")
    assert result.err.splitlines()[1].startswith("Hint: ")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.one_of(st.text(max_size=30), st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True)),
    ip=st.one_of(st.text(max_size=20), st.ip_addresses().map(str)),
)
def test_hostile_names_and_ips_never_crash(tmp_path_factory: pytest.TempPathFactory, name: str, ip: str) -> None:
    root = tmp_path_factory.mktemp("hostile") / "inv"
    if name.startswith("-") or ip.startswith("-"):
        return  # parsed as options: the parser's usage error, exit 2
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["--inventory", str(root), "node", name, ip])
    assert code in (0, 1), err.getvalue()
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue()
    if code == 1:
        assert err.getvalue().startswith("Error: ")
        assert not root.exists()
    else:
        assert (root / f"node-{name}" / "config.iso").exists()


# -- kubeconfig ----------------------------------------------------------------------------------
OTHER = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443"}}],
    "users": [{"name": "prod-admin", "user": {"token": "secret"}}],
    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod-admin"}}],
    "current-context": "prod",
}


def test_kubeconfig_merge_keeps_other_clusters_and_backs_up(run: Run, example: Path, tmp_path: Path) -> None:
    kube = tmp_path / "home" / ".kube" / "config"
    kube.parent.mkdir(parents=True)
    kube.write_text(yaml.safe_dump(OTHER))
    result = run("kubeconfig", "--merge")
    assert result.code == 0, result.err
    merged = yaml.safe_load(kube.read_text())
    assert merged["clusters"][0]["name"] == "prod"
    assert len(merged["clusters"]) == 2 and merged["users"][0] == OTHER["users"][0]
    assert merged["current-context"] == "prod"  # unchanged without --use
    assert stat.S_IMODE(kube.stat().st_mode) == 0o600
    backups = list(kube.parent.glob("config.bak-*"))
    assert len(backups) == 1 and yaml.safe_load(backups[0].read_text()) == OTHER

    assert run("kubeconfig", "--merge", "--use").code == 0
    merged = yaml.safe_load(kube.read_text())
    assert merged["current-context"].startswith("kubernetes-admin@")
    assert len(merged["clusters"]) == 2  # merged again, not duplicated


def test_kubeconfig_merge_follows_KUBECONFIG(
    run: Run, example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "custom.yaml"
    monkeypatch.setenv("KUBECONFIG", f"{target}{os.pathsep}{tmp_path / 'second.yaml'}")
    assert run("kubeconfig", "--merge").code == 0
    assert yaml.safe_load(target.read_text())["current-context"].startswith("kubernetes-admin@")
    assert not (tmp_path / "second.yaml").exists()


def test_kubeconfig_output_and_server(run: Run, example: Path, tmp_path: Path) -> None:
    out = tmp_path / "admin.conf"
    assert run("kubeconfig", "-o", str(out), "--server", "https://lb.example.test:6443").code == 0
    assert yaml.safe_load(out.read_text())["clusters"][0]["cluster"]["server"] == "https://lb.example.test:6443"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    bad = run("kubeconfig", "--server", "http://plain:80")
    assert bad.code == 1 and bad.err.startswith("Error: --server 'http://plain:80' is not an https:// URL")


def test_kubeconfig_before_any_cluster(run: Run, inv: Path) -> None:
    result = run("kubeconfig")
    assert result.code == 1
    assert result.err.splitlines() == [
        f"Error: no cluster in {inv} (cluster.yaml not found)",
        "Hint: create one with `isobuild init` or `isobuild node NAME IP`, or pass --inventory DIR",
    ]
    assert not inv.exists()


def test_inventory_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ISOBUILD_INVENTORY", str(tmp_path / "envinv"))
    assert main(["-q", "node", "c1", "10.0.0.1"]) == 0
    assert (tmp_path / "envinv" / "cluster.yaml").exists()


def test_kubeconfig_merge_into_a_corrupt_file_writes_nothing(run: Run, tmp_path: Path) -> None:
    assert run("node", "c1", "10.0.0.1").code == 0
    kube = tmp_path / "home" / ".kube" / "config"
    kube.parent.mkdir(parents=True)
    kube.write_text("clusters: [\n")
    inventory = tmp_path / "inventory"
    before = snapshot(inventory)
    result = run("kubeconfig", "--merge")
    assert result.code == 1
    assert result.err.splitlines()[0].startswith(f"Error: {kube} is not valid YAML")
    assert snapshot(inventory) == before
    assert kube.read_text() == "clusters: [\n"
    assert list(kube.parent.iterdir()) == [kube]


def test_node_repackages_a_kept_hand_edit_the_drive_does_not_hold_yet(run: Run, example: Path) -> None:
    from isobuilder.configdrive import read_iso

    folder = example / "node-worker1"
    user_data = folder / "cloud-config/openstack/latest/user_data"
    user_data.write_bytes(user_data.read_bytes() + b"\npackages: [htop]\n")  # edited, `image` forgotten
    assert run("node", "worker1", "10.10.10.2").code == 0
    assert read_iso((folder / "config.iso").read_bytes())[1]["openstack/latest/user_data"] == user_data.read_bytes()


def test_node_folders_without_cluster_yaml_and_ssl_never_get_a_new_ca(run: Run, example: Path) -> None:
    ca_key = (example / "node-controller/ssl/ca.key").read_bytes()
    (example / "cluster.yaml").unlink()
    shutil.rmtree(example / "ssl")
    before = snapshot(example)
    result = run("node", "controller", "10.10.10.1")
    assert result.code == 1
    assert result.err.startswith(f"Error: {example} holds node folders (node-controller, ...) but no cluster.yaml")
    assert snapshot(example) == before and (example / "node-controller/ssl/ca.key").read_bytes() == ca_key


def test_merges_in_the_same_second_keep_every_backup(
    run: Run, example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = tmp_path / "kube" / "config"
    kube.parent.mkdir()
    kube.write_text("# PRECIOUS ORIGINAL\napiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n")
    monkeypatch.setenv("KUBECONFIG", str(kube))
    monkeypatch.setenv("ISOBUILD_NOW", "2026-06-01T00:00:00Z")
    assert run("kubeconfig", "--merge").code == 0
    assert run("kubeconfig", "--merge", "--server", "https://10.10.10.1:7443", "--force").code == 0
    backups = sorted(p.name for p in kube.parent.glob("config.bak-*"))
    assert backups == ["config.bak-20260601T000000Z", "config.bak-20260601T000000Z-2"]
    assert "PRECIOUS ORIGINAL" in (kube.parent / backups[0]).read_text()


def test_merge_on_a_new_workstation_makes_dot_kube(
    run: Run, example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "fresh-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert run("kubeconfig", "--merge").code == 0
    config = home / ".kube" / "config"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and "current-context" in config.read_text()
    assert sorted(p.name for p in config.parent.iterdir()) == ["config"]


# -- CLI conventions ---------------------------------------------------------------------------
def test_global_options_go_after_the_command_too(run: Run, inv: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    result = run("node", "c1", "10.0.0.1", "-q", "--inventory", str(other))
    assert result.code == 0 and result.err == ""
    assert (other / "node-c1").is_dir() and not inv.exists()
    assert run("list", f"--inventory={other}", "--json").code == 0
    assert run("certs", "check", "-q", "--inventory", str(other)).code == 0
    # an option's value is left where it is, though it looks like a global option
    result = run("node", "w1", "10.0.0.2", "--master", "c1", "--label", "-q", "--inventory", str(other))
    assert result.code == 1 and result.err.splitlines()[0] == "Error: --label: '-q' is not key=value or key-"
    # and after --, nothing is an option
    result = run("--inventory", str(other), "remove", "--", "-q")
    assert result.code == 1 and result.err.splitlines()[0].startswith("Error: ")
    assert "-q" in result.err.splitlines()[0]


def test_json_errors_are_json_on_stdout_as_well(run: Run, inv: Path) -> None:
    result = run("node", "c1", "10.0.0.999", "--json")
    assert result.code == 1
    assert json.loads(result.out) == {
        "error": "invalid node IP '10.0.0.999'",
        "hint": "use a plain IPv4 or IPv6 address such as 10.10.10.2",
    }
    assert result.err.splitlines()[0] == "Error: invalid node IP '10.0.0.999'"
    usage = run("list", "--json", "--bogus")
    assert usage.code == 1 and json.loads(usage.out) == {
        "error": "No such option: --bogus",
        "hint": "see isobuild list --help",
    }
    assert run("list", "--bogus").out == ""  # without --json, stdout stays empty


def test_image_and_kubeconfig_report_as_json(run: Run, example: Path) -> None:
    folder = example / "node-worker1"
    assert json.loads(run("image", str(folder), "--json").out) == {"iso": str(folder / "config.iso"), "written": False}
    data = json.loads(run("kubeconfig", "--json").out)
    assert data["path"] == str(example / "kubeconfig") and data["context"].startswith("kubernetes-admin@")
    assert data["server"] == "https://10.10.10.1:6443" and data["backup"] is None and "not_after" in data
    result = run("kubeconfig", "-o", "-", "--json")
    assert result.code == 1 and result.err.splitlines()[0] == "Error: -o - and --json both write stdout"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_for_each_shell(run: Run, shell: str) -> None:
    result = run("completion", shell)
    assert result.code == 0
    assert "_ISOBUILD_COMPLETE" in result.out and "isobuild" in result.out
    if shell == "bash":
        assert subprocess.run(["bash", "-n"], input=result.out, text=True).returncode == 0


def test_completion_answers_as_bash_asks(tmp_path: Path) -> None:
    """bash's side of click's protocol (what the script above runs): the words so far in
    COMP_WORDS, the completions back on stdout."""
    env = {
        **os.environ,
        "_ISOBUILD_COMPLETE": "complete_bash",
        "COMP_WORDS": "isobuild node w1 --ro",
        "COMP_CWORD": "3",
    }
    result = subprocess.run([sys.executable, "-m", "isobuilder"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["--role"]
    env |= {"COMP_WORDS": "isobuild node w1 --role ", "COMP_CWORD": "4"}
    result = subprocess.run([sys.executable, "-m", "isobuilder"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.split() == ["controller", "worker", "edge"]
