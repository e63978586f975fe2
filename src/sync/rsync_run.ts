/**
 * rsync over its own ssh: a bounded number at once per target, a drop before
 * the handshake retried; progress and counts reported. The argv is built in
 * rsync.ts (its safety properties are listed there), failures mapped in
 * rsync_failure.ts; rsync_relay.ts runs it over an open connection instead.
 *
 * @module
 */

import type { SyncReport } from "../core/types.ts";
import { retry } from "../core/async.ts";
import { shellQuote } from "../transport/quote.ts";
import { isPreAuthDrop } from "../transport/ssh/errors.ts";
import { run } from "../process/run.ts";
import { buildRsyncArgv } from "./rsync.ts";
import { RSYNC_VANISHED, rsyncFailure } from "./rsync_failure.ts";
import { parseRsyncStats, progressSink } from "./rsync_output.ts";
import type { RsyncPlan, RunRsyncOptions } from "./rsync_types.ts";
import { probeRsync } from "./rsync_version.ts";

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

async function runRsyncOnce(plan: RsyncPlan, options: RunRsyncOptions): Promise<SyncReport> {
  const argv = buildRsyncArgv(plan, await probeRsync()) as [string, ...string[]];
  if (plan.direction === "pull") await Deno.mkdir(plan.source, { recursive: true });
  options.logger?.debug(`$ ${shellQuote(argv)}`);

  const onStdout = options.onProgress ? progressSink(options.onProgress) : undefined;

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
