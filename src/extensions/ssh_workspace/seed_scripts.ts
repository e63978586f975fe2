/**
 * The remote scripts of warm workspaces (seeds.ts). Constants, like those of
 * remote_scripts.ts: every value reaches them as a positional argument.
 *
 * A seed is the directory `<root>/.sbx-seeds/<user>/<hash>/` (`<hash>`: 32
 * hex digits naming the repository, see seeds.ts), a copy of a synced tree
 * whose marker `.sandboxer-seed.json` begins
 * `{"seed":"<hash>","owner":"<owner>","nonce":"<nonce>","updated":<s>,"expires":<s>,"bytes":<n>}`.
 * `<owner>` is the random id of the sandboxer state directory that made it;
 * a seed is used only when its marker names this `<hash>` and this owner and
 * has not expired. `.sbx-seeds` and `<user>` are real directories owned by
 * the remote user (mode 0700), entered with `cd -P` and checked to resolve to
 * themselves, so a symlink planted at any level is refused, never followed.
 *
 * Updates link the workspace's files into `.tmp-<hash>-<nonce>` (`cp -al`,
 * else `cp -a`), write the marker last, and swap it in with two renames under
 * an exclusive `flock` of `<user>/`; readers copy a seed into a new workspace
 * (copy-on-write with GNU `cp --reflink=auto`, else a plain `cp -a`: never
 * links) under a shared lock, so no create ever copies half a seed. For a
 * repository seen again, an update also makes a spare copy of the new seed
 * in the background (`.spare-<hash>-<nonce>`, kept only if the seed was not
 * replaced meanwhile), which the next create takes whole: one rename out of
 * the store (one taker), then its top-level entries moved into the
 * workspace. Removal
 * renames a seed to `.old-<hash>-<nonce>` and deletes it with `find -xdev
 * -depth -delete`, which follows no symlink.
 *
 * @module
 */

import { FUNCTIONS, MARKER_FILE } from "./remote_scripts.ts";

/** The marker file of a seed. */
export const SEED_MARKER = ".sandboxer-seed.json";

/** Exit codes of the seed scripts (the workspace's own refusals keep remote_scripts' codes). */
export const SEED_EXIT = {
  /** There is no seed for this repository (or it expired): nothing was copied. */
  none: 80,
  /** Something at the seed's path is not a seed this sandboxer may use; left alone. */
  refused: 81,
  /** The tree is larger than the budget: no seed kept. */
  tooBig: 82,
  /** The copy failed. */
  failed: 83,
} as const;

/**
 * Shell functions shared by the stores under a workspace root that outlive
 * sandboxes (seeds here, snapshots in snapshot_scripts.ts). They expect `rp`
 * (the physical workspace root, set by `enter` or given), `user`, `top` (the
 * store's directory under the root: `.sbx-seeds`), `what` (`seed`) and `sm`
 * (the marker's file name and its first key), `tf` (the marker's time field:
 * `updated`) and a `valid NAME` of the store that checks the name and calls
 * `marker NAME`, which reads the marker into `sn` (nonce), `up` (the time
 * field), `ex` (expiry), `by` (bytes) and `so` (owner), setting `why` when it
 * refuses.
 *
 * `storedir` enters (with `mk=1`, makes) `$rp/$top/$user` and sets `sd`,
 * refusing a symlink or a foreign directory at either level; `slock` takes
 * its lock (`-s` shared); `wipe NAME` deletes a directory of `$sd` without
 * following symlinks; `drop NAME NONCE` renames it to `.old-NAME-NONCE`
 * first; `copyout NAME DEST` copies an entry (never links) into the checked
 * workspace DEST, refusing one that holds a workspace marker; `prune
 * BUDGET_KB KEEP [LATER]` wipes what crashes left (old `.tmp-` copies,
 * `.old-` entries but LATER, which its caller wipes itself once the lock is
 * released), then reaps expired entries and, over the budget, the least
 * recently updated ones but KEEP, printing `reaped <name> (<why>)` lines.
 */
