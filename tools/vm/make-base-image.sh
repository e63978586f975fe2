#!/usr/bin/env bash
# make-base-image.sh OUT.qcow2 — a Debian 12 disk image that boots straight from a kernel (no
# bootloader): a debootstrap minbase rootfs with openssh-server, rsync and iproute2, and
# images/guest/sandboxer-init as /sbin/sandboxer-init (boot with init=/sbin/sandboxer-init). It is
# the base image Packer templates in this repository provision (image.base in a boot-mode profile).
#
# Needs root (debootstrap), debootstrap, mkfs.ext4 (e2fsprogs) and qemu-img; no network beyond the
# Debian mirror in /etc/apt/sources.list.d/debian.sources (override with MIRROR=...). Writes OUT
# atomically; nothing else is left behind.
set -euo pipefail
out=${1:?usage: make-base-image.sh OUT.qcow2}
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ "$(id -u)" != 0 ]; then
  echo "make-base-image.sh: needs root (debootstrap); run it as root or with sudo" >&2
  exit 1
fi
mirror=${MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d "${TMPDIR:-/tmp}/sbx-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "make-base-image.sh: debootstrap bookworm from $mirror (about 30 s)" >&2
debootstrap --variant=minbase --include=openssh-server,iproute2,rsync,sudo \
  bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -5 "$work/debootstrap.log" >&2; exit 1; }
install -m 755 "$here/images/guest/sandboxer-init" "$work/root/sbin/sandboxer-init"
# Host keys come from the seed disk at every boot; none is baked into the image.
rm -f "$work/root"/etc/ssh/ssh_host_*
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n' \
  >"$work/root/etc/ssh/sshd_config.d/sandboxer.conf"
rm -rf "$work/root/var/cache/apt/archives/"*.deb
truncate -s 2G "$work/disk.img"
mkfs.ext4 -q -F -L sbxroot -d "$work/root" "$work/disk.img"
qemu-img convert -O qcow2 "$work/disk.img" "$work/base.qcow2"
mv "$work/base.qcow2" "$out.tmp" && mv "$out.tmp" "$out"
echo "make-base-image.sh: wrote $out" >&2
