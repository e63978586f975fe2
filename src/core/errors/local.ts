/**
 * Errors of the local machine: files, programs that failed or are missing, permissions.
 *
 * @module
 */

import { SandboxerError } from "./codes.ts";

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
