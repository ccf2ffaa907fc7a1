#!/usr/bin/env bash
# The whole test suite: installs the real tools the tests run against (Debian packages,
# when run as root), the Python dev tools into ./.venv, then ruff, mypy and pytest.
# Tests marked "slow" (VM boots; none yet) are excluded here.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(cloud-init xorriso genisoimage etcd-server etcd-client shellcheck openssl util-linux ignition systemd iproute2
      dnsmasq-base isc-dhcp-server isc-dhcp-client strace containerd openssh-server openssh-client)
command -v kubectl >/dev/null || debs+=(kubernetes-client)
missing=()
for pkg in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "test: installing ${missing[*]}" >&2
    apt-get update -q
    # The tests start their own etcd, dnsmasq and dhcpd: keep the packages' services from starting
    # (isc-dhcp-server's would fail without a config). Debian's policy-rc.d convention, removed after.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
      trap 'rm -f "$policy"' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "test: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest -m "not slow" "$@"
