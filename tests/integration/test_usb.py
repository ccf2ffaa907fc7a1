"""``isobuild usb`` against real block devices: loop devices made here (root), image files, and
the kernel's own view of them (blkid -p, sfdisk, mount). The VM boot from a stick is in
test_vm_boot.py."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Run, require_tool

pytestmark = pytest.mark.integration
ISO_SIZE_MAX = 1 << 20


def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("loop devices need root")


@contextlib.contextmanager
def loop_device(backing: Path, size: int, *, partscan: bool = False) -> Iterator[Path]:
    _root_only()
    with backing.open("wb") as f:
        f.truncate(size)
    args = [require_tool("losetup"), "--find", "--show", *(["--partscan"] if partscan else []), str(backing)]
    device = Path(subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip())
    try:
        yield device
    finally:
        subprocess.run([require_tool("losetup"), "-d", str(device)], check=False)


def probe(path: Path) -> dict[str, str]:
    """What libblkid finds on ``path``, read from the device itself (-p: no cache)."""
    out = subprocess.run([require_tool("blkid"), "-p", "-o", "export", str(path)], capture_output=True, text=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


@pytest.fixture
def built(run: Run, inv: Path) -> Path:
    assert run("node", "c1", "10.0.0.1").code == 0
    assert run("node", "w1", "10.0.0.2", "--master", "c1").code == 0
    assert run("node", "w2", "10.0.0.3", "--master", "c1", "--media", "nocloud").code == 0
    return inv


def test_an_image_file_holds_the_node_config_iso_byte_for_byte(run: Run, built: Path, tmp_path: Path) -> None:
    for node, label in (("w1", "config-2"), ("w2", "cidata")):
        target = tmp_path / f"{node}.img"
        result = run("usb", node, str(target))
        assert result.code == 0, result.err
        assert target.read_bytes() == (built / f"node-{node}" / "config.iso").read_bytes()
        assert target.stat().st_mode & 0o777 == 0o600  # it carries the node's private key
        assert probe(target)["LABEL"] == label and probe(target)["TYPE"] == "iso9660"
        assert f"Wrote {node}'s {label} ISO 9660 drive" in result.err and "SHA-256 matches" in result.err
    again = run("usb", "w1", str(tmp_path / "w1.img"), "--json")
    assert json.loads(again.out)["device"] is False


def test_a_loop_device_is_written_synced_and_read_back_and_no_old_table_is_left(
    run: Run, built: Path, tmp_path: Path
) -> None:
    with loop_device(tmp_path / "stick", 64 << 20, partscan=True) as device:
        # The stick as bought: a GPT with a FAT partition, whose backup table sits at the end.
        subprocess.run(
            [require_tool("sfdisk"), "-q", "--label", "gpt", str(device)], input="1M,,U\n", text=True, check=True
        )
        assert probe(device)["PTTYPE"] == "gpt"
        refused = run("usb", "w1", str(device))
        assert refused.code == 1
        assert refused.err.splitlines()[0] == f"Error: {device} (67.1 MB) is not a removable device"
        result = run("usb", "w1", str(device), "--force")
        assert result.code == 0, result.err
        iso = (built / "node-w1" / "config.iso").read_bytes()
        with device.open("rb") as f:
            assert f.read(len(iso)) == iso
            f.seek(-(1 << 20), os.SEEK_END)
            assert f.read() == bytes(1 << 20)  # the backup GPT is gone with the last MiB
        subprocess.run([require_tool("blockdev"), "--rereadpt", str(device)], check=False)
        assert probe(device)["LABEL"] == "config-2" and "PTTYPE" not in probe(device)
        table = subprocess.run([require_tool("sfdisk"), "-d", str(device)], capture_output=True, text=True)
        assert table.returncode != 0, table.stdout  # no partition table any more
        link = tmp_path / "by-id"
        link.symlink_to(device)  # as /dev/disk/by-id/usb-...: followed
        assert run("usb", "w2", str(link), "--force").code == 0
        assert probe(device)["LABEL"] == "cidata"


def test_a_mounted_device_is_refused_even_with_force(run: Run, built: Path, tmp_path: Path) -> None:
    with loop_device(tmp_path / "stick", 64 << 20) as device:
        subprocess.run([require_tool("mkfs.ext4"), "-q", "-F", str(device)], check=True, capture_output=True)
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        subprocess.run([require_tool("mount"), str(device), str(mnt)], check=True)
        try:
            before = device.read_bytes()[:4096]
            for args in (("usb", "w1", str(device), "--force"), ("usb", "w1", str(device))):
                result = run(*args)
                assert result.code == 1
                assert result.err.splitlines() == [
                    f"Error: {device} (67.1 MB) is in use: mounted at {mnt}",
                    f"Hint: unmount it first (umount {mnt})",
                ]
            assert device.read_bytes()[:4096] == before
        finally:
            subprocess.run([require_tool("umount"), str(mnt)], check=False)


def test_a_partition_is_refused_and_a_disk_with_a_mounted_partition_too(run: Run, built: Path, tmp_path: Path) -> None:
    with loop_device(tmp_path / "stick", 64 << 20, partscan=True) as device:
        subprocess.run([require_tool("sfdisk"), "-q", str(device)], input="1M,,c\n", text=True, check=True)
        part = Path(f"{device}p1")
        if not part.exists():  # e.g. a kernel built without partition tables (this sandbox's)
            pytest.skip(f"the kernel made no {part} for the partition table written")
        subprocess.run([require_tool("mkfs.ext4"), "-q", "-F", str(part)], check=True, capture_output=True)
        assert run("usb", "w1", str(part), "--force").err.splitlines() == [
            f"Error: {part} is a partition of {device.name}",
            f"Hint: give the whole device (/dev/{device.name}): the config drive is the stick's whole content",
        ]
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        subprocess.run([require_tool("mount"), str(part), str(mnt)], check=True)
        try:
            result = run("usb", "w1", str(device), "--force")
            assert result.err.splitlines()[0] == f"Error: {device} (67.1 MB) is in use: mounted at {mnt}"
        finally:
            subprocess.run([require_tool("umount"), str(mnt)], check=False)


def test_the_running_system_and_a_short_device_are_refused(run: Run, built: Path, tmp_path: Path) -> None:
    _root_only()
    root = os.stat("/").st_dev
    sysdir = Path(f"/sys/dev/block/{os.major(root)}:{os.minor(root)}").resolve()
    if sysdir.is_dir():  # a root on a block device (not an overlay)
        disk = sysdir.parent if (sysdir / "partition").is_file() else sysdir
        result = run("usb", "w1", f"/dev/{disk.name}", "--force")
        assert result.code == 1 and "holds the running system" in result.err.splitlines()[0], result.err
    with loop_device(tmp_path / "tiny", 64 << 10) as device:
        result = run("usb", "w1", str(device), "--force")
        assert result.code == 1
        assert result.err.splitlines()[0].startswith(f"Error: {device} (65.5 kB) is smaller than the image (")


def test_targets_that_are_no_device_or_image_and_stale_folders_are_refused(
    run: Run, built: Path, tmp_path: Path
) -> None:
    cases = {
        "/dev/isobuild-no-such-stick": "is not a block device",
        str(tmp_path): "is neither a block device nor a file",
        str(built / "w1.img"): "is inside the inventory",
        "/dev/null": "is not a block device",
    }
    (tmp_path / "target").write_bytes(b"x")
    (tmp_path / "link.img").symlink_to(tmp_path / "target")
    cases[str(tmp_path / "link.img")] = "is a symbolic link"
    for target, message in cases.items():
        result = run("usb", "w1", target)
        assert result.code == 1 and message in result.err.splitlines()[0], (target, result.err)
    assert not Path("/dev/isobuild-no-such-stick").exists() and (tmp_path / "target").read_bytes() == b"x"
    assert run("usb", "w9", str(tmp_path / "x.img")).err.splitlines()[0] == "Error: no node 'w9' in cluster.yaml"
    user_data = built / "node-w1/cloud-config/openstack/latest/user_data"
    user_data.write_bytes(user_data.read_bytes() + b"# edited\n")
    edited = run("usb", "w1", str(tmp_path / "x.img"))
    assert edited.err.splitlines() == [
        "Error: node-w1/config.iso does not hold what node-w1/cloud-config/ does, labelled config-2 (a hand edit?)",
        f"Hint: run isobuild image {built / 'node-w1'} first",
    ]
    cluster = built / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("cert_days: 365", "cert_days: 300"))
    stale = run("usb", "w2", str(tmp_path / "x.img"))
    assert stale.err.splitlines()[0] == "Error: node-w2/ is not built from cluster.yaml as it is now"
    assert not (tmp_path / "x.img").exists()


def test_list_offers_no_loop_device_or_system_disk(run: Run, tmp_path: Path) -> None:
    with loop_device(tmp_path / "stick", 8 << 20) as device:
        result = run("usb", "--list", "--json")
        assert result.code == 0, result.err
        assert str(device) not in {d["path"] for d in json.loads(result.out)}
    assert run("usb", "--list", "w1").err.splitlines()[0] == "Error: --list goes alone"
    assert run("usb", "w1").err.splitlines()[0] == "Error: usb takes a NODE and a DEVICE"


def test_the_readme_usb_block(run: Run, inv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## USB sticks", 1)[1].split("```\n", 2)[1]
    lines = [line.split("#")[0].split() for line in block.splitlines() if line.strip()]
    assert [line[:2] for line in lines] == [["isobuild", "usb"]] * 4
    assert run("node", "controller", "10.10.10.1").code == 0
    assert run("node", "worker1", "10.10.10.2", "--master", "10.10.10.1").code == 0
    monkeypatch.chdir(tmp_path)
    with loop_device(tmp_path / "stick", 16 << 20) as device:  # /dev/sdb here: a loop device, not removable
        for words in lines:
            args = [str(device) if w == "/dev/sdb" else w for w in words[2:]]
            result = run("usb", *args, *(["--force"] if str(device) in args else []))
            assert result.code == 0, (words, result.err)
        assert (tmp_path / "worker1.img").read_bytes() == (inv / "node-worker1/config.iso").read_bytes()
        assert probe(device)["LABEL"] == "CONFIG-2"  # the last line wrote the FAT drive


# -- the editable FAT drive (--fat) ---------------------------------------------------------------
def mtools_out(image: Path, out: Path) -> dict[str, bytes]:
    """Every file on a FAT image, read by GNU mtools (as another machine would)."""
    out.mkdir()
    subprocess.run(
        [require_tool("mcopy"), "-i", str(image), "-s", "-n", "::/*", str(out)],
        check=True, capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    )  # fmt: skip
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_a_fat_drive_holds_the_drive_files_is_clean_and_reproducible(run: Run, built: Path, tmp_path: Path) -> None:
    drive = {
        p.relative_to(built / "node-w1/cloud-config").as_posix(): p.read_bytes()
        for p in (built / "node-w1/cloud-config").rglob("*")
        if p.is_file()
    }
    first, second = tmp_path / "a.img", tmp_path / "b.img"
    for target in (first, second):
        result = run("usb", "w1", str(target), "--fat")
        assert result.code == 0, result.err
        assert "Wrote w1's config-2 FAT drive (8.4 MB)" in result.err
    assert first.read_bytes() == second.read_bytes()  # SOURCE_DATE_EPOCH: the same bytes
    found = probe(first)
    assert (found["TYPE"], found["LABEL"], found["LABEL_FATBOOT"]) == ("vfat", "CONFIG-2", "CONFIG-2"), found
    fsck = subprocess.run([require_tool("fsck.vfat"), "-n", str(first)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert mtools_out(first, tmp_path / "out") == drive
    assert run("usb", "w2", str(tmp_path / "c.img"), "--fat").code == 0
    nocloud = probe(tmp_path / "c.img")
    assert (nocloud["LABEL"], nocloud["UUID"] != found["UUID"]) == ("CIDATA", True)  # a serial per drive


def test_a_fat_drive_edited_elsewhere_is_what_cloud_init_reads(run: Run, built: Path, tmp_path: Path) -> None:
    image = tmp_path / "w1.img"
    assert run("usb", "w1", str(image), "--fat").code == 0
    # A technician's fix on another machine: the node's hostname in its meta data.
    meta = json.loads(mtools_out(image, tmp_path / "before")["openstack/latest/meta_data.json"])
    meta["hostname"] = "w1-fixed"
    edited = tmp_path / "meta_data.json"
    edited.write_text(json.dumps(meta))
    subprocess.run(
        [require_tool("mcopy"), "-i", str(image), "-o", str(edited), "::/openstack/latest/meta_data.json"],
        check=True, capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    )  # fmt: skip
    out = tmp_path / "after"
    mtools_out(image, out)
    reader = (
        "import json, sys\nfrom cloudinit.sources.helpers.openstack import ConfigDriveReader\n"
        "print(json.dumps(ConfigDriveReader(sys.argv[1]).read_v2()['metadata']))"
    )
    read = subprocess.run(["/usr/bin/python3", "-c", reader, str(out)], capture_output=True, text=True, check=True)
    assert json.loads(read.stdout)["hostname"] == "w1-fixed"


def test_without_mtools_the_fat_drive_is_refused_with_what_to_install(
    run: Run, built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run("usb", "w1", str(tmp_path / "x.img"), "--fat")
    assert result.err.splitlines() == [
        "Error: mformat not found: an editable FAT stick is made with GNU mtools",
        "Hint: install GNU mtools (apt-get install mtools), or write the ISO instead (without --fat)",
    ]
    assert not (tmp_path / "x.img").exists()


def test_an_ignition_node_gets_no_fat_drive(run: Run, built: Path, tmp_path: Path) -> None:
    assert run("node", "f1", "10.0.0.9", "--master", "c1", "--format", "ignition").code == 0
    result = run("usb", "f1", str(tmp_path / "f1.img"), "--fat")
    assert result.err.splitlines() == [
        "Error: --fat is for cloud-init nodes: Ignition opens the label config-2 in lower case, and FAT stores "
        "labels upper-cased",
        "Hint: write f1's ISO instead (without --fat)",
    ]
    assert run("usb", "f1", str(tmp_path / "f1.img")).code == 0


# -- found by a hostile pass -----------------------------------------------------------------------
def test_a_target_name_with_glob_characters_touches_nothing_beside_it(run: Run, built: Path, tmp_path: Path) -> None:
    folder = tmp_path / "g"
    folder.mkdir()
    keep = {".important.old-backup": b"a", ".bashrc.isobuild-notmine": b"b", ".ab.isobuild-x": b"c"}
    for name, content in keep.items():
        (folder / name).write_bytes(content)
    (folder / ".projdir.old-2024").mkdir()
    for name in ("*", "a?", "[ab]"):
        result = run("usb", "w1", str(folder / name))
        assert result.code == 0, result.err
    assert {n: (folder / n).read_bytes() for n in keep} == keep
    assert (folder / ".projdir.old-2024").is_dir()


def test_a_staged_copy_of_a_writer_still_running_is_left_alone(run: Run, built: Path, tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        live = tmp_path / f".w1.img.isobuild-{sleeper.pid}-0000abcd"
        dead = tmp_path / ".w1.img.isobuild-999999999-0000abcd"
        live.write_bytes(b"in flight")
        dead.write_bytes(b"killed")
        assert run("usb", "w1", str(tmp_path / "w1.img")).code == 0
        assert live.read_bytes() == b"in flight" and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_odd_image_paths_get_one_error_and_nothing_is_made(run: Run, built: Path, tmp_path: Path) -> None:
    (tmp_path / "devlink").symlink_to("/dev")
    loop = tmp_path / "loopa"
    loop.symlink_to(tmp_path / "loopb")
    (tmp_path / "loopb").symlink_to(loop)
    bind = tmp_path / "invbind"
    cases = {
        "//dev/isobuild-usb-test": "is not a block device",
        str(tmp_path / "devlink" / "isobuild-usb-test"): "is not a block device",
        str(tmp_path / ("x" * 300)): "cannot use",
        str(loop / "x.img"): "symbolic link loop",
        str(tmp_path / "no" / "such" / "w1.img"): "is not a folder",
        str(tmp_path / "a\nHint: b" / "w1.img"): "is not a folder",
    }
    for target, message in cases.items():
        result = run("usb", "w1", target)
        assert result.code == 1 and message in result.err.splitlines()[0], (target, result.err)
        assert len(result.err.splitlines()) == 2, result.err
    assert not Path("/dev/isobuild-usb-test").exists() and not (tmp_path / "no").exists()
    if os.geteuid() == 0:
        bind.mkdir()
        subprocess.run([require_tool("mount"), "--bind", str(built), str(bind)], check=True)
        try:
            result = run("usb", "w1", str(bind / "cluster.yaml"))
            assert result.err.splitlines()[0].endswith("is inside the inventory"), result.err
        finally:
            subprocess.run([require_tool("umount"), str(bind)], check=False)
    assert run("usb", "--list", "--fat").err.splitlines()[0] == "Error: --list goes alone"


def test_a_device_under_a_loop_device_is_in_use(run: Run, built: Path, tmp_path: Path) -> None:
    with loop_device(tmp_path / "disk", 32 << 20) as device:
        upper = subprocess.run([require_tool("losetup"), "--find", "--show", str(device)],
                               check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
        try:
            result = run("usb", "w1", str(device), "--force")
            assert result.code == 1
            assert result.err.splitlines()[0].endswith(
                f"is in use by {Path(upper).name} (device-mapper, LVM, RAID or a loop device)"
            ), result.err
        finally:
            subprocess.run([require_tool("losetup"), "-d", upper], check=False)


def test_an_iso_relabelled_or_grown_is_refused(run: Run, built: Path, tmp_path: Path) -> None:
    iso = built / "node-w1" / "config.iso"
    original = iso.read_bytes()
    iso.write_bytes(original + bytes(4096))
    grown = run("usb", "w1", str(tmp_path / "x.img"))
    assert "does not hold what node-w1/cloud-config/ does, labelled config-2" in grown.err.splitlines()[0]
    pvd = 16 * 2048
    iso.write_bytes(original[: pvd + 40] + b"NOTCONFIG".ljust(32) + original[pvd + 72 :])
    assert run("usb", "w1", str(tmp_path / "x.img")).code == 1
    iso.write_bytes(original)
    assert run("usb", "w1", str(tmp_path / "x.img")).code == 0


def test_files_fat_cannot_hold_are_refused_not_lost(run: Run, built: Path, tmp_path: Path) -> None:
    drive = built / "node-w1" / "cloud-config"
    (drive / "Extra").write_bytes(b"upper")
    (drive / "extra").write_bytes(b"lower")
    assert run("image", str(built / "node-w1")).code == 0
    result = run("usb", "w1", str(tmp_path / "case.img"), "--fat")
    assert result.err.splitlines()[0] == "Error: 'extra' and 'Extra' differ only in case: FAT keeps one"
    (drive / "extra").unlink()
    (drive / "a:b").write_bytes(b"x")
    assert run("image", str(built / "node-w1")).code == 0
    result = run("usb", "w1", str(tmp_path / "colon.img"), "--fat")
    assert result.err.splitlines()[0] == "Error: 'a:b': FAT cannot hold the name 'a:b'"
    assert not (tmp_path / "case.img").exists() and not (tmp_path / "colon.img").exists()


def test_a_read_only_device_fails_with_one_error_and_is_left_as_it_was(run: Run, built: Path, tmp_path: Path) -> None:
    _root_only()
    backing = tmp_path / "ro"
    backing.write_bytes(bytes(8 << 20))
    device = subprocess.run([require_tool("losetup"), "--find", "--show", "--read-only", str(backing)],
                            check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    try:
        result = run("usb", "w1", device, "--force")
        assert result.code == 1 and len(result.err.splitlines()) == 2, result.err
        assert result.err.startswith(("Error: cannot open", "Error: writing")), result.err
    finally:
        subprocess.run([require_tool("losetup"), "-d", device], check=False)
    assert backing.read_bytes() == bytes(8 << 20)
