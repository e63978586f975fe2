/**
 * Errors of snapshots (`sandboxer snapshot`, `create --from-snapshot`): one
 * that cannot be taken, used or removed, and a backend that has none.
 *
 * @module
 */

import { SandboxerError } from "./codes.ts";

/**
 * A snapshot cannot be taken, used or removed: its name is taken or not a
 * valid name, it does not exist or has expired, or what is at its path is not
 * a snapshot this sandboxer made (another machine's, a symlink, no marker);
 * nothing at that path was read, copied or deleted.
 *
 * @example
 * ```ts
 * import { SnapshotError } from "@sandboxer/sandboxer/errors";
 * const error = new SnapshotError("base", "already exists; pass --replace to replace it");
 * console.log(error.code, error.message); // "SNAPSHOT" "Snapshot base already exists; …"
 * ```
 */
export class SnapshotError extends SandboxerError {
  /** The snapshot's name, as given. */
  readonly snapshot: string;
  /** The problem alone. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param snapshot The snapshot's name, as given.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options (`cause`).
   */
  constructor(snapshot: string, problem: string, options?: ErrorOptions) {
    super("SNAPSHOT", `Snapshot ${snapshot} ${problem}`, options);
    this.snapshot = snapshot;
    this.problem = problem;
  }
}

/**
 * The sandbox's backend keeps no snapshots: an extension without the
 * snapshot methods (compose-ssh, a confined third-party extension), or a VM
 * booted per sandbox.
 *
 * @example
 * ```ts
 * import { SnapshotUnsupportedError } from "@sandboxer/sandboxer/errors";
 * const error = new SnapshotUnsupportedError("ext.compose-ssh", "its workspaces live in containers");
 * console.log(error.code); // "SNAPSHOT_UNSUPPORTED"
 * ```
 */
export class SnapshotUnsupportedError extends SandboxerError {
  /** The extension's id. */
  readonly extension: string;
  /**
   * Create it.
   *
   * @param extension The extension's id.
   * @param why Why, and what to use instead.
   */
  constructor(extension: string, why: string) {
    super("SNAPSHOT_UNSUPPORTED", `Extension ${extension} does not support snapshots: ${why}`);
    this.extension = extension;
  }
}
