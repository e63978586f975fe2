/**
 * Errors of moving files: rsync versions and SFTP transfers.
 *
 * @module
 */

import { SandboxerError } from "./codes.ts";

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
