/**
 * Errors of the SSH connection: a failed step, a refused host key, a time limit.
 *
 * @module
 */

import { SandboxerError } from "./codes.ts";

/** The step of an SSH operation that failed, see {@linkcode SshError}. */
export type SshStage = "connect" | "authenticate" | "exec" | "sftp" | "sync";

/** Options for {@linkcode SshError}: the fix, apart from the problem. */
export interface SshErrorOptions extends ErrorOptions {
  /** What to do about it, appended to the message after "; ". */
  fix?: string;
}

/**
 * An SSH connection could not be made or was lost. Its parts are fields, so
 * code that reacts to it (compose's readiness diagnosis) never parses the
 * message.
 *
 * @example
 * ```ts
 * import { SshError } from "@sandboxer/sandboxer/errors";
 * const error = new SshError("u@h:22", "connect", "connection refused", {
 *   fix: "check target.port",
 * });
 * console.log(error.message); // Cannot connect u@h:22: connection refused; check target.port
 * console.log(error.problem); // connection refused
 * ```
 */
export class SshError extends SandboxerError {
  /** `user@host:port` of the target. */
  readonly target: string;
  /** The stage that failed. */
  readonly stage: SshStage;
  /** What happened, without the target and without the fix ("connection refused"). */
  readonly problem: string;
  /** What to do about it, when known. */
  readonly fix: string | undefined;
  /**
   * Create it.
   *
   * @param target `user@host:port`.
   * @param stage The stage that failed.
   * @param problem What happened.
   * @param options The fix, and standard error options.
   */
  constructor(target: string, stage: SshStage, problem: string, options?: SshErrorOptions) {
    const fix = options?.fix;
    super("SSH", `Cannot ${stage} ${target}: ${problem}${fix ? `; ${fix}` : ""}`, options);
    this.target = target;
    this.stage = stage;
    this.problem = problem;
    this.fix = fix;
  }
}

/** Which host-key check refused a server, see {@linkcode HostKeyError}. */
export type HostKeyProblem = "unknown" | "mismatch" | "revoked" | "pinned";

/** Details of a {@linkcode HostKeyError} beyond the host and the offered key. */
export interface HostKeyErrorDetails {
  /** `revoked`: the known_hosts line of the `@revoked` entry. */
  line?: number;
  /** `pinned`: the fingerprint pinned when the sandbox was created. */
  pinned?: string;
  /** `pinned`: known_hosts refuses the offered key too (`unknown` or `mismatch`). */
  knownHostsToo?: "unknown" | "mismatch";
  /** `pinned`: the command that re-pins, e.g. `sandboxer --accept-host-key SHA256:… destroy ID`. */
  repin?: string;
}

/**
 * The server's host key was refused before authentication: it is not in
 * known_hosts (`unknown`), known_hosts holds other keys for the host
 * (`mismatch`), an `@revoked` line names it (`revoked`), or it is not the key
 * pinned when the sandbox was created (`pinned`).
 *
 * @example
 * ```ts
 * import { HostKeyError } from "@sandboxer/sandboxer/errors";
 * const error = new HostKeyError("[h]:22", "SHA256:abc", "unknown", "~/.ssh/known_hosts");
 * console.log(error.fingerprint); // "SHA256:abc"
 * ```
 */
