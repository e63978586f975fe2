/**
 * rsync over ssh: a pure argv builder, a cached version probe, and a runner
 * that reports progress and counts.
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

import {
  CommandFailedError,
  HostKeyError,
  RsyncTooOldError,
  RsyncVersionError,
  SshError,
  WorkspaceError,
} from "../core/errors.ts";
import type { Logger, SyncProgress, SyncReport } from "../core/types.ts";
import { retry } from "../core/async.ts";
import { shellQuote } from "../transport/quote.ts";
import type { RawExecChannel, RawExecOptions } from "../transport/ssh/types.ts";
import { run, spawnPiped, terminate } from "../process/run.ts";
import { signalExitCode } from "../process/signals.ts";

/** Where rsync connects; structurally a subset of the SSH transport's target. */
export interface RsyncTarget {
  /** Host name or address. */
  host: string;
  /** SSH port. */
  port: number;
  /** Login user. */
  user: string;
  /** Absolute path of the private key; without it ssh uses the agent. */
  identityFile?: string;
  /** Absolute path of the known_hosts file to check the host key against. */
  knownHostsFile: string;
  /**
   * The fingerprint `knownHostsFile` was written to hold alone (the pin from
   * create); only named in the error when ssh refuses the server's key.
   */
  pinnedHostKey?: string;
  /** SSH_AUTH_SOCK path to hand to ssh (needed for encrypted keys: ssh cannot prompt). */
  agent?: string;
  /** Bound on TCP connect. @default {15000} */
  connectTimeoutMs?: number;
  /** Interval of ssh's server-alive probes (3 unanswered end the transfer). @default {5000} */
  keepaliveIntervalMs?: number;
  /** Host to hop through first (one level; its own `jump` is not supported here). */
  jump?: RsyncTarget;
}

/** What to sync, and how. */
export interface RsyncPlan {
  /** The local directory: what is sent on push, where files land on pull. */
  source: string;
  /** The remote machine. */
  target: RsyncTarget;
  /**
   * The remote directory: absolute, or `.` / `./a/b` relative to the
   * directory the remote command runs in (see `rsyncPath`).
   */
  remoteDir: string;
  /**
   * The remote command that starts rsync, as an argv quoted here with the one
   * quoter and passed as `--rsync-path`; rsync appends `--server …` to it.
   * Default: `rsync` from the remote PATH.
   */
  rsyncPath?: readonly string[];
  /** How errors name the remote directory (default `remoteDir`; useful when that is relative). */
  remoteLabel?: string;
  /** Exclude patterns (rsync syntax), each passed as `--exclude=<p>`. */
  exclude: readonly string[];
  /** Honour `.gitignore` files found in the tree (`--filter=':- .gitignore'`). */
  gitignore: boolean;
  /**
   * Filter arguments that choose the files instead of `gitignore` (from
   * `selectFiles()` in git_selection.ts: git's own listing in a work tree).
   */
  selection?: readonly string[];
  /** Delete files in the receiving directory that the sender does not have. */
  delete: boolean;
  /** Ask rsync for overall progress. */
  progress: boolean;
  /** An ssh config file for ssh to read; default none (`-F /dev/null`). */
  sshConfigFile?: string;
  /** Push (local → remote, the default) or pull (remote → local). */
  direction?: "push" | "pull";
  /**
   * Pull only: copy the remote path itself (a file or a directory) into the
   * local directory, instead of the remote directory's contents.
   */
  remoteEntry?: boolean;
}

/** What the local rsync can do, from {@linkcode probeRsync}. */
export interface RsyncCapabilities {
  /** Version such as `3.2.7`. */
  version: string;
  /** True from 3.2.4 on: remote arguments are escaped against the remote shell by default. */
  protectsArgsByDefault: boolean;
}

/** Options for {@linkcode runRsync}. */
export interface RunRsyncOptions {
  /** Called as bytes move (needs `plan.progress`). */
  onProgress?: (progress: SyncProgress) => void;
  /** Aborting it stops rsync. */
  signal?: AbortSignal;
  /** Where to log the command and warnings. */
  logger?: Logger;
  /**
   * Turn a failure the remote command explained on stderr (such as a
   * workspace wrapper's refusal) into its own error; undefined leaves it to
   * the usual mapping.
   */
  explainFailure?: (stderr: string) => Error | undefined;
}

