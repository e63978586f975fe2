/**
 * The remote shell scripts sandboxer runs. Each is a constant: every value
 * reaches it as a positional argument, quoted by the one quoter, so no remote
 * command is ever assembled from data.
 *
 * The workspace protocol they implement (docs/architecture.md, "Safety of
 * teardown"):
 *
 * - A workspace is the real directory `<root>/sbx-<id>` whose marker
 *   `.sandboxer.json` begins `{"id":"<id>","nonce":"<nonce>",` — the nonce
 *   is random per creation and kept in the handle. Markers written before
 *   nonces existed begin `{"id":"<id>","profile":` and match only a handle
 *   without a nonce.
 * - Every command that works in a workspace (exec, rsync in either
 *   direction, the SFTP sync's lock holder) runs through a wrapper that, in
 *   the same process that then does the work, enters the workspace with
 *   `cd -P`, checks that it landed in `<physical root>/sbx-<id>` itself (so
 *   the entry is no symlink) and that the marker is ours, marks itself with
 *   `SANDBOXER_SANDBOX=<id>:<nonce>` in its environment (inherited by every
 *   descendant), and only then `exec`s the work, which keeps that directory
 *   as its working directory: renaming or replacing the path afterwards
 *   cannot redirect it.
 * - syncs (rsync and SFTP) hold `flock` on the workspace directory while
 *   they write, so two syncs into one sandbox run one after the other.
 * - Removal renames the checked workspace to `<root>/.sbx-<id>.tomb-<nonce>`
 *   (a name no wrapper enters), ends the sandbox's processes (TERM, then KILL
 *   after a grace: every process whose environment carries its mark, and
 *   every process whose working directory is the tombstone, which covers a
 *   wrapper caught between its check and its `exec`), deletes the
 *   tombstone's contents, the marker last, and then the tombstone. A removal
 *   cut short leaves a tombstone that still holds its marker, which the next
 *   destroy, `gc` or `gc --target` finishes.
 *
 * @module
 */

/** Exit codes the scripts use to say what went wrong. */
export const SCRIPT_EXIT = {
  /** The workspace root is missing (create). */
  noRoot: 90,
  /** Something already exists at the workspace's path (create). */
  exists: 91,
  /** mkdir or the marker write failed (create). */
  mkdirFailed: 92,
  /** The path is not a workspace sandboxer made: a symlink, a non-directory, another id. */
  notOurs: 93,
  /** The directory has no marker. */
  noMarker: 94,
  /** Nothing is at the workspace's path (it was removed on the host). */
  missing: 95,
  /** The marker names this id with another creation nonce: another sandbox of the same name. */
  otherNonce: 96,
  /** The tombstone could not be emptied. */
  removeFailed: 97,
  /** exec's `-w DIR` is missing, not a directory, or resolves outside the workspace. */
  badDirectory: 99,
  /** fetch's path is missing, a symlink, or resolves outside the workspace. */
  badPath: 89,
  /** The check itself failed (the marker could not be read: a missing `head`, an I/O error). */
  checkFailed: 98,
  /** The tar sync's workspace holds more than its marker: rsync syncs it instead. */
  notEmpty: 88,
  /** The host has no GNU tar: rsync syncs it instead. */
  noTar: 87,
} as const;

/** Marker file inside each workspace: id, nonce, creator and expiry. */
export const MARKER_FILE = ".sandboxer.json";

/** The environment variable that marks every process started in a workspace: `<id>:<nonce>`. */
export const PROCESS_MARK = "SANDBOXER_SANDBOX";

/** First byte of an exec wrapper's stdout: the workspace checked out and the command starts. */
export const EXEC_STARTED = 0x06;
/** First byte of an exec wrapper's stdout: it refused; the reason follows, then the exit code. */
export const EXEC_REFUSED = 0x15;

/** The line a refusing rsync or lock-holder wrapper prints on stderr: `<prefix><code> <why>`. */
export const REFUSAL_PREFIX = "sandboxer-workspace-check: ";

/**
 * The tombstone a workspace is renamed to while it is removed.
 *
 * @param id The sandbox id.
 * @param nonce Its creation nonce, or empty for a workspace made before nonces.
 * @returns The name, relative to the root.
 */
export function tombstoneName(id: string, nonce: string): string {
  return `.sbx-${id}.tomb-${nonce || "legacy"}`;
}