export const STORE_FUNCTIONS: string = `
storedir() {
  cd -P -- "$rp" 2>/dev/null || { why="the workspace root $rp does not exist"; return 1; }
  for part in "$top" "$user"; do
    here=$PWD
    if [ -L "$part" ]; then why="$here/$part is a symlink, not sandboxer's $what directory"; return 2; fi
    if [ ! -e "$part" ]; then
      [ "$mk" = 1 ] || { why=absent; return 3; }
      mkdir -m 700 -- "$part" 2>/dev/null
    fi
    if [ -L "$part" ] || [ ! -d "$part" ] || [ ! -O "$part" ]; then
      why="$here/$part is not a $what directory of this user"; return 2
    fi
    cd -P -- "$part" 2>/dev/null || { why="$here/$part cannot be entered"; return 2; }
    [ "$PWD" = "$here/$part" ] || { why="$here/$part resolves to $PWD"; return 2; }
  done
  sd=$PWD
}
slock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec 8<"$sd"
  flock $1 8
}
present() { [ -e "$sd/$1" ] || [ -L "$sd/$1" ]; }
num() { case $1 in ''|*[!0-9]*) return 1 ;; esac; }
field() { r=\${head#*\\"$1\\":}; r=\${r%%,*}; r=\${r%%\\}*}; r=\${r#\\"}; r=\${r%\\"}; }
ownedir() {
  if [ -L "$sd/$1" ] || [ ! -d "$sd/$1" ] || [ ! -O "$sd/$1" ]; then
    why="$sd/$1 is not a directory of this user (a symlink?)"; return 1
  fi
  f=$sd/$1/$sm
  if [ -L "$f" ] || [ ! -f "$f" ]; then why="$sd/$1 has no $what marker"; return 1; fi
  head=$(head -c 400 -- "$f" 2>/dev/null)
}
marker() {
  ownedir "$1" || return 1
  case $head in "{\\"$what\\":\\"$1\\",\\"owner\\":\\""*) ;; *) why="the marker of $sd/$1 does not name it"; return 1 ;; esac
  field owner; so=$r; field nonce; sn=$r; field "$tf"; up=$r; field expires; ex=$r; field bytes; by=$r
  if ! num "$up" || ! num "$ex" || ! num "$by"; then why="the marker of $sd/$1 is malformed"; return 1; fi
  case $sn in ''|*[!0-9a-f]*) why="the marker of $sd/$1 has no nonce"; return 1 ;; esac
}
wipe() {
  if [ -L "$sd/$1" ] || [ ! -d "$sd/$1" ]; then rm -f -- "$sd/$1"; return; fi
  (
    cd -P -- "$sd/$1" 2>/dev/null && [ "$PWD" = "$sd/$1" ] || exit 1
    find . -xdev -mindepth 1 -type d ! -perm -u+rwx -exec chmod u+rwx {} + 2>/dev/null
    find . -xdev -depth -mindepth 1 -delete 2>/dev/null
  ) && rmdir -- "$sd/$1" 2>/dev/null
}
drop() {
  mv -- "$sd/$1" "$sd/.old-$1-$2" 2>/dev/null && wipe ".old-$1-$2"
}
copyout() {
  cd -P -- "$sd/$1" && [ "$PWD" = "$sd/$1" ] || { why="$sd/$1 cannot be entered"; return 1; }
  if [ -e ${MARKER_FILE} ] || [ -L ${MARKER_FILE} ]; then
    why="$sd/$1 holds a workspace marker"; return 1
  fi
  cp -a --reflink=auto . "$2/" 2>/dev/null || cp -a . "$2/" || { why="the copy of $sd/$1 failed"; return 2; }
  rm -f -- "$2/$sm"
}
prune() {
  now=$(date +%s)
  # Leftovers of a crash: a copy another update is making is younger than an hour, or holds a
  # lock on its directory (a snapshot's, which may take longer).
  find "$sd" -mindepth 1 -maxdepth 1 -name '.tmp-*' -mmin +60 | while IFS= read -r e; do
    if [ -d "$e" ] && [ ! -L "$e" ] && command -v flock >/dev/null 2>&1; then
      ( exec 7<"$e" && flock -n 7 ) 2>/dev/null || continue
    fi
    wipe "\${e##*/}"
  done
  for e in "$sd"/.old-*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    [ "\${e##*/}" = "$3" ] && continue
    wipe "\${e##*/}"
  done
  list= total=0
  for e in "$sd"/*; do
    e=\${e##*/}
    valid "$e" 2>/dev/null || continue
    if [ "$ex" -le "$now" ]; then drop "$e" "$sn" && echo "reaped $e (expired)"; continue; fi
    total=$((total + by))
    list="$list$up $e $by $sn
"
  done
  [ "$1" -gt 0 ] 2>/dev/null || return 0
  printf '%s' "$list" | sort -n | while read -r up e by sn; do
    [ "$total" -gt $(($1 * 1024)) ] || break
    [ "$e" = "$2" ] && continue
    drop "$e" "$sn" && echo "reaped $e (over the budget of $1 KiB)"
    total=$((total - by))
  done
}
`;

