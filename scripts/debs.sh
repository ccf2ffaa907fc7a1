#!/usr/bin/env bash
# Installs the Debian packages named that are missing (as root; `apt-get update` first), without
# starting their services: the tests start their own etcd, dnsmasq, dhcpd and sshd (Debian's
# policy-rc.d convention, removed after). Not root: says what is missing and goes on.
#   scripts/debs.sh PACKAGE...
set -euo pipefail

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "debs: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 0
fi
echo "debs: installing ${missing[*]}" >&2
apt-get update -q
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
