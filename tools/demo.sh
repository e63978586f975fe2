#!/usr/bin/env bash
# The demo of sandboxer's main job: a private OpenSSH server on a free loopback port with throwaway
# keys, then create -> sync this repo -> exec -> ssh -- CMD -> destroy, then the same in one `run`,
# through the real CLI, each step timed.
#
# It installs what it lacks, and says so on stderr: deno 2.9.6 from npm when missing, and, when
# root, openssh-server, openssh-client and rsync from apt-get. It leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
export NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
export DENO_NO_UPDATE_CHECK=1
# shellcheck source=tools/install_deps.sh
source tools/install_deps.sh
install_deno
install_apt_packages openssh-server openssh-client rsync
exec deno task demo
