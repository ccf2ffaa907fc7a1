#!/usr/bin/env bash
# The slow suite: real boots of a Debian 12 guest under QEMU's TCG (tests marked "slow"). Installs
# what it needs (Debian packages, when run as root), builds the guest image once into the cache
# (ISOBUILD_TEST_CACHE, default ~/.cache/isobuild-test; keyed by scripts/guest-image.sh), then
# runs pytest -m slow. About 3 minutes for the image from a cold cache, then about 2 per boot pair.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(qemu-system-x86 debootstrap e2fsprogs)
missing=()
for pkg in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "test-slow: installing ${missing[*]}" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "test-slow: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  fi
fi
if [[ ! -x .venv/bin/pytest ]]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"
fi
.venv/bin/pytest -m slow -p no:cacheprovider "$@"
