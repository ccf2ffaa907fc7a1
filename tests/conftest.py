"""Shared fixtures: run the real CLI in-process, build example clusters in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from isobuilder.cli import main
from tests.helpers import EPOCH, MIXED, SSH_KEY, Result, Run, _fixed_epoch, build_example


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


@pytest.fixture
def ssh_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519.pub"
    path.write_text(SSH_KEY + "\n")
    return path


@pytest.fixture
def example(run: Run, inv: Path, ssh_key_file: Path) -> Path:
    build_example(run, ssh_key_file)
    return inv


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
