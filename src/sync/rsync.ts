/**
 * The rsync argv, pure: over ssh (its `-e` value built here), or over the
 * relay of an open connection.
 *
 * Safety properties of the argv (each is unit-tested):
 * - the `-e` value is built by {@linkcode shellQuote} (single quotes and
 *   `'"'"'`, which rsync's `-e` splitter understands), with strict host key
 *   checking against the given known_hosts file only (the system-wide one is
 *   off, and ssh never adds keys), batch mode (never a prompt), and `-F` so
 *   the user's `~/.ssh/config` cannot change the connection;
 * - key and known_hosts paths go in `-o Key="value"` form with `%` doubled (ssh
 *   expands `%` tokens and splits unquoted values on spaces);
 * - operands follow `--`, the local one is absolute or `./`-prefixed, both end
 *   in `/` so the directory's contents are synced, and `--delete` therefore
 *   only ever touches the workspace directory itself;
 * - remote paths stay literal: rsync 3.2.4+ escapes them for the remote shell
 *   by default (`RSYNC_OLD_ARGS` is forced off), older 3.x gets
 *   `--protect-args`. rsync 2.x (and macOS openrsync) is refused.
 *
 * Counts come from `--stats` (constant-size output, unlike per-file
 * `--itemize-changes`); progress from `--info=progress2` (rsync 3.1+), with
 * `--no-inc-recursive` so the percentage has a real total.
 *
 * @module
 */

import { RsyncTooOldError } from "../core/errors.ts";
import { shellQuote } from "../transport/quote.ts";
import type { RsyncCapabilities, RsyncPlan, RsyncTarget } from "./rsync_types.ts";
import { atLeast, parseVersion } from "./rsync_version.ts";

/**
 * The relay rsync runs as its remote shell in `runRsyncOverConnection()` (rsync_relay.ts)
 * (Linux: it needs `/proc`). A constant: its only argument (`$1`, a private
 * directory) and rsync's own words reach it as arguments, never as script text.
 *
 * rsync starts it as `RELAY [-l USER] HOST <remote command words>`. It writes
 * the remote command (the words joined by spaces, as ssh joins them; rsync has
 * quoted them for the remote shell) NUL-terminated to rsync's stdout
 * (`/proc/$PPID/fd/1`, the pipe sandboxer reads), copies what rsync sends it
 * there too, and copies rsync's stdin (what sandboxer writes from the channel)
 * back to rsync, until sandboxer closes that stdin. It takes no arguments of
 * its own, and it needs no file: the remote exit status is known to sandboxer,
 * which folds it into rsync's (see `relayExitCode`). Two FIFOs opened from
 * Deno would not do: a pending read on one holds back writes to the other.
 */
const RELAY_SCRIPT = 'if [ "$1" = -l ]; then shift 2; fi; shift; p=$PPID; ' +
  'printf "%s\\0" "$*" > /proc/$p/fd/1 || exit 255; ' +
  // A background job's stdin would be /dev/null: hand it the real one as fd 3.
  "exec 3<&0; cat <&3 > /proc/$p/fd/1 & u=$!; cat /proc/$p/fd/0; kill $u 2>/dev/null; exit 0";
/** Double `%` so ssh's token expansion gives the literal text back. */
function escapePercent(text: string): string {
  return text.replaceAll("%", "%%");
}

