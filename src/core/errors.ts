/**
 * The error hierarchy. Every failure the SDK raises on purpose is a
 * {@linkcode SandboxerError} subclass with a stable `code`; its message says
 * what is wrong and how to fix it, in one line.
 *
 * @module
 */

/**
 * Every error code sandboxer uses, one per failure kind (docs/errors.md lists
 * them with their exit codes). A script can `switch` on it exhaustively.
 */
export const ERROR_CODES = [
  "USAGE",
  "CONFIG_INVALID",
  "PROFILE_NOT_FOUND",
  "EXTENSION",
  "INVALID_ID",
  "SANDBOX_NOT_FOUND",
  "SANDBOX_EXISTS",
  "SANDBOX_STATE",
  "SANDBOX_IN_USE",
  "OWNERSHIP_LOST",
  "STATE_DIR",
  "LOCAL_FILE",
  "JOURNAL",
  "COMMAND_FAILED",
  "MISSING_PROGRAM",
  "PERMISSION",
  "SSH",
  "HOST_KEY",
  "TIMEOUT",
  "WORKSPACE",
  "WORKSPACE_GONE",
  "SETUP_FAILED",
  "COMPOSE",
  "SERVICE_NOT_READY",
  "RSYNC_VERSION",
  "RSYNC_TOO_OLD",
  "SFTP_SYNC",
  "PORT",
  "IMAGE",
  "IMAGE_BUILD",
  "VM",
  "BOOT_TIMEOUT",
] as const;

/** The `code` of a {@linkcode SandboxerError}: one of {@linkcode ERROR_CODES}. */
export type ErrorCode = typeof ERROR_CODES[number];

/**
 * Whether a value is one of sandboxer's error codes (for codes that crossed a
 * process or worker boundary as text).
 *
 * @param value Anything.
 * @returns `true` for a member of {@linkcode ERROR_CODES}.
 */
export function isErrorCode(value: unknown): value is ErrorCode {
  return (ERROR_CODES as readonly unknown[]).includes(value);
}

/**
 * Base class of every error sandboxer throws on purpose.
 *
 * @example Telling our errors from bugs
 * ```ts
 * import { SandboxerError, SandboxNotFoundError } from "@sandboxer/sandboxer/errors";
 * const error: unknown = new SandboxNotFoundError("demo-1");
 * console.log(error instanceof SandboxerError ? error.code : "bug"); // "SANDBOX_NOT_FOUND"
 * ```
 */
