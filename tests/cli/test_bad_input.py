"""Hostile inputs to the commands: each gets one ``Error:`` line (bounded in length) and one
``Hint:`` line, exit code 1, no traceback, and nothing written, inside the inventory or out."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from isobuilder.cli import main
from tests.helpers import snapshot

Case = tuple[list[str], dict[str, str], str]  # argv after --inventory, environment, the error's start


def _cases(inv: Path, tmp: Path) -> dict[str, Case]:
    fifo = tmp / "fifo"
    os.mkfifo(fifo)
    private = tmp / "id_ed25519"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0\n-----END OPENSSH PRIVATE KEY-----\n")
    return {
        "-o over the CA key": (["kubeconfig", "-o", str(inv / "ssl/ca.key")], {}, "Error: -o"),
        "-o over cluster.yaml": (["kubeconfig", "-o", str(inv / "cluster.yaml")], {}, "Error: -o"),
        "-o a device": (["kubeconfig", "-o", "/dev/null"], {}, "Error: -o /dev/null is not a regular file"),
        "-o a FIFO": (["kubeconfig", "-o", str(fifo)], {}, f"Error: -o {fifo} is not a regular file"),
        "-o into a missing folder": (["kubeconfig", "-o", str(tmp / "no/such/x")], {}, "Error: -o"),
        "--merge into a device": (["kubeconfig", "--merge"], {"KUBECONFIG": "/dev/null"}, "Error: --merge /dev/null"),
        "--merge with an empty HOME": (["kubeconfig", "--merge"], {"HOME": ""}, "Error: HOME is not set"),
        "a component's identity": (
            ["kubeconfig", "--user", "kube-apiserver-kubelet-client"], {}, "Error: user name 'kube-apiserver-kubelet-client' is reserved"
        ),
        "the etcd client's identity": (["kubeconfig", "--user", "kube-apiserver-etcd-client"], {}, "Error: user name"),
        "a clock before 1970": (["list"], {"ISOBUILD_NOW": "0001-01-01"}, "Error: ISOBUILD_NOW='0001-01-01' is out of range"),
        "a clock past 9000": (["list"], {"ISOBUILD_NOW": "9999-12-31"}, "Error: ISOBUILD_NOW='9999-12-31' is out of range"),
        "an epoch past 9000": (["list"], {"SOURCE_DATE_EPOCH": "99999999999999"}, "Error: SOURCE_DATE_EPOCH="),
        "an SSH key from a FIFO": (["node", "w9", "10.10.10.9", "--master", "10.10.10.1", "--ssh-key", str(fifo)], {}, "Error: SSH key file"),
        "an SSH key from /dev/zero": (
            ["node", "w9", "10.10.10.9", "--master", "10.10.10.1", "--ssh-key", "/dev/zero"], {}, "Error: SSH key file /dev/zero"
        ),
        "a private key as SSH key": (
            ["node", "w9", "10.10.10.9", "--master", "10.10.10.1", "--ssh-key", str(private)], {}, "Error: --ssh-key: invalid SSH public key"
        ),
        "a 1 MB label": (["node", "w9", "10.10.10.9", "--master", "10.10.10.1", "--label", "a=" + "x" * (1 << 20)], {}, "Error: --label"),
        "a 5000-digit MTU": (
            ["node", "w9", "10.10.10.9/24", "--master", "10.10.10.1", "--mac", "52:54:00:00:00:09", "--mtu", "9" * 5000], {}, "Error: --mtu"
        ),
        "a name with a newline": (["node", "w9\n", "10.10.10.9", "--master", "10.10.10.1"], {}, "Error: invalid node name"),
        "a SAN with a NUL": (["node", "w9", "10.10.10.9", "--master", "10.10.10.1", "--san", "a\x00b"], {}, "Error: --san"),
    }  # fmt: skip


@pytest.fixture(scope="module")
def table(shared_example: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Case]]:
    tmp = tmp_path_factory.mktemp("hostile")
    return shared_example, tmp, _cases(shared_example, tmp)


CASE_NAMES = [
    "-o over the CA key", "-o over cluster.yaml", "-o a device", "-o a FIFO", "-o into a missing folder",
    "--merge into a device", "--merge with an empty HOME", "a component's identity", "the etcd client's identity",
    "a clock before 1970", "a clock past 9000", "an epoch past 9000", "an SSH key from a FIFO",
    "an SSH key from /dev/zero", "a private key as SSH key", "a 1 MB label", "a 5000-digit MTU",
    "a name with a newline", "a SAN with a NUL",
]  # fmt: skip


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_error_and_nothing_is_written(
    name: str,
    table: tuple[Path, Path, dict[str, Case]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inv, tmp, cases = table
    argv, env, start = cases[name]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before, outside = snapshot(inv), sorted(p.name for p in tmp.iterdir())
    capsys.readouterr()
    code = main(["--inventory", str(inv), *argv])
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(start) and lines[1].startswith("Hint: "), lines
    assert all(len(line) < 400 for line in lines), [len(line) for line in lines]
    assert "secret" not in err and "c2VjcmV0" not in err
    assert snapshot(inv) == before
    assert sorted(p.name for p in tmp.iterdir()) == outside
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_the_table_covers_every_case(table: tuple[Path, Path, dict[str, Case]]) -> None:
    assert sorted(table[2]) == sorted(CASE_NAMES)


def test_an_empty_inventory_path_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--inventory", "", "node", "c1", "10.0.0.1"]) == 1
    assert capsys.readouterr().err.startswith("Error: --inventory is empty")
    assert list(tmp_path.iterdir()) == []


def test_certs_check_refuses_an_inventory_without_ssl(
    shared_example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(shared_example, inv)
    shutil.rmtree(inv / "ssl")
    assert main(["--inventory", str(inv), "certs", "check"]) == 1
    assert capsys.readouterr().err.startswith(f"Error: cannot read {inv / 'ssl'}")


def test_a_long_passphrase_is_refused_before_anything_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ISOBUILD_CA_PASSPHRASE", "p" * 2000)
    inv = tmp_path / "inv"
    assert main(["--inventory", str(inv), "init", "--encrypt-ca"]) == 1
    assert capsys.readouterr().err.startswith("Error: the CA passphrase is 2000 bytes long")
    assert not (inv / "cluster.yaml").exists() and not (inv / "ssl").exists()


def _one_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), lines
    assert all(len(line) < 400 for line in lines)
    return lines[0]


@pytest.mark.parametrize("link", ["node-worker1", "node-worker1/cloud-config", "node-worker1/config.iso"])
def test_a_symlink_out_of_the_inventory_is_refused(
    example: Path, tmp_path: Path, link: str, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(example / link), elsewhere)
    (example / link).symlink_to(elsewhere)
    before, outside = snapshot(example), snapshot(elsewhere) if elsewhere.is_dir() else elsewhere.read_bytes()
    for argv in (["image", str(example / "node-worker1")], ["node", "worker1", "10.10.10.2", "--label", "x=y"]):
        line = _one_error(["--inventory", str(example), *argv], capsys)
        assert "is a symbolic link" in line, line
    assert snapshot(example) == before
    assert (snapshot(elsewhere) if elsewhere.is_dir() else elsewhere.read_bytes()) == outside


def test_a_huge_sparse_file_in_a_node_folder_is_refused_unread(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (example / "node-worker1" / "big.img").open("wb") as f:
        f.truncate(3 << 30)  # 3 GB, sparse: reading it would need 3 GB of memory
    line = _one_error(["--inventory", str(example), "node", "worker1", "10.10.10.2"], capsys)
    assert line.startswith(f"Error: {example / 'node-worker1' / 'big.img'} is 3072 MiB")


def test_a_yaml_alias_bomb_in_cluster_yaml_is_one_short_line(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bomb = "a: &a ['x','x','x','x','x','x','x','x','x']\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
        for i in range(8)
    )
    text = (example / "cluster.yaml").read_text()
    (example / "cluster.yaml").write_text(text + bomb)
    before = snapshot(example)
    capsys.readouterr()
    assert main(["--inventory", str(example), "list"]) == 1
    err = capsys.readouterr().err
    assert len(err) < 4000 and "Traceback" not in err and err.startswith("Error: ")
    assert snapshot(example) == before


def test_a_strict_umask_still_gives_owner_readable_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = os.umask(0o277)
    try:
        assert main(["--inventory", str(tmp_path / "inv"), "node", "c1", "10.0.0.1"]) == 0
    finally:
        os.umask(old)
    key = tmp_path / "inv/node-c1/ssl/kubelet.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE((tmp_path / "inv/ssl").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "inv/node-c1/ssl/kubelet.crt").stat().st_mode) == 0o600  # 0644 & ~077


@pytest.mark.parametrize(
    "edit",
    ["write_files: 5\n", "write_files:\n- 5\n- [a]\n", "write_files:\n- {path: /x, encoding: gz+b64, content: '!!'}\n"],
)
def test_hand_edits_of_the_wrong_shape_give_clean_errors_in_pxe_and_verify(
    example: Path, tmp_path: Path, edit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-q", "--inventory", str(example), "node", "worker1", "10.10.10.2", "--mac", "52:54:00:00:00:02"]) == 0
    user_data = example / "node-worker1/cloud-config/openstack/latest/user_data"
    user_data.write_text("#cloud-config\nhostname: worker1\n" + edit)
    for argv in (
        ["verify"],
        ["pxe", "--http-endpoint", "http://127.0.0.1:8080", "--no-secrets", "--out", str(tmp_path / "o")],
    ):
        capsys.readouterr()
        code = main(["--inventory", str(example), *argv])
        err = capsys.readouterr().err
        assert "Traceback" not in err and "internal error" not in err, (argv, err)
        if argv[0] == "verify":
            assert code == 1 and "node-worker1/config.iso: differs" in err, err
        else:  # nothing to withhold is exported as it is; a shape --no-secrets cannot read is refused
            assert code == 0 or (code == 1 and err.startswith("Error: node 'worker1': cannot leave the keys out")), err


@pytest.mark.parametrize("name", ["ssl", "cluster.yaml", "users", ".isobuild", "node-worker1"])
def test_a_top_level_entry_linked_out_of_the_inventory_is_refused(
    example: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (example / "users").mkdir(exist_ok=True)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(example / name), elsewhere)
    (example / name).symlink_to(elsewhere)
    before = snapshot(example)
    outside = snapshot(elsewhere) if elsewhere.is_dir() else {"": (elsewhere.read_bytes(), 0, 0)}
    for argv in (["list"], ["node", "w9", "10.10.10.9", "--master", "10.10.10.1"], ["kubeconfig", "--user", "alice"]):
        line = _one_error(["--inventory", str(example), *argv], capsys)
        assert line.startswith(f"Error: {example / name} is a symbolic link"), line
    assert snapshot(example) == before
    assert (snapshot(elsewhere) if elsewhere.is_dir() else {"": (elsewhere.read_bytes(), 0, 0)}) == outside


def test_outputs_through_links_are_refused(
    shared_example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "link").symlink_to(victim)
    (tmp_path / "real").mkdir()
    (tmp_path / "px").symlink_to(tmp_path / "real")
    (tmp_path / "into").symlink_to(shared_example)
    before = snapshot(shared_example)
    pxe = ["pxe", "--http-endpoint", "http://127.0.0.1:8080", "--out"]
    cases = {
        ("kubeconfig", "-o", str(tmp_path / "link")): "Error: -o",
        ("kubeconfig", "--merge"): "Error: --merge",
        (*pxe, str(tmp_path / "px")): f"Error: --out {tmp_path / 'px'} is a symbolic link",
        (*pxe, str(tmp_path / "into" / "px")): "Error: --out",
    }
    for argv, start in cases.items():
        env = {"KUBECONFIG": str(tmp_path / "link")} if "--merge" in argv else {}
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            line = _one_error(["--inventory", str(shared_example), *argv], capsys)
        assert line.startswith(start) and ("symbolic link" in line or "through a link" in line), line
    assert victim.read_text() == "keep" and not any((tmp_path / "real").iterdir())
    assert snapshot(shared_example) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "into", "link", "px", "real", "victim"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "first"),
    [
        (["node", "w2", "10.0.0.3", "--format", "json"], "Error: Invalid value for '--format': 'json' is not one of"),
        (["node", "w2", "10.0.0.3", "--role", "admin"], "Error: Invalid value for '--role'"),
        (["init", "--key-type", "dsa"], "Error: Invalid value for '--key-type'"),
        (["node", "w2"], "Error: node 'w2' is new: give its IP"),  # an existing node needs none
        (["node"], "Error: Missing argument 'name'."),
        (["node", "w2", "10.0.0.3", "--bogus"], "Error: No such option: --bogus"),
        (["frobnicate"], "Error: No such command 'frobnicate'."),
        (["certs", "renew", "--warn-days", "x"], "Error: No such option: --warn-days"),
    ],
)
def test_usage_errors_are_one_error_line_too(
    tmp_path: Path, argv: list[str], first: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_error(["--inventory", str(tmp_path / "inv"), *argv], capsys)
    assert line.startswith(first), line
    assert not (tmp_path / "inv").exists()


def test_isobuild_alone_shows_the_overview(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "Commands:" in capsys.readouterr().out


def test_a_setting_given_twice_in_cluster_yaml_is_refused(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (example / "cluster.yaml").write_text((example / "cluster.yaml").read_text() + "name: other\n")
    before = snapshot(example)
    line = _one_error(["--inventory", str(example), "build"], capsys)
    assert line.startswith("Error: cluster.yaml: 'name' is given twice at line"), line
    assert snapshot(example) == before


@pytest.mark.parametrize(
    ("fifo", "argv"),
    [
        ("cluster.yaml", ["list"]),
        ("kubeconfig", ["kubeconfig"]),
        ("node-worker1/.isobuild.json", ["list"]),
        ("node-worker1/config.iso", ["image", "{inv}/node-worker1"]),
    ],
)
def test_a_fifo_in_the_inventory_never_blocks(
    example: Path, fifo: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    (example / fifo).unlink()
    os.mkfifo(example / fifo)
    capsys.readouterr()
    code = main(["--inventory", str(example), *(a.format(inv=example) for a in argv)])  # returns: no hang
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    if fifo != "node-worker1/.isobuild.json":  # list shows that node as stale instead
        assert code == 1 and "is not a regular file" in err.splitlines()[0], err
