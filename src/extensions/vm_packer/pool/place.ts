/**
 * Placing a sandbox in a pool: take a slot on a host with a free one (leases
 * kept on the hosts themselves, see scripts.ts), queue with `--wait` when
 * all are taken, keep the lease's heartbeat while the workspace is made, and
 * release exactly that lease on destroy.
 *
 * @module
 */

import { PoolError, PoolFullError, SandboxerError } from "../../../core/errors.ts";
import type { Logger } from "../../../core/types.ts";
import type { SshConnection } from "../../../transport/ssh/connection.ts";
import type { CreateContext } from "../../types.ts";
import { newNonce } from "../../ssh_workspace/workspace_path.ts";
import { step } from "../create_steps.ts";
import type { VmPackerConfig, VmPackerHandle } from "../config.ts";
import { entryConfig, entryKey, entryLabel, POOL_DIR } from "./config.ts";
import {
  acquire,
  type AcquireResult,
  type EntryOnHost,
  heartbeat,
  reap,
  release,
  STALE_SECONDS,
  unwait,
} from "./lease.ts";

/** What placing needs from the extension. */
export interface PoolHooks {
  /** Where the extension logs. */
  logger: Logger;
  /** The handle sandbox `id` gets on a single-target config (target resolved, no host key yet). */
  handleFor(config: VmPackerConfig, id: string): Promise<VmPackerHandle>;
  /** The pooled connection for a handle (an unknown host key accepted as create would). */
  connect(handle: VmPackerHandle, signal?: AbortSignal): Promise<SshConnection>;
  /** Make the workspace (records the handle with the host key). */
  makeWorkspace(
    ctx: CreateContext<VmPackerConfig>,
    handle: VmPackerHandle,
  ): Promise<VmPackerHandle>;
}

/** Seconds between a create's lease heartbeats (well under the stale limit). */
const HEARTBEAT_SECONDS = 10;
/** Pause between a waiting create's rounds over the hosts, plus up to as much again (jitter). */
const POLL_MS = 1_500;

/**
 * Create a sandbox in the pool: place it, then make its workspace there.
 *
 * @param hooks The extension's connection, handle and workspace steps.
 * @param ctx The create context (with `waitSeconds` for `--wait`).
 * @param only The indexes of the entries it may be placed on (`--from-snapshot`: those whose host
 * keeps the snapshot); all when absent.
 * @returns The handle as recorded, with `pool_lease`.
 * @throws {PoolFullError} when no slot is free (after waiting, with --wait).
 */
export async function createInPool(
  hooks: PoolHooks,
  ctx: CreateContext<VmPackerConfig>,
  only?: ReadonlySet<number>,
): Promise<VmPackerHandle> {
  const nonce = newNonce();
  await step(ctx, "place");
  const placed = await place(hooks, ctx, nonce, only);
  const { entry, slot } = placed;
  const lease = { id: ctx.id, nonce };
  const handle: VmPackerHandle = {
    ...placed.handle,
    nonce,
    pool_lease: { entry: placed.index, host: entry.label, dir: entry.dir, slot },
  };
  // The lease exists from here: recorded at once, so a destroy or a rollback releases it.
  await ctx.recordHandle(handle);
  const timer = setInterval(() => {
    heartbeat(entry, slot, lease, false).then((held) => {
      if (!held) hooks.logger.warn(`${ctx.id} lost its lease ${entry.label} slot-${slot}`);
    }, (error) => hooks.logger.debug(`heartbeat of ${ctx.id}: ${error}`));
  }, HEARTBEAT_SECONDS * 1000);
  try {
    // The workspace steps (connect, workspace) honour the crash tests' hold too.
    const made = await hooks.makeWorkspace({ ...ctx, step: (name) => step(ctx, name) }, handle);
    // The workspace now keeps the lease alive: no more heartbeat needed. A lease lost meanwhile
    // (heartbeats late past the stale limit, so another create reclaimed the slot) would put one
    // sandbox too many on the host: the create fails and is rolled back instead.
    if (!(await heartbeat(entry, slot, lease, true))) {
      throw new PoolError(
        entry.label,
        `reclaimed slot-${slot} of ${ctx.id} while it was being made (its heartbeat was over ${STALE_SECONDS}s late, e.g. on an overloaded machine); create it again`,
      );
    }
    return made;
  } finally {
    clearInterval(timer);
  }
}

/**
 * Release a pooled sandbox's lease (only if the slot holds its id and nonce).
 *
 * @param hooks The extension's connection step.
 * @param handle The stored handle.
 * @param id The sandbox id.
 */
export async function releaseLease(
  hooks: Pick<PoolHooks, "connect" | "logger">,
  handle: VmPackerHandle,
  id: string,
): Promise<void> {
  const ref = handle.pool_lease;
  if (!ref || typeof handle.nonce !== "string") return;
  const root = handle.workspace.slice(0, handle.workspace.lastIndexOf("/"));
  const entry: EntryOnHost = {
    label: ref.host,
    connection: await hooks.connect(handle),
    dir: ref.dir,
    root,
    capacity: 0,
  };
  const outcome = await release(entry, ref.slot, { id, nonce: handle.nonce });
  if (outcome === "foreign") {
    hooks.logger.warn(`left ${ref.dir}/slot-${ref.slot} on ${ref.host} alone: another lease`);
  }
}