export class SandboxerError extends Error {
  /** Stable, machine-readable identifier such as `"CONFIG_INVALID"`. */
  readonly code: ErrorCode;
  /**
   * Create an error with a stable code.
   *
   * @param code Stable identifier.
   * @param message One line: what is wrong, then how to fix it.
   * @param options Standard error options (`cause`).
   */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The command line was used wrongly (unknown flag, missing argument). The
 * CLI exits with code 2 for it.
 *
 * @example
 * ```ts
 * import { UsageError } from "@sandboxer/sandboxer/errors";
 * const error = new UsageError("Cannot parse --set: expected key=value");
 * console.log(error.code); // "USAGE"
 * ```
 */
export class UsageError extends SandboxerError {
  /**
   * Create it.
   *
   * @param message What was wrong with the command line and how to fix it.
   * @param options Standard error options.
   */
  constructor(message: string, options?: ErrorOptions) {
    super("USAGE", message, options);
  }
}

/** Where in a configuration file (or command-line override) a value came from. */
export interface ConfigLocation {
  /** File path, or `"--set"` for a command-line override. */
  file: string;
  /** 1-based line, when known. */
  line?: number;
  /** 1-based column, when known. */
  column?: number;
  /** Dotted path of the field, such as `target.port`. */
  field?: string;
}

/**
 * A profile, registration or other YAML file is invalid. The message starts
 * with `file:line:column` and names the field.
 *
 * @example
 * ```ts
 * import { ConfigError } from "@sandboxer/sandboxer/errors";
 * const error = new ConfigError({ file: "p.yaml", line: 3, column: 9, field: "target.port" },
 *   "must be an integer from 1 to 65535 (got \"abc\")");
 * console.log(error.message); // p.yaml:3:9: target.port: must be an integer from 1 to 65535 (got "abc")
 * ```
 */
export class ConfigError extends SandboxerError {
  /** Where the bad value is. */
  readonly location: ConfigLocation;
  /** The problem alone, without the location prefix. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param location File, line, column and field of the bad value.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options.
   */
  constructor(location: ConfigLocation, problem: string, options?: ErrorOptions) {
    super("CONFIG_INVALID", `${formatLocation(location)}: ${problem}`, options);
    this.location = location;
    this.problem = problem;
  }
}

/** Render a location as `file:line:col: field`. */
export function formatLocation(location: ConfigLocation): string {
  let text = location.file;
  if (location.line !== undefined) {
    text += `:${location.line}`;
    if (location.column !== undefined) text += `:${location.column}`;
  }
  if (location.field) text += `: ${location.field}`;
  return text;
}

/**
 * No profile of that name is on the search path.
 *
 * @example
 * ```ts
 * import { ProfileNotFoundError } from "@sandboxer/sandboxer/errors";
 * console.log(new ProfileNotFoundError("dev", ["profiles"]).code); // "PROFILE_NOT_FOUND"
 * ```
 */
export class ProfileNotFoundError extends SandboxerError {
  /** The name or path that was asked for. */
  readonly profile: string;
  /** The directories searched. */
  readonly searched: readonly string[];
  /**
   * Create it.
   *
   * @param name The name or path that was asked for.
   * @param searched The directories searched.
   */
  constructor(name: string, searched: readonly string[]) {
    super(
      "PROFILE_NOT_FOUND",
      `Cannot find profile "${name}": searched ${
        searched.length ? searched.join(", ") : "no directories"
      }; pass a file path or add its directory to $SANDBOXER_PROFILE_PATH`,
    );
    this.profile = name;
    this.searched = searched;
  }
}

/**
 * No registered extension has that id, or its module could not be loaded.
 *
 * @example
 * ```ts
 * import { ExtensionError } from "@sandboxer/sandboxer/errors";
 * console.log(new ExtensionError("ext.nope", "is not registered").message);
 * ```
 */
export class ExtensionError extends SandboxerError {
  /** The extension id concerned. */
  readonly extensionId: string;
  /** The problem alone, without the `Extension "<id>"` prefix. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param extensionId The extension id.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options.
   */
  constructor(extensionId: string, problem: string, options?: ErrorOptions) {
    super("EXTENSION", `Extension "${extensionId}" ${problem}`, options);
    this.extensionId = extensionId;
    this.problem = problem;
  }
}

/**
 * A sandbox id is not of the form `[a-z0-9][a-z0-9-]{0,62}`.
 *
 * @example
 * ```ts
 * import { InvalidIdError } from "@sandboxer/sandboxer/errors";
 * console.log(new InvalidIdError("../x").code); // "INVALID_ID"
 * ```
 */
export class InvalidIdError extends SandboxerError {
  /** The refused id. */
  readonly id: string;
  /**
   * Create it.
   *
   * @param id The refused id.
   */
  constructor(id: string) {
    super(
      "INVALID_ID",
      `Cannot use sandbox id ${
        JSON.stringify(id)
      }: ids are 1-63 characters of a-z, 0-9 and "-", starting with a letter or digit`,
    );
    this.id = id;
  }
}

/**
 * No sandbox with that id is in the journal.
 *
 * @example
 * ```ts
 * import { SandboxNotFoundError } from "@sandboxer/sandboxer/errors";
 * console.log(new SandboxNotFoundError("x").message);
 * ```
 */
export class SandboxNotFoundError extends SandboxerError {
  /** The id that was looked up. */
  readonly id: string;
  /**
   * Create it.
   *
   * @param id The id that was looked up.
   */
  constructor(id: string) {
    super(
      "SANDBOX_NOT_FOUND",
      `Cannot find sandbox "${id}": run "sandboxer list" to see the known sandboxes`,
    );
    this.id = id;
  }
}

/**
 * A sandbox with that id already exists in the journal.
 *
 * @example
 * ```ts
 * import { SandboxExistsError } from "@sandboxer/sandboxer/errors";
 * console.log(new SandboxExistsError("x").code); // "SANDBOX_EXISTS"
 * ```
 */
export class SandboxExistsError extends SandboxerError {
  /** The id that is taken. */
  readonly id: string;
  /**
   * Create it.
   *
   * @param id The id that is taken.
   */
  constructor(id: string) {
    super(
      "SANDBOX_EXISTS",
      `Cannot create sandbox "${id}": that id is already in use; pick another --name or destroy it first`,
    );
    this.id = id;
  }
}

/**
 * The sandbox is in a state that does not allow the operation (for example
 * `exec` on a destroyed sandbox, or `destroy` while another process is still
 * creating it).
 *
 * @example
 * ```ts
 * import { SandboxStateError } from "@sandboxer/sandboxer/errors";
 * console.log(new SandboxStateError("x", "is destroyed").message);
 * ```
 */
export class SandboxStateError extends SandboxerError {
  /** The sandbox id. */
  readonly id: string;
  /** The problem alone, without the `Sandbox "<id>"` prefix. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param id The sandbox id.
   * @param problem What state it is in and what to do.
   */
  constructor(id: string, problem: string) {
    super("SANDBOX_STATE", `Sandbox "${id}" ${problem}`);
    this.id = id;
    this.problem = problem;
  }
}

/**
 * Another process is working on or in the sandbox: an `exec`, `sync` or
 * artifact copy runs in it, or a live `create`, `destroy` or `run` owns it.
 * `destroy` refuses it unless given `--force` (or waits with `--wait`).
 *
 * @example
 * ```ts
 * import { SandboxInUseError } from "@sandboxer/sandboxer/errors";
 * const error = new SandboxInUseError("x", "is in use by exec (process 42 on h)");
 * console.log(error.code); // "SANDBOX_IN_USE"
 * ```
 */
export class SandboxInUseError extends SandboxerError {
  /** The sandbox id. */
  readonly id: string;
  /** Who is at work on or in it, as a phrase after the id (`is in use by exec (…)`). */
  readonly busy: string;
  /**
   * Create it.
   *
   * @param id The sandbox id.
   * @param busy Who is at work on or in it: `is in use by exec (process 42 on h)`.
   * @param fix What to do about it.
   */
  constructor(
    id: string,
    busy: string,
    fix = "wait for it (destroy --wait), or pass --force",
  ) {
    super("SANDBOX_IN_USE", `Sandbox "${id}" ${busy}; ${fix}`);
    this.id = id;
    this.busy = busy;
  }
}

/**
 * This process no longer owns the sandbox's record: while it was stopped or
 * slow, `gc` or `destroy --force` took the sandbox over (and maybe a new
 * sandbox reused the id). The process changes and removes nothing more.
 *
 * @example
 * ```ts
 * import { OwnershipLostError } from "@sandboxer/sandboxer/errors";
 * console.log(new OwnershipLostError("x", "was taken over").code); // "OWNERSHIP_LOST"
 * ```
 */
export class OwnershipLostError extends SandboxerError {
  /** The problem alone, without the `Sandbox "<id>"` prefix. */
  readonly problem: string;
  /** The sandbox id. */
  readonly id: string;
  /**
   * Create it.
   *
   * @param id The sandbox id.
   * @param problem Who took it over, and what to do.
   * @param options Standard error options.
   */
  constructor(id: string, problem: string, options?: ErrorOptions) {
    super("OWNERSHIP_LOST", `Sandbox "${id}" ${problem}`, options);
    this.problem = problem;
    this.id = id;
  }
}

/**
 * The state directory cannot be used: it is a file, its disk is full, it is
 * read-only.
 *
 * @example
 * ```ts
 * import { StateDirError } from "@sandboxer/sandboxer/errors";
 * console.log(new StateDirError("/s", "is a file").message); // State directory /s is a file
 * ```
 */
export class StateDirError extends SandboxerError {
  /** The problem alone. */
  readonly problem: string;
  /** The state directory. */
  readonly path: string;
  /**
   * Create it.
   *
   * @param path The state directory.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options.
   */
  constructor(path: string, problem: string, options?: ErrorOptions) {
    super("STATE_DIR", `State directory ${path} ${problem}`, options);
    this.problem = problem;
    this.path = path;
  }
}

/**
 * A local file or directory sandboxer was pointed at cannot be used: a
 * directory where a file belongs (a known_hosts or key path), a file where a
 * directory belongs, a full or read-only disk.
 *
 * @example
 * ```ts
 * import { LocalFileError } from "@sandboxer/sandboxer/errors";
 * console.log(new LocalFileError("/k", "it is a directory, not a file").message);
 * ```
 */
export class LocalFileError extends SandboxerError {
  /** The problem alone. */
  readonly problem: string;
  /** The path concerned. */
  readonly path: string;
  /**
   * Create it.
   *
   * @param path The path concerned.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options.
   */
  constructor(path: string, problem: string, options?: ErrorOptions) {
    super("LOCAL_FILE", `Cannot use ${path}: ${problem}`, options);
    this.problem = problem;
    this.path = path;
  }
}

/** What the operating system's refusal means, and its fix, by errno name. */
const OS_PROBLEMS: Readonly<Record<string, string>> = {
  EISDIR: "it is a directory, not a file; point the setting that names it at a file",
  ENOTDIR:
    "a part of that path is a file, not a directory; point the setting that names it at a directory",
  ENOSPC: "the disk is full (no space left on device); free some space and try again",
  EDQUOT: "the disk quota is exceeded; free some space and try again",
  EROFS: "the file system is read-only; use a writable location",
  ENAMETOOLONG: "the path is too long; use a shorter one",
  ELOOP: "it is a loop of symbolic links; fix the links",
};

/**
 * Turn the operating system's refusal of a local file operation (a directory
 * given for a file, a full disk) into a {@linkcode LocalFileError}: these are
 * problems of the machine or its settings, not bugs.
 *
 * @param error What was caught.
 * @returns The typed error, or undefined when `error` is not such a refusal.
 */
export function localFileErrorFrom(error: unknown): LocalFileError | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string" || !Object.hasOwn(OS_PROBLEMS, code)) return undefined;
  // Deno's message ends with the operation and the path: "…(os error 21): readfile '/x'".
  const path = /: \w+ '(.*)'(?: -> '.*')?$/.exec(error.message)?.[1] ?? "a local path";
  return new LocalFileError(path, OS_PROBLEMS[code], { cause: error });
}