/** The seed store's `valid` (see {@linkcode STORE_FUNCTIONS}): the name is the repository's hash. */
const SEED_FUNCTIONS = `
top=.sbx-seeds what=seed tf=updated sm=${SEED_MARKER}
${STORE_FUNCTIONS}
valid() {
  case $1 in *[!0-9a-f]*) why="$1 is not a seed name"; return 1 ;; esac
  [ \${#1} -eq 32 ] || { why="$1 is not a seed name"; return 1; }
  marker "$1"
}
takespare() {
  s=.spare-$1-$2 t=.tmp-taken-$1-$2-$$
  [ -d "$sd/$s" ] && [ ! -L "$sd/$s" ] && [ -O "$sd/$s" ] || return 1
  # A crash's leftover under the same name would take the spare in, not be replaced by it.
  ! present "$t" || wipe "$t" || return 1
  # One rename: of creates racing for the spare, one takes it.
  mv -- "$sd/$s" "$sd/$t" 2>/dev/null || return 1
  (
    cd -P -- "$sd/$t" 2>/dev/null && [ "$PWD" = "$sd/$t" ] || exit 1
    if [ -e ${MARKER_FILE} ] || [ -L ${MARKER_FILE} ]; then exit 1; fi
    rm -f -- "$sm"
    find . -mindepth 1 -maxdepth 1 -exec sh -c 'mv -- "$@" "$0/"' "$3" {} +
  ); rc=$?
  wipe "$t"
  return $rc
}
mkspare() {
  s=.spare-$1-$2 t=.tmp-spare-$1-$2-$$
  present "$s" && return 0
  # Creates in a burst replace the seed one after another: copy only the one still current.
  marker "$1" && [ "$sn" = "$2" ] || return 0
  mkdir -m 700 -- "$sd/$t" 2>/dev/null || return 1
  # Behind the sandboxes' own work: the copy is for a later create.
  n=; command -v nice >/dev/null 2>&1 && n="nice -n 10"
  if $n cp -a -- "$sd/$1/." "$sd/$t/" 2>/dev/null; then
    slock
    # Kept only when the seed it copies is still the same one (not replaced during the copy).
    if marker "$1" && [ "$sn" = "$2" ] && ! present "$s" && mv -- "$sd/$t" "$sd/$s"; then return 0; fi
    exec 8<&-
  fi
  wipe "$t"
}
oldspares() {
  for e in "$sd"/.spare-*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    e=\${e##*/} h=\${e#.spare-}; n=\${h#*-}; h=\${h%%-*}
    if valid "$h" 2>/dev/null && [ "$sn" = "$n" ]; then continue; fi
    mv -- "$sd/$e" "$sd/.old-$h-$n-spare" 2>/dev/null && echo ".old-$h-$n-spare"
  done
}
`;

/**
 * `sh -c SEED_INTO sh WORKSPACE ID NONCE USER HASH OWNER`: copy the seed
 * `HASH` of USER into the fresh, checked workspace (its own marker kept), or
 * move its spare copy in when there is one.
 * Exit 0 when seeded, {@linkcode SEED_EXIT}.none when there is no usable
 * seed, `.refused` (with the reason on stderr) for one that is not ours.
 */
export const SEED_INTO = `ws=$1 id=$2 nonce=$3 user=$4 hash=$5 owner=$6
${FUNCTIONS}
${SEED_FUNCTIONS}
enter; rc=$?
[ "$rc" -eq 0 ] || { echo "$why" >&2; exit "$rc"; }
dest=$PWD
storedir; rc=$?
[ "$rc" -eq 3 ] && exit ${SEED_EXIT.none}
[ "$rc" -eq 0 ] || { echo "$why" >&2; exit ${SEED_EXIT.refused}; }
slock -s
present "$hash" || exit ${SEED_EXIT.none}
valid "$hash" || { echo "$why" >&2; exit ${SEED_EXIT.refused}; }
if [ "$so" != "$owner" ]; then echo "$sd/$hash was made by another sandboxer" >&2; exit ${SEED_EXIT.refused}; fi
[ "$ex" -gt "$(date +%s)" ] || exit ${SEED_EXIT.none}
# The seed's spare copy, when one was made in the background, moves in whole: no copy now.
takespare "$hash" "$sn" "$dest" && exit 0
copyout "$hash" "$dest"; rc=$?
[ "$rc" -eq 0 ] || { echo "$why" >&2; [ "$rc" -eq 1 ] && exit ${SEED_EXIT.refused}; exit ${SEED_EXIT.failed}; }
`;

