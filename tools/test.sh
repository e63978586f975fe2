#!/usr/bin/env bash
# Runs sandboxer's whole test suite: fmt, lint, type check, doc lint, then every test
# against real servers (OpenSSH sshd on loopback, rsync, and a Docker engine when root).
#
# It installs what it lacks, and says so on stderr:
#   - deno 2.9.6 from npm (npm i -g deno@2.9.6) when `deno` is missing or another version;
#   - when root: openssh-server, openssh-client, rsync, busybox, iproute2, procps, e2fsprogs, docker.io,
#     docker-compose and debootstrap from apt-get; qemu-system-x86, qemu-utils, linux-image-amd64,
#     packer and make for the boot-mode VM tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
export DENO_NO_UPDATE_CHECK=1
export NO_COLOR=1

# shellcheck source=tools/install_deps.sh
source tools/install_deps.sh
install_deno
install_apt_packages openssh-server openssh-client rsync busybox iproute2 procps e2fsprogs docker.io docker-compose debootstrap
# Boot-mode VM tests (tests/vm_boot/: real packer and qemu under tcg) and contrib/remote-build.mk.
install_apt_packages qemu-system-x86 qemu-utils linux-image-amd64 packer make

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
deno task test 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# Deno prints "ok | 12 passed | 0 failed (3s)"; repeat it in the plain form CI reads.
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
  passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
  failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
  echo "${passed} passed, ${failed} failed"
fi
exit "$status"
