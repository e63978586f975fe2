/**
 * Errors of a pool of build hosts (`targets:`): every slot taken, or the
 * leases kept on a host cannot be used.
 *
 * @module
 */

import { SandboxerError } from "./codes.ts";

/**
 * Every slot of every reachable host of a pool is taken: at once without
 * `create --wait`, or still after waiting that long.
 *
 * @example
 * ```ts
 * import { PoolFullError } from "@sandboxer/sandboxer/errors";
 * const error = new PoolFullError(["build-1:12222 2/2", "build-2:12223 2/2"], 0);
 * console.log(error.code); // "POOL_FULL"
 * ```
 */
export class PoolFullError extends SandboxerError {
  /** One `host:port used/capacity` per host of the pool (`unreachable` for one that did not answer). */
  readonly hosts: readonly string[];
  /** Seconds waited for a slot (0 without `--wait`). */
  readonly waitedSeconds: number;
  /**
   * Create it.
   *
   * @param hosts One `host:port used/capacity` per host.
   * @param waitedSeconds Seconds waited.
   * @param options Standard error options (`cause`).
   */
  constructor(hosts: readonly string[], waitedSeconds: number, options?: ErrorOptions) {
    super(
      "POOL_FULL",
      `Cannot place the sandbox: every slot of the pool is taken${
        waitedSeconds > 0 ? ` after waiting ${waitedSeconds}s` : ""
      } (${hosts.join(", ")}); ${
        waitedSeconds > 0 ? "wait longer with a larger --wait" : "queue for a slot with --wait 10m"
      }, or destroy a sandbox of the pool`,
      options,
    );
    this.hosts = hosts;
    this.waitedSeconds = waitedSeconds;
  }
}

/**
 * A pool host's leases (`<root>/.sbx-pool/`) cannot be used: flock(1) is
 * missing, the workspace root is missing, the lock is held too long, or a
 * slot holds something that is not a lease sandboxer made.
 *
 * @example
 * ```ts
 * import { PoolError } from "@sandboxer/sandboxer/errors";
 * console.log(new PoolError("build-1:22", "has no flock(1); install util-linux").code); // "POOL"
 * ```
 */
export class PoolError extends SandboxerError {
  /** `host:port` of the pool entry. */
  readonly host: string;
  /**
   * Create it.
   *
   * @param host `host:port` of the entry.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options (`cause`).
   */
  constructor(host: string, problem: string, options?: ErrorOptions) {
    super("POOL", `Pool host ${host} ${problem}`, options);
    this.host = host;
  }
}