/**
 * The state journal is unreadable or a record in it is corrupt.
 *
 * @example
 * ```ts
 * import { JournalError } from "@sandboxer/sandboxer/errors";
 * console.log(new JournalError("/tmp/x.json", "is not valid JSON").code); // "JOURNAL"
 * ```
 */
export class JournalError extends SandboxerError {
  /** The journal file concerned. */
  readonly path: string;
  /** The problem alone. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param path The journal file concerned.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options.
   */
  constructor(path: string, problem: string, options?: ErrorOptions) {
    super("JOURNAL", `Journal file ${path} ${problem}`, options);
    this.path = path;
    this.problem = problem;
  }
}

/**
 * A local program exited unsuccessfully.
 *
 * @example
 * ```ts
 * import { CommandFailedError } from "@sandboxer/sandboxer/errors";
 * const error = new CommandFailedError(["rsync", "-a"], 23, "some files vanished");
 * console.log(error.exitCode); // 23
 * ```
 */
export class CommandFailedError extends SandboxerError {
  /** The argv that was run. */
  readonly argv: readonly string[];
  /** Its exit code (128+N for a signal). */
  readonly exitCode: number;
  /** The last lines of its stderr. */
  readonly stderrTail: string;
  /**
   * Create it.
   *
   * @param argv The argv that was run.
   * @param exitCode Its exit code.
   * @param stderrTail The last lines of its stderr.
   */
  constructor(argv: readonly string[], exitCode: number, stderrTail: string) {
    const tail = stderrTail.trim();
    super(
      "COMMAND_FAILED",
      `Command "${argv[0]}" failed with exit code ${exitCode}${
        tail ? `: ${tail.split("\n").slice(-3).join(" | ")}` : ""
      }`,
    );
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderrTail = stderrTail;
  }
}

