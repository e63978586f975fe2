#!/usr/bin/env bash
# The second demo: ext.vm-packer's boot mode with real Packer and qemu. It builds the VM image
# (cached by content after the first time), boots a throwaway VM, creates a sandbox in it, runs
# `uname -r` and `cat /etc/os-release` there, destroys it, and shows that no qemu process and no
# overlay remain. Each step is printed with its time.
#
# Needs root the first time (debootstrap makes the base disk; apt-get installs qemu, packer and a
# kernel when missing). Caches in $SANDBOXER_DEMO_CACHE (default ~/.cache/sandboxer): the base disk
# and the image cache. The VM runs under software emulation (tcg) unless SANDBOXER_DEMO_ACCEL=kvm.
set -euo pipefail
cd "$(dirname "$0")/.."
export NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
# shellcheck source=tools/install_deps.sh
source tools/install_deps.sh
install_deno
install_apt_packages qemu-system-x86 qemu-utils linux-image-amd64 packer debootstrap e2fsprogs \
  procps openssh-client

cache=${SANDBOXER_DEMO_CACHE:-$HOME/.cache/sandboxer}
mkdir -p "$cache"
base="$cache/bookworm-base.qcow2"
state=$(mktemp -d "${TMPDIR:-/tmp}/sandboxer-demo-vm.XXXXXX")
export SANDBOXER_HOME="$state/state" SANDBOXER_IMAGES="$cache/images"
id=demo-vm
sets=(--set "image.base=$base" --set "image.variables=[toolchain=standin]"
  --set "vm.accel=${SANDBOXER_DEMO_ACCEL:-tcg}" --set vm.memory=512 --set vm.cpus=1
  --set vm.boot_timeout=300s)
cleanup() {
  # Whatever a failed step left: gc stops the VM and deletes its overlay.
  deno task -q sandboxer gc >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
step() { printf '• %s\n' "$*"; }
show() {
  printf '$ sandboxer'
  printf ' %q' "$@"
  printf '\n'
}
sbx() {
  show "$@"
  deno task -q sandboxer "$@"
}

t=$(now)
if [ ! -f "$base" ]; then
  step "making the base disk $base (debootstrap, once)"
  bash tools/vm/make-base-image.sh "$base"
fi
step "base disk ready ($(took "$t"))"

t=$(now)
sbx image build --profile vm-haskell-build-local "${sets[@]}" 2>/dev/null
step "image ready ($(took "$t"); cached by content after the first build)"

t=$(now)
show create --profile vm-haskell-build-local --name "$id" "${sets[@]}"
deno task -q sandboxer create --profile vm-haskell-build-local --name "$id" "${sets[@]}" 2>&1 |
  sed 's/^/    /'
step "booted a throwaway VM and created sandbox $id in it ($(took "$t"))"

sbx ports | sed 's/^/    /'

t=$(now)
sbx exec "$id" -- sh -c 'uname -r; cat /etc/os-release' | sed 's/^/    /'
step "ran uname -r and cat /etc/os-release in the VM ($(took "$t"))"

t=$(now)
sbx destroy "$id"
step "destroyed $id ($(took "$t"))"

left_qemu=$(ps -eo args= | grep -c "[q]emu-system-x86_64.*$SANDBOXER_HOME/vms/" || true)
left_overlays=$(find "$SANDBOXER_HOME" -name '*.qcow2' | wc -l)
step "qemu processes left: $left_qemu; overlays left: $left_overlays"
sbx ports | sed 's/^/    /'
if [ "$left_qemu" != 0 ] || [ "$left_overlays" != 0 ]; then
  echo "demo failed: something was left behind" >&2
  exit 1
fi
step "done: nothing left behind"
