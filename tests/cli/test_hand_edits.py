"""Hand edits of any file isobuild generates in a node folder are kept (and packaged) or refused,
never overwritten or ignored silently: user_data (test_cli), the drive's other files, apply.sh and
the top-level install.sh, a copy no node runs."""

from __future__ import annotations

from pathlib import Path

from isobuilder import configdrive
from tests.helpers import Run

WORKER = "node-worker1"


def test_an_edit_of_the_top_level_install_sh_is_refused_by_build_and_image(run: Run, example: Path) -> None:
    script = example / WORKER / "install.sh"
    script.write_text(script.read_text() + "echo my step\n")
    built = run("build")
    assert built.code == 1 and "failed worker1: node-worker1/install.sh was edited by hand" in built.err
    for args in (("node", "worker1", "--label", "zone=a"), ("image", str(example / WORKER))):
        result = run(*args)
        assert result.code == 1, args
        assert result.err.count("Error:") == 1
        assert "install.sh was edited by hand" in result.err, args
    assert "echo my step" in script.read_text()  # nothing written
    assert "cloud-config/openstack/latest/user_data (write_files /opt/isobuild/install.sh)" in run("build").err
    forced = run("build", "worker1", "--force")
    assert forced.code == 0, forced.err
    assert "echo my step" not in script.read_text()


def test_an_edit_of_apply_sh_is_kept_until_a_change_would_overwrite_it(run: Run, example: Path) -> None:
    script = example / WORKER / "apply.sh"
    edited = script.read_text().replace('log "done"', 'log "done"; logger "applied by hand"')
    assert edited != script.read_text()
    script.write_text(edited)
    kept = run("node", "worker1", "10.10.10.2")  # nothing isobuild generates for it changed
    assert kept.code == 0, kept.err
    assert "kept:    your hand edit of apply.sh" in kept.err
    assert script.read_text() == edited
    refused = run("node", "worker1", "--label", "zone=a")  # the label changes apply.sh's payload
    assert refused.code == 1 and "node-worker1/apply.sh was edited by hand and this change would overwrite it" in (
        refused.err
    )
    assert "zone" not in (example / "cluster.yaml").read_text()  # nothing written
    assert run("node", "worker1", "--label", "zone=a", "--force").code == 0
    assert "applied by hand" not in script.read_text()


def test_an_edit_of_the_drive_s_meta_data_is_kept_and_packaged(run: Run, example: Path) -> None:
    meta = example / WORKER / "cloud-config/openstack/latest/meta_data.json"
    edited = meta.read_text().replace('"hostname"', '"availability_zone": "rack1",\n  "hostname"')
    assert edited != meta.read_text()
    meta.write_text(edited)
    assert run("image", str(example / WORKER)).code == 0
    assert run("build").code == 0
    assert meta.read_text() == edited
    iso = configdrive.drive_files((example / WORKER / "config.iso").read_bytes())
    assert iso is not None and iso["openstack/latest/meta_data.json"] == edited.encode()


def test_an_ignition_node_s_drive_installer_edit_is_kept_its_top_level_copy_refused(run: Run, example: Path) -> None:
    assert run("node", "edge9", "10.10.10.9", "--master", "10.10.10.1", "--format", "ignition").code == 0
    folder = example / "node-edge9"
    drive_copy = folder / "cloud-config/install.sh"
    drive_copy.write_text(drive_copy.read_text() + "# my disk layout\n")
    assert run("image", str(folder)).code == 0
    result = run("build")
    assert result.code == 0, result.err
    assert "edge9: your hand edit of cloud-config/install.sh is kept" in result.err
    top = folder / "install.sh"
    top.write_text(top.read_text() + "# here instead\n")
    refused = run("build")
    assert refused.code == 1 and "make the edit in cloud-config/install.sh" in refused.err


def test_an_edit_of_upgrade_sh_is_kept_like_apply_sh(run: Run, example: Path) -> None:
    assert run("upgrade", "--to", "1.38.0").code == 0
    script = example / WORKER / "upgrade.sh"
    edited = script.read_text().replace("set -euo pipefail", "set -euo pipefail\necho my pre-upgrade check")
    script.write_text(edited)
    result = run("node", "worker1", "10.10.10.2")
    assert result.code == 0, result.err
    assert "kept:    your hand edit of upgrade.sh" in result.err and script.read_text() == edited
