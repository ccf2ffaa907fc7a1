"""Every validator matches whole values: a trailing newline, carriage return or NUL never passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from isobuilder import checks, schema
from isobuilder.errors import IsobuildError
from isobuilder.model import shown
from tests.helpers import SSH_KEY


def _user(value: str) -> None:
    if not checks.is_user_name(value):
        raise IsobuildError(f"invalid user {value!r}")


VALID: list[tuple[str, Callable[[str], Any], str]] = [
    ("node name", checks.check_name, "worker1"),
    ("IP", lambda v: checks.check_ip(v, "IP"), "10.0.0.1"),
    ("CIDR", lambda v: checks.check_cidr(v, "CIDR"), "10.96.0.0/12"),
    ("domain", checks.check_domain, "cluster.local"),
    ("Kubernetes version", checks.parse_kubernetes_version, "1.37.1"),
    ("addon version", lambda v: checks.check_addon_version(v, "addon"), "v1.2.3"),
    ("package version", lambda v: checks.check_package_version(v, "pkg"), "2.1.4"),
    ("SSH key", checks.check_ssh_key, SSH_KEY),
    ("SAN", checks.check_san, "api.example.com"),
    ("MAC", checks.check_mac, "52:54:00:12:34:56"),
    ("endpoint", checks.check_endpoint, "api.example.com:6443"),
    ("Flatcar channel", checks.check_flatcar_channel, "stable"),
    ("Flatcar version", checks.check_flatcar_version, "4459.2.1"),
    ("label", lambda v: checks.check_label("zone", v), "rack1"),
    ("label key", lambda v: checks.check_label(v, "x"), "zone"),
    ("user name", lambda v: _user(v), "alice"),
    ("cluster id", lambda v: schema.SETTING["cluster_id"].check(v), "6f1c3f8e-8a4e-4c35-9d5e-0d4b3f0f4a11"),
]


@pytest.mark.parametrize(("what", "check", "value"), VALID, ids=[v[0] for v in VALID])
def test_the_valid_example_passes(what: str, check: Callable[[str], Any], value: str) -> None:
    check(value)


@pytest.mark.parametrize("suffix", ["\n", "\r", "\x00", "\r\n", " \n"], ids=["LF", "CR", "NUL", "CRLF", "SP-LF"])
@pytest.mark.parametrize(("what", "check", "value"), VALID, ids=[v[0] for v in VALID])
def test_a_trailing_control_character_is_refused(
    what: str, check: Callable[[str], Any], value: str, suffix: str
) -> None:
    with pytest.raises(IsobuildError):
        check(value + suffix)


def test_an_error_never_echoes_an_unbounded_value() -> None:
    assert len(shown("x" * 50_000_000)) < 80
    assert shown(10**5000) == "<a very large number>"
    nested: list[Any] = []
    for _ in range(30):
        nested = [nested] * 10
    assert len(shown(nested)) < 100


def test_a_bad_ssh_key_is_not_echoed() -> None:
    with pytest.raises(IsobuildError) as caught:
        checks.check_ssh_key("-----BEGIN PRIVATE KEY----- secret")
    assert "secret" not in caught.value.message and "BEGIN" not in caught.value.message
