/**
 * The lease operations of one pool entry, each one remote script (see
 * scripts.ts) over the entry's SSH connection.
 *
 * @module
 */

import { PoolError } from "../../../core/errors.ts";
import type { SshConnection } from "../../../transport/ssh/connection.ts";
import {
  POOL_ACQUIRE,
  POOL_EXIT,
  POOL_HEARTBEAT,
  POOL_REAP,
  POOL_RELEASE,
  POOL_UNWAIT,
} from "./scripts.ts";

/** Seconds after which a lease's heartbeat (or a waiter's marker) counts as dead. */
export const STALE_SECONDS = 60;

/** One pool entry on its host: where its leases are and how to reach it. */
export interface EntryOnHost {
  /** `host:port` as written, for messages. */
  label: string;
  /** The pooled connection. */
  connection: SshConnection;
  /** `<root>/.sbx-pool/<entry key>`. */
  dir: string;
  /** The entry's workspace root. */
  root: string;
  /** Its slots. */
  capacity: number;
}

/** What {@linkcode acquire} found. */
export type AcquireResult =
  | { taken: true; slot: number; used: number; capacity: number; reclaimed: string[] }
  | { taken: false; used: number; capacity: number; ahead: number; reclaimed: string[] };

/**
 * Try to take a slot of the entry.
 *
 * @param entry The entry.
 * @param lease The sandbox id, its nonce, its expiry and its waiter name (empty without --wait).
 * @param signal Abort signal.
 * @returns The slot taken, or how full the entry is and how many wait ahead.
 * @throws {PoolError} when the leases cannot be used (no flock, no root, lock held).
 */
export async function acquire(
  entry: EntryOnHost,
  lease: { id: string; nonce: string; expiresAt: string | null; waiter: string },
  signal?: AbortSignal,
): Promise<AcquireResult> {
  const result = await entry.connection.run([
    "sh",
    "-c",
    POOL_ACQUIRE,
    "sh",
    entry.dir,
    entry.root,
    String(STALE_SECONDS),
    String(entry.capacity),
    lease.id,
    lease.nonce,
    lease.expiresAt ?? "-",
    lease.waiter,
  ], { signal });
  const reclaimed = result.stderr.split("\n").filter((l) => l.startsWith("reclaimed "))
    .map((l) => l.slice(10));
  const words = result.stdout.trim().split(/\s+/).map(Number);
  if (result.code === 0 && result.stdout.startsWith("slot ")) {
    return { taken: true, slot: words[1], used: words[2] + 1, capacity: words[3], reclaimed };
  }
  if (result.code === POOL_EXIT.full && result.stdout.startsWith("full ")) {
    return { taken: false, used: words[1], capacity: words[2], ahead: words[3], reclaimed };
  }
  throw scriptError(entry, result, "take a slot");
}

/**
 * Rewrite the lease's heartbeat.
 *
 * @param entry The entry.
 * @param slot The slot.
 * @param lease The sandbox id and nonce.
 * @param ready Mark it `ready` (the workspace now keeps it alive) instead of the time.
 * @returns `false` when the slot no longer holds this lease.
 */
export async function heartbeat(
  entry: EntryOnHost,
  slot: number,
  lease: { id: string; nonce: string },
  ready: boolean,
): Promise<boolean> {
  const result = await entry.connection.run([
    "sh",
    "-c",
    POOL_HEARTBEAT,
    "sh",
    `${entry.dir}/slot-${slot}`,
    lease.id,
    lease.nonce,
    ready ? "1" : "0",
  ]);
  if (result.code === POOL_EXIT.notOurs) return false;
  if (result.code !== 0) throw scriptError(entry, result, "renew a lease's heartbeat");
  return true;
}

/**
 * Remove the sandbox's lease, only if the slot holds its id and nonce.
 *
 * @param entry The entry.
 * @param slot The slot.
 * @param lease The sandbox id and nonce.
 * @returns `"released"` (or nothing was there), `"foreign"` when the slot holds another lease.
 */
export async function release(
  entry: EntryOnHost,
  slot: number,
  lease: { id: string; nonce: string },
): Promise<"released" | "foreign"> {
  const result = await entry.connection.run([
    "sh",
    "-c",
    POOL_RELEASE,
    "sh",
    entry.dir,
    entry.root,
    String(slot),
    lease.id,
    lease.nonce,
  ]);
  if (result.code === 0) return "released";
  if (result.code === POOL_EXIT.notOurs) return "foreign";
  throw scriptError(entry, result, "release a lease");
}

/**
 * Leave the queue of the entry (best effort: a marker left behind goes stale).
 *
 * @param entry The entry.
 * @param waiter The waiter name.
 */
export async function unwait(entry: EntryOnHost, waiter: string): Promise<void> {
  await entry.connection.run(["sh", "-c", POOL_UNWAIT, "sh", entry.dir, waiter]).catch(() => {});
}

/**
 * Reclaim the entry's dead leases and stale waiters.
 *
 * @param entry The entry.
 * @param signal Abort signal.
 * @returns The sandbox ids whose leases were reaped, and those still live.
 */
export async function reap(
  entry: EntryOnHost,
  signal?: AbortSignal,
): Promise<{ reaped: string[]; live: string[] }> {
  const result = await entry.connection.run(
    ["sh", "-c", POOL_REAP, "sh", entry.dir, entry.root, String(STALE_SECONDS)],
    { signal },
  );
  if (result.code !== 0) throw scriptError(entry, result, "reap leases");
  const lines = result.stdout.split("\n").map((l) => l.split(" "));
  const pick = (kind: string) =>
    lines.filter((l) => l[0] === kind).map((l) => `${l[1]} (${l[2] || "no id"})`);
  return { reaped: pick("reaped"), live: pick("live") };
}

function scriptError(
  entry: EntryOnHost,
  result: { code: number; stderr: string },
  what: string,
): PoolError {
  const why = result.stderr.trim().split("\n").filter((l) => !l.startsWith("reclaimed ")).at(-1);
  return new PoolError(
    entry.label,
    `${why || `could not ${what} (exit code ${result.code})`}${
      why ? "" : `; check that ${entry.root} is writable there`
    }`,
  );
}
