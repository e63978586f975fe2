/**
 * The remote scripts of snapshots (snapshots.ts; docs/snapshots.md).
 * Constants, like those of remote_scripts.ts: every value reaches them as a
 * positional argument.
 *
 * A snapshot is the directory `<root>/.sbx-snapshots/<user>/<name>/`
 * (`<name>`: `[a-z0-9][a-z0-9._-]{0,62}`), a real copy of a workspace whose
 * marker `.sandboxer-snapshot.json` begins
 * `{"snapshot":"<name>","owner":"<owner>","nonce":"<nonce>","created":<s>,"expires":<s>,"bytes":<n>,"source":"<id>"}`.
 * `<owner>` is the random id of the sandboxer state directory that made it
 * (the seeds' owner id); a snapshot is used, replaced or removed only when its
 * marker names it and this owner. The directories are entered, checked,
 * locked and deleted by the seeds' store functions
 * ({@linkcode STORE_FUNCTIONS}): a symlink at any level is refused, never
 * followed.
 *
 * Saving copies the checked workspace (`cp -a --reflink=auto`, else `cp -a`;
 * never hard links: the sandbox goes on changing its files) into
 * `.tmp-<name>-<nonce>`, leaves the workspace marker out, writes the
 * snapshot's marker last and swaps it in under an exclusive `flock`.
 * Restoring copies it into a new, checked workspace under a shared lock.
 *
 * @module
 */

import { FUNCTIONS, MARKER_FILE } from "./remote_scripts.ts";
import { STORE_FUNCTIONS } from "./seed_scripts.ts";

/** The marker file of a snapshot. */
export const SNAPSHOT_MARKER = ".sandboxer-snapshot.json";

/** Exit codes of the snapshot scripts (the workspace's own refusals keep remote_scripts' codes). */
export const SNAPSHOT_EXIT = {
  /** There is no snapshot of that name. */
  none: 70,
  /** Something at the snapshot's path is not a snapshot of ours (or a symlink); left alone. */
  refused: 71,
  /** A snapshot of that name exists and replacing it was not asked for. */
  exists: 72,
  /** The snapshot has expired (gc reaps it). */
  expired: 73,
  /** The copy failed (a full disk). */
  failed: 74,
} as const;

/**
 * The snapshot store's `valid NAME` (see {@linkcode STORE_FUNCTIONS}): also
 * sets `sid`, the sandbox the snapshot was taken of, and `now`.
 */
const SNAPSHOT_FUNCTIONS = `
top=.sbx-snapshots what=snapshot tf=created sm=${SNAPSHOT_MARKER}
${STORE_FUNCTIONS}
valid() {
  case $1 in [a-z0-9]*) ;; *) why="$1 is not a snapshot name"; return 1 ;; esac
  case $1 in *[!a-z0-9._-]*) why="$1 is not a snapshot name"; return 1 ;; esac
  [ \${#1} -le 63 ] || { why="$1 is not a snapshot name"; return 1; }
  marker "$1" || return 1
  field source; sid=$r
  case $sid in ''|*[!a-z0-9-]*) why="the marker of $sd/$1 names no source sandbox"; return 1 ;; esac
}
ours_snapshot() {
  valid "$1" || return 1
  [ "$so" = "$owner" ] || { why="$sd/$1 was made by another sandboxer (its marker names another owner)"; return 1; }
}
`;

/**
 * `sh -c SNAPSHOT_SAVE sh WORKSPACE ID NONCE USER NAME OWNER SNAP_NONCE TTL REPLACE`:
 * copy the checked workspace (its marker left out) into the snapshot NAME of
 * USER, expiring TTL seconds from now. An existing NAME is refused
 * ({@linkcode SNAPSHOT_EXIT}.exists) unless REPLACE is 1, and replaced only
 * when its marker names this owner. Prints `CREATED EXPIRES BYTES`.
 */
