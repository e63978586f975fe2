#!/bin/sh
# Provisions the Haskell build VM image (run by packer as root over SSH; see haskell.json).
# TOOLCHAIN=ghcup: GHC and cabal from ghcup, as in docs/runbooks/vm-haskell-build.md.
# TOOLCHAIN=standin: the offline stand-ins uploaded to /tmp (tests, tools/demo-vm.sh).
set -eu
user=${BUILD_USER:-builder}
# The build user: a POSIX login shell, an unlocked account (sshd without PAM refuses a locked one),
# and the workspace root /build it owns.
id "$user" >/dev/null 2>&1 || useradd -m -s /bin/sh "$user"
usermod -p '*' "$user"
install -d -o "$user" -g "$user" -m 755 /build
case "${TOOLCHAIN:-ghcup}" in
  standin)
    install -m 755 /tmp/standin-ghc /usr/local/bin/ghc
    install -m 755 /tmp/standin-cabal /usr/local/bin/cabal
    ;;
  ghcup)
    apt-get update
    apt-get install -y --no-install-recommends curl ca-certificates build-essential libffi-dev \
      libgmp-dev libncurses-dev zlib1g-dev
    curl --proto '=https' --tlsv1.2 -sSf https://get-ghcup.haskell.org |
      GHCUP_INSTALL_BASE_PREFIX=/opt BOOTSTRAP_HASKELL_NONINTERACTIVE=1 \
      BOOTSTRAP_HASKELL_GHC_VERSION=9.6.6 BOOTSTRAP_HASKELL_CABAL_VERSION=3.12.1.0 sh
    # sandboxer's commands run without a login profile: put the tools on the default PATH.
    ln -sf /opt/.ghcup/bin/ghc /opt/.ghcup/bin/cabal /usr/local/bin/
    apt-get clean
    ;;
  *) echo "provision.sh: TOOLCHAIN must be ghcup or standin, not $TOOLCHAIN" >&2; exit 2 ;;
esac
rm -f /tmp/standin-ghc /tmp/standin-cabal
ghc --version && cabal --version
# sandboxer's destroy powers the VM off over SSH with this (then through qemu if it does not).
printf '#!/bin/sh\nsync\necho o > /proc/sysrq-trigger\n' > /usr/local/sbin/sandboxer-poweroff
chmod 755 /usr/local/sbin/sandboxer-poweroff
echo "$user ALL=(root) NOPASSWD: /usr/local/sbin/sandboxer-poweroff" > /etc/sudoers.d/sandboxer-poweroff
chmod 440 /etc/sudoers.d/sandboxer-poweroff