/** Exit code rsync uses when source files vanished during the transfer. */
const RSYNC_VANISHED = 24;
/** Exit code of rsync's "error in file I/O" (a write failed: disk full, read-only, …). */
const RSYNC_FILE_IO = 11;
/** Exit code rsync reports when the remote shell found no rsync. */
const REMOTE_COMMAND_NOT_FOUND = 127;
/** Exit code rsync passes on when ssh itself failed. */
const SSH_FAILED = 255;

/**
 * The relay rsync runs as its remote shell in {@linkcode runRsyncOverConnection}
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
/** How long a channel may outlive the rsync it serves before it is closed. */
const RELAY_LINGER_MS = 5_000;

type Version = [number, number, number];

function parseVersion(version: string): Version {
  const [a = 0, b = 0, c = 0] = version.split(".").map((n) => Number.parseInt(n, 10) || 0);
  return [a, b, c];
}

function atLeast(version: Version, wanted: Version): boolean {
  for (let i = 0; i < 3; i++) {
    if (version[i] !== wanted[i]) return version[i] > wanted[i];
  }
  return true;
}

/**
 * Read capabilities from `rsync --version` output.
 *
 * @param text The output.
 * @returns Version and argument-protection default.
 * @throws {RsyncVersionError} When no version can be found in it.
 *
 * @example
 * ```ts
 * import { parseRsyncVersion } from "./rsync.ts";
 * console.log(parseRsyncVersion("rsync  version 3.2.7  protocol version 31").protectsArgsByDefault); // true
 * ```
 */
export function parseRsyncVersion(text: string): RsyncCapabilities {
  const match = /\bversion\s+v?(\d+\.\d+(?:\.\d+)?)/.exec(text);
  if (!match) {
    throw new RsyncVersionError(text);
  }
  const version = match[1].split(".").length === 2 ? `${match[1]}.0` : match[1];
  return { version, protectsArgsByDefault: atLeast(parseVersion(version), [3, 2, 4]) };
}

let probed: Promise<RsyncCapabilities> | undefined;

/**
 * Probe the local rsync once per process (`rsync --version`).
 *
 * @returns Its capabilities.
 * @throws {MissingProgramError} When rsync is not installed.
 * @throws {PermissionError} When `--allow-run=rsync` is missing.
 */
export function probeRsync(): Promise<RsyncCapabilities> {
  probed ??= run(["rsync", "--version"], { timeoutMs: 10_000 })
    .then((result) => parseRsyncVersion(result.stdout))
    .catch((error) => {
      probed = undefined;
      throw error;
    });
  return probed;
}

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

/** ssh argv (no destination) for one hop; `-o` paths are %-escaped for this ssh. */
function sshArgv(target: RsyncTarget, sshConfigFile: string | undefined): string[] {
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
  const rsh = shellQuote(sshArgv(plan.target, plan.sshConfigFile));
  return buildArgv(plan, caps, rsh, false);
}

/**
 * Build the rsync argv for a plan whose transport is the relay of
 * {@linkcode runRsyncOverConnection}. Pure: no I/O. Like
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

/** Counts from rsync's `--stats` block. */
export interface RsyncStats {
  /** "Number of regular files transferred". */
  files: number;
  /** "Number of deleted files". */
  deleted: number;
  /** "Total transferred file size", in bytes. */
  bytes: number;
}

function statNumber(text: string, label: string): number {
  const match = new RegExp(`^${label}: ([\\d,.]+)`, "m").exec(text);
  return match ? Number(match[1].replace(/[,.]/g, "")) : 0;
}

/**
 * Read the counts from rsync `--stats` output.
 *
 * @param text rsync's stdout.
 * @returns Files sent, files deleted, bytes of file data moved.
 */
export function parseRsyncStats(text: string): RsyncStats {
  return {
    files: statNumber(text, "Number of regular files transferred"),
    deleted: statNumber(text, "Number of deleted files"),
    bytes: statNumber(text, "Total transferred file size"),
  };
}

/**
 * Read one `--info=progress2` line, such as
 * `  1234567  45%  12.34MB/s  0:00:01 (xfr#3, to-chk=10/20)`.
 *
 * @param line One line (rsync separates updates with `\r`).
 * @returns The progress, or undefined when the line is something else.
 */