export const SNAPSHOT_SAVE =
  `ws=$1 id=$2 nonce=$3 user=$4 snap=$5 owner=$6 snonce=$7 ttl=$8 replace=$9
${FUNCTIONS}
${SNAPSHOT_FUNCTIONS}
enter; rc=$?
[ "$rc" -eq 0 ] || { echo "$why" >&2; exit "$rc"; }
src=$PWD
# The workspace's sync lock: a snapshot never holds half of a sync.
lock
mk=1 storedir || { echo "$why" >&2; exit ${SNAPSHOT_EXIT.refused}; }
tmp=.tmp-$snap-$snonce
# Whether NAME may be taken: sets old (the nonce of the snapshot to replace), or refuses.
check() {
  old=
  present "$snap" || return 0
  ours_snapshot "$snap" || { echo "left $sd/$snap alone: $why" >&2; return ${SNAPSHOT_EXIT.refused}; }
  [ "$replace" = 1 ] || { echo "$sd/$snap already exists" >&2; return ${SNAPSHOT_EXIT.exists}; }
  old=$sn
}
check || exit $?
mkdir -m 700 -- "$sd/$tmp" || exit ${SNAPSHOT_EXIT.failed}
# Held while the copy runs: prune leaves a locked .tmp- alone, however long the copy takes.
exec 7<"$sd/$tmp"
command -v flock >/dev/null 2>&1 && flock -n 7
# A real copy (copy-on-write where the file system has it): never links, the sandbox goes on.
if ! cp -a --reflink=auto -- "$src/." "$sd/$tmp/" 2>/dev/null; then
  find "$sd/$tmp" -xdev -depth -mindepth 1 -delete 2>/dev/null
  cp -a -- "$src/." "$sd/$tmp/" || { wipe "$tmp"; exit ${SNAPSHOT_EXIT.failed}; }
fi
rm -f -- "$sd/$tmp/${MARKER_FILE}" "$sd/$tmp/$sm"
kb=$(du -sk -- "$sd/$tmp" | cut -f1)
slock
check || { rc=$?; wipe "$tmp"; exit "$rc"; }
now=$(date +%s)
printf '{"snapshot":"%s","owner":"%s","nonce":"%s","created":%s,"expires":%s,"bytes":%s,"source":"%s"}\\n' \\
  "$snap" "$owner" "$snonce" "$now" "$((now + ttl))" "$((kb * 1024))" "$id" > "$sd/$tmp/$sm" || { wipe "$tmp"; exit ${SNAPSHOT_EXIT.failed}; }
if [ -n "$old" ]; then mv -- "$sd/$snap" "$sd/.old-$snap-$old" || { wipe "$tmp"; exit ${SNAPSHOT_EXIT.failed}; }; fi
mv -- "$sd/$tmp" "$sd/$snap" || exit ${SNAPSHOT_EXIT.failed}
echo "$now $((now + ttl)) $((kb * 1024))"
# The replaced snapshot is deleted after the lock is released, in the background.
exec 7<&- 8<&- 9<&-
[ -z "$old" ] || { wipe ".old-$snap-$old" </dev/null >/dev/null 2>&1 & }
`;

/**
 * `sh -c SNAPSHOT_INTO sh WORKSPACE ID NONCE USER NAME OWNER`: copy the
 * snapshot NAME of USER into the fresh, checked workspace (its own marker
 * kept); refused ({@linkcode SNAPSHOT_EXIT}) when it is missing, expired,
 * not ours, or a symlink at any level, with the reason on stderr.
 */