/**
 * A local program that sandboxer needs is not installed.
 *
 * @example
 * ```ts
 * import { MissingProgramError } from "@sandboxer/sandboxer/errors";
 * console.log(new MissingProgramError("rsync").message);
 * ```
 */
export class MissingProgramError extends SandboxerError {
  /** The program name. */
  readonly program: string;
  /**
   * Create it.
   *
   * @param program The program that was not found.
   * @param options Standard error options, and optionally what needs the program (`needed`,
   *   e.g. "ext.compose-ssh needs it to start compose projects") and the Debian packages that
   *   provide it (`packages`; by default looked up for the programs sandboxer runs).
   */
  constructor(
    program: string,
    options?: ErrorOptions & { needed?: string; packages?: string },
  ) {
    const packages = options?.packages ?? DEBIAN_PACKAGES[program] ?? program;
    super(
      "MISSING_PROGRAM",
      `Cannot run "${program}": it is not installed or not on PATH${
        options?.needed ? ` (${options.needed})` : ""
      }; install it (e.g. apt-get install ${packages})`,
      options,
    );
    this.program = program;
  }
}

/** The Debian packages of the programs sandboxer runs, where the name differs. */
const DEBIAN_PACKAGES: Readonly<Record<string, string>> = {
  ssh: "openssh-client",
  "ssh-keygen": "openssh-client",
  docker: "docker.io",
};