/** Quote an ssh `-o` value for ssh's own option-line splitter. */
function sshOptionValue(value: string): string {
  return `"${escapePercent(value).replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function checkName(what: string, value: string): void {
  // ssh would read a leading "-" as an option; whitespace, "@", "%" and control characters
  // cannot be expressed unambiguously in user@host operands or ssh tokens.
  if (value === "" || value.startsWith("-") || /[\s@%\p{Cc}]/u.test(value)) {
    throw new TypeError(
      `Cannot build rsync arguments: ${what} ${JSON.stringify(value)} is not valid`,
    );
  }
}

function checkAbsolute(what: string, path: string): void {
  if (!path.startsWith("/") || path.includes("\0")) {
    throw new TypeError(
      `Cannot build rsync arguments: ${what} must be an absolute path (got ${
        JSON.stringify(path)
      })`,
    );
  }
}

function seconds(ms: number | undefined, fallback: number): string {
  return String(Math.max(1, Math.ceil((ms ?? fallback) / 1000)));
}

/**
 * The `ssh` argv (no destination) rsync's own ssh runs with: strict host key
 * checking against `target.knownHostsFile` only, batch mode, no user config
 * (`-F /dev/null` unless given), `-o` paths %-escaped, one jump at most.
 *
 * @param target Where to connect.
 * @param sshConfigFile An ssh config file to read instead of none.
 * @returns The argv, starting with `"ssh"`.
 * @throws {TypeError} On a host or user that could be read as an option, a relative path, or
 *   nested jumps.
 */
export function sshArgv(target: RsyncTarget, sshConfigFile: string | undefined): string[] {
  checkName("host", target.host);
  checkName("user", target.user);
  checkAbsolute("knownHostsFile", target.knownHostsFile);
  if (sshConfigFile !== undefined) checkAbsolute("sshConfigFile", sshConfigFile);
  // -F is read as a plain path (no token expansion), unlike the -o paths below.
  const argv = ["ssh", "-F", sshConfigFile ?? "/dev/null", "-p", String(target.port)];
  if (target.identityFile !== undefined) {
    checkAbsolute("identityFile", target.identityFile);
    // Not -i: ssh stat()s an -i path before expanding its % tokens and silently drops it
    // when the unexpanded name does not exist.
    argv.push(
      "-o",
      `IdentityFile=${sshOptionValue(target.identityFile)}`,
      "-o",
      "IdentitiesOnly=yes",
    );
  }
  argv.push(
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${sshOptionValue(target.knownHostsFile)}`,
    // Only that file decides: a key in /etc/ssh/ssh_known_hosts must not widen a pin, and ssh
    // must not learn keys (UpdateHostKeys) or check the address separately (CheckHostIP).
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "CheckHostIP=no",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    `ConnectTimeout=${seconds(target.connectTimeoutMs, 15_000)}`,
    "-o",
    `ServerAliveInterval=${seconds(target.keepaliveIntervalMs, 5_000)}`,
    "-o",
    "ServerAliveCountMax=3",
  );
  if (target.jump !== undefined) {
    if (target.jump.jump !== undefined) {
      throw new TypeError(
        "Cannot build rsync arguments: only one jump host is supported; chain further hops in an ssh config file",
      );
    }
    // The proxy command is %-expanded by this ssh and then again by the jump ssh: its own
    // literal parts need a second escape, its -W tokens exactly one level.
    const jump = target.jump;
    const hop = sshArgv(jump, sshConfigFile).map(escapePercent);
    const command = shellQuote([...hop, "-W", "[%h]:%p", "-l", jump.user, "--", jump.host]);
    argv.push("-o", `ProxyCommand=${command}`);
  }
  return argv;
}

/** The remote directory without trailing slashes, after refusing anything but a plain path. */
function checkRemoteDir(dir: string): string {
  const remoteDir = dir.replace(/\/+$/, "");
  const relative = remoteDir === "." || remoteDir.startsWith("./");
  const rest = relative ? remoteDir.slice(1) : remoteDir;
  if (
    (!relative && !remoteDir.startsWith("/")) || dir.includes("\0") ||
    (!relative && remoteDir === "") || /\/\/|(^|\/)\.\.?(\/|$)/.test(rest)
  ) {
    throw new TypeError(
      `Cannot build rsync arguments: remoteDir ${
        JSON.stringify(dir)
      } must be a normalised directory below /, or . or ./path`,
    );
  }
  return remoteDir;
}

function remoteHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

function localOperand(path: string): string {
  const operand = path.startsWith("/") || path.startsWith("./") ? path : `./${path}`;
  return operand.endsWith("/") ? operand : `${operand}/`;
}

/**
 * The filter arguments of a plan (its file selection — git's listing, or the
 * `.gitignore` merge — then the excludes), in the order rsync applies them.
 * Shared with the SFTP fallback, which asks the local rsync which files to
 * send so both paths select exactly the same tree.
 *
 * @param plan The selection (or whether to honour `.gitignore`), and the exclude patterns.
 * @returns The arguments, e.g. `["--filter=:- .gitignore", "--exclude=*.o"]`.
 */
export function rsyncFilterArgs(
  plan: Pick<RsyncPlan, "gitignore" | "exclude" | "selection">,
): string[] {
  const args: string[] = [];
  if (plan.selection !== undefined) args.push(...plan.selection);
  else if (plan.gitignore) args.push("--filter=:- .gitignore");
  for (const pattern of plan.exclude) args.push(`--exclude=${pattern}`);
  return args;
}

