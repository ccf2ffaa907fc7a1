#!/usr/bin/env bash
# The slow suite's guest: a Debian 12 root filesystem built offline-capable from Debian's packages
# (debootstrap: linux-image-amd64, systemd-sysv, udev, cloud-init), as an ext4 image with its
# kernel and initrd beside it, for QEMU's direct kernel boot. Cached, keyed by this script's
# contents: a second run prints the folder at once.
#   scripts/guest-image.sh [CACHE_DIR]     prints the folder holding rootfs.img, vmlinuz, initrd.img
set -euo pipefail

CACHE=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/isobuild-test}
MIRROR=${ISOBUILD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3-cffi-backend: cloud-init needs it through a virtual package debootstrap does not resolve;
# ifupdown: as Debian 12's cloud images, cloud-init renders the network for it (eni)
# nftables: Priority important, so in every Debian install but minbase (an edge router's firewall)
PACKAGES=linux-image-amd64,systemd-sysv,udev,cloud-init,python3-cffi-backend,ifupdown,ca-certificates,curl,gpg,kmod,iproute2,procps,util-linux,nftables
key=$(sha256sum <"$0" | cut -c1-16)
out="${CACHE}/guest-${key}"
if [[ -f "${out}/done" ]]; then
  echo "$out"
  exit 0
fi
[[ ${EUID} -eq 0 ]] || { echo "guest-image: debootstrap needs root" >&2; exit 1; }
mkdir -p "$CACHE"
work=$(mktemp -d "${CACHE}/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="${work}/root"

echo "guest-image: debootstrap bookworm (${PACKAGES}) from ${MIRROR}" >&2
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >"${work}/debootstrap.log" 2>&1 \
  || { tail -20 "${work}/debootstrap.log" >&2; exit 1; }

# The guest: a root on /dev/vda, the serial console, no network wait, and a poweroff once
# cloud-init's last stage and a settling pause are over (the tests read the disk afterwards).
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"${root}/etc/fstab"
printf 'isobuild-guest\n' >"${root}/etc/hostname"
chroot "$root" passwd -d root >/dev/null
rm -f "${root}/etc/machine-id" "${root}/var/lib/dbus/machine-id"
: >"${root}/etc/machine-id"  # empty: systemd makes a fresh one at first boot
cat >"${root}/usr/local/sbin/isobuild-test-poweroff" <<'EOF'
#!/bin/sh
# Wait isobuild.settle=SECONDS (kernel command line; default 60), then power off.
settle=60
for word in $(cat /proc/cmdline); do
  case "$word" in isobuild.settle=*) settle=${word#isobuild.settle=} ;; esac
done
sleep "$settle"
# What the running guest saw, for the tests to read on its disk after it is off.
ip -j addr show >/var/log/isobuild-test-ip-addr.json 2>&1 || true
ip -j route show >/var/log/isobuild-test-ip-route.json 2>&1 || true
cp /etc/resolv.conf /var/log/isobuild-test-resolv.conf 2>/dev/null || true
# How cloud-init's generator decided (ds-identify), kept from /run: the USB cases read it.
mkdir -p /var/log/isobuild-test-run
cp /run/cloud-init/ds-identify.log /run/cloud-init/cloud-init-generator.log /var/log/isobuild-test-run/ 2>/dev/null || true
ls /run/cloud-init >/var/log/isobuild-test-run/listing 2>&1 || true
lsblk -J -o NAME,TRAN,RM,LABEL,FSTYPE >/var/log/isobuild-test-lsblk.json 2>&1 || true
nft list ruleset >/var/log/isobuild-test-nft.txt 2>&1 || true
systemctl is-active isobuild-firewall.service >/var/log/isobuild-test-firewall.txt 2>&1 || true
exec systemctl --no-block poweroff
EOF
chmod 0755 "${root}/usr/local/sbin/isobuild-test-poweroff"
cat >"${root}/etc/systemd/system/isobuild-test-poweroff.service" <<'EOF'
[Unit]
Description=Power off once cloud-init is done (isobuild's slow suite)
After=cloud-final.service
Wants=cloud-final.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/isobuild-test-poweroff

[Install]
WantedBy=cloud-init.target
EOF
# When cloud-init's generator disabled it for this boot (ds-identify found no datasource), the
# unit above is never wanted (and cloud-final runs after multi-user.target: no ordering there).
cat >"${root}/etc/systemd/system/isobuild-test-poweroff-disabled.service" <<'EOF'
[Unit]
Description=Power off when cloud-init disabled itself (isobuild's slow suite)
ConditionPathExists=/run/cloud-init/disabled

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/isobuild-test-poweroff

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "${root}/etc/systemd/system/cloud-init.target.wants" "${root}/etc/systemd/system/multi-user.target.wants"
ln -sf ../isobuild-test-poweroff.service "${root}/etc/systemd/system/cloud-init.target.wants/isobuild-test-poweroff.service"
ln -sf ../isobuild-test-poweroff-disabled.service \
  "${root}/etc/systemd/system/multi-user.target.wants/isobuild-test-poweroff-disabled.service"
# No network in the VM: nothing should wait for it.
chroot "$root" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true

cp -L "${root}/vmlinuz" "${work}/vmlinuz"
cp -L "${root}/initrd.img" "${work}/initrd.img"
chroot "$root" apt-get clean
mkfs.ext4 -q -F -L guest-root -d "$root" "${work}/rootfs.img" 2G
rm -rf "$root"
touch "${work}/done"
mv -T "$work" "$out"
trap - EXIT
echo "$out"