/**
 * Reclaim the dead leases (and stale waiters) of one pool host, for `gc --target`.
 *
 * @param hooks The extension's connection step.
 * @param config The host's single-target config.
 * @param signal Abort signal.
 * @returns The slots reaped and those live.
 */
export async function reapPoolLeases(
  hooks: Pick<PoolHooks, "connect" | "handleFor">,
  config: VmPackerConfig,
  signal?: AbortSignal,
): Promise<{ reaped: string[]; live: string[] }> {
  const handle = await hooks.handleFor(config, "probe");
  const root = config.workspace.root;
  return await reap({
    label: entryLabel(config.target),
    connection: await hooks.connect(handle, signal),
    dir: `${root}/${POOL_DIR}/${entryKey(config.target)}`,
    root,
    capacity: 0,
  }, signal);
}

interface Placed {
  index: number;
  entry: EntryOnHost;
  slot: number;
  handle: VmPackerHandle;
}

/** Take a slot on some entry, waiting in the queue with --wait. */
async function place(
  hooks: PoolHooks,
  ctx: CreateContext<VmPackerConfig>,
  nonce: string,
  only: ReadonlySet<number> | undefined,
): Promise<Placed> {
  const entries = ctx.config.targets!;
  const waitMs = (ctx.waitSeconds ?? 0) * 1000;
  const waiter = waitMs > 0
    ? `${String(Date.now()).padStart(13, "0")}-${ctx.id}-${nonce.slice(0, 8)}`
    : "";
  const reached = new Map<number, { entry: EntryOnHost; handle: VmPackerHandle }>();
  const warned = new Set<number>();
  const started = performance.now();
  const reach = async (index: number) => {
    const known = reached.get(index);
    if (known) return known;
    const config = entryConfig(ctx.config, index);
    const handle = await hooks.handleFor(config, ctx.id);
    const root = config.workspace.root;
    const entry: EntryOnHost = {
      label: entryLabel(entries[index]),
      connection: await hooks.connect(handle, ctx.signal),
      dir: `${root}/${POOL_DIR}/${entryKey(entries[index])}`,
      root,
      capacity: entries[index].capacity,
    };
    reached.set(index, { entry, handle });
    return { entry, handle };
  };
  let placed: Placed | undefined;
  try {
    while (true) {
      const status: string[] = [];
      let ahead = 0;
      let firstError: unknown;
      const offset = Math.floor(Math.random() * entries.length);
      for (let k = 0; k < entries.length && !placed; k++) {
        const index = (offset + k) % entries.length;
        if (only && !only.has(index)) continue;
        ctx.signal?.throwIfAborted();
        let result: AcquireResult;
        let at: { entry: EntryOnHost; handle: VmPackerHandle };
        try {
          at = await reach(index);
          result = await acquire(at.entry, {
            id: ctx.id,
            nonce,
            expiresAt: ctx.expiresAt ?? null,
            waiter,
          }, ctx.signal);
        } catch (error) {
          if (ctx.signal?.aborted || !(error instanceof SandboxerError)) throw error;
          reached.delete(index);
          firstError ??= error;
          status.push(`${entryLabel(entries[index])} unreachable`);
          if (!warned.has(index)) {
            warned.add(index);
            hooks.logger.warn(`skipped pool host ${entryLabel(entries[index])}: ${error.message}`);
          }
          continue;
        }
        for (const r of result.reclaimed) {
          hooks.logger.info(`reclaimed the dead lease ${r} on ${at.entry.label}`);
        }
        if (result.taken) {
          hooks.logger.info(
            `placed ${ctx.id} on ${at.entry.label} (slot ${result.slot}, ${result.used}/${result.capacity} in use)`,
          );
          placed = { index, entry: at.entry, slot: result.slot, handle: at.handle };
        } else {
          status.push(`${at.entry.label} ${result.used}/${result.capacity}`);
          ahead = Math.max(ahead, result.ahead);
        }
      }
      if (placed) return placed;
      if (firstError !== undefined && reached.size === 0) throw firstError;
      const waited = performance.now() - started;
      if (waited >= waitMs) throw new PoolFullError(status, Math.round(waited / 1000));
      ctx.onWaiting?.({ waitedSeconds: Math.round(waited / 1000), ahead });
      await sleep(Math.min(POLL_MS * (1 + Math.random()), waitMs - waited), ctx.signal);
    }
  } finally {
    if (waiter) {
      await Promise.allSettled(
        [...reached].filter(([index]) => index !== placed?.index)
          .map(([, { entry }]) => unwait(entry, waiter)),
      );
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener("abort", aborted, { once: true });
  });
}