/**
 * Shell functions shared by the scripts below. They expect `ws`, `id` and
 * `nonce` to be set, and set `why` when they fail.
 *
 * - `enter`: `cd` into the workspace and check it (see the module doc).
 * - `ours`: check the marker in the current directory.
 * - `lock`: take `flock` on the current directory as fd 9 (waiting with a
 *   note on stderr); a host without flock(1) syncs unserialised.
 * - `read_marker`: the marker's first line into `head`, with the `read`
 *   builtin: no process, so the per-command check costs no more than the one
 *   `sh` it runs in. A hostile host could make that read slow with a huge
 *   one-line marker (it reads a byte per system call); removal, which must
 *   never hang, redefines it with `head -c`.
 */
export const FUNCTIONS: string = `
root=\${ws%/*} name=sbx-$id
m=${MARKER_FILE}
read_marker() { head=; IFS= read -r head < "$m" || [ -n "$head" ]; }
ours() {
  if [ -L "$m" ] || { [ -e "$m" ] && [ ! -f "$m" ]; }; then
    why="its $m is not a regular file"; return ${SCRIPT_EXIT.notOurs}
  fi
  if [ ! -e "$m" ]; then why="it has no $m marker"; return ${SCRIPT_EXIT.noMarker}; fi
  if ! read_marker; then why="its $m cannot be read"; return ${SCRIPT_EXIT.checkFailed}; fi
  if [ -n "$nonce" ]; then
    case $head in "{\\"id\\":\\"$id\\",\\"nonce\\":\\"$nonce\\","*) return 0 ;; esac
  else
    case $head in "{\\"id\\":\\"$id\\",\\"profile\\":"*) return 0 ;; esac
  fi
  case $head in
    "{\\"id\\":\\"$id\\","*)
      why="its $m belongs to another sandbox named $id (another creation nonce)"
      return ${SCRIPT_EXIT.otherNonce} ;;
  esac
  why="its $m names another sandbox"; return ${SCRIPT_EXIT.notOurs}
}
enter() {
  if [ "\${ws##*/}" != "$name" ] || [ -z "$root" ]; then
    why="$ws is not <root>/$name"; return ${SCRIPT_EXIT.notOurs}
  fi
  if ! cd -P -- "$root" 2>/dev/null; then
    why="the workspace root $root does not exist"; return ${SCRIPT_EXIT.missing}
  fi
  rp=$PWD
  if [ -L "$name" ]; then why="$ws is a symlink, not a workspace sandboxer made"; return ${SCRIPT_EXIT.notOurs}; fi
  if [ ! -e "$name" ]; then why="$ws does not exist"; return ${SCRIPT_EXIT.missing}; fi
  if [ ! -d "$name" ]; then why="$ws is not a directory"; return ${SCRIPT_EXIT.notOurs}; fi
  if ! cd -P -- "$name" 2>/dev/null; then why="$ws cannot be entered"; return ${SCRIPT_EXIT.notOurs}; fi
  if [ "$PWD" != "$rp/$name" ]; then
    why="$ws resolves to $PWD, not to itself"; return ${SCRIPT_EXIT.notOurs}
  fi
  ours
}
lock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec 9<.
  flock -n 9 && return 0
  echo "sandboxer: waiting for another sync into $ws to finish" >&2
  flock 9
}
`;

/**
 * `sh -c MAKE_WORKSPACE sh ROOT WORKSPACE MARKER_JSON`: make the workspace
 * (mkdir is the exclusive claim: it fails when anything is there) and write
 * its marker. Exit {@linkcode SCRIPT_EXIT}.exists means nothing was made; a
 * marker that cannot be written (a full disk) takes the directory it was
 * for away again, so no unmarked directory, which no removal would touch,
 * is left behind.
 */
export const MAKE_WORKSPACE = `
root=$1 ws=$2 marker=$3
if [ ! -d "$root" ]; then
  echo "workspace root $root does not exist or is not a directory" >&2; exit ${SCRIPT_EXIT.noRoot}
fi
if ! mkdir -m 700 -- "$ws" 2>/dev/null; then
  if [ -e "$ws" ] || [ -L "$ws" ]; then echo "$ws already exists" >&2; exit ${SCRIPT_EXIT.exists}; fi
  mkdir -m 700 -- "$ws" || exit ${SCRIPT_EXIT.mkdirFailed}
fi
if ! printf '%s\\n' "$marker" > "$ws/${MARKER_FILE}"; then
  rm -f -- "$ws/${MARKER_FILE}"; rmdir -- "$ws"
  echo "cannot write the marker $ws/${MARKER_FILE} (is the disk full?)" >&2; exit ${SCRIPT_EXIT.mkdirFailed}
fi
`;

