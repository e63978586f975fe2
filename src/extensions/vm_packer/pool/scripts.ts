/**
 * The remote scripts of a pool's leases. Each is a constant; every value
 * reaches it as a positional argument (argv, quoted by the one quoter).
 *
 * The lease protocol, per pool entry, under `<root>/.sbx-pool/<entry key>/`:
 *
 * - `slot-<n>/` is slot n's lease, claimed with `mkdir` (which fails when
 *   the slot is taken). It holds exactly two files: `lease` (one line:
 *   `<id> <nonce> <expires_at or ->`) and `heartbeat` (the host's epoch
 *   seconds, rewritten while the create runs, then `ready`).
 * - A lease is live while its heartbeat is fresh (younger than the stale
 *   limit), or while the workspace `<root>/sbx-<id>` exists with a marker
 *   holding the lease's id and nonce (or its removal's tombstone does).
 *   Anything else — a create that died, a sandbox removed on the host — is
 *   reclaimable. Reclaiming deletes only `lease` and `heartbeat` and then
 *   `rmdir`s the slot: a slot holding anything else is never emptied.
 * - `waiters/w-<ms>-<id>-<nonce8>` is one `create --wait` in the queue; its
 *   name orders the queue (first come, first served), its content is a
 *   heartbeat. A create takes a free slot only when fewer live waiters are
 *   ahead of it than slots are free (a create without --wait is behind all).
 * - Every change happens under `flock` on `.lock`, so two sandboxers (on
 *   any machines) never judge or take the same slot at once.
 *
 * @module
 */

/** Exit codes of the pool scripts. */
export const POOL_EXIT = {
  /** Every slot is taken (acquire): the status line says how many and how many wait. */
  full: 3,
  /** flock(1) is missing on the host. */
  noFlock: 80,
  /** The pool directory or a lease file could not be written. */
  writeFailed: 81,
  /** The pool lock was held for longer than the script waits. */
  lockTimeout: 82,
  /** The workspace root does not exist. */
  noRoot: 90,
  /** The slot holds another sandbox's lease (release, heartbeat). */
  notOurs: 96,
} as const;

/** Seconds a script waits for the pool lock. */
export const LOCK_WAIT_SECONDS = 60;

/** Shared start: arguments `pool root stale` set; checks, lock, clock and the liveness test. */
const PRELUDE = `
command -v flock >/dev/null 2>&1 || {
  echo "has no flock(1), which the pool's leases need; install util-linux (or the flock package) on it" >&2
  exit ${POOL_EXIT.noFlock}
}
[ -d "$root" ] || { echo "has no workspace root $root; create it (mkdir -p $root) or correct the entry's workspace_root" >&2; exit ${POOL_EXIT.noRoot}; }
for p in "\${pool%/*}" "$pool" "$pool/waiters" "$pool/.lock"; do
  [ ! -L "$p" ] || { echo "has a symlink at $p, where the pool's own directory belongs; remove it" >&2; exit ${POOL_EXIT.writeFailed}; }
done
mkdir -p -m 700 -- "$pool/waiters" 2>/dev/null || { echo "cannot make $pool" >&2; exit ${POOL_EXIT.writeFailed}; }
exec 9>>"$pool/.lock" || exit ${POOL_EXIT.writeFailed}
flock -w ${LOCK_WAIT_SECONDS} 9 || { echo "has its pool lock $pool/.lock held for over ${LOCK_WAIT_SECONDS}s" >&2; exit ${POOL_EXIT.lockTimeout}; }
now=$(date +%s)
fresh() { case $1 in ''|*[!0-9]*) return 1 ;; esac; [ $((now - $1)) -le "$stale" ]; }
lease_of() { lid= lnonce= lexp=; read -r lid lnonce lexp < "$1/lease" 2>/dev/null; hb=; read -r hb < "$1/heartbeat" 2>/dev/null; }
alive() {
  lease_of "$1"
  fresh "$hb" && return 0
  [ -n "$lid" ] && [ -n "$lnonce" ] || return 1
  w=$root/sbx-$lid
  if [ -d "$w" ] && [ ! -L "$w" ]; then
    head=$(head -c 200 -- "$w/.sandboxer.json" 2>/dev/null)
    case $head in "{\\"id\\":\\"$lid\\",\\"nonce\\":\\"$lnonce\\","*) return 0 ;; esac
  fi
  [ -d "$root/.sbx-$lid.tomb-$lnonce" ] && return 0
  return 1
}
drop() {
  [ -z "$(ls -A -- "$1" | grep -v -x -e lease -e heartbeat -e heartbeat.tmp)" ] || return 1
  rm -f -- "$1/lease" "$1/heartbeat" "$1/heartbeat.tmp" && rmdir -- "$1" 2>/dev/null
}
is_slot() { case \${1##*/} in slot-|slot-*[!0-9]*) return 1 ;; esac; [ -d "$1" ] && [ ! -L "$1" ]; }
`;

/**
 * `sh -c POOL_ACQUIRE sh POOL ROOT STALE CAPACITY ID NONCE EXPIRES ME`:
 * reclaim dead leases, then take the lowest free slot if fewer live
 * waiters are ahead than slots are free. ME is this create's waiter name
 * (`<ms>-<id>-<nonce8>`), or empty without --wait (behind every waiter).
 * Prints `slot N USED CAPACITY` (exit 0) or `full USED CAPACITY AHEAD`
 * ({@linkcode POOL_EXIT}.full; with ME, its waiter marker is written or
 * refreshed). Reclaimed leases are reported as `reclaimed slot-N ID` lines
 * on stderr.
 */
