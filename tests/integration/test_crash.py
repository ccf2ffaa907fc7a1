"""Kill a command at every rename it makes, then kill its recovery at every rename, with strace's
fault injection (``-e inject=rename:signal=KILL:when=N``: a real SIGKILL inside the syscall, no
seam in the code). After each pair, a full recovery must leave the inventory exactly as it was
before the command, or exactly as the command makes it: bytes and modes of every file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import EPOCH, require_tool

State = dict[str, tuple[bytes, int]]


def _env() -> dict[str, str]:
    return {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "ISOBUILD_NOW": "2026-06-01T00:00:00Z"}


def _cmd(inv: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "isobuilder", "-q", "--inventory", str(inv), *args]


def _run(inv: Path, *args: str) -> None:
    result = subprocess.run(_cmd(inv, *args), env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _killed_at(rename: int, inv: Path, *args: str, may_fail: bool = False) -> bool:
    """Run the command with a SIGKILL at its ``rename``-th rename(2); False when it made fewer.
    ``may_fail``: the command may end with its own error (``list`` where there is no cluster)."""
    strace = require_tool("strace")
    inject = ["-e", "trace=rename", "-e", f"inject=rename:signal=KILL:when={rename}"]
    result = subprocess.run(
        [strace, "-f", "-qq", "-o", "/dev/null", *inject, *_cmd(inv, *args)],
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode in (0, -9, 137, *((1,) if may_fail else ())), result.stderr
    return result.returncode in (-9, 137)


def _state(inv: Path) -> State:
    out: State = {}
    for path in sorted(inv.rglob("*")):
        rel = path.relative_to(inv).as_posix()
        if rel.startswith(".isobuild"):
            continue
        assert not path.is_symlink(), rel
        if path.is_file():
            out[rel] = (path.read_bytes(), path.stat().st_mode & 0o7777)
        elif path.is_dir():
            out[rel + "/"] = (b"", path.stat().st_mode & 0o7777)  # an empty folder left behind counts too
    return out


def _shape(state: State) -> dict[str, int]:
    return {rel: mode for rel, (_, mode) in state.items()}


def _attack(base: Path, tmp: Path, command: tuple[str, ...], *, deterministic: bool = True) -> tuple[int, int]:
    """Every kill point of ``command`` and of its recovery. Returns how many kill points the
    command had and how many recoveries were killed part-way."""
    old = _state(base)
    reference = tmp / "reference"
    shutil.copytree(base, reference)
    _run(reference, *command)
    new = _state(reference)
    assert new != old
    kills = recoveries_killed = 0
    for kill in range(1, 60):
        killed = tmp / f"killed-{kill}"
        shutil.copytree(base, killed)
        if not _killed_at(kill, killed, *command):  # past its last rename: the command simply finished
            assert _state(killed) == new if deterministic else _shape(_state(killed)) == _shape(new)
            break
        for recovery_kill in range(1, 60):
            work = tmp / f"work-{kill}-{recovery_kill}"
            shutil.copytree(killed, work)
            interrupted = _killed_at(recovery_kill, work, "list")
            _run(work, "list")  # a full recovery
            state = _state(work)
            assert state in (old, new), f"kill {kill}, recovery kill {recovery_kill}: a mix of old and new"
            # Nothing renames after the commit point (journal -> committed), so a kill is before it.
            assert state == old, f"kill {kill}: rolled forward"
            recoveries_killed += interrupted
            assert sorted(p.name for p in (work / ".isobuild").iterdir()) == ["lock"]
            shutil.rmtree(work)
            if not interrupted:
                break
        kills += 1
        shutil.rmtree(killed)
    else:
        pytest.fail("the command never finished")
    return kills, recoveries_killed


@pytest.fixture
def base(tmp_path: Path) -> Callable[..., Path]:
    def make(*commands: tuple[str, ...]) -> Path:
        inv = tmp_path / "base"
        for command in commands:
            _run(inv, *command)
        return inv

    return make


@pytest.mark.slow  # a kill at every rename: minutes each, so with the VM boots (CI runs both)
def test_node_update_is_old_or_new_at_every_kill(base: Callable[..., Path], tmp_path: Path) -> None:
    inv = base(("node", "c1", "10.0.0.1"), ("node", "w1", "10.0.0.2", "--master", "10.0.0.1", "--label", "zone=a"))
    # Same keys and certificates, new labels: the new folder and cluster.yaml are deterministic.
    kills, recoveries_killed = _attack(inv, tmp_path, ("node", "w1", "10.0.0.2", "--label", "zone=b"))
    # journal, folder out and in, cluster.yaml out and in, commit point: six renames at least
    assert kills >= 6 and recoveries_killed >= kills - 1


def test_a_first_user_kubeconfig_is_old_or_new_at_every_kill(base: Callable[..., Path], tmp_path: Path) -> None:
    """Its folder users/ is new: a rollback removes it again (a killed commit used to leave it)."""
    inv = base(("node", "c1", "10.0.0.1"))
    kills, _ = _attack(inv, tmp_path, ("kubeconfig", "--user", "alice", "--group", "dev"), deterministic=False)
    assert kills >= 3


@pytest.mark.slow  # a kill at every rename: minutes each, so with the VM boots (CI runs both)
def test_build_with_a_prune_is_old_or_new_at_every_kill(base: Callable[..., Path], tmp_path: Path) -> None:
    inv = base(
        ("node", "c1", "10.0.0.1"),
        ("node", "w1", "10.0.0.2", "--master", "10.0.0.1"),
        ("node", "w2", "10.0.0.3", "--master", "10.0.0.1"),
    )
    text = (inv / "cluster.yaml").read_text()
    entry = "- name: w2\n  ip: 10.0.0.3\n  role: worker\n  master: c1\n"
    assert entry in text
    (inv / "cluster.yaml").write_text(
        text.replace(entry, "").replace("  master: c1\n", "  master: c1\n  labels:\n    zone: b\n")
    )
    kills, recoveries_killed = _attack(inv, tmp_path, ("build", "--prune", "--jobs", "1"))  # w1 rebuilt, w2 gone
    assert kills >= 6 and recoveries_killed >= kills - 1


@pytest.mark.slow  # a kill at every rename: minutes each, so with the VM boots (CI runs both)
def test_an_upgrade_done_record_is_old_or_new_at_every_kill(base: Callable[..., Path], tmp_path: Path) -> None:
    """`upgrade --done` rewrites a folder in a transaction of its own (`upgrade --to` stages folders
    and cluster.yaml as build and node do, attacked above)."""
    inv = base(
        ("node", "c1", "10.0.0.1", "--k8s-version", "1.36.2"),
        ("node", "w1", "10.0.0.2", "--master", "c1"),
        ("upgrade", "--to", "1.37.0"),
    )
    kills, recoveries_killed = _attack(inv, tmp_path, ("upgrade", "--done", "c1"))  # c1's folder loses upgrade.sh
    assert kills >= 3 and recoveries_killed >= kills - 1


def _siblings(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def _tree(path: Path) -> State:
    if path.is_file():
        return {"": (path.read_bytes(), path.stat().st_mode & 0o7777)}
    return _state(path) if path.is_dir() else {}


@pytest.mark.parametrize("what", ["pxe --out", "kubeconfig --merge"])
def test_writes_outside_the_inventory_are_old_or_new_and_cleaned_up(
    base: Callable[..., Path], tmp_path: Path, what: str
) -> None:
    inv = base(("node", "c1", "10.0.0.1", "--mac", "52:54:00:00:00:01"), ("kubeconfig",))
    out = tmp_path / "outside"
    out.mkdir()
    pxe = what.startswith("pxe")
    target = out / ("pxe" if pxe else "config")
    http = ("pxe", "--http-endpoint", "--out", str(target))
    first = (
        (*http[:2], "http://127.0.0.1:8080", *http[2:])
        if pxe
        else ("kubeconfig", "--merge", "--server", "https://old:6443")
    )
    args = (
        (*http[:2], "http://127.0.0.1:8080", *http[2:], "--no-secrets") if pxe else ("kubeconfig", "--merge", "--force")
    )
    env = {**_env(), "KUBECONFIG": str(target)}

    def run(*argv: str, where: Path = out) -> None:
        subprocess.run(_cmd(inv, *argv), env={**env, "KUBECONFIG": str(where / target.name)}, check=True,
                       capture_output=True)  # fmt: skip

    run(*first)
    old = _tree(target)
    reference = tmp_path / "reference"
    shutil.copytree(out, reference)
    run(*[a.replace(str(out), str(reference)) for a in args], where=reference)
    new = _tree(reference / target.name)
    assert new not in (old, {})
    strace = require_tool("strace")
    kills = 0
    for kill in range(1, 40):
        saved = tmp_path / f"saved-{kill}"
        shutil.copytree(out, saved)
        inject = ["-e", "trace=rename", "-e", f"inject=rename:signal=KILL:when={kill}"]
        result = subprocess.run([strace, "-f", "-qq", "-o", "/dev/null", *inject, *_cmd(inv, *args)],
                                env=env, capture_output=True)  # fmt: skip
        if result.returncode == 0:
            assert _tree(target) == new and _siblings(target) == []
            break
        kills += 1
        moved_aside = not target.exists() and len([n for n in _siblings(target) if ".old-" in n]) == 1
        assert _tree(target) in (old, new) or moved_aside, kill
        run(*args)  # the rerun cleans up what the kill left
        assert _tree(target) == new and _siblings(target) == [], (kill, _siblings(target))
        assert not (out / "config.lock").exists()
        shutil.rmtree(out)
        shutil.copytree(saved, out)
    assert kills >= 2


@pytest.mark.slow  # a kill at every rename: minutes each, so with the VM boots (CI runs both)
def test_a_killed_first_command_leaves_no_inventory_behind(tmp_path: Path) -> None:
    """Before it there was no folder: after a kill at any rename and a recovery (killed at any
    rename, then run in full) there is none either, or the whole new cluster."""
    kills = 0
    for kill in range(1, 30):
        inv = tmp_path / f"inv-{kill}"
        if not _killed_at(kill, inv, "node", "c1", "10.0.0.1"):
            assert (inv / "cluster.yaml").is_file()
            break
        kills += 1
        for recovery_kill in range(1, 10):
            work = tmp_path / f"work-{kill}-{recovery_kill}"
            if inv.exists():
                shutil.copytree(inv, work, symlinks=True)
            interrupted = _killed_at(recovery_kill, work, "list", may_fail=True)
            subprocess.run(_cmd(work, "list"), env=_env(), capture_output=True, timeout=60)
            assert not work.exists(), (kill, recovery_kill, sorted(p.name for p in work.rglob("*")))
            if not interrupted:
                break
    assert kills >= 3