/**
 * `sh -c SEED_UPDATE sh WORKSPACE ID NONCE USER HASH OWNER SEED_NONCE TTL BUDGET_KB SPARE`:
 * copy the checked workspace (its marker left out) into a new seed `HASH`
 * for USER, expiring TTL seconds from now, and swap it in atomically; a seed
 * there is replaced only when its marker names this owner. Then prune (see
 * {@linkcode SEED_FUNCTIONS}): the `reaped` lines on stdout. A tree over
 * BUDGET_KB is not kept (and the stale seed it would replace is dropped).
 * SPARE 1: once the lock is released, make the new seed's spare copy in the
 * background (when seed and spare fit the budget); stale spares go too.
 */
export const SEED_UPDATE =
  `ws=$1 id=$2 nonce=$3 user=$4 hash=$5 owner=$6 snonce=$7 ttl=$8 budget=$9 spare=\${10}
${FUNCTIONS}
${SEED_FUNCTIONS}
enter; rc=$?
[ "$rc" -eq 0 ] || { echo "$why" >&2; exit "$rc"; }
src=$PWD
mk=1 storedir || { echo "$why" >&2; exit ${SEED_EXIT.refused}; }
tmp=.tmp-$hash-$snonce
mkdir -m 700 -- "$sd/$tmp" || exit ${SEED_EXIT.failed}
# Hard links: the files are not copied. A file rsync later replaces gets a new inode; one changed
# in place changes here too, with its size and time, so the next sync resends it.
if ! cp -al -- "$src/." "$sd/$tmp/" 2>/dev/null; then
  wipe "$tmp"; mkdir -m 700 -- "$sd/$tmp" || exit ${SEED_EXIT.failed}
  cp -a -- "$src/." "$sd/$tmp/" || { wipe "$tmp"; exit ${SEED_EXIT.failed}; }
fi
rm -f -- "$sd/$tmp/${MARKER_FILE}" "$sd/$tmp/$sm"
slock
kb=$(du -sk -- "$sd/$tmp" | cut -f1)
why=
if present "$hash"; then
  if ! valid "$hash" || [ "$so" != "$owner" ]; then
    [ -n "$why" ] || why="$sd/$hash was made by another sandboxer"
    wipe "$tmp"; echo "left $sd/$hash alone: $why" >&2; exit ${SEED_EXIT.refused}
  fi
  old=$sn
else
  old=
fi
if [ "$kb" -gt "$budget" ]; then
  wipe "$tmp"; [ -z "$old" ] || drop "$hash" "$old"
  echo "the tree takes $kb KiB, more than the seed budget of $budget KiB" >&2; exit ${SEED_EXIT.tooBig}
fi
now=$(date +%s)
printf '{"seed":"%s","owner":"%s","nonce":"%s","updated":%s,"expires":%s,"bytes":%s}\\n' \\
  "$hash" "$owner" "$snonce" "$now" "$((now + ttl))" "$((kb * 1024))" > "$sd/$tmp/$sm" || { wipe "$tmp"; exit ${SEED_EXIT.failed}; }
if [ -n "$old" ]; then mv -- "$sd/$hash" "$sd/.old-$hash-$old" || { wipe "$tmp"; exit ${SEED_EXIT.failed}; }; fi
mv -- "$sd/$tmp" "$sd/$hash" || exit ${SEED_EXIT.failed}
prune "$budget" "$hash" ".old-$hash-$old"
stale=$(oldspares)
# After the lock is released, in the background: the replaced seed and stale spares are deleted,
# and a repository seen again gets a spare copy for the next create (when both fit the budget).
[ "$spare" = 1 ] && [ $((kb * 2)) -le "$budget" ] || spare=
[ -z "$old$stale$spare" ] || {
  exec 8<&-
  (
    [ -z "$old" ] || wipe ".old-$hash-$old"
    for e in $stale; do wipe "$e"; done
    [ -z "$spare" ] || mkspare "$hash" "$snonce"
  ) </dev/null >/dev/null 2>&1 &
}
`;

/**
 * `sh -c SEED_PRUNE sh ROOT USER BUDGET_KB`: `gc`'s pass over USER's seeds
 * under ROOT (see {@linkcode SEED_FUNCTIONS}); BUDGET_KB 0 reaps by age only;
 * spares whose seed is gone or newer are deleted.
 * Prints `reaped …` lines, and `none` when USER has no seed directory.
 */
export const SEED_PRUNE = `rp=$1 user=$2 budget=$3
${SEED_FUNCTIONS}
storedir; rc=$?
[ "$rc" -eq 3 ] && { echo none; exit 0; }
[ "$rc" -eq 0 ] || { echo "$why" >&2; exit ${SEED_EXIT.refused}; }
slock
prune "$budget" ""
for e in $(oldspares); do wipe "$e"; done
`;