export const POOL_ACQUIRE = `pool=$1 root=$2 stale=$3 cap=$4 id=$5 nonce=$6 expires=$7 me=$8
${PRELUDE}
used=0
for s in "$pool"/slot-*; do
  is_slot "$s" || continue
  if alive "$s"; then used=$((used + 1))
  elif drop "$s"; then echo "reclaimed \${s##*/} $lid" >&2
  else used=$((used + 1)); fi
done
ahead=0 mt=\${me%%-*}
for w in "$pool"/waiters/w-*; do
  [ -f "$w" ] || continue
  wb=; read -r wb < "$w" 2>/dev/null
  if ! fresh "$wb"; then rm -f -- "$w"; continue; fi
  [ "\${w##*/}" = "w-$me" ] && continue
  [ -n "$me" ] || { ahead=$((ahead + 1)); continue; }
  t=\${w##*/w-}; t=\${t%%-*}
  case $t in ''|*[!0-9]*) continue ;; esac
  if [ "$t" -lt "$mt" ]; then ahead=$((ahead + 1))
  elif [ "$t" -eq "$mt" ] && expr "x\${w##*/}" \\< "xw-$me" >/dev/null; then ahead=$((ahead + 1)); fi
done
if [ $((cap - used)) -gt "$ahead" ]; then
  n=0
  while [ "$n" -lt "$cap" ]; do
    s=$pool/slot-$n
    if mkdir -m 700 -- "$s" 2>/dev/null; then
      if printf '%s\\n' "$now" > "$s/heartbeat" && printf '%s %s %s\\n' "$id" "$nonce" "$expires" > "$s/lease"; then
        [ -z "$me" ] || rm -f -- "$pool/waiters/w-$me"
        echo "slot $n $used $cap"
        exit 0
      fi
      drop "$s"; echo "cannot write the lease $s" >&2; exit ${POOL_EXIT.writeFailed}
    fi
    n=$((n + 1))
  done
fi
[ -z "$me" ] || printf '%s\\n' "$now" > "$pool/waiters/w-$me"
echo "full $used $cap $ahead"
exit ${POOL_EXIT.full}
`;

/**
 * `sh -c POOL_HEARTBEAT sh SLOT ID NONCE READY`: rewrite the lease's
 * heartbeat (the host's clock; `ready` when READY is 1, once the workspace
 * exists). Exit {@linkcode POOL_EXIT}.notOurs when the slot no longer
 * holds this lease.
 */
export const POOL_HEARTBEAT = `s=$1 id=$2 nonce=$3 ready=$4
lid= lnonce=; read -r lid lnonce _ < "$s/lease" 2>/dev/null
[ "$lid" = "$id" ] && [ "$lnonce" = "$nonce" ] || exit ${POOL_EXIT.notOurs}
if [ "$ready" = 1 ]; then v=ready; else v=$(date +%s); fi
printf '%s\\n' "$v" > "$s/heartbeat.tmp" && mv -f -- "$s/heartbeat.tmp" "$s/heartbeat"
`;

/**
 * `sh -c POOL_RELEASE sh POOL ROOT SLOT ID NONCE`: remove slot SLOT's
 * lease if it is this sandbox's (id and nonce). Exit 0 when it is gone (or
 * was never there), {@linkcode POOL_EXIT}.notOurs when the slot holds
 * another lease (left alone).
 */
export const POOL_RELEASE = `pool=$1 root=$2 slot=$3 id=$4 nonce=$5 stale=0
[ -d "$pool" ] || exit 0
${PRELUDE}
s=$pool/slot-$slot
is_slot "$s" || exit 0
lease_of "$s"
if [ "$lid" != "$id" ] || [ "$lnonce" != "$nonce" ]; then
  echo "slot-$slot holds another lease ($lid), left alone" >&2; exit ${POOL_EXIT.notOurs}
fi
drop "$s" || { echo "slot-$slot holds more than a lease, left alone" >&2; exit ${POOL_EXIT.writeFailed}; }
`;

/** `sh -c POOL_UNWAIT sh POOL ME`: leave the queue (remove this create's waiter marker). */
export const POOL_UNWAIT = 'rm -f -- "$1/waiters/w-$2"';

/**
 * `sh -c POOL_REAP sh POOL ROOT STALE`: for `gc --target`: reclaim every
 * dead lease (create died, sandbox expired and removed, or vanished) and
 * stale waiter. Prints `reaped slot-N ID` and `live slot-N ID` lines.
 */
export const POOL_REAP = `pool=$1 root=$2 stale=$3
[ -d "$pool" ] || exit 0
${PRELUDE}
for s in "$pool"/slot-*; do
  is_slot "$s" || continue
  if alive "$s"; then echo "live \${s##*/} $lid"
  elif drop "$s"; then echo "reaped \${s##*/} $lid"
  else echo "kept \${s##*/} $lid"; fi
done
for w in "$pool"/waiters/w-*; do
  [ -f "$w" ] || continue
  wb=; read -r wb < "$w" 2>/dev/null
  fresh "$wb" || rm -f -- "$w"
done
`;