export function parseProgressLine(line: string): SyncProgress | undefined {
  const match = /^\s*([\d,.]+)\s+(\d{1,3})%\s/.exec(line);
  if (!match) return undefined;
  return { bytes: Number(match[1].replace(/[,.]/g, "")), percent: Number(match[2]) };
}

function describeTarget(target: RsyncTarget): string {
  return `${target.user}@${target.host}:${target.port}`;
}

/**
 * Run rsync for a plan and report what it did.
 *
 * @param plan What to sync and where.
 * @param options Progress callback, abort signal and logger.
 * @returns Files sent, files deleted and bytes of file data moved.
 * @throws {SshError} Stage `connect` when ssh could not connect, verify the host key or
 *   authenticate; stage `sync` when the remote host has no rsync (probe it first with
 *   `conn.run(["rsync", "--version"])` to choose the SFTP fallback up front).
 * @throws {CommandFailedError} When rsync failed for another reason (exit 24, vanished
 *   source files, counts as success and is logged as a warning).
 * @throws {MissingProgramError} When rsync is not installed locally.
 */
export async function runRsync(
  plan: RsyncPlan,
  options: RunRsyncOptions = {},
): Promise<SyncReport> {
  // Each rsync opens its own ssh connection: bound them per target so one process never
  // pushes sshd past MaxStartups (10 unauthenticated by default), and retry a connection the
  // server dropped before the handshake anyway (other processes count too); nothing was
  // transferred by then, so running rsync again is safe.
  const key = `${plan.target.host}:${plan.target.port}`;
  return await retry(async (attempt) => {
    const release = await acquireRsyncSlot(key, options.signal);
    try {
      if (attempt > 1) options.logger?.debug(`rsync to ${key}: attempt ${attempt}`);
      return await runRsyncOnce(plan, options);
    } finally {
      release();
    }
  }, {
    attempts: PRE_AUTH_ATTEMPTS,
    baseDelayMs: 250,
    retryIf: isPreAuthDrop,
    signal: options.signal,
  });
}

/** rsync processes (so ssh connections) in flight at once to one `host:port`. */
const MAX_RSYNC_PER_TARGET = 8;
/** Tries when sshd drops rsync's ssh before the handshake (MaxStartups). */
const PRE_AUTH_ATTEMPTS = 6;
const rsyncSlots = new Map<string, { free: number; waiting: (() => void)[] }>();

/** Wait for one of the target's rsync slots; returns its release. */
async function acquireRsyncSlot(key: string, signal?: AbortSignal): Promise<() => void> {
  signal?.throwIfAborted();
  let slots = rsyncSlots.get(key);
  if (!slots) rsyncSlots.set(key, slots = { free: MAX_RSYNC_PER_TARGET, waiting: [] });
  const gate = slots;
  if (gate.free > 0) gate.free--;
  else {
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        gate.waiting.splice(gate.waiting.indexOf(wake), 1);
        reject(signal?.reason);
      };
      gate.waiting.push(wake);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const next = gate.waiting.shift();
    if (next) next();
    else gate.free++;
  };
}

const preAuthDrops = new WeakSet<Error>();

function isPreAuthDrop(error: unknown): boolean {
  return error instanceof Error && preAuthDrops.has(error);
}

async function runRsyncOnce(plan: RsyncPlan, options: RunRsyncOptions): Promise<SyncReport> {
  const argv = buildRsyncArgv(plan, await probeRsync()) as [string, ...string[]];
  if (plan.direction === "pull") await Deno.mkdir(plan.source, { recursive: true });
  options.logger?.debug(`$ ${shellQuote(argv)}`);

  let pending = "";
  const decoder = new TextDecoder();
  const onStdout = options.onProgress
    ? (chunk: Uint8Array) => {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split(/[\r\n]/);
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const progress = parseProgressLine(line);
        if (progress) options.onProgress?.(progress);
      }
    }
    : undefined;

  // RSYNC_OLD_ARGS in the user's environment would turn remote-path escaping off.
  const env: Record<string, string> = { RSYNC_OLD_ARGS: "0" };
  if (plan.target.agent !== undefined) env.SSH_AUTH_SOCK = plan.target.agent;
  const result = await run(argv, { env, signal: options.signal, allowFailure: true, onStdout });
  if (result.code === 0) return { method: "rsync", ...parseRsyncStats(result.stdout) };
  if (result.code === RSYNC_VANISHED) {
    options.logger?.warn("rsync: some source files vanished during the transfer");
    return { method: "rsync", ...parseRsyncStats(result.stdout) };
  }
  throw options.explainFailure?.(result.stderr) ??
    rsyncFailure(plan, argv, result.code, result.stderr);
}