/**
 * `sh -c WORKSPACE_EXEC sh WORKSPACE ID NONCE PROGRAM ARGS…`: check the
 * workspace, then run the program in it. The first byte on stdout is the
 * wrapper's: {@linkcode EXEC_STARTED}, after which everything is the
 * program's (exit code and signals included, as it is `exec`ed), or
 * {@linkcode EXEC_REFUSED} followed by the reason and a
 * {@linkcode SCRIPT_EXIT} code.
 */
export const WORKSPACE_EXEC = `ws=$1 id=$2 nonce=$3
shift 3
${FUNCTIONS}
enter; rc=$?
if [ "$rc" -ne 0 ]; then printf '\\025%s\\n' "$why"; exit "$rc"; fi
${PROCESS_MARK}=$id:$nonce; export ${PROCESS_MARK}
printf '\\006'
exec "$@"
`;

/**
 * `sh -c WORKSPACE_LOGIN sh WORKSPACE ID NONCE PROGRAM ARGS…`: as
 * {@linkcode WORKSPACE_EXEC} for a terminal session (`sandboxer ssh`), where
 * no byte may come before the program's own output: a refusal is one line
 * on stderr instead.
 */
export const WORKSPACE_LOGIN = `ws=$1 id=$2 nonce=$3
shift 3
${FUNCTIONS}
enter; rc=$?
if [ "$rc" -ne 0 ]; then printf 'sandboxer: workspace %s\\n' "$why" >&2; exit "$rc"; fi
${PROCESS_MARK}=$id:$nonce; export ${PROCESS_MARK}
exec "$@"
`;

/**
 * Enter the workspace, then DIR (`$dir`, relative to it) as the host
 * resolves it, symlinks followed; a DIR that resolves outside the workspace
 * is refused. Each script that uses it defines `refuse CODE WHY` first.
 */
const ENTER_DIR = `enter; rc=$?
[ "$rc" -eq 0 ] || refuse "$rc" "$why"
top=$PWD
cd -P -- "$dir" 2>/dev/null || refuse ${SCRIPT_EXIT.badDirectory} "$dir is not a directory in the workspace"
case $PWD/ in
  "$top"/*) ;;
  *) refuse ${SCRIPT_EXIT.badDirectory} "$dir resolves to $PWD, outside the workspace" ;;
esac
${PROCESS_MARK}=$id:$nonce; export ${PROCESS_MARK}`;

/**
 * `sh -c WORKSPACE_EXEC_IN sh WORKSPACE ID NONCE DIR PROGRAM ARGS…`: as
 * {@linkcode WORKSPACE_EXEC}, in DIR (relative to the workspace) resolved
 * with symlinks followed; a DIR that resolves outside the workspace is
 * refused before the program starts, so a symlink cannot lead a command out.
 */
export const WORKSPACE_EXEC_IN = `ws=$1 id=$2 nonce=$3 dir=$4
shift 4
${FUNCTIONS}
refuse() { printf '\\025%s\\n' "$2"; exit "$1"; }
${ENTER_DIR}
printf '\\006'
exec "$@"
`;

/**
 * `sh -c WORKSPACE_LOGIN_IN sh WORKSPACE ID NONCE DIR PROGRAM ARGS…`: as
 * {@linkcode WORKSPACE_EXEC_IN} for a terminal session (`exec -t -w DIR`):
 * no byte comes before the program's own output, and a refusal is one line
 * on stderr (as {@linkcode WORKSPACE_LOGIN}).
 */
export const WORKSPACE_LOGIN_IN = `ws=$1 id=$2 nonce=$3 dir=$4
shift 4
${FUNCTIONS}
refuse() { printf 'sandboxer: workspace %s\\n' "$2" >&2; exit "$1"; }
${ENTER_DIR}
exec "$@"
`;

