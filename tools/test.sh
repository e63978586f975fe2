#!/usr/bin/env bash
# Runs sandboxer's whole test suite: fmt, lint, type check, doc lint, then every test
# against real servers (OpenSSH sshd on loopback, rsync, and a Docker engine when root).
# See docs/testing.md.
#
# It installs what it lacks, and says so on stderr:
#   - deno 2.9.6 from npm (npm i -g deno@2.9.6) when `deno` is missing or another version;
#   - when root: openssh-server, openssh-client, rsync, busybox, iproute2, procps, e2fsprogs, docker.io,
#     docker-compose and debootstrap from apt-get; qemu-system-x86, qemu-utils, linux-image-amd64,
#     packer and make for the boot-mode VM tests. Tests themselves install nothing: without these,
#     the tests that need them are skipped, each with its reason in the summary.
set -euo pipefail
cd "$(dirname "$0")/.."

export NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
export DENO_NO_UPDATE_CHECK=1
export NO_COLOR=1

# shellcheck source=tools/install_deps.sh
source tools/install_deps.sh
install_deno
install_apt_packages openssh-server openssh-client rsync busybox iproute2 procps e2fsprogs docker.io docker-compose debootstrap
# `sandboxer ssh` in a real terminal (tests/cli/ssh_test.ts) and a server inside a sandbox for
# `forward` (tests/cli/forward_test.ts).
install_apt_packages tmux python3
# Boot-mode VM tests (tests/vm_boot/: real packer and qemu under tcg) and contrib/remote-build.mk.
install_apt_packages qemu-system-x86 qemu-utils linux-image-amd64 packer make

# tools/test_runner.ts runs the checks, then the tests in a parallel and a serial phase (the files
# of tests/serial.txt), prints each phase's time and every ignored test's reason, and ends with the
# line "N passed, M failed, K ignored". With CI=true a skip not in tests/allowed_skips.json fails.
exec deno task -q test