/** Tell ssh's failures (connect, host key, auth, no remote rsync) from rsync's own. */
function rsyncFailure(
  plan: RsyncPlan,
  argv: readonly string[],
  code: number,
  stderr: string,
): Error {
  const where = describeTarget(plan.target);
  // rsync prefixes its own lines; the rest came from ssh or the remote shell.
  const foreign = stderr.split("\n").map((l) => l.trim()).filter((l) =>
    l && !l.startsWith("rsync")
  );
  const detail = foreign.slice(-2).join(" | ");
  if (code === REMOTE_COMMAND_NOT_FOUND) {
    return new SshError(
      where,
      "sync",
      `rsync is not installed on the remote host (${
        detail || "command not found"
      }); install rsync there, or sync over SFTP`,
    );
  }
  // The receiving side could not write: on a push that is the host's disk. rsync sometimes
  // loses the host's message (the connection ends first), so exit 11 alone says it too.
  const enospc = /No space left on device|Disk quota exceeded/.exec(stderr);
  if (plan.direction !== "pull" && (enospc || code === RSYNC_FILE_IO)) {
    const why = stderr.split("\n").map((l) => l.trim()).filter((l) =>
      l.startsWith("rsync:") && !l.startsWith("rsync error:")
    ).at(-1);
    return new WorkspaceError(
      plan.remoteLabel ?? plan.remoteDir,
      enospc
        ? `could not be written on ${where}: the disk is full (${
          enospc[0]
        }); free space on the host, put workspace.root on a larger disk, or leave big files out with sync.exclude`
        : `could not be written on ${where} (${
          why ?? "rsync file I/O error, exit 11, and no detail from the host"
        }); the disk is most likely full: check free space there (df), then free some, use a larger disk, or leave big files out with sync.exclude`,
    );
  }
  // Logged in, then lost: keepalive timeout, reset or the server gone mid-transfer. Blaming the
  // login settings (below) would send the user the wrong way.
  if (
    /Timeout, server \S+ not responding|client_loop: send disconnect|Connection to \S+ closed by remote host|connection unexpectedly closed \([1-9]\d* bytes received so far\)/
      .test(stderr)
  ) {
    return new SshError(
      where,
      "sync",
      `the connection was lost during the transfer (${
        detail || `rsync exit ${code}`
      }); check the network and the host, then sync again`,
    );
  }
  // ssh prints this when the server closed before sending its banner: sshd's MaxStartups.
  if (/kex_exchange_identification|ssh_exchange_identification/.test(stderr)) {
    const error = new SshError(
      where,
      "connect",
      `the server dropped the connection before the SSH handshake (${detail}); it may be at its MaxStartups limit, so retry shortly`,
    );
    preAuthDrops.add(error);
    return error;
  }
  if (/Host key verification failed/.test(stderr)) {
    const pinned = plan.target.pinnedHostKey;
    // ssh prints the offered key's fingerprint in its "has changed" banner.
    const offered = /SHA256:[A-Za-z0-9+/]{43}/.exec(stderr)?.[0];
    if (pinned !== undefined) {
      const host = plan.target.host.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
      const name = plan.target.port === 22 ? host : `[${host}]:${plan.target.port}`;
      return new HostKeyError(name, offered ?? "an unknown key", "pinned", "known_hosts", {
        pinned,
      });
    }
    return new SshError(
      where,
      "connect",
      `host key verification failed against ${plan.target.knownHostsFile}; check that file holds the server's current key`,
    );
  }
  if (
    code === SSH_FAILED || /connection unexpectedly closed \(0 bytes received so far\)/.test(stderr)
  ) {
    return new SshError(
      where,
      "connect",
      `ssh failed (${
        detail || `rsync exit ${code}`
      }); check the user, key and known_hosts, and that the host is reachable`,
    );
  }
  return new CommandFailedError(argv, code, stderr.slice(-4_000));
}

/** What {@linkcode runRsyncOverConnection} needs of a connection: `SshConnection` has it. */
export interface RawExecOpener {
  /** Open an exec channel for a command already quoted for the remote shell. */
  openRawExec(command: string, options?: RawExecOptions): Promise<RawExecChannel>;
}