/**
 * `sh -c MUX_EXEC sh WRAPPER…`: what a command run over a shared OpenSSH
 * connection (mux_exec.ts) is wrapped in. Its first stdout line is this
 * shell's pid, so an abort can end the session's process group
 * ({@linkcode MUX_KILL}: OpenSSH's mux client cannot send a signal), and it
 * turns a death by signal N into exit code 128+N, which a mux client cannot
 * tell from a lost connection otherwise. Its own stderr is /dev/null (the
 * command gets the real one in a child `sh` that `exec`s it), so the shell's
 * "Terminated" never mixes with the command's. The wrapper then writes its
 * own first byte ({@linkcode EXEC_STARTED}).
 */
export const MUX_EXEC = `echo "$$"
exec 3>&2 2>/dev/null
sh -c 'exec "$@" 2>&3 3>&-' sh "$@"
exit "$?"
`;

/**
 * `sh -c MUX_KILL sh PID`: KILL the process group of PID (read from /proc),
 * or PID alone when that cannot be read: what the `signal` request of a
 * direct connection does.
 */
export const MUX_KILL = `pid=$1 s=
{ read -r s < "/proc/$pid/stat"; } 2>/dev/null
s=\${s##*") "}
set -- $s
case \${3-} in
  ""|*[!0-9]*|0|1) kill -s KILL "$pid" ;;
  *) kill -s KILL -- "-$3" ;;
esac
`;

/**
 * `sh -c WORKSPACE_RSYNC sh WORKSPACE ID NONCE rsync --server …`: rsync's
 * remote command (`--rsync-path`, for the relay and for rsync's own ssh):
 * check the workspace, lock it, and run rsync in it with the paths relative
 * to it (`.`). A refusal is one {@linkcode REFUSAL_PREFIX} line on stderr.
 */
export const WORKSPACE_RSYNC = `ws=$1 id=$2 nonce=$3
shift 3
${FUNCTIONS}
enter; rc=$?
if [ "$rc" -ne 0 ]; then printf '${REFUSAL_PREFIX}%s %s\\n' "$rc" "$why" >&2; exit "$rc"; fi
lock
${PROCESS_MARK}=$id:$nonce; export ${PROCESS_MARK}
exec "$@"
`;

/** The line WORKSPACE_TAR prints on stdout once the workspace is checked and tar starts. */
export const TAR_STARTED = "sandboxer-tar-started";

/**
 * `sh -c WORKSPACE_TAR sh WORKSPACE ID NONCE`, with a tar stream on stdin:
 * the first sync into a workspace that holds nothing but its marker. Check
 * and lock the workspace as {@linkcode WORKSPACE_RSYNC} does; then, before
 * reading any of stdin, exit {@linkcode SCRIPT_EXIT}.notEmpty when anything
 * but the marker is there, and {@linkcode SCRIPT_EXIT}.noTar when the host's
 * `tar` is not GNU tar (the caller falls back to rsync). Else print
 * {@linkcode TAR_STARTED} and extract in the workspace with GNU tar's own
 * guards: leading `/` stripped from names and link targets, members with `..`
 * skipped, a symlink whose target is absolute or holds `..` made only at the
 * end (a placeholder file until then, so no later member goes through it);
 * never chowned; modes as in the stream, as `rsync -a` keeps them; directory
 * modes and mtimes set at the end.
 */
export const WORKSPACE_TAR = `ws=$1 id=$2 nonce=$3
${FUNCTIONS}
enter; rc=$?
if [ "$rc" -ne 0 ]; then printf '${REFUSAL_PREFIX}%s %s\\n' "$rc" "$why" >&2; exit "$rc"; fi
lock
for f in * .[!.]* ..?*; do
  if [ -e "$f" ] || [ -L "$f" ]; then [ "$f" = "$m" ] || exit ${SCRIPT_EXIT.notEmpty}; fi
done
case $(tar --version 2>/dev/null) in "tar (GNU tar) "*) ;; *) exit ${SCRIPT_EXIT.noTar} ;; esac
${PROCESS_MARK}=$id:$nonce; export ${PROCESS_MARK}
echo ${TAR_STARTED}
exec tar --extract --file=- --no-same-owner --same-permissions --delay-directory-restore
`;

