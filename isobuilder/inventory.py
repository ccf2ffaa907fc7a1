"""The inventory on disk: the only module that writes it.

Every command runs under an exclusive ``flock`` (released by the kernel when the process
dies) and changes the inventory through one :class:`Transaction`: new content is staged
beside the inventory with its final modes set at creation, then swapped in by renames
listed in a journal. A command killed mid-way leaves a journal; the next command rolls
it back before it starts, so the inventory is as it was before the killed command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from isobuilder.errors import IsobuildError
from isobuilder.files import File, Tree

STATE_DIR = ".isobuild"  # lock and staging area, inside the inventory (same filesystem: renames are atomic)
MAX_FILE = 64 << 20  # no file of the inventory is near this: an ISO is ~100 KB


def _fail(action: str, path: Path, exc: OSError) -> IsobuildError:
    return IsobuildError(
        f"cannot {action} {path}: {exc.strerror or exc}",
        hint="check that the inventory folder (--inventory) is writable by you and the disk is not full",
    )


def write_new_file(path: Path, content: bytes, mode: int, *, sync: bool = True) -> None:
    """Create ``path`` with ``mode`` from the first byte on (a secret is never world-readable).
    ``sync=False``: the caller flushes many files at once (``os.sync`` before its commit)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def stage_tree(slot: Path, current: Path, tree: Tree, *, dir_mode: int = 0o700, sync: bool = True) -> None:
    """Write folder ``slot`` holding exactly ``tree``; files equal to those in ``current`` are
    hard-linked, so what did not change keeps its inode and mtime. Raises OSError."""
    slot.mkdir(mode=dir_mode)
    for rel in sorted(tree):
        file, dest, old = tree[rel], slot / rel, current / rel
        _makedirs(dest.parent, slot, dir_mode)
        if _same(old, file):
            os.link(old, dest)
        else:
            write_new_file(dest, file.content, file.mode, sync=sync)


def refuse_symlink(path: Path, what: str) -> None:
    """Node folders, drives and images are the inventory's own: a symlink there would make isobuild
    read (and hard-link) files from elsewhere, or write through it."""
    if path.is_symlink():
        raise IsobuildError(
            f"{path} is a symbolic link",
            hint=f"{what} must be a real file or folder of the inventory; replace the link",
        )


def read_tree(root: Path) -> dict[str, File]:
    """Every regular file below ``root`` by relative path, with its mode; empty when ``root``
    does not exist. Symlinks are not followed."""
    files: dict[str, File] = {}
    if not root.is_dir():
        return files
    try:
        for path in sorted(root.rglob("*")):
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_size > MAX_FILE:  # a sparse 3 GB file would otherwise be read into memory
                raise IsobuildError(
                    f"{path} is {st.st_size >> 20} MiB",
                    hint=f"the inventory holds configs, keys and ISOs (at most {MAX_FILE >> 20} MiB each): move it out",
                )
            files[path.relative_to(root).as_posix()] = File(path.read_bytes(), st.st_mode & 0o7777)
    except OSError as exc:
        raise _fail("read", Path(exc.filename or root), exc) from None
    return files


def read_file(path: Path, limit: int = 0) -> bytes | None:
    """A regular file's bytes (at most ``limit``, default ``MAX_FILE``); None when it does not
    exist. A FIFO or a device is refused without blocking; any failure is one clean error."""
    limit = limit or MAX_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _fail("read", path, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsobuildError(f"{path} is not a regular file", hint="replace it with the file isobuild expects there")
        if st.st_size > limit:
            raise IsobuildError(f"{path} is {st.st_size >> 20} MiB", hint=f"at most {limit >> 20} MiB is expected here")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)[:limit]
    except OSError as exc:
        raise _fail("read", path, exc) from None
    finally:
        os.close(fd)


