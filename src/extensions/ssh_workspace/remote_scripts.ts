/**
 * The remote shell scripts sandboxer runs. Each is a constant: every value
 * reaches it as a positional argument, quoted by the one quoter, so no remote
 * command is ever assembled from data.
 *
 * @module
 */

/** Exit codes the scripts use to say what went wrong. */
export const SCRIPT_EXIT = {
  noRoot: 90,
  exists: 91,
  mkdirFailed: 92,
  notOurs: 93,
  noMarker: 94,
} as const;

/** Marker file inside each workspace: id, creator and expiry, for leak reaping. */
export const MARKER_FILE = ".sandboxer.json";

/**
 * `sh -c MAKE_WORKSPACE sh ROOT WORKSPACE MARKER_JSON`: make the workspace
 * (refusing one that exists) and write its marker.
 */
export const MAKE_WORKSPACE = `
root=$1 ws=$2 marker=$3
if [ ! -d "$root" ]; then
  echo "workspace root $root does not exist or is not a directory" >&2; exit ${SCRIPT_EXIT.noRoot}
fi
if [ -e "$ws" ] || [ -L "$ws" ]; then echo "$ws already exists" >&2; exit ${SCRIPT_EXIT.exists}; fi
mkdir -m 700 -- "$ws" || exit ${SCRIPT_EXIT.mkdirFailed}
printf '%s\\n' "$marker" > "$ws/${MARKER_FILE}" || exit ${SCRIPT_EXIT.mkdirFailed}
`;

/**
 * `sh -c REMOVE_WORKSPACE sh WORKSPACE ID`: remove the workspace if it is
 * ours (its marker names this id, or it is empty). A missing workspace is
 * success; a symlink in its place is refused, never followed. `rm -rf`
 * removes symlinks inside the workspace without following them. A synced
 * read-only directory (mode 0555) stops `rm`, so on failure the real
 * directories inside (`find` without `-L` never follows a symlink) are made
 * owner-writable and `rm` runs again.
 */
export const REMOVE_WORKSPACE = `
ws=$1 id=$2
if [ -L "$ws" ]; then echo "$ws is a symlink, not a workspace sandboxer made" >&2; exit ${SCRIPT_EXIT.notOurs}; fi
[ -e "$ws" ] || exit 0
if [ ! -d "$ws" ]; then echo "$ws is not a directory" >&2; exit ${SCRIPT_EXIT.notOurs}; fi
if [ -f "$ws/${MARKER_FILE}" ]; then
  grep -q "\\"id\\":\\"$id\\"" "$ws/${MARKER_FILE}" || {
    echo "$ws/${MARKER_FILE} names another sandbox" >&2; exit ${SCRIPT_EXIT.notOurs}; }
elif [ -n "$(ls -A -- "$ws")" ]; then
  echo "$ws has no ${MARKER_FILE} marker" >&2; exit ${SCRIPT_EXIT.noMarker}
fi
rm -rf -- "$ws" 2>/dev/null || {
  find "$ws" -type d ! -perm -u+rwx -exec chmod u+rwx {} +
  rm -rf -- "$ws"
}
`;

/** `sh -c HAS_PROGRAM sh NAME`: exit 0 when NAME is on the remote PATH. */
export const HAS_PROGRAM = `command -v "$1" >/dev/null 2>&1`;