/**
 * Whether {@linkcode runRsyncOverConnection} can be used here: Linux (the
 * relay needs `/proc`) and a local rsync of 3.2.4 or newer (`--stderr=all`).
 *
 * @returns True when the relay works with this machine's rsync.
 * @throws {MissingProgramError} When rsync is not installed.
 * @throws {PermissionError} When `--allow-run=rsync` is missing.
 */
export async function rsyncRelaySupported(): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  return (await probeRsync()).protectsArgsByDefault;
}

/**
 * Run rsync for a plan with its transport replaced by an exec channel of an
 * open connection: no second ssh handshake, no `ssh` process, the host key
 * the connection pinned, and the connection's authentication (passphrase keys
 * need no agent). rsync runs a constant relay script as its remote shell (see
 * {@linkcode buildRsyncRelayArgv}); this process moves bytes between rsync's
 * pipes and the channel, with backpressure both ways. Errors are mapped as by
 * {@linkcode runRsync}. Check {@linkcode rsyncRelaySupported} first.
 *
 * @param plan What to sync and where; `target` only names the operand and errors.
 * @param connection The open connection (an `SshConnection`).
 * @param options Progress callback, abort signal and logger.
 * @returns Files sent, files deleted and bytes of file data moved.
 * @throws {SshError} Stage `sync` when the connection is lost during the transfer or the
 *   remote host has no rsync.
 * @throws {WorkspaceError} When the receiving host's disk is full.
 * @throws {CommandFailedError} When rsync failed for another reason (exit 24 counts as
 *   success and is logged as a warning).
 */
export async function runRsyncOverConnection(
  plan: RsyncPlan,
  connection: RawExecOpener,
  options: RunRsyncOptions = {},
): Promise<SyncReport> {
  options.signal?.throwIfAborted();
  const caps = await probeRsync();
  const argv = buildRsyncRelayArgv(plan, caps) as [string, ...string[]];
  if (plan.direction === "pull") await Deno.mkdir(plan.source, { recursive: true });
  options.logger?.debug(`$ ${shellQuote(argv)} (over the open connection)`);
  const { code, remoteCode, stderr, lost } = await relay(argv, connection, options);
  if (lost !== undefined) {
    throw new SshError(
      describeTarget(plan.target),
      "sync",
      `the connection was lost during the transfer (${
        lostReason(lost)
      }); check the network and the host, then sync again`,
      { cause: lost },
    );
  }
  const status = relayExitCode(code, remoteCode);
  if (status === 0) return { method: "rsync", ...parseRsyncStats(stderr) };
  if (status === RSYNC_VANISHED) {
    options.logger?.warn("rsync: some source files vanished during the transfer");
    return { method: "rsync", ...parseRsyncStats(stderr) };
  }
  throw options.explainFailure?.(stderr) ?? rsyncFailure(plan, argv, status, stderr);
}

/** The bare reason of a failed channel: an `SshError` carries it as its cause. */
function lostReason(lost: unknown): string {
  if (lost instanceof SshError && lost.cause instanceof Error) return lost.cause.message;
  return lost instanceof Error ? lost.message : String(lost);
}

/**
 * rsync's status as it would be over ssh: rsync reports its remote shell's
 * status when the remote side could not start (127: no rsync there) or when it
 * has nothing worse itself. The relay script always exits 0, so the remote
 * status is folded in here.
 */
function relayExitCode(local: number, remote: number | undefined): number {
  if (remote === undefined || remote === 0) return local;
  if (remote === REMOTE_COMMAND_NOT_FOUND || local === 0) return remote;
  return local;
}

/** rsync's exit code, the remote one, both stderrs (rsync's first), why the channel failed. */
interface RelayOutcome {
  code: number;
  remoteCode?: number;
  stderr: string;
  lost?: unknown;
}