class Inventory:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def cluster_file(self) -> Path:
        return self.root / "cluster.yaml"

    @property
    def ssl(self) -> Path:
        return self.root / "ssl"

    def node_dir(self, folder: str) -> Path:
        return self.root / folder

    def has_cluster(self) -> bool:
        try:
            return self.cluster_file.exists()
        except OSError as exc:  # e.g. a path too long for the filesystem
            raise _fail("read", self.cluster_file, exc) from None

    def read(self, relative: str) -> bytes | None:
        return read_file(self.root / relative)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the inventory's lock; create the inventory folder (0700) if it is new. A first
        command that made nothing removes what it created, still holding the lock."""
        fd = self._lock()
        try:
            self._recover()
            yield
        finally:
            try:
                if not self.has_cluster():
                    self._remove_empty()  # no empty inventory behind a failed (or killed) first command
            finally:
                os.close(fd)

    def _lock(self) -> int:
        lock = self.root / STATE_DIR / "lock"
        refuse_symlink(self.root / STATE_DIR, "the inventory's .isobuild/ (lock and staging)")
        while True:
            try:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
                (self.root / STATE_DIR).mkdir(mode=0o700, exist_ok=True)
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                raise _fail("create", self.root, exc) from None
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits for a concurrent isobuild on this inventory
            try:
                if os.fstat(fd).st_ino == os.stat(lock, follow_symlinks=False).st_ino:
                    try:
                        self._refuse_links()
                    except IsobuildError:
                        os.close(fd)
                        raise
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)  # the lock file we waited on was removed by a failed first command: again

    def _refuse_links(self) -> None:
        """The inventory's own entries are real files and folders: a link there would make a
        command read a CA, a cluster or a node from elsewhere, or write a key through it."""
        for name in ("cluster.yaml", "ssl", "users", "kubeconfig"):
            refuse_symlink(self.root / name, f"{name} of the inventory")
        for folder in self.root.glob("node-*"):
            refuse_symlink(folder, "a node folder")

    def _remove_empty(self) -> None:
        """Only what ``locked`` makes (the state folder and its lock), and the inventory folder
        only when nothing else is in it: rmdir, never rmtree."""
        state = self.root / STATE_DIR
        with contextlib.suppress(OSError):
            if sorted(p.name for p in state.iterdir()) == ["lock"]:
                (state / "lock").unlink()
                state.rmdir()
                self.root.rmdir()

    def _recover(self) -> None:
        """Roll back every transaction a killed command left, then drop its staging area. Each
        step is a rename, so a recovery killed part-way is finished by the next one."""
        for tx in sorted((self.root / STATE_DIR).glob("tx-*")):
            journal = tx / JOURNAL
            if journal.exists():
                _rollback(self.root, tx, *_read_journal(journal, self.root))
                journal.rename(tx / "rolled-back")
            shutil.rmtree(tx, ignore_errors=True)

    def transaction(self, *, bulk: bool = False) -> Transaction:
        return Transaction(self.root, bulk=bulk)


JOURNAL = "journal.json"  # present from the first swap to the commit point (renamed "committed")


@dataclass(frozen=True)
class _Entry:
    """One target of a transaction's journal: replaced by its staged file, or deleted."""

    index: int
    target: str  # relative to the inventory
    had_old: bool  # the target existed before the commit
    delete: bool