/**
 * `sh -c WORKSPACE_RSYNC_FROM sh WORKSPACE ID NONCE DIR NAME rsync --server --sender …`: as
 * {@linkcode WORKSPACE_RSYNC} for copying `DIR/NAME` out (fetch, artifacts), with rsync started
 * in DIR as the host resolves it (symlinks followed) and only if that is inside the workspace;
 * NAME itself must not be a symlink. rsync then reads `./NAME` from that directory, which it
 * holds open: a path swapped for a symlink after the check cannot lead it out.
 */
export const WORKSPACE_RSYNC_FROM = `ws=$1 id=$2 nonce=$3 dir=$4 base=$5
shift 5
${FUNCTIONS}
refuse() { printf '${REFUSAL_PREFIX}%s %s\\n' "$1" "$2" >&2; exit "$1"; }
enter; rc=$?
[ "$rc" -eq 0 ] || refuse "$rc" "$why"
lock
top=$PWD
cd -P -- "$dir" 2>/dev/null || refuse ${SCRIPT_EXIT.badPath} "$dir is not a directory in the workspace"
case $PWD/ in
  "$top"/*) ;;
  *) refuse ${SCRIPT_EXIT.badPath} "$dir resolves to $PWD, outside the workspace" ;;
esac
[ -L "$base" ] && refuse ${SCRIPT_EXIT.badPath} "$dir/$base is a symlink (to $(readlink -- "$base" 2>/dev/null)); fetch the path it points to"
[ -e "$base" ] || refuse ${SCRIPT_EXIT.badPath} "$dir/$base does not exist"
${PROCESS_MARK}=$id:$nonce; export ${PROCESS_MARK}
exec "$@"
`;

/**
 * `sh -c WORKSPACE_HOLD sh WORKSPACE ID NONCE`: for the SFTP sync, which
 * cannot run a shell per file. Check and lock the workspace, print
 * `ready <pid>`, and hold the lock — and the checked directory as working
 * directory, which the SFTP writes reach as `/proc/<pid>/cwd/…` on Linux —
 * until stdin closes. A refusal is one {@linkcode REFUSAL_PREFIX} line on
 * stderr.
 */
export const WORKSPACE_HOLD = `ws=$1 id=$2 nonce=$3
${FUNCTIONS}
enter; rc=$?
if [ "$rc" -ne 0 ]; then printf '${REFUSAL_PREFIX}%s %s\\n' "$rc" "$why" >&2; exit "$rc"; fi
lock
${PROCESS_MARK}=$id:$nonce; export ${PROCESS_MARK}
printf 'ready %s\\n' "$$"
exec cat >/dev/null
`;

/**
 * `sh -c REMOVE_WORKSPACE sh WORKSPACE ID NONCE`: remove the workspace if it
 * is ours (see the module doc). Exit 0 when it is gone (or was never there),
 * {@linkcode SCRIPT_EXIT}.otherNonce when the path holds another sandbox of
 * the same name (left alone; nothing of ours is there), and a refusal code
 * for anything else that is not provably ours (symlink, another id, no
 * marker): sandboxer never deletes those. An empty directory without a
 * marker is removed with `rmdir` (nothing to lose). The deletion (`find
 * -xdev -depth -delete`) never follows symlinks and never enters another
 * file system mounted inside; read-only directories inside are made
 * owner-writable first.
 */