export const SNAPSHOT_INTO = `ws=$1 id=$2 nonce=$3 user=$4 snap=$5 owner=$6
${FUNCTIONS}
${SNAPSHOT_FUNCTIONS}
enter; rc=$?
[ "$rc" -eq 0 ] || { echo "$why" >&2; exit "$rc"; }
dest=$PWD
storedir; rc=$?
[ "$rc" -eq 3 ] && { echo "there is no snapshot $snap of $user under $rp" >&2; exit ${SNAPSHOT_EXIT.none}; }
[ "$rc" -eq 0 ] || { echo "$why" >&2; exit ${SNAPSHOT_EXIT.refused}; }
slock -s
present "$snap" || { echo "there is no snapshot $snap of $user under $rp" >&2; exit ${SNAPSHOT_EXIT.none}; }
ours_snapshot "$snap" || { echo "refused $sd/$snap: $why" >&2; exit ${SNAPSHOT_EXIT.refused}; }
[ "$ex" -gt "$(date +%s)" ] || { echo "$sd/$snap has expired (gc reaps it)" >&2; exit ${SNAPSHOT_EXIT.expired}; }
copyout "$snap" "$dest"; rc=$?
[ "$rc" -eq 0 ] || { echo "$why" >&2; [ "$rc" -eq 1 ] && exit ${SNAPSHOT_EXIT.refused}; exit ${SNAPSHOT_EXIT.failed}; }
`;

/**
 * `sh -c SNAPSHOT_LIST sh ROOT USER OWNER`: one line per entry of USER's
 * snapshot directory, tab-separated: `snapshot NAME CREATED EXPIRES BYTES
 * SOURCE` for a snapshot of this owner, `ignored NAME WHY` for anything
 * else (never touched). Nothing when USER has no snapshot directory.
 */
export const SNAPSHOT_LIST = `rp=$1 user=$2 owner=$3
${SNAPSHOT_FUNCTIONS}
storedir; rc=$?
[ "$rc" -eq 3 ] && exit 0
[ "$rc" -eq 0 ] || { echo "$why" >&2; exit ${SNAPSHOT_EXIT.refused}; }
slock -s
for e in "$sd"/*; do
  e=\${e##*/}
  present "$e" || continue
  if ours_snapshot "$e"; then
    printf 'snapshot\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$e" "$up" "$ex" "$by" "$sid"
  else
    printf 'ignored\\t%s\\t%s\\n' "$e" "$why" | tr -d '\\n' ; echo
  fi
done
`;

/**
 * `sh -c SNAPSHOT_REMOVE sh ROOT USER NAME OWNER`: delete the snapshot NAME
 * of USER, only when its marker names it and this owner (renamed to
 * `.old-NAME-NONCE`, then deleted without following symlinks). Prints
 * `CREATED EXPIRES BYTES SOURCE` of what was removed.
 */
export const SNAPSHOT_REMOVE = `rp=$1 user=$2 snap=$3 owner=$4
${SNAPSHOT_FUNCTIONS}
storedir; rc=$?
[ "$rc" -eq 3 ] && { echo "there is no snapshot $snap of $user under $rp" >&2; exit ${SNAPSHOT_EXIT.none}; }
[ "$rc" -eq 0 ] || { echo "$why" >&2; exit ${SNAPSHOT_EXIT.refused}; }
slock
present "$snap" || { echo "there is no snapshot $snap of $user under $rp" >&2; exit ${SNAPSHOT_EXIT.none}; }
ours_snapshot "$snap" || { echo "left $sd/$snap alone: $why" >&2; exit ${SNAPSHOT_EXIT.refused}; }
drop "$snap" "$sn" || { echo "$sd/$snap could not be removed completely" >&2; exit ${SNAPSHOT_EXIT.failed}; }
echo "$up $ex $by $sid"
`;

/**
 * `sh -c SNAPSHOT_PRUNE sh ROOT USER`: `gc`'s pass over USER's snapshots
 * under ROOT: reaps the expired ones (any owner's, like seeds: the marker
 * says it is dead) and the leftovers of a crash. Prints `reaped NAME
 * (expired)` lines, and `none` when USER has no snapshot directory.
 */
export const SNAPSHOT_PRUNE = `rp=$1 user=$2
${SNAPSHOT_FUNCTIONS}
storedir; rc=$?
[ "$rc" -eq 3 ] && { echo none; exit 0; }
[ "$rc" -eq 0 ] || { echo "$why" >&2; exit ${SNAPSHOT_EXIT.refused}; }
slock
prune 0 ""
`;
