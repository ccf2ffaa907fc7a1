#!/usr/bin/env bash
# The slow suite: real boots of a Debian 12 guest under QEMU's TCG, and the kill-at-every-rename
# crash tests of the longest commands (tests marked "slow"). Installs
# what it needs (Debian packages, when run as root), builds the guest image once into the cache
# (ISOBUILD_TEST_CACHE, default ~/.cache/isobuild-test; keyed by scripts/guest-image.sh), then
# runs pytest -m slow. About 3 minutes for the image from a cold cache, then about 2 per boot pair.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/debs.sh qemu-system-x86 debootstrap e2fsprogs strace
if [[ ! -x .venv/bin/pytest ]]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"
fi
.venv/bin/pytest -m slow -p no:cacheprovider "$@"