/**
 * Deno refused an operation because a permission flag is missing.
 *
 * @example
 * ```ts
 * import { PermissionError } from "@sandboxer/sandboxer/errors";
 * const error = new PermissionError("read", "/etc/x", "--allow-read=/etc/x");
 * console.log(error.message);
 * ```
 */
export class PermissionError extends SandboxerError {
  /** The resource refused (path, host, program, variable). */
  readonly what: string;
  /** The permission name: read, write, net, run, env, … */
  readonly permission: string;
  /** The flag that would grant it. */
  readonly flag: string;
  /**
   * Create it.
   *
   * @param permission The permission name.
   * @param what The resource (path, host, program, variable).
   * @param flag The flag that grants it.
   * @param options Standard error options.
   */
  constructor(permission: string, what: string, flag: string, options?: ErrorOptions) {
    super(
      "PERMISSION",
      `Missing permission: ${permission} access to ${what}; run again with ${flag}`,
      options,
    );
    this.what = what;
    this.permission = permission;
    this.flag = flag;
  }
}

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

/**
 * A remote workspace operation was refused or failed (bad root, workspace
 * already there, a path that would leave the workspace).
 *
 * @example
 * ```ts
 * import { WorkspaceError } from "@sandboxer/sandboxer/errors";
 * console.log(new WorkspaceError("/", "is the filesystem root").code); // "WORKSPACE"
 * ```
 */
export class WorkspaceError extends SandboxerError {
  /** The workspace path concerned. */
  readonly path: string;
  /** The problem alone. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param path The workspace path concerned.
   * @param problem What is wrong and how to fix it.
   */
  constructor(path: string, problem: string) {
    super("WORKSPACE", `Workspace ${path} ${problem}`);
    this.path = path;
    this.problem = problem;
  }
}

/**
 * The sandbox's workspace is no longer on the host: it was removed there (or
 * while the command ran), or its path now holds another sandbox of the same
 * name. Nothing was written: sandboxer never recreates a workspace.
 *
 * @example
 * ```ts
 * import { WorkspaceGoneError } from "@sandboxer/sandboxer/errors";
 * console.log(new WorkspaceGoneError("/build/sbx-1", "is gone").code); // "WORKSPACE_GONE"
 * ```
 */