export class HostKeyError extends SandboxerError {
  /** The host as written in known_hosts (`host` or `[host]:port`). */
  readonly host: string;
  /** SHA256 fingerprint of the key the server offered. */
  readonly fingerprint: string;
  /** Which check refused the key. */
  readonly reason: HostKeyProblem;
  /** The fingerprint pinned at create, for `pinned`. */
  readonly pinned?: string;
  /** For `pinned`: known_hosts refuses the offered key too. */
  readonly knownHostsToo?: "unknown" | "mismatch";
  /**
   * Create it.
   *
   * @param host Host as written in known_hosts.
   * @param fingerprint Offered key's fingerprint.
   * @param reason Which check refused the key.
   * @param knownHosts The known_hosts file consulted.
   * @param details The revocation's line, or the pin and how to re-pin.
   */
  constructor(
    host: string,
    fingerprint: string,
    reason: HostKeyProblem,
    knownHosts: string,
    details: HostKeyErrorDetails = {},
  ) {
    super("HOST_KEY", hostKeyMessage(host, fingerprint, reason, knownHosts, details));
    this.host = host;
    this.fingerprint = fingerprint;
    this.reason = reason;
    if (details.pinned !== undefined) this.pinned = details.pinned;
    if (details.knownHostsToo !== undefined) this.knownHostsToo = details.knownHostsToo;
  }
}

function hostKeyMessage(
  host: string,
  fingerprint: string,
  reason: HostKeyProblem,
  knownHosts: string,
  details: HostKeyErrorDetails,
): string {
  const file = shellWord(knownHosts);
  const removeOld = `ssh-keygen -R ${shellWord(host)} -f ${file}`;
  // "[h]:p" is how known_hosts names a host on a port other than 22.
  const bracketed = /^\[(.+)\]:(\d+)$/.exec(host);
  const addNew = bracketed
    ? `ssh-keyscan -p ${bracketed[2]} ${shellWord(bracketed[1])} >> ${file}`
    : `ssh-keyscan ${shellWord(host)} >> ${file}`;
  switch (reason) {
    case "unknown":
      return `Host key of ${host} is not in ${knownHosts} (offered ${fingerprint}); verify the fingerprint, then add it with "ssh-keyscan" or rerun with --accept-new-host-key`;
    case "mismatch":
      return `Host key of ${host} does not match ${knownHosts} (offered ${fingerprint}): the server changed or someone is intercepting; if the change is expected remove the old entry with "${removeOld}"`;
    case "revoked":
      return `Host key ${fingerprint} of ${host} is marked @revoked in ${knownHosts}${
        details.line === undefined ? "" : ` (line ${details.line})`
      }: sandboxer never connects to a server with a revoked key; have the host's administrator install a new host key and add that to ${knownHosts}, or delete the @revoked line if it is a mistake`;
    case "pinned": {
      const pinned = details.pinned ?? "another key";
      const also = details.knownHostsToo === undefined
        ? ""
        : details.knownHostsToo === "unknown"
        ? `, add it to ${knownHosts} ("${addNew}")`
        : `, replace the old key in ${knownHosts} ("${removeOld}", then "${addNew}")`;
      const repin = details.repin ??
        `run the command again with --accept-host-key ${fingerprint} right after "sandboxer"`;
      return `Host key of ${host} is not the one pinned when the sandbox was created (pinned ${pinned}, offered ${fingerprint}); nothing was sent: the host was rebuilt or re-keyed, or someone is intercepting; if the change is expected, confirm ${fingerprint} with the host's administrator${also}, then ${repin}`;
    }
  }
}

/** A word for a POSIX shell: as is when plainly safe, else in single quotes. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`;
}

/**
 * An operation exceeded its time limit.
 *
 * @example
 * ```ts
 * import { TimeoutError } from "@sandboxer/sandboxer/errors";
 * console.log(new TimeoutError("connect to u@h:22", 10_000).message);
 * ```
 */
export class TimeoutError extends SandboxerError {
  /** What timed out (`connect to u@h:22`). */
  readonly what: string;
  /** The limit in milliseconds. */
  readonly timeoutMs: number;
  /**
   * Create it.
   *
   * @param what What timed out.
   * @param timeoutMs The limit in milliseconds.
   */
  constructor(what: string, timeoutMs: number) {
    super(
      "TIMEOUT",
      `Cannot ${what}: timed out after ${
        timeoutMs / 1000
      }s; check the host is up and reachable, or raise the timeout`,
    );
    this.what = what;
    this.timeoutMs = timeoutMs;
  }
}