/**
 * Build the rsync argv for a plan. Pure: no I/O.
 *
 * @param plan What to sync and where.
 * @param caps The local rsync's capabilities.
 * @returns The argv, starting with `"rsync"`.
 * @throws {TypeError} On a relative key/known_hosts path, a host or user that
 *   could be read as an option, nested jumps, or a remote path with glob characters.
 * @throws {RsyncTooOldError} When rsync is older than 3.0.
 *
 * @example
 * ```ts
 * import { buildRsyncArgv } from "./rsync.ts";
 * const argv = buildRsyncArgv({
 *   source: "app",
 *   target: { host: "10.0.0.5", port: 12222, user: "dev", knownHostsFile: "/k" },
 *   remoteDir: "/build/sbx-1",
 *   exclude: [],
 *   gitignore: true,
 *   delete: true,
 *   progress: false,
 * }, { version: "3.2.7", protectsArgsByDefault: true });
 * console.log(argv.slice(-2)); // ["./app/", "dev@10.0.0.5:/build/sbx-1/"]
 * ```
 */
export function buildRsyncArgv(plan: RsyncPlan, caps: RsyncCapabilities): string[] {
  if (plan.rsh !== undefined) {
    checkName("host", plan.target.host);
    checkName("user", plan.target.user);
  }
  const rsh = shellQuote(plan.rsh ?? sshArgv(plan.target, plan.sshConfigFile));
  return buildArgv(plan, caps, rsh, false);
}

/**
 * Build the rsync argv for a plan whose transport is the relay of
 * `runRsyncOverConnection()` (rsync_relay.ts). Pure: no I/O. Like
 * {@linkcode buildRsyncArgv}, except that `-e` is the constant relay script
 * (through {@linkcode shellQuote}) and
 * `--stderr=all` keeps rsync's stdout free for the transport: stats and
 * progress go to stderr.
 *
 * @param plan What to sync and where (`target.host`/`user` only name the operand).
 * @param caps The local rsync's capabilities; 3.2.4 or newer.
 * @returns The argv, starting with `"rsync"`.
 * @throws {TypeError} On a bad remote path, host or user.
 * @throws {RsyncTooOldError} When rsync is older than 3.2.4.
 */
export function buildRsyncRelayArgv(
  plan: RsyncPlan,
  caps: RsyncCapabilities,
): string[] {
  if (!caps.protectsArgsByDefault) {
    throw new RsyncTooOldError(
      caps.version,
      "3.2.4",
      `Cannot relay rsync ${caps.version} over the open connection: it needs rsync 3.2.4 or newer (--stderr); use runRsync`,
    );
  }
  checkName("host", plan.target.host);
  checkName("user", plan.target.user);
  const rsh = shellQuote(["sh", "-c", RELAY_SCRIPT, "relay"]);
  return buildArgv(plan, caps, rsh, true);
}

function buildArgv(
  plan: RsyncPlan,
  caps: RsyncCapabilities,
  rsh: string,
  relay: boolean,
): string[] {
  const version = parseVersion(caps.version);
  if (!atLeast(version, [3, 0, 0])) {
    throw new RsyncTooOldError(
      caps.version,
      "3.0.0",
      `Cannot sync with rsync ${caps.version}: sandboxer needs rsync 3.0 or newer (macOS ships openrsync/2.6.9); install rsync 3.x`,
    );
  }
  const remoteDir = checkRemoteDir(plan.remoteDir);
  // rsync expands these on the remote side even in protected arguments.
  if (/[*?[\]\\]/.test(remoteDir) || /\p{Cc}/u.test(remoteDir)) {
    throw new TypeError(
      `Cannot build rsync arguments: remoteDir ${
        JSON.stringify(plan.remoteDir)
      } has glob, backslash or control characters`,
    );
  }

  const argv = ["rsync", "-e", rsh, "--archive"];
  if (!caps.protectsArgsByDefault) argv.push("--protect-args");
  // rsync passes this to the remote shell as it is: it is built by the one quoter.
  if (plan.rsyncPath) argv.push(`--rsync-path=${shellQuote(plan.rsyncPath)}`);
  if (plan.delete) argv.push("--delete");
  argv.push(...rsyncFilterArgs(plan));
  // In relay mode stdout is the transport: every message, stats and progress included, to stderr.
  // --blocking-io: rsync otherwise leaves the relay's stdout non-blocking (ssh copes with that),
  // and the relay's `cat` gives up on the first EAGAIN ("write error") under backpressure.
  if (relay) argv.push("--stderr=all", "--blocking-io");
  // Digits without separators keep --stats and progress parsing locale-proof.
  argv.push("--stats", "--no-human-readable");
  if (plan.progress && atLeast(version, [3, 1, 0])) {
    argv.push("--info=progress2", "--no-inc-recursive");
  }
  const entry = plan.direction === "pull" && plan.remoteEntry;
  const remote = `${plan.target.user}@${remoteHost(plan.target.host)}:${remoteDir}${
    entry ? "" : "/"
  }`;
  const local = localOperand(plan.source);
  argv.push("--", ...(plan.direction === "pull" ? [remote, local] : [local, remote]));
  return argv;
}
