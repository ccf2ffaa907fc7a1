"""config.iso as real tools see it: blkid, xorriso, isoinfo; reproducible; round-trips any files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from isobuilder import configdrive
from tests.helpers import Run, node_folders, require_tool

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=40).filter(
    lambda s: s not in (".", "..") and not s.startswith(".")
)
PATHS = st.lists(NAMES, min_size=1, max_size=4).map("/".join)


def test_every_node_iso_is_a_config_2_drive(shared_example: Path) -> None:
    blkid = require_tool("blkid")
    for folder in node_folders(shared_example):
        iso = folder / "config.iso"
        out = subprocess.run([blkid, "-p", "-o", "export", str(iso)], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split("=", 1) for line in out.splitlines())
        assert fields["LABEL"] == "config-2", folder
        assert fields["TYPE"] == "iso9660", folder


def test_xorriso_and_isoinfo_list_the_openstack_files(shared_example: Path) -> None:
    xorriso, isoinfo = require_tool("xorriso"), require_tool("isoinfo")
    iso = shared_example / "node-worker1" / "config.iso"
    listing = subprocess.run(
        [xorriso, "-indev", str(iso), "-find", "/", "-type", "f"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(p.strip("'") for p in listing) == [
        "/openstack/latest/meta_data.json",
        "/openstack/latest/user_data",
    ]
    rr = subprocess.run([isoinfo, "-R", "-f", "-i", str(iso)], capture_output=True, text=True, check=True).stdout
    assert "/openstack/latest/user_data" in rr.split()
    joliet = subprocess.run([isoinfo, "-J", "-f", "-i", str(iso)], capture_output=True, text=True, check=True).stdout
    assert "/openstack/latest/meta_data.json" in joliet.split()


def test_extracted_files_equal_the_cloud_config_folder(shared_example: Path, tmp_path: Path) -> None:
    xorriso = require_tool("xorriso")
    folder = shared_example / "node-controller"
    out = tmp_path / "x"
    subprocess.run(
        [xorriso, "-osirrox", "on", "-indev", str(folder / "config.iso"), "-extract", "/", str(out)],
        capture_output=True,
        check=True,
    )
    for name in ("user_data", "meta_data.json"):
        extracted = out / "openstack" / "latest" / name
        assert extracted.read_bytes() == (folder / "cloud-config/openstack/latest" / name).read_bytes()
        assert extracted.stat().st_mode & 0o777 == 0o400  # Rock Ridge mode: root-only, it holds keys


def test_same_files_and_epoch_give_identical_bytes() -> None:
    files = {"openstack/latest/user_data": b"#cloud-config\n", "openstack/latest/meta_data.json": b"{}"}
    first = configdrive.build_iso(files, "config-2", 1_700_000_000)
    assert configdrive.build_iso(dict(reversed(list(files.items()))), "config-2", 1_700_000_000) == first
    assert configdrive.build_iso(files, "config-2", 1_700_000_001) != first


def test_iso_bytes_do_not_depend_on_the_time_zone(tmp_path: Path) -> None:
    script = (
        "import sys; from isobuilder.configdrive import build_iso; "
        "sys.stdout.buffer.write(build_iso({'a/b': b'x'}, 'config-2', 1700000000))"
    )
    outputs = {
        tz: subprocess.run(
            [_python(), "-c", script],
            capture_output=True,
            check=True,
            env={"TZ": tz, "PATH": "/usr/bin:/bin"},
        ).stdout
        for tz in ("UTC", "Asia/Kolkata", "America/Los_Angeles")
    }
    assert len(set(outputs.values())) == 1


def _python() -> str:
    import sys

    return sys.executable


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(PATHS, st.binary(max_size=3000), min_size=1, max_size=8))
def test_any_file_map_survives_the_round_trip(files: dict[str, bytes]) -> None:
    # A path cannot be both a file and a folder.
    paths = sorted(files)
    if any(b.startswith(a + "/") for a in paths for b in paths):
        return
    label, back = configdrive.read_iso(configdrive.build_iso(files, "config-2", 0))
    assert label == "config-2"
    assert back == files


def test_image_repackages_a_hand_edit_and_changes_nothing_else(run: Run, example: Path) -> None:
    folder = example / "node-worker1"
    user_data = folder / "cloud-config/openstack/latest/user_data"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}
    user_data.write_bytes(user_data.read_bytes() + b"\npackages: [htop]\n")
    result = run("image", str(folder))
    assert result.code == 0, result.err
    label, files = configdrive.read_iso((folder / "config.iso").read_bytes())
    assert files["openstack/latest/user_data"] == user_data.read_bytes()
    assert label == "config-2"
    for path, (content, mtime) in before.items():
        if path.name not in ("config.iso", "user_data"):
            assert (path.read_bytes(), path.stat().st_mtime_ns) == (content, mtime), path


def test_image_refuses_a_broken_cloud_config(run: Run, example: Path) -> None:
    folder = example / "node-worker1"
    iso_before = (folder / "config.iso").read_bytes()
    (folder / "cloud-config/openstack/latest/user_data").write_text("#cloud-config\nwrite_files: [\n")
    result = run("image", str(folder))
    assert result.code == 1
    assert result.err.splitlines()[0].startswith("Error: ")
    assert "is not valid YAML at line" in result.err
    assert (folder / "config.iso").read_bytes() == iso_before


def test_image_of_a_folder_without_cloud_config(run: Run, tmp_path: Path) -> None:
    result = run("image", str(tmp_path))
    assert result.code == 1
    assert result.err.splitlines() == [
        f"Error: {tmp_path / 'cloud-config'} not found",
        "Hint: give a node folder made by `isobuild node`, e.g. isobuild image inventory/node-worker1",
    ]
