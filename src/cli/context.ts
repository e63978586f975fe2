/**
 * What every CLI command gets: output, global flags and a lazily opened
 * manager.
 *
 * @module
 */

import type { Manager } from "../sandbox/manager.ts";
import type { Output } from "./output.ts";
import { stderrLogger } from "./output.ts";

/** Global flags. */
export interface GlobalFlags {
  /** Show debug lines and stack traces. */
  debug?: boolean;
  /** Trust an unknown SSH host key and record it. */
  acceptNewHostKey?: boolean;
  /** Accept (and pin) this host key in place of the one a sandbox pinned at create. */
  acceptHostKey?: string;
}

/** Shared state of one CLI invocation. */
export class CliContext implements AsyncDisposable {
  /** Where to write. */
  readonly output: Output;
  /** The exit code the command asks for (exec passes the remote one through). */
  exitCode = 0;
  /** Aborted on SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
  #flags: () => GlobalFlags;
  #manager: Promise<Manager> | undefined;

  /**
   * @param output Where to write.
   * @param flags Reads the global flags once parsing is done.
   * @param signal Aborted on SIGINT/SIGTERM.
   */
  constructor(output: Output, flags: () => GlobalFlags, signal: AbortSignal) {
    this.output = output;
    this.#flags = flags;
    this.signal = signal;
  }

  /** The global flags. */
  get flags(): GlobalFlags {
    return this.#flags();
  }

  /** A logger writing to stderr. */
  get logger(): ReturnType<typeof stderrLogger> {
    return stderrLogger(this.output, this.flags.debug ?? false);
  }

  /**
   * The manager, opened on first use so `--help` and `--version` touch nothing.
   *
   * @returns The manager.
   */
  manager(): Promise<Manager> {
    // Loaded on first use: --help and --version never pay for YAML, ssh2 and the registry.
    this.#manager ??= import("../sandbox/manager.ts").then(({ Manager }) =>
      Manager.open({
        logger: this.logger,
        acceptNewHostKey: this.flags.acceptNewHostKey ?? false,
        acceptHostKey: this.flags.acceptHostKey,
      })
    );
    return this.#manager;
  }

  /** Close the manager's connections. */
  async [Symbol.asyncDispose](): Promise<void> {
    // A manager that failed to open (a bad global flag) has nothing to close.
    if (this.#manager) await this.#manager.then((m) => m.close()).catch(() => {});
  }
}
