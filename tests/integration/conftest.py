"""Every test here runs a real tool (cloud-init, xorriso, etcd, kubectl, ignition, shellcheck,
systemd-networkd, dnsmasq, dhcpd, openssl, ...): marked ``integration``, so ``pytest -m "not
integration"`` runs the fast layers alone."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
