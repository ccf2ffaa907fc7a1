"""Customisation as data in cluster.yaml (issue 16, first part): kubeadm v1beta4's extraArgs
for the kubelet (cluster-wide, and per node by name) and the control plane, read back from
the files isobuild writes. kubeadm's rules are cited in isobuilder/manifests.py,
isobuilder/checks.py (OWNED_ARGS) and docs/KUBEADM.md."""

from __future__ import annotations

import json
import shlex
import stat
from pathlib import Path

import pytest
import yaml

from isobuilder.firstboot import files_written
from tests.helpers import CONFIG_2_USER_DATA, Run, decode, files_of, set_settings

ADDONS = "/etc/kubernetes/isobuild"
SETTINGS = """\
kubelet_extra_args:
- {name: max-pods, value: '200'}
- {name: system-reserved, value: 'cpu=500m,memory=1Gi'}
- {name: feature-gates, value: 'InPlacePodVerticalScaling=true'}
apiserver_extra_args:
- {name: oidc-issuer-url, value: https://id.example.test}
- {name: oidc-client-id, value: kubernetes}
- {name: audit-log-path, value: /var/log/kubernetes/audit.log}
controller_manager_extra_args:
- {name: terminated-pod-gc-threshold, value: '100'}
scheduler_extra_args:
- {name: v, value: '2'}
etcd_extra_args:
- {name: quota-backend-bytes, value: '8589934592'}
"""


def _host_files(inv: Path, node: str) -> dict[str, bytes]:
    files = files_written((inv / f"node-{node}" / CONFIG_2_USER_DATA).read_bytes())
    assert files is not None
    return {path: f.content for path, f in files.items()}


def _kubelet_flags(inv: Path, node: str) -> list[str]:
    env = _host_files(inv, node)["/var/lib/kubelet/kubeadm-flags.env"].decode()
    return shlex.split(json.loads(env.removeprefix("KUBELET_KUBEADM_ARGS=")))


@pytest.fixture
def customised(run: Run, inv: Path) -> Path:
    assert run("init").code == 0
    set_settings(inv, SETTINGS)
    for args in (["c1", "10.0.0.1"], ["w1", "10.0.0.2", "--master", "c1"], ["w2", "10.0.0.3", "--master", "c1"]):
        result = run("node", *args)
        assert result.code == 0, result.err
    return inv


