/**
 * `sandboxer run`: create → sync → setup → command → copy artifacts back →
 * destroy, in one call, with teardown guaranteed however it ends.
 *
 * @module
 */

import type { WaitProgress } from "../extensions/types.ts";
import type { ExecIO, Logger, SyncProgress, SyncReport } from "../core/types.ts";
import { silentLogger } from "../core/types.ts";
import { errorText, SandboxNotFoundError, UsageError } from "../core/errors.ts";
import type { ArtifactSpec } from "./artifacts.ts";
import { randomId, validateId } from "../core/ids.ts";
import { type Manager, managerInternals } from "./manager.ts";

/** When to keep the sandbox instead of destroying it. */
export type KeepPolicy = "never" | "always" | "on-failure";

/** Options for {@linkcode runInSandbox}. */
export interface RunInSandboxOptions {
  /** Profile name or file. */
  profile: string;
  /** The command to run in the workspace. */
  command: readonly string[];
  /** Local directory to sync in first. */
  repo?: string;
  /** Sandbox id; random when absent. */
  name?: string;
  /** `dotted.path=value` profile overrides. */
  overrides?: readonly string[];
  /** Lifetime in seconds (matters only when the sandbox is kept). */
  ttlSeconds?: number;
  /** Paths to copy back after the command, whatever its exit code. */
  artifacts?: readonly ArtifactSpec[];
  /** Keep the sandbox always, on failure, or never (default). */
  keep?: KeepPolicy;
  /** The command's output. */
  io?: Pick<ExecIO, "stdout" | "stderr">;
  /** Setup commands' output. */
  setupIO?: Pick<ExecIO, "stdout" | "stderr">;
  /** Sync progress. */
  onProgress?: (progress: SyncProgress) => void;
  /** Called as the copy of each artifact back begins. */
  onFetching?: (artifact: ArtifactSpec) => void;
  /**
   * Called as each artifact's copy ends, before a failure is reported: what
   * was copied (when the extension can tell) or the error, and how long it took.
   */
  onFetched?: (
    artifact: ArtifactSpec,
    outcome: { report?: SyncReport; error?: unknown; ms: number },
  ) => void;
  /** Called as each phase ends (`create`, `sync`, `setup`, `run`, `artifacts`, `destroy`). */
  onPhase?: (phase: string, ms: number) => void;
  /** Seconds to queue for a free slot of a pool profile (`--wait`); absent: fail at once. */
  waitSeconds?: number;
  /** Called now and then while queued for a slot. */
  onWaiting?: (progress: WaitProgress) => void;
  /** Where warnings go. */
  logger?: Logger;
  /** Aborting (Ctrl-C) stops the current phase; teardown still runs. */
  signal?: AbortSignal;
}

/** How a run ended. */
export interface RunInSandboxResult {
  /** The sandbox id. */
  id: string;
  /** The command's exit code, or undefined when it never ran. */
  exitCode: number | undefined;
  /** Whether the sandbox was kept. */
  kept: boolean;
}

/**
 * Run one command in a fresh sandbox and tear it down. The sandbox is
 * destroyed however the run ends — command failure, an error in any phase,
 * or an abort — unless `keep` says otherwise; errors are rethrown after
 * teardown.
 *
 * @param manager The manager.
 * @param options Profile, command, artifacts and keep policy.
 * @returns The id, the command's exit code and whether the sandbox was kept.
 *
 * @example One command in a throwaway sandbox
 * ```ts
 * import { Manager, runInSandbox } from "@sandboxer/sandboxer";
 *
 * async function test(): Promise<number | undefined> {
 *   await using manager = await Manager.open();
 *   const result = await runInSandbox(manager, {
 *     profile: "vm-haskell-build",
 *     repo: ".",
 *     command: ["cabal", "test"],
 *     keep: "on-failure",
 *   });
 *   return result.exitCode;
 * }
 * ```
 */
export async function runInSandbox(
  manager: Manager,
  options: RunInSandboxOptions,
): Promise<RunInSandboxResult> {
  if (options.command.length === 0) {
    throw new UsageError("Cannot run: no command given; add -- CMD [ARGS...]");
  }
  const logger = options.logger ?? silentLogger;
  const id = options.name === undefined ? randomId() : validateId(options.name);
  const phase = timer(options.onPhase);
  let exitCode: number | undefined;
  let failure: unknown;
  // Set only by this run's own create: a failed create (say, "already in use") must never lead
  // to destroying a sandbox someone else made.
  let recorded = false;
  // One owner heartbeat for the whole run (setup, sync, command, artifacts, destroy): the record
  // is ephemeral, so once this process dies `gc` finishes it like a crashed create.
  await using _heartbeat = await managerInternals(manager).journal.heartbeat(id);
  try {
    await manager.create({
      profile: options.profile,
      name: id,
      repo: options.repo,
      overrides: options.overrides,
      ttlSeconds: options.ttlSeconds,
      setupIO: options.setupIO,
      onProgress: options.onProgress,
      onPhase: options.onPhase,
      signal: options.signal,
      waitSeconds: options.waitSeconds,
      onWaiting: options.onWaiting,
      ephemeral: true,
      onRecorded: () => recorded = true,
    });
    phase.reset();
    exitCode = await manager.exec(id, options.command, { ...options.io, signal: options.signal });
    phase.done("run");
    for (const artifact of options.artifacts ?? []) {
      const started = performance.now();
      options.onFetching?.(artifact);
      try {
        const report = await manager.fetch(id, artifact.remote, artifact.local, {
          signal: options.signal,
        });
        options.onFetched?.(artifact, { report, ms: performance.now() - started });
      } catch (error) {
        options.onFetched?.(artifact, { error, ms: performance.now() - started });
        // A failed command often leaves no artifacts; that must not hide its exit code.
        if (exitCode !== 0) logger.warn(`artifact ${artifact.remote}: ${errorText(error)}`);
        else throw error;
      }
    }
    if (options.artifacts?.length) phase.done("artifacts");
  } catch (error) {
    failure = error;
  }
  const failed = failure !== undefined || exitCode !== 0;
  const keep = options.keep === "always" || (options.keep === "on-failure" && failed);
  if (recorded && !keep) {
    phase.reset();
    try {
      // Only while the record is still this run's: if gc took it over (this process was
      // stopped), it is gone or, with the same id, someone else's now.
      await manager.destroy(id, { force: true, onlyOwn: true });
      phase.done("destroy");
    } catch (error) {
      // A create that made nothing left no record: nothing to destroy.
      if (error instanceof SandboxNotFoundError) recorded = false;
      else if (failure === undefined) failure = error;
      else {logger.error(
          `could not destroy ${id}: ${errorText(error)}; run "sandboxer destroy ${id}"`,
        );}
    }
  } else if (recorded) {
    // A kept sandbox outlives this run: gc must not take it for the leftover of a dead run.
    await managerInternals(manager).journal.update(id, { ephemeral: false }).catch((error) => {
      // A create that made nothing left no record: there is nothing to keep.
      if (error instanceof SandboxNotFoundError) recorded = false;
      else logger.warn(`could not mark ${id} as kept: ${errorText(error)}`);
    });
    if (recorded) logger.info(`kept sandbox ${id}; destroy it with "sandboxer destroy ${id}"`);
  }
  if (failure !== undefined) throw failure;
  return { id, exitCode, kept: recorded && keep };
}

function timer(onPhase?: (phase: string, ms: number) => void) {
  let started = performance.now();
  return {
    reset() {
      started = performance.now();
    },
    done(name: string) {
      onPhase?.(name, performance.now() - started);
      started = performance.now();
    },
  };
}