export const REMOVE_WORKSPACE = `ws=$1 id=$2 nonce=$3
${FUNCTIONS}
read_marker() { head=$(head -c 200 -- "$m" 2>/dev/null); }
tomb=.sbx-$id.tomb-\${nonce:-legacy}
mark=${PROCESS_MARK}=$id:$nonce
if [ "\${ws##*/}" != "$name" ] || [ -z "$root" ]; then echo "$ws is not <root>/$name" >&2; exit ${SCRIPT_EXIT.notOurs}; fi
cd -P -- "$root" 2>/dev/null || exit 0
rp=$PWD
marked() {
  if printf 'a\\0' | grep -qz a 2>/dev/null; then
    grep -lzxF -e "$mark" /proc/[0-9]*/environ 2>/dev/null
  else
    for f in /proc/[0-9]*/environ; do
      tr '\\0' '\\n' < "$f" 2>/dev/null | grep -qxF -e "$mark" && echo "$f"
    done
  fi
  if [ -d "$rp/$tomb" ] && [ ! -L "$rp/$tomb" ]; then
    for d in /proc/[0-9]*; do [ "$d/cwd" -ef "$rp/$tomb" ] && echo "$d/cwd"; done
  fi
}
victims() {
  marked | while IFS=/ read -r _ _ pid _; do [ "$pid" != "$$" ] && echo "$pid"; done
}
end_processes() {
  [ -d /proc/self ] || { echo "sandboxer: no /proc on this host, so the sandbox's processes were not ended" >&2; return 0; }
  left=$(victims)
  [ -n "$left" ] || return 0
  kill -s TERM $left 2>/dev/null
  n=0
  while [ "$n" -lt 20 ]; do
    sleep 0.1 2>/dev/null || sleep 1
    left=$(victims)
    [ -n "$left" ] || return 0
    kill -s TERM $left 2>/dev/null
    n=$((n + 1))
  done
  n=0
  while [ -n "$left" ] && [ "$n" -lt 20 ]; do
    kill -s KILL $left 2>/dev/null
    sleep 0.1 2>/dev/null || sleep 1
    left=$(victims)
    n=$((n + 1))
  done
  [ -z "$left" ] || echo "sandboxer: processes $left of the sandbox did not end" >&2
}
finish() {
  cd -P -- "$rp" || exit 1
  if [ -L "$tomb" ]; then echo "$rp/$tomb is a symlink, not a tombstone sandboxer made" >&2; exit ${SCRIPT_EXIT.notOurs}; fi
  [ -e "$tomb" ] || return 0
  if [ ! -d "$tomb" ] || ! cd -P -- "$tomb" 2>/dev/null || [ "$PWD" != "$rp/$tomb" ]; then
    echo "$rp/$tomb is not a tombstone sandboxer made" >&2; exit ${SCRIPT_EXIT.notOurs}
  fi
  if ! ours; then
    if [ -z "$(ls -A)" ]; then cd -P -- "$rp" && rmdir -- "$tomb"; return 0; fi
    echo "the tombstone $rp/$tomb: $why" >&2; exit ${SCRIPT_EXIT.notOurs}
  fi
  cd -P -- "$rp"
  end_processes
  cd -P -- "$tomb" && [ "$PWD" = "$rp/$tomb" ] || exit ${SCRIPT_EXIT.removeFailed}
  # -xdev: a file system mounted inside (a FUSE mount the build made) is never descended into;
  # its mount point stays, and so does the tombstone, for a human to unmount.
  for pass in 1 2 3; do
    find . -xdev -mindepth 1 -type d ! -perm -u+rwx -exec chmod u+rwx {} + 2>/dev/null
    find . -xdev -depth -mindepth 1 ! -path "./$m" -delete 2>/dev/null
    [ "$(ls -A)" = "$m" ] && break
  done
  if [ "$(ls -A)" != "$m" ]; then
    echo "could not empty $rp/$tomb (a mount point, or files appearing): $(ls -A | head -n 3 | tr '\\n' ' ')" >&2
    exit ${SCRIPT_EXIT.removeFailed}
  fi
  rm -f -- "$m" && cd -P -- "$rp" && rmdir -- "$tomb" || exit ${SCRIPT_EXIT.removeFailed}
}
finish
refused=0
if [ -L "$name" ] || [ -e "$name" ]; then
  enter; rc=$?
  cd -P -- "$rp"
  case $rc in
    0) mv -- "$name" "$tomb" || exit ${SCRIPT_EXIT.removeFailed} ;;
    ${SCRIPT_EXIT.otherNonce}) echo "left $ws alone: $why" >&2; refused=$rc ;;
    ${SCRIPT_EXIT.noMarker})
      if [ -z "$(ls -A -- "$name")" ]; then rmdir -- "$name"
      else echo "$ws: $why" >&2; refused=$rc; fi ;;
    *) echo "$why" >&2; refused=$rc ;;
  esac
fi
end_processes
finish
exit "$refused"
`;

/** `sh -c HAS_PROGRAM sh NAME`: exit 0 when NAME is on the remote PATH. */
export const HAS_PROGRAM = `command -v "$1" >/dev/null 2>&1`;

/**
 * `sh -c PATH_EXISTS sh WORKSPACE PATH`: exit 2 when the workspace is not there, 1 when PATH
 * (relative to it) is not; reads only, so `fetch` can name a missing path in one line.
 */
export const PATH_EXISTS = 'cd -- "$1" 2>/dev/null || exit 2; [ -e "$2" ] || [ -L "$2" ] || exit 1';