def _readme_block(index: int) -> str:
    """The README's ``index``-th YAML example (from 0) under "Customising nodes"."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return readme.split("## Customising nodes\n", 1)[1].split("```yaml\n", index + 1)[index + 1].split("```", 1)[0]


def test_extra_args_reach_kubeadm_and_the_kubelet(customised: Path) -> None:
    config = list(yaml.safe_load_all(_host_files(customised, "c1")[f"{ADDONS}/kubeadm.yaml"]))
    init, cluster = config[0], config[1]
    assert cluster["apiServer"]["extraArgs"] == [
        {"name": "oidc-issuer-url", "value": "https://id.example.test"},
        {"name": "oidc-client-id", "value": "kubernetes"},
        {"name": "audit-log-path", "value": "/var/log/kubernetes/audit.log"},
    ]
    assert cluster["apiServer"]["certSANs"]  # beside what isobuild puts there
    assert cluster["controllerManager"]["extraArgs"] == [{"name": "terminated-pod-gc-threshold", "value": "100"}]
    assert cluster["scheduler"]["extraArgs"] == [{"name": "v", "value": "2"}]
    assert cluster["etcd"] == {"local": {"extraArgs": [{"name": "quota-backend-bytes", "value": "8589934592"}]}}
    kubelet = init["nodeRegistration"]["kubeletExtraArgs"]
    assert kubelet[0] == {"name": "node-ip", "value": "10.0.0.1"}  # isobuild's first
    assert {"name": "max-pods", "value": "200"} in kubelet
    join = yaml.safe_load(_host_files(customised, "c1")[f"{ADDONS}/kubeadm-join.yaml"])
    assert join["nodeRegistration"]["kubeletExtraArgs"] == kubelet
    assert _kubelet_flags(customised, "w1")[-3:] == [
        "--max-pods=200", "--system-reserved=cpu=500m,memory=1Gi", "--feature-gates=InPlacePodVerticalScaling=true",
    ]  # fmt: skip


def test_a_node_s_own_kubelet_args_replace_the_cluster_s_by_name(run: Run, customised: Path) -> None:
    cluster = customised / "cluster.yaml"
    text = cluster.read_text().replace(
        "- name: w2\n  ip: 10.0.0.3\n",
        "- name: w2\n  ip: 10.0.0.3\n  kubelet_extra_args:\n  - {name: max-pods, value: '50'}\n",
    )
    cluster.write_text(text)
    result = run("build")
    assert result.code == 0, result.err
    flags = _kubelet_flags(customised, "w2")
    assert (
        "--max-pods=50" in flags and "--max-pods=200" not in flags and "--system-reserved=cpu=500m,memory=1Gi" in flags
    )
    assert "--max-pods=200" in _kubelet_flags(customised, "w1")
    # kept by every later command that writes cluster.yaml
    assert run("node", "w2", "--label", "zone=b").code == 0
    entry = next(n for n in yaml.safe_load(cluster.read_text())["nodes"] if n["name"] == "w2")
    assert entry["kubelet_extra_args"] == [{"name": "max-pods", "value": "50"}]
    assert yaml.safe_load(cluster.read_text())["etcd_extra_args"] == [
        {"name": "quota-backend-bytes", "value": "8589934592"}
    ]


@pytest.mark.parametrize(
    ("setting", "first_line"),
    [
        ("kubelet_extra_args:\n- {name: node-ip, value: 10.0.0.9}\n",
         "Error: cluster.yaml: kubelet_extra_args: [0].name node-ip is set by isobuild"),
        ("etcd_extra_args:\n- {name: initial-cluster, value: a=https://10.0.0.1:2380}\n",
         "Error: cluster.yaml: etcd_extra_args: [0].name initial-cluster is set by isobuild"),
        ("apiserver_extra_args:\n- {name: --oidc-issuer-url, value: x}\n",
         "Error: cluster.yaml: apiserver_extra_args: [0].name '--oidc-issuer-url' is not a flag name"),
        ("kubelet_extra_args:\n- {name: max-pods, value: '1 2'}\n",
         "Error: cluster.yaml: kubelet_extra_args: [0].value '1 2' holds a space, quote or backslash"),
        ("apiserver_extra_args:\n- {name: v, value: \"a\\nb\"}\n",
         "Error: cluster.yaml: apiserver_extra_args: [0].value 'a\\nb' is not a flag value"),
        ("scheduler_extra_args:\n- v=2\n", "Error: cluster.yaml: scheduler_extra_args: [0] is not a mapping of name and value"),
        ("scheduler_extra_args: {v: 2}\n", "Error: cluster.yaml: scheduler_extra_args must be a list"),
        # YAML 1.1 would read these as 493, 90 and true: a string, quoted, as kubeadm wants
        ("kubelet_extra_args:\n- {name: x, value: 0755}\n", "Error: cluster.yaml: kubelet_extra_args: [0].value 493 is not a string"),
        ("kubelet_extra_args:\n- {name: x, value: 1:30}\n", "Error: cluster.yaml: kubelet_extra_args: [0].value 90 is not a string"),
        ("kubelet_extra_args:\n- {name: x, value: on}\n", "Error: cluster.yaml: kubelet_extra_args: [0].value True is not a string"),
    ],
)  # fmt: skip
def test_extra_args_isobuild_owns_or_that_cannot_pass_are_refused_where_written(
    run: Run, inv: Path, setting: str, first_line: str
) -> None:
    assert run("init").code == 0
    assert run("node", "c1", "10.0.0.1").code == 0
    set_settings(inv, setting)
    before = {p: p.read_bytes() for p in (inv / "node-c1").rglob("*") if p.is_file()}
    result = run("build")
    assert result.code == 1
    assert result.err.splitlines()[0] == first_line, result.err
    assert {p: p.read_bytes() for p in (inv / "node-c1").rglob("*") if p.is_file()} == before


def test_the_readme_customising_example_builds_as_written(run: Run, inv: Path) -> None:
    block = _readme_block(0)
    assert run("node", "controller", "10.10.10.1").code == 0
    settings, nodes = block.split("nodes:\n", 1)
    set_settings(inv, settings)
    cluster = inv / "cluster.yaml"
    cluster.write_text(cluster.read_text().rstrip("\n") + "\n" + nodes)
    result = run("build")
    assert result.code == 0, result.err
    assert "--max-pods=50" in _kubelet_flags(inv, "worker1")
    kubeadm = list(yaml.safe_load_all(_host_files(inv, "controller")[f"{ADDONS}/kubeadm.yaml"]))
    assert {"name": "max-pods", "value": "200"} in kubeadm[0]["nodeRegistration"]["kubeletExtraArgs"]
    assert kubeadm[1]["apiServer"]["extraArgs"][0] == {"name": "oidc-issuer-url", "value": "https://id.example.test"}


PROXY = """\
ntp_servers: [ntp1.example.test, 10.0.0.123]
http_proxy: http://proxy.example.test:3128
https_proxy: http://proxy.example.test:3128
no_proxy: [.corp.example.test, 192.168.0.0/16]
"""


def test_a_proxy_reaches_apt_containerd_the_kubelet_and_the_setup(run: Run, inv: Path) -> None:
    assert run("init").code == 0
    set_settings(inv, PROXY.replace("ntp_servers: [ntp1.example.test, 10.0.0.123]\n", ""))
    assert run("node", "c1", "10.0.0.1").code == 0
    assert run("node", "w1", "10.0.0.2", "--master", "c1").code == 0
    files = _host_files(inv, "w1")
    for unit in ("containerd.service", "kubelet.service", "isobuild-install.service"):
        dropin = files[f"/etc/systemd/system/{unit}.d/isobuild-proxy.conf"].decode()
        assert 'Environment="HTTPS_PROXY=http://proxy.example.test:3128"\n' in dropin
        assert 'Environment="http_proxy=http://proxy.example.test:3128"\n' in dropin
    no_proxy = next(line for line in dropin.splitlines() if line.startswith('Environment="NO_PROXY='))
    assert no_proxy == (
        'Environment="NO_PROXY=.corp.example.test,192.168.0.0/16,localhost,127.0.0.1,::1,10.96.0.0/12,'
        '10.244.0.0/16,.svc,.cluster.local,10.0.0.1"'
    )
    assert files["/etc/apt/apt.conf.d/90isobuild-proxy"].decode().splitlines()[1:] == [
        'Acquire::http::Proxy "http://proxy.example.test:3128";',
        'Acquire::https::Proxy "http://proxy.example.test:3128";',
    ]
    # apply.sh restarts what reads a changed drop-in, after systemd reads it again
    apply = (inv / "node-w1" / "apply.sh").read_text()
    assert "changed '/etc/systemd/system/containerd.service.d/*' && restart containerd" in apply
    assert "changed '/etc/systemd/*' && systemctl daemon-reload" in apply


def test_a_proxy_password_keeps_cluster_yaml_for_root_only(run: Run, inv: Path) -> None:
    assert run("init").code == 0
    set_settings(inv, "http_proxy: http://ops:s3cret@proxy.example.test:3128\n")
    (inv / "cluster.yaml").chmod(0o644)  # as an editor leaves it
    assert run("node", "c1", "10.0.0.1").code == 0
    result = run("verify")
    assert result.code == 0 and stat.S_IMODE((inv / "cluster.yaml").stat().st_mode) == 0o600, result.out
    (inv / "cluster.yaml").chmod(0o644)
    result = run("verify")
    assert result.code == 1 and "cluster.yaml: mode 0644, want 0600" in result.out + result.err


def test_ntp_servers_go_to_cloud_init_and_to_timesyncd_on_flatcar(run: Run, inv: Path) -> None:
    assert run("init").code == 0
    set_settings(inv, "ntp_servers: [ntp1.example.test, 10.0.0.123]\n")
    assert run("node", "c1", "10.0.0.1").code == 0
    assert run("node", "w1", "10.0.0.2", "--master", "c1").code == 0
    assert run("node", "f1", "10.0.0.3", "--master", "c1", "--format", "ignition").code == 0
    user_data = yaml.safe_load((inv / "node-w1" / CONFIG_2_USER_DATA).read_text())
    assert user_data["ntp"] == {"enabled": True, "servers": ["ntp1.example.test", "10.0.0.123"]}
    config = json.loads((inv / "node-f1" / CONFIG_2_USER_DATA).read_text())
    timesyncd = next(
        f for f in config["storage"]["files"] if f["path"] == "/etc/systemd/timesyncd.conf.d/isobuild.conf"
    )
    assert decode(timesyncd["contents"]).decode().splitlines()[1:] == ["[Time]", "NTP=ntp1.example.test 10.0.0.123"]
    cluster = inv / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("- name: w1\n", "- name: w1\n  ntp_servers: [time.example.test]\n"))
    assert run("build").code == 0
    assert yaml.safe_load((inv / "node-w1" / CONFIG_2_USER_DATA).read_text())["ntp"]["servers"] == ["time.example.test"]


@pytest.mark.parametrize(
    ("setting", "first_line"),
    [
        ("http_proxy: proxy:3128\n", "Error: cluster.yaml: http_proxy: invalid proxy URL 'proxy:3128'"),
        ("https_proxy: 'http://a b:1'\n", "Error: cluster.yaml: https_proxy: invalid proxy URL 'http://a b:1'"),
        ("http_proxy: 'http://p%n:1'\n", "Error: cluster.yaml: http_proxy: invalid proxy URL 'http://p%n:1'"),
        ("no_proxy: ['a b']\n", "Error: cluster.yaml: no_proxy: invalid no_proxy entry 'a b'"),
        ("ntp_servers: ['-bad-']\n", "Error: cluster.yaml: ntp_servers: invalid NTP server '-bad-'"),
        (
            "http_proxy: 'http://u:p#x@p.example.test:1'\n",
            "Error: cluster.yaml: http_proxy: invalid proxy URL 'http://u:p#x@p.example.test:1'",
        ),
        (
            "http_proxy: 'http://p.example.test:99999'\n",
            "Error: cluster.yaml: http_proxy: invalid proxy URL 'http://p.example.test:99999'",
        ),
        ("http_proxy: 'http://[[[:1'\n", "Error: cluster.yaml: http_proxy: invalid proxy URL 'http://[[[:1'"),
    ],
)
def test_bad_host_settings_are_refused_where_written(run: Run, inv: Path, setting: str, first_line: str) -> None:
    assert run("init").code == 0
    assert run("node", "c1", "10.0.0.1").code == 0
    set_settings(inv, setting)
    result = run("build")
    assert result.code == 1 and result.err.splitlines()[0] == first_line, result.err


def test_the_readme_host_settings_example_builds_as_written(run: Run, inv: Path) -> None:
    block = _readme_block(1)
    assert block.startswith("ntp_servers:")
    assert run("init").code == 0
    set_settings(inv, block)
    assert run("node", "controller", "10.10.10.1").code == 0
    files = _host_files(inv, "controller")
    assert "/etc/systemd/system/kubelet.service.d/isobuild-proxy.conf" in files
    user_data = yaml.safe_load((inv / "node-controller" / CONFIG_2_USER_DATA).read_text())
    assert user_data["ntp"]["servers"] == ["ntp1.example.test", "10.10.10.123"]


def test_a_non_ascii_kubelet_value_reaches_kubeadm_flags_env_as_utf_8(run: Run, inv: Path) -> None:
    assert run("init").code == 0
    set_settings(inv, "kubelet_extra_args:\n- {name: provider-id, value: 'é'}\n")
    assert run("node", "c1", "10.0.0.1").code == 0
    assert run("node", "w1", "10.0.0.2", "--master", "c1").code == 0
    assert "--provider-id=é" in _kubelet_flags(inv, "w1")
    assert "\\u" not in _host_files(inv, "w1")["/var/lib/kubelet/kubeadm-flags.env"].decode()


def test_registry_mirrors_become_containerd_hosts_files(run: Run, inv: Path) -> None:
    import tomllib

    assert run("init").code == 0
    set_settings(inv, "registry_mirrors:\n  docker.io: [https://mirror.example.test, 'http://10.0.0.5:5000/v2']\n"
              "  _default: [https://cache.example.test]\n")  # fmt: skip
    assert run("node", "c1", "10.0.0.1").code == 0
    files = _host_files(inv, "c1")
    docker = tomllib.loads(files["/etc/containerd/certs.d/docker.io/hosts.toml"].decode())
    assert docker == {
        "server": "https://registry-1.docker.io",
        "host": {
            "https://mirror.example.test": {"capabilities": ["pull", "resolve"]},
            "http://10.0.0.5:5000/v2": {"capabilities": ["pull", "resolve"]},
        },
    }
    other = tomllib.loads(files["/etc/containerd/certs.d/_default/hosts.toml"].decode())
    assert "server" not in other and list(other["host"]) == ["https://cache.example.test"]
    # Flatcar nodes get the same files through Ignition (setup.sh points containerd at them)
    assert run("node", "f1", "10.0.0.3", "--master", "c1", "--format", "ignition").code == 0
    flatcar = files_of(json.loads((inv / "node-f1" / CONFIG_2_USER_DATA).read_text()))
    assert (
        flatcar["/etc/containerd/certs.d/docker.io/hosts.toml"][1]
        == files["/etc/containerd/certs.d/docker.io/hosts.toml"]
    )


@pytest.mark.parametrize(
    ("setting", "first_line"),
    [
        ("registry_mirrors: {'bad host': [https://m.example.test]}\n",
         "Error: cluster.yaml: registry_mirrors: invalid registry 'bad host'"),
        ("registry_mirrors: {docker.io: []}\n", "Error: cluster.yaml: registry_mirrors: docker.io: give a list of mirror URLs"),
        ("registry_mirrors: {docker.io: ['ftp://m']}\n", "Error: cluster.yaml: registry_mirrors: invalid mirror URL 'ftp://m'"),
        ("registry_mirrors: [docker.io]\n", "Error: cluster.yaml: registry_mirrors must be a mapping"),
    ],
)  # fmt: skip
def test_bad_registry_mirrors_are_refused_where_written(run: Run, inv: Path, setting: str, first_line: str) -> None:
    assert run("init").code == 0
    assert run("node", "c1", "10.0.0.1").code == 0
    set_settings(inv, setting)
    result = run("build")
    assert result.code == 1 and result.err.splitlines()[0] == first_line, result.err


def test_the_readme_registry_mirrors_example_builds_as_written(run: Run, inv: Path) -> None:
    block = _readme_block(2)
    assert block.startswith("registry_mirrors:")
    assert run("init").code == 0
    set_settings(inv, block)
    assert run("node", "controller", "10.10.10.1").code == 0
    files = _host_files(inv, "controller")
    assert {"/etc/containerd/certs.d/docker.io/hosts.toml", "/etc/containerd/certs.d/_default/hosts.toml"} <= set(files)


@pytest.mark.parametrize(
    "setting",
    [
        'kubelet_extra_args:\n- {name: max-pods, value: "200\\n"}\n',
        'kubelet_extra_args:\n- {name: "max-pods\\n", value: "200"}\n',
        'apiserver_extra_args:\n- {name: v, value: "2\\u0000"}\n',
        'ntp_servers: ["ntp.example.test\\n"]\n',
        'http_proxy: "http://proxy.example.test:3128\\n"\n',
        'no_proxy: [".corp.example.test\\n"]\n',
        'registry_mirrors: {"docker.io\\n": [https://m.example.test]}\n',
        'registry_mirrors: {docker.io: ["https://m.example.test\\n"]}\n',
    ],
)
def test_a_trailing_newline_or_nul_in_any_new_value_is_refused(run: Run, inv: Path, setting: str) -> None:
    assert run("init").code == 0
    assert run("node", "c1", "10.0.0.1").code == 0
    set_settings(inv, setting)
    before = {p: p.read_bytes() for p in (inv / "node-c1").rglob("*") if p.is_file()}
    result = run("build")
    lines = result.err.splitlines()
    assert result.code == 1 and len(lines) == 2 and lines[0].startswith("Error: cluster.yaml: "), result.err
    assert {p: p.read_bytes() for p in (inv / "node-c1").rglob("*") if p.is_file()} == before


def test_a_trailing_newline_in_public_ip_is_refused(run: Run, inv: Path) -> None:
    assert run("node", "c1", "10.0.0.1").code == 0
    result = run("node", "e1", "10.0.0.2", "--master", "c1", "--role", "edge", "--public-ip", "203.0.113.5\n")
    assert result.code == 1 and result.err.startswith("Error: --public-ip: ") and not (inv / "node-e1").exists()


def test_the_readme_patches_example_builds_as_written(run: Run, inv: Path) -> None:
    block = _readme_block(3)
    assert block.startswith("cloud_config_patch:")
    assert run("init").code == 0
    set_settings(inv, block)
    assert run("node", "controller", "10.10.10.1").code == 0
    assert run("node", "flatcar1", "10.10.10.5", "--master", "controller", "--format", "ignition").code == 0
    user_data = yaml.safe_load((inv / "node-controller" / CONFIG_2_USER_DATA).read_text())
    assert user_data["packages"] == ["htop", "jq"] and user_data["runcmd"][-1][0] == "sh"
    assert {"/etc/motd", "/etc/kubernetes/kubelet.conf"} <= {f["path"] for f in user_data["write_files"]}
    ignition = json.loads((inv / "node-flatcar1" / CONFIG_2_USER_DATA).read_text())
    (merged,) = ignition["ignition"]["config"]["merge"]
    assert merged["source"].startswith("data:")