export class WorkspaceGoneError extends SandboxerError {
  /** The workspace path concerned. */
  readonly path: string;
  /** The problem alone. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param path The workspace path concerned.
   * @param problem What happened and how to go on.
   * @param options Standard error options (`cause`).
   */
  constructor(path: string, problem: string, options?: ErrorOptions) {
    super("WORKSPACE_GONE", `Workspace ${path} ${problem}`, options);
    this.path = path;
    this.problem = problem;
  }
}

/**
 * A profile `setup` command exited non-zero; the sandbox is left `failed`
 * with its handle so `destroy` can clean it.
 *
 * @example
 * ```ts
 * import { SetupFailedError } from "@sandboxer/sandboxer/errors";
 * console.log(new SetupFailedError("ghc --version", 127).exitCode); // 127
 * ```
 */
export class SetupFailedError extends SandboxerError {
  /** The setup command that failed. */
  readonly command: string;
  /** Text from its output that explains it (may be empty). */
  readonly hint: string;
  /** Exit code of the failed command. */
  readonly exitCode: number;
  /**
   * Create it.
   *
   * @param command The setup command.
   * @param exitCode Its exit code.
   * @param hint Extra text from the command's output that explains it.
   */
  constructor(command: string, exitCode: number, hint = "") {
    super(
      "SETUP_FAILED",
      `Setup command ${JSON.stringify(command)} failed with exit code ${exitCode}${
        hint ? `: ${hint}` : ""
      }; fix the profile's setup or the host, then destroy this sandbox and create a new one`,
    );
    this.command = command;
    this.hint = hint;
    this.exitCode = exitCode;
  }
}

/**
 * A `docker compose` (or `docker-compose`) or `docker` command failed: a
 * broken compose file, an image that cannot be pulled, an engine that does
 * not answer. The message carries compose's own last lines.
 *
 * @example
 * ```ts
 * import { ComposeError } from "@sandboxer/sandboxer/errors";
 * const error = new ComposeError("sbx-a1", "could not start", ["Unsupported config option"]);
 * console.log(error.message); // Compose project sbx-a1 could not start: Unsupported config option
 * ```
 */
export class ComposeError extends SandboxerError {
  /** The compose project name (`sbx-<id>`). */
  readonly project: string;
  /** The last lines compose or docker printed, oldest first. */
  readonly output: readonly string[];
  /**
   * Create it.
   *
   * @param project The compose project name.
   * @param problem What failed and how to fix it.
   * @param output The command's last lines, appended to the message after ": ".
   * @param options Standard error options.
   */
  constructor(
    project: string,
    problem: string,
    output: readonly string[] = [],
    options?: ErrorOptions,
  ) {
    super(
      "COMPOSE",
      `Compose project ${project} ${problem}${output.length ? `: ${output.join(" | ")}` : ""}`,
      options,
    );
    this.project = project;
    this.output = output;
  }
}

/**
 * A compose service did not become reachable over SSH: it stopped, or did not
 * answer within `ready_timeout`. The message ends with the service's last log
 * lines.
 *
 * @example
 * ```ts
 * import { ServiceNotReadyError } from "@sandboxer/sandboxer/errors";
 * const error = new ServiceNotReadyError("sbx-a1", "sshd", "did not answer", ["booting"]);
 * console.log(error.logTail); // ["booting"]
 * ```
 */
export class ServiceNotReadyError extends SandboxerError {
  /** The compose project name (`sbx-<id>`). */
  readonly project: string;
  /** The service that was waited for. */
  readonly service: string;
  /** The service's last log lines, oldest first. */
  readonly logTail: readonly string[];
  /**
   * Create it.
   *
   * @param project The compose project name.
   * @param service The service name.
   * @param problem What happened and how to fix it.
   * @param logTail The service's last log lines.
   * @param options Standard error options.
   */
  constructor(
    project: string,
    service: string,
    problem: string,
    logTail: readonly string[],
    options?: ErrorOptions,
  ) {
    super(
      "SERVICE_NOT_READY",
      `Service "${service}" of compose project ${project} ${problem}; ${
        logTail.length
          ? `its last log lines: ${logTail.join(" | ")}`
          : "it logged nothing (see docker logs)"
      }`,
      options,
    );
    this.project = project;
    this.service = service;
    this.logTail = logTail;
  }
}