async function relay(
  argv: readonly [string, ...string[]],
  connection: RawExecOpener,
  options: RunRsyncOptions,
): Promise<RelayOutcome> {
  // RSYNC_OLD_ARGS in the user's environment would turn remote-path escaping off.
  const child = await spawnPiped(argv, { env: { RSYNC_OLD_ARGS: "0" } });
  let stopReason: unknown;
  let cancelKill = () => {};
  let lingerTimer: ReturnType<typeof setTimeout> | undefined;
  // The channel's own signal: the caller's abort, or rsync gone while the channel lingers.
  const channelAbort = new AbortController();
  const onAbort = () => {
    if (stopReason !== undefined) return;
    stopReason = options.signal?.reason ?? new DOMException("Aborted", "AbortError");
    channelAbort.abort(stopReason);
    cancelKill = terminate(child);
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let lingered = false;
  const exited = child.status.then((status) => {
    lingerTimer = setTimeout(() => {
      lingered = true;
      channelAbort.abort(new Error("rsync exited before the remote side"));
    }, RELAY_LINGER_MS);
    return status;
  });

  const stderrDone = collectText(child.stderr, options.onProgress);
  let remoteErr: Promise<string> = Promise.resolve("");
  const toRsync = child.stdin.getWriter();
  const fromRsync = child.stdout.getReader();
  let lost: unknown;
  let remoteCode: number | undefined;
  let upstream: Promise<void> = Promise.resolve();
  try {
    // The remote command, up to the first NUL; what follows is already data for the remote side.
    let head = new Uint8Array(0);
    let nul = -1;
    while (nul < 0) {
      const { done, value } = await fromRsync.read();
      if (done) break;
      const joined = new Uint8Array(head.length + value.length);
      joined.set(head);
      joined.set(value, head.length);
      head = joined;
      nul = head.indexOf(0);
    }
    if (nul >= 0 && stopReason === undefined) {
      const command = new TextDecoder().decode(head.subarray(0, nul));
      const rest = head.subarray(nul + 1);
      let remote: RawExecChannel | undefined;
      try {
        remote = await connection.openRawExec(command, { signal: channelAbort.signal });
      } catch (error) {
        lost = error;
      }
      if (remote !== undefined) {
        const channel = remote;
        remoteErr = collectText(channel.stderr);
        upstream = (async () => {
          const writer = channel.stdin.getWriter();
          // Once the channel is gone (its exit status says why) keep draining rsync's output:
          // an rsync blocked on a full pipe would never read the EOF that ends it.
          let sending = true;
          const send = async (chunk: Uint8Array) => {
            if (!sending) return;
            await writer.write(chunk).catch(() => sending = false);
          };
          if (rest.length > 0) await send(rest);
          for (;;) {
            const next = await fromRsync.read().catch(() => undefined);
            if (next === undefined || next.done) break;
            await send(next.value);
          }
          if (sending) await writer.close().catch(() => {});
        })();
        const downstream = channel.stdout
          .pipeTo(new WritableStream({ write: (chunk) => toRsync.write(chunk) }))
          .catch(() => {
            // rsync stopped reading (it exited): its status says why.
          });
        try {
          remoteCode = await channel.exit;
          await downstream;
        } catch (error) {
          lost = error;
        }
      }
    }
  } finally {
    // EOF on rsync's stdin ends the relay script, as ssh ends when the remote side has. On a
    // failure a write may still be pending on a pipe rsync no longer reads: drop it, do not wait.
    if (lost === undefined && stopReason === undefined) await toRsync.close().catch(() => {});
    else await toRsync.abort().catch(() => {});
  }
  const status = await exited;
  cancelKill();
  clearTimeout(lingerTimer);
  options.signal?.removeEventListener("abort", onAbort);
  await fromRsync.cancel().catch(() => {});
  await upstream;
  const stderr = (await stderrDone) + (await remoteErr);
  if (stopReason !== undefined) throw stopReason;
  const code = status.signal ? signalExitCode(status.signal) : status.code;
  // A channel closed because rsync had already gone is not a lost connection: rsync's own
  // status and stderr say what happened.
  return { code, remoteCode, stderr, lost: lingered ? undefined : lost };
}

/** Read a stream to text, passing `--info=progress2` lines to `onProgress` on the way. */
async function collectText(
  stream: ReadableStream<Uint8Array>,
  onProgress?: (progress: SyncProgress) => void,
): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  let pending = "";
  for await (const chunk of stream) {
    const piece = decoder.decode(chunk, { stream: true });
    text += piece;
    if (onProgress) {
      pending += piece;
      const lines = pending.split(/[\r\n]/);
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const progress = parseProgressLine(line);
        if (progress) onProgress(progress);
      }
    }
  }
  return text + decoder.decode();
}
