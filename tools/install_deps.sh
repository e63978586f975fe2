# Shared by tools/test.sh and tools/demo.sh: install what is missing, saying so.

install_deno() {
  if ! deno --version 2>/dev/null | grep -q '^deno 2\.9\.6 '; then
    echo "sandboxer: installing deno 2.9.6 from npm (npm i -g deno@2.9.6)" >&2
    npm i -g deno@2.9.6 >&2
  fi
}

# install_apt_packages PKG... : install the Debian packages that are not installed yet (root only).
install_apt_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "sandboxer: not root, so not installing: ${missing[*]} (tests needing them will say they are skipped)" >&2
    return 0
  fi
  echo "sandboxer: installing from apt: ${missing[*]}" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
}