/**
 * The local `rsync --version` printed nothing sandboxer can read a version
 * from.
 *
 * @example
 * ```ts
 * import { RsyncVersionError } from "@sandboxer/sandboxer/errors";
 * console.log(new RsyncVersionError("openrsync: protocol 29").code); // "RSYNC_VERSION"
 * ```
 */
export class RsyncVersionError extends SandboxerError {
  /** The start of what `rsync --version` printed. */
  readonly output: string;
  /**
   * Create it.
   *
   * @param output What `rsync --version` printed (the first 80 characters are kept).
   */
  constructor(output: string) {
    const shown = output.slice(0, 80);
    super(
      "RSYNC_VERSION",
      `Cannot read the rsync version from "rsync --version" (got ${
        JSON.stringify(shown)
      }); install rsync 3.x`,
    );
    this.output = shown;
  }
}

/**
 * The local port registry cannot do what was asked: a bad
 * `SANDBOXER_PORT_RANGE`, every port of the range leased or taken, a name
 * that is not registered, a port leased to something else.
 *
 * @example
 * ```ts
 * import { PortError } from "@sandboxer/sandboxer/errors";
 * console.log(new PortError("haskell-1", "is not registered").code); // "PORT"
 * ```
 */
export class PortError extends SandboxerError {
  /**
   * Create it.
   *
   * @param subject The port, range or name concerned.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options (`cause`).
   */
  constructor(subject: string, problem: string, options?: ErrorOptions) {
    super("PORT", `Port registry: ${subject} ${problem}`, options);
  }
}

/**
 * A VM image cannot be used: not built yet for these inputs, a manifest or
 * base image that is missing or unreadable, a template that does not exist.
 *
 * @example
 * ```ts
 * import { ImageError } from "@sandboxer/sandboxer/errors";
 * console.log(new ImageError("profile.x", "is not built").code); // "IMAGE"
 * ```
 */
export class ImageError extends SandboxerError {
  /**
   * Create it.
   *
   * @param image The image (profile id, key or path) concerned.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options (`cause`).
   */
  constructor(image: string, problem: string, options?: ErrorOptions) {
    super("IMAGE", `Image ${image} ${problem}`, options);
  }
}

/**
 * `packer build` failed. The message is one line (packer's last error line)
 * and the path of the full log.
 *
 * @example
 * ```ts
 * import { ImageBuildError } from "@sandboxer/sandboxer/errors";
 * const error = new ImageBuildError("t.json", "Build 'qemu' errored", "/s/images/build.log");
 * console.log(error.logFile); // "/s/images/build.log"
 * ```
 */
export class ImageBuildError extends SandboxerError {
  /** Where packer's whole output was written. */
  readonly logFile: string;
  /**
   * Create it.
   *
   * @param template The Packer template.
   * @param lastError Packer's last error line.
   * @param logFile Where packer's whole output was written.
   * @param options Standard error options (`cause`).
   */
  constructor(template: string, lastError: string, logFile: string, options?: ErrorOptions) {
    super(
      "IMAGE_BUILD",
      `Packer could not build ${template}: ${lastError}; see the full log in ${logFile}`,
      options,
    );
    this.logFile = logFile;
  }
}

/**
 * The local rsync is older than what a sync path needs: 3.0 for any sync,
 * 3.2.4 to run over sandboxer's own SSH connection.
 *
 * @example
 * ```ts
 * import { RsyncTooOldError } from "@sandboxer/sandboxer/errors";
 * const error = new RsyncTooOldError("2.6.9", "3.0.0", "Cannot sync with rsync 2.6.9: …");
 * console.log(error.required); // "3.0.0"
 * ```
 */