def _read_journal(path: Path, root: Path) -> tuple[list[_Entry], list[str]]:
    """The journal's entries; refused whole unless every target is a plain relative path inside
    the inventory (a planted journal never makes recovery touch anything outside)."""
    hint = f"move {path.parent} out of the inventory and check the inventory against your backup"
    try:
        data = json.loads(path.read_bytes()[: 1 << 24])
        entries = [
            _Entry(int(e["index"]), str(e["target"]), bool(e["had_old"]), bool(e["delete"])) for e in data["targets"]
        ]
        dirs = [str(d) for d in data.get("dirs", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        raise IsobuildError(f"{path} is not a journal isobuild wrote", hint=hint) from None
    for i, entry in enumerate(entries):
        if entry.index != i:
            raise IsobuildError(f"{path} is not a journal isobuild wrote", hint=hint)
    for target in [e.target for e in entries] + dirs:
        parts = target.split("/")
        if (
            target.startswith("/")
            or any(p in ("", ".", "..") for p in parts)
            or parts[0] == STATE_DIR
            or "\x00" in target
        ):
            raise IsobuildError(f"{path} names {target!r}, not a path inside the inventory", hint=hint)
    return entries, dirs


def _rollback(root: Path, tx: Path, entries: list[_Entry], dirs: list[str]) -> None:
    """Undo a commit's swaps, newest first. Idempotent: each entry's state is read from which of
    target, old/i and new/i exist, and every change is one rename, so running it again after a
    kill at any point ends in the same place."""
    trash = tx / "trash"
    trash.mkdir(mode=0o700, exist_ok=True)
    for entry in reversed(entries):
        target = root / entry.target
        staged, backup = tx / "new" / str(entry.index), tx / "old" / str(entry.index)
        present = os.path.lexists(target)
        if os.path.lexists(backup):  # the old version was moved out: whatever is at target is new
            if present:
                target.rename(trash / f"{entry.index}-{os.urandom(4).hex()}")
            backup.rename(target)
        elif not entry.had_old and not entry.delete and not os.path.lexists(staged) and present:
            target.rename(trash / f"{entry.index}-{os.urandom(4).hex()}")  # moved in where nothing was
        # else: this entry had not been reached, or is restored already
    for folder in reversed(dirs):  # the parent folders the commit made, deepest first, if empty
        with contextlib.suppress(OSError):
            (root / folder).rmdir()


class Transaction:
    """Stage whole files and whole folders, then swap them in together."""

    def __init__(self, root: Path, *, bulk: bool = False) -> None:
        self.root = root
        self.tx = root / STATE_DIR / f"tx-{os.getpid()}-{os.urandom(4).hex()}"
        self.targets: list[str] = []
        self.deletes: set[int] = set()
        # bulk: thousands of files; no fsync each, one os.sync() before the commit point instead
        self.bulk = bulk

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A journal still here means a commit whose rollback did not finish: the next command's
        # lock recovers it. Anything else here is staging of a finished or abandoned transaction.
        if not (self.tx / JOURNAL).exists():
            shutil.rmtree(self.tx, ignore_errors=True)

    def _area(self) -> None:
        """The staging area, made only for transactions with something to do."""
        if self.tx.exists():
            return
        try:
            for sub in ("", "new", "old", "scratch"):
                (self.tx / sub).mkdir(mode=0o700)
        except OSError as exc:
            raise _fail("create", self.tx, exc) from None

    def _slot(self, target: str) -> Path:
        if target in self.targets:
            raise ValueError(f"{target} staged twice")  # a programming error, not a user one
        self._area()
        self.targets.append(target)
        return self.tx / "new" / str(len(self.targets) - 1)

    def put_file(self, target: str, file: File) -> None:
        slot = self._slot(target)
        try:
            write_new_file(slot, file.content, file.mode)
        except OSError as exc:
            raise _fail("write", slot, exc) from None

    def put_tree(self, target: str, tree: Tree, *, dir_mode: int = 0o700) -> None:
        """Stage folder ``target`` holding exactly ``tree`` (see :func:`stage_tree`)."""
        slot = self._slot(target)
        try:
            stage_tree(slot, self.root / target, tree, dir_mode=dir_mode, sync=not self.bulk)
        except OSError as exc:
            raise _fail("write", slot, exc) from None

    def scratch(self, name: str) -> Path:
        """A folder in this transaction's staging area to write below, for :meth:`put_staged`."""
        self._area()
        path = self.tx / "scratch" / name
        try:
            path.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise _fail("create", path, exc) from None
        return path

    def put_staged(self, target: str, staged: Path) -> None:
        """Stage folder ``target`` from ``staged``, a folder written below :meth:`scratch`."""
        staged.rename(self._slot(target))

    def delete(self, target: str) -> None:
        """Remove ``target`` at commit (rolled back like any other change)."""
        self._slot(target)
        self.deletes.add(len(self.targets) - 1)

    def _missing_parents(self) -> list[str]:
        return list(dict.fromkeys(f for t in self.targets for f in _missing(self.root, t)))

    def commit(self) -> None:
        if not self.targets:
            return
        entries = [_Entry(i, t, os.path.lexists(self.root / t), i in self.deletes) for i, t in enumerate(self.targets)]
        dirs = self._missing_parents()
        journal = {"targets": [dataclasses.asdict(e) for e in entries], "dirs": dirs}
        try:
            if self.bulk:
                os.sync()  # every staged file on disk before the commit point
            tmp = self.tx / "journal.tmp"
            write_new_file(tmp, json.dumps(journal).encode(), 0o600)
            tmp.rename(self.tx / JOURNAL)
            for folder in dirs:  # journaled first: a rollback removes them again
                (self.root / folder).mkdir(mode=0o700, exist_ok=True)
            for entry in entries:
                path = self.root / entry.target
                if entry.had_old:
                    path.rename(self.tx / "old" / str(entry.index))
                if not entry.delete:
                    (self.tx / "new" / str(entry.index)).rename(path)
            (self.tx / JOURNAL).rename(self.tx / "committed")  # the commit point
            _fsync_dir(self.root)
        except BaseException as exc:  # OSError, but also Ctrl-C or SystemExit half-way through
            if (self.tx / JOURNAL).exists():
                _rollback(self.root, self.tx, entries, dirs)
                (self.tx / JOURNAL).unlink()
            if isinstance(exc, OSError):
                raise _fail("update", self.root, exc) from None
            raise


def _missing(root: Path, rel: str) -> list[str]:
    """The parent folders of ``rel`` below ``root`` that do not exist yet, outermost first."""
    parts = rel.split("/")[:-1]
    return [f for f in ("/".join(parts[: i + 1]) for i in range(len(parts))) if not os.path.lexists(root / f)]


def _makedirs(path: Path, top: Path, mode: int) -> None:
    """mkdir -p below ``top``, every level with ``mode`` (Path.mkdir gives parents the umask's)."""
    missing = []
    while path != top and not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=mode)


def _same(path: Path, file: File) -> bool:
    try:
        st = path.lstat()
        return (
            path.is_file()
            and not path.is_symlink()
            and st.st_mode & 0o7777 == file.mode
            and st.st_size == len(file.content)
            and path.read_bytes() == file.content
        )
    except OSError:
        return False


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - some filesystems refuse fsync on folders
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
