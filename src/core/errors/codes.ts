/**
 * The error codes and the base class every sandboxer error extends, plus the usage error
 * and `errorText()` for anything thrown.
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
  "POOL_FULL",
  "POOL",
  "SNAPSHOT",
  "SNAPSHOT_UNSUPPORTED",
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

/**
 * The message of anything thrown: an Error's message, or the value as text.
 *
 * @param error What was thrown.
 * @returns One string to show or wrap.
 */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
