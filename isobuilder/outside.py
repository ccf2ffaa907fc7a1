"""Writes outside the inventory, only to paths the user named (``-o``, ``--merge``, ``pxe --out``).

Each is staged beside its target and swapped in by rename, so a reader sees the old file or
folder or the new one; what a killed run left beside the target is cleaned up by the next.
A kubeconfig merge takes kubectl's own lock. The callers refuse devices, FIFOs, symlinks and
paths inside the inventory first.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from isobuilder.errors import IsobuildError
from isobuilder.files import Tree
from isobuilder.inventory import _fail, _fsync_dir, _makedirs, read_tree, write_new_file


@contextlib.contextmanager
def kubeconfig_lock(path: Path, *, wait: float = 10.0) -> Iterator[None]:
    """Hold ``PATH.lock`` the way kubectl does (client-go tools/clientcmd/loader.go, lockFile:
    O_CREAT|O_EXCL on filename + ".lock", removed by unlockFile), so isobuild and kubectl never
    merge into the same kubeconfig at once."""
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # client-go's lockFile makes it too
    except OSError as exc:
        raise _fail("create", path.parent, exc) from None
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            os.write(fd, f"isobuild {os.getpid()}\n".encode())  # kubectl's own lock files are empty
            os.close(fd)
            break
        except FileExistsError:
            if _stale_isobuild_lock(lock):
                continue
            if time.monotonic() > deadline:
                raise IsobuildError(
                    f"{lock} exists: another kubectl or isobuild is writing {path.name}",
                    hint=f"wait for it; if none runs, remove {lock}",
                ) from None
            time.sleep(0.02)
        except OSError as exc:
            raise _fail("lock", lock, exc) from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def _stale_isobuild_lock(lock: Path) -> bool:
    """A lock an isobuild killed while merging left: removed, so the next merge can go on. An
    empty lock is kubectl's: never ours to judge."""
    try:
        words = lock.read_bytes()[:64].split()
        if len(words) != 2 or words[0] != b"isobuild" or not words[1].isdigit():
            return False
        os.kill(int(words[1]), 0)
        return False  # its owner still runs
    except ProcessLookupError:
        with contextlib.suppress(OSError):
            lock.unlink()
        return True
    except OSError:
        return False


def write_outside(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Atomically replace a file outside the inventory (e.g. ~/.kube/config): temp file, then rename.
    Callers refuse a symlink first (kubeconfigs.check_target): the rename would replace the link."""
    if path.is_dir():
        raise IsobuildError(f"{path} is a folder", hint="give a file path")
    _clean_outside(path)
    tmp = path.with_name(f".{path.name}.isobuild-{_token()}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_new_file(tmp, content, mode)
        tmp.rename(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _outside_fail("write", path, exc) from None


def replace_tree_outside(path: Path, tree: Tree, *, dir_mode: int = 0o700) -> bool:
    """Make folder ``path`` (outside the inventory) hold exactly ``tree``: staged beside it, then
    swapped in by two renames, so readers see the old folder or the new one, never a mix.
    Returns False when it already held exactly ``tree`` (then nothing is touched)."""
    _clean_outside(path)
    if read_tree(path) == dict(tree):
        return False
    token = _token()
    staged, old = path.with_name(f".{path.name}.isobuild-{token}"), path.with_name(f".{path.name}.old-{token}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staged.mkdir(mode=dir_mode)
        for rel in sorted(tree):
            _makedirs((staged / rel).parent, staged, dir_mode)
            write_new_file(staged / rel, tree[rel].content, tree[rel].mode)
        if path.exists():
            path.rename(old)
        staged.rename(path)
    except OSError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        if old.exists() and not path.exists():
            old.rename(path)
        raise _outside_fail("write", path, exc) from None
    with contextlib.suppress(OSError):
        _remove_path(old)
    _fsync_dir(path.parent)
    return True


def _token() -> str:
    """A staged name's tail: the writer's pid (so that a running writer's copy is left alone),
    and some randomness."""
    return f"{os.getpid()}-{os.urandom(4).hex()}"


def _writer_gone(stale: Path) -> bool:
    pid = stale.name.rsplit("-", 2)[-2] if stale.name.count("-") >= 2 else ""
    if not pid.isdigit():
        return True  # not a name of ours with a pid (an older isobuild's): nobody writes it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return int(pid) == os.getpid()  # this process's own, from an earlier call: not in flight


def _clean_outside(path: Path) -> None:
    """What a killed earlier write to ``path`` left beside it: its staged copy (which may hold
    secrets) goes; a folder moved aside but not replaced (killed between the two renames) comes
    back. Only names isobuild makes (``.NAME.isobuild-PID-*`` and ``.NAME.old-PID-*``; the name
    matched literally, never as a pattern), and only a writer's that is gone."""
    name = glob.escape(path.name)
    try:
        olds = sorted(p for p in path.parent.glob(f".{name}.old-*") if _writer_gone(p))
        for stale in path.parent.glob(f".{name}.isobuild-*"):
            if _writer_gone(stale):
                _remove_path(stale)
        if olds and not os.path.lexists(path):
            olds.pop().rename(path)
        for old in olds:
            _remove_path(old)
    except OSError as exc:
        raise _outside_fail("clean up beside", path, exc) from None


def _outside_fail(action: str, path: Path, exc: OSError) -> IsobuildError:
    return IsobuildError(
        f"cannot {action} {path}: {exc.strerror or exc}",
        hint=f"check that {path.parent} exists, is writable by you, and the disk is not full",
    )


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
