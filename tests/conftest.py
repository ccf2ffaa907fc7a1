"""Shared fixtures: run the real CLI in-process, build example clusters in tmp_path."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from isobuilder.cli import main

EPOCH = "1700000000"  # SOURCE_DATE_EPOCH for reproducible ISOs in tests


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


def require_tool(name: str) -> str:
    """The path of a real tool the tests need; scripts/test.sh installs them all."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run ./scripts/test.sh (as root it installs the test tools)")
    return path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    monkeypatch.delenv("ISOBUILD_INVENTORY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    return tmp_path / "inventory"


@pytest.fixture
def run(inv: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("node", "c1", "10.0.0.1")`` runs ``isobuild --inventory INV node c1 10.0.0.1``."""

    def _run(*args: str, inventory: Path | None = None) -> Result:
        capsys.readouterr()
        code = main(["--inventory", str(inventory or inv), *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run


SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsbTdJzNbbDHbxL2eGJc0ZqCdOMd4ky7AJJLYl9o6Lp test@isobuild"


@pytest.fixture
def ssh_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519.pub"
    path.write_text(SSH_KEY + "\n")
    return path


def build_example(run: Run, ssh_key_file: Path) -> None:
    """The README's example cluster."""
    for args in (
        ("node", "controller", "10.10.10.1", "--ssh-key", str(ssh_key_file)),
        ("node", "worker1", "10.10.10.2", "--master", "10.10.10.1"),
        ("node", "worker2", "10.10.10.3", "--master", "10.10.10.1"),
        ("node", "example.com", "123.234.234.123", "--master", "10.10.10.1", "--role", "edge"),
        ("kubeconfig",),
    ):
        result = run(*args)
        assert result.code == 0, result.err


@pytest.fixture
def example(run: Run, inv: Path, ssh_key_file: Path) -> Path:
    build_example(run, ssh_key_file)
    return inv


@contextlib.contextmanager
def _fixed_epoch() -> Iterator[None]:
    """SOURCE_DATE_EPOCH for session fixtures (monkeypatch is per test)."""
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        yield
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old


@pytest.fixture(scope="session")
def shared_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One example cluster for read-only tests (faster than building one per test)."""
    root = tmp_path_factory.mktemp("shared")
    key = root / "id.pub"
    key.write_text(SSH_KEY + "\n")
    inventory = root / "inventory"
    with _fixed_epoch():
        for args in (
            ["node", "controller", "10.10.10.1", "--ssh-key", str(key), "--san", "127.0.0.1"],
            ["node", "worker1", "10.10.10.2", "--master", "10.10.10.1"],
            ["node", "worker2", "10.10.10.3", "--master", "10.10.10.1"],
            ["node", "example.com", "123.234.234.123", "--master", "10.10.10.1", "--role", "edge"],
            ["kubeconfig"],
        ):
            assert main(["-q", "--inventory", str(inventory), *args]) == 0
    yield inventory


# The mixed cluster: a Flatcar controller (Ignition), Ubuntu workers (cloud-config), NoCloud
# drives, static addresses on three nodes (one of them IPv6-free Flatcar on NoCloud: Proxmox's path).
MIXED = (
    ["node", "ctrl", "10.10.10.1/24", "--format", "ignition", "--mac", "52:54:00:00:00:01",
     "--gateway", "10.10.10.254", "--dns", "1.1.1.1", "--dns", "9.9.9.9", "--mtu", "9000"],
    ["node", "worker1", "10.10.10.2/24", "--master", "10.10.10.1", "--mac", "52:54:00:00:00:02",
     "--gateway", "10.10.10.254", "--dns", "10.10.10.53"],
    ["node", "worker2", "10.10.10.3", "--master", "10.10.10.1", "--media", "nocloud"],
    ["node", "worker3", "10.10.10.4/24", "--master", "10.10.10.1", "--format", "ignition", "--media", "nocloud",
     "--mac", "52:54:00:00:00:04", "--gateway", "10.10.10.254"],
    ["node", "edge", "192.0.2.10/28", "--master", "10.10.10.1", "--role", "edge", "--media", "nocloud",
     "--mac", "52:54:00:00:00:05", "--gateway", "192.0.2.1", "--dns", "192.0.2.2"],
)  # fmt: skip


@pytest.fixture(scope="session")
def mixed_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The mixed cluster, built once for read-only tests."""
    root = tmp_path_factory.mktemp("mixed")
    inventory = root / "inventory"
    key = root / "id.pub"
    key.write_text(SSH_KEY + "\n")
    with _fixed_epoch():
        assert main(["-q", "--inventory", str(inventory), "init", "--ssh-key", str(key)]) == 0
        for args in MIXED:
            assert main(["-q", "--inventory", str(inventory), *args]) == 0, args
    yield inventory


def node_folders(inventory: Path) -> list[Path]:
    return sorted(p for p in inventory.glob("node-*") if p.is_dir())
