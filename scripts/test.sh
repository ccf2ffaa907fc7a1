#!/usr/bin/env bash
# The whole test suite: installs the real tools the tests run against (Debian packages,
# when run as root), the Python dev tools into ./.venv, then ruff, mypy and pytest.
# Tests marked "slow" (VM boots) are left to scripts/test-slow.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(cloud-init xorriso genisoimage etcd-server etcd-client shellcheck openssl util-linux ignition systemd iproute2
      dnsmasq-base isc-dhcp-server isc-dhcp-client strace containerd openssh-server openssh-client
      fdisk mount mtools dosfstools nftables)
command -v kubectl >/dev/null || debs+=(kubernetes-client)
./scripts/debs.sh "${debs[@]}"

python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest -m "not slow" "$@"