export class RsyncTooOldError extends SandboxerError {
  /** The version found. */
  readonly version: string;
  /** The oldest version that works for this. */
  readonly required: string;
  /**
   * Create it.
   *
   * @param version The version found.
   * @param required The oldest version that works.
   * @param message One line: what could not be done, and how to fix it.
   */
  constructor(version: string, required: string, message: string) {
    super("RSYNC_TOO_OLD", message);
    this.version = version;
    this.required = required;
  }
}

/**
 * A throwaway VM could not be started, reached or stopped: qemu missing or
 * refusing its arguments, qemu exiting during boot, a QMP socket that does not
 * answer, a state file that is not sandboxer's.
 *
 * @example
 * ```ts
 * import { VmError } from "@sandboxer/sandboxer/errors";
 * console.log(new VmError("a1", "exited during boot").message);
 * ```
 */
export class VmError extends SandboxerError {
  /** The sandbox id whose VM it is. */
  readonly sandbox: string;
  /**
   * Create it.
   *
   * @param sandbox The sandbox id whose VM it is.
   * @param problem What happened and how to fix it.
   * @param options Standard error options (`cause`).
   */
  constructor(sandbox: string, problem: string, options?: ErrorOptions) {
    super("VM", `VM of sandbox ${sandbox} ${problem}`, options);
    this.sandbox = sandbox;
  }
}

/**
 * The SFTP fallback sync refused a path: not valid UTF-8, not a plain
 * relative path, or something in the way that is not sandboxer's to remove.
 *
 * @example
 * ```ts
 * import { SftpSyncError } from "@sandboxer/sandboxer/errors";
 * const error = new SftpSyncError("a/../b", "is not a plain relative path");
 * console.log(error.message); // Cannot sync "a/../b" over SFTP: it is not a plain relative path
 * ```
 */
export class SftpSyncError extends SandboxerError {
  /** The path concerned, as the sync saw it. */
  readonly path: string;
  /** The problem alone. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param path The path concerned.
   * @param problem What is wrong with it and how to fix it.
   * @param options Standard error options.
   */
  constructor(path: string, problem: string, options?: ErrorOptions) {
    super("SFTP_SYNC", `Cannot sync ${JSON.stringify(path)} over SFTP: it ${problem}`, options);
    this.path = path;
    this.problem = problem;
  }
}

/**
 * A VM did not answer SSH within the profile's boot deadline (`vm.boot_timeout`).
 * The VM is stopped; the message ends with the last console lines.
 *
 * @example
 * ```ts
 * import { BootTimeoutError } from "@sandboxer/sandboxer/errors";
 * const error = new BootTimeoutError("a1", 120, ["Booting the kernel."]);
 * console.log(error.consoleTail); // ["Booting the kernel."]
 * ```
 */
export class BootTimeoutError extends SandboxerError {
  /** The deadline in seconds. */
  readonly timeoutSeconds: number;
  /** The VM console's last lines, oldest first. */
  readonly consoleTail: readonly string[];
  /**
   * Create it.
   *
   * @param sandbox The sandbox id.
   * @param timeoutSeconds The deadline in seconds.
   * @param consoleTail The VM console's last lines.
   * @param options Standard error options (`cause`).
   */
  constructor(
    sandbox: string,
    timeoutSeconds: number,
    consoleTail: readonly string[],
    options?: ErrorOptions,
  ) {
    super(
      "BOOT_TIMEOUT",
      `VM of sandbox ${sandbox} did not answer SSH within ${timeoutSeconds}s of booting (under software emulation a boot takes far longer than with kvm); raise vm.boot_timeout, or check the image boots (its console's last lines: ${
        consoleTail.length ? consoleTail.join(" | ") : "none"
      })`,
      options,
    );
    this.timeoutSeconds = timeoutSeconds;
    this.consoleTail = consoleTail;
  }
}

/**
 * The message of anything thrown: an Error's message, or the value as text.
 *
 * @param error What was thrown.
 * @returns One string to show or wrap.
 */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
