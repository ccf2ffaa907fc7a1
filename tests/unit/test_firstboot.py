"""firstboot.files_written: what a first-boot config writes, read back as its consumer would."""

from __future__ import annotations

import base64
import gzip
import json

from isobuilder.files import File
from isobuilder.firstboot import files_written


def test_cloud_config_write_files_in_every_encoding_and_appends_left_out() -> None:
    data = b"secret\n"
    text = "#cloud-config\n" + json.dumps({
        "write_files": [
            {"path": "/a", "content": "plain\n", "permissions": "0600"},
            {"path": "/b", "content": base64.b64encode(data).decode(), "encoding": "b64"},
            {"path": "/c", "content": base64.b64encode(gzip.compress(data)).decode(), "encoding": "gz+b64"},
            {"path": "/etc/hosts", "content": "1.2.3.4 x\n", "append": True},
            {"content": "no path"},
        ]
    })  # fmt: skip
    assert files_written(text.encode()) == {"/a": File(b"plain\n", 0o600), "/b": File(data), "/c": File(data)}


def test_ignition_storage_files_with_data_urls_and_gzip() -> None:
    config = {
        "ignition": {"version": "3.3.0"},
        "storage": {"files": [
            {"path": "/x", "mode": 0o640, "contents": {"source": "data:,hello%0A"}},
            {"path": "/y", "contents": {"source": "data:;base64," + base64.b64encode(gzip.compress(b"z")).decode(),
                                        "compression": "gzip"}},
        ]},
    }  # fmt: skip
    assert files_written(json.dumps(config).encode()) == {"/x": File(b"hello\n", 0o640), "/y": File(b"z")}


def test_what_it_cannot_read_is_none_not_a_guess() -> None:
    assert files_written(b"#!/bin/sh\necho hi\n") is None
    assert files_written(b"#cloud-config\n[unclosed") is None
    assert files_written(b"{not json") is None
    assert files_written(b"#cloud-config\n{}\n") == {}
