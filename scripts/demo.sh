#!/usr/bin/env bash
# Builds the README's example cluster into ./inventory (or $ISOBUILD_INVENTORY):
# a controller, two workers, an edge router with a public IP, and the admin kubeconfig.
# Needs only python3 (>= 3.11) with venv; installs isobuild into ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/isobuild ]] || [[ pyproject.toml -nt .venv/bin/isobuild ]]; then
  echo "demo: installing isobuild into .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check .
fi
export ISOBUILD_INVENTORY="${ISOBUILD_INVENTORY:-inventory}"
isobuild() { .venv/bin/isobuild "$@"; }

# An SSH key for the nodes: yours if you have one, else a throw-away demo key.
key="${DEMO_SSH_KEY:-$HOME/.ssh/id_ed25519.pub}"
if [[ ! -f "$key" ]]; then
  key="$ISOBUILD_INVENTORY.demo-ssh-key.pub"
  if [[ ! -f "$key" ]]; then
    echo "demo: no ~/.ssh/id_ed25519.pub; making a demo key pair next to the inventory" >&2
    .venv/bin/python - "$key" <<'PY'
import os, sys
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
key = Ed25519PrivateKey.generate()
private = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.OpenSSH, s.NoEncryption())
fd = os.open(sys.argv[1].removesuffix(".pub"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, private)
os.close(fd)
public = key.public_key().public_bytes(s.Encoding.OpenSSH, s.PublicFormat.OpenSSH)
open(sys.argv[1], "wb").write(public + b" isobuild-demo\n")
PY
  fi
fi

start=$(date +%s%N)
isobuild node controller 10.10.10.1 --ssh-key "$key"
isobuild node worker1 10.10.10.2 --master 10.10.10.1
isobuild node worker2 10.10.10.3 --master 10.10.10.1
isobuild node example.com 123.234.234.123 --master 10.10.10.1 --role edge
isobuild kubeconfig
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
echo "demo: example cluster built in $ISOBUILD_INVENTORY/ in ${elapsed_ms} ms" >&2
