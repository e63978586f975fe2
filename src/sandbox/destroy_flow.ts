/**
 * How a sandbox is torn down: claimed under its lock (refused, or waited for,
 * while another live process works on or in it), then removed from its handle.
 *
 * @module
 */

import { formatDuration } from "../config/duration.ts";
import { delay } from "../core/async.ts";
import { OwnershipLostError, SandboxInUseError } from "../core/errors.ts";
import type { SandboxRecord, SandboxUse } from "./record.ts";
import { type ManagerParts, oneLine } from "./manager_parts.ts";
import type { DestroyOptions } from "./manager_options.ts";

/**
 * Tear a sandbox down from its stored handle. Idempotent: a destroyed
 * sandbox is left alone and returned as is. A sandbox another live process
 * is creating, destroying or running (`sandboxer run`), or one an exec or
 * sync is using, is refused unless `force` is given — or waited for with
 * `waitMs`.
 *
 * @param parts The manager's parts.
 * @param id The sandbox id.
 * @param options `force`, `waitMs`, `onlyOwn` and an abort signal.
 * @returns The `destroyed` record.
 * @throws {SandboxInUseError} when another process is at work on or in it.
 * @throws {OwnershipLostError} with `onlyOwn`, when another process owns it now.
 */
export async function destroySandbox(
  parts: ManagerParts,
  id: string,
  options: DestroyOptions = {},
): Promise<SandboxRecord> {
  const deadline = Date.now() + (options.waitMs ?? 0);
  let waited = false;
  for (;;) {
    try {
      return await destroyRecord(parts, id, async (record) => {
        if (options.onlyOwn && record.owner?.token !== parts.journal.token) {
          throw new OwnershipLostError(id, lostProblem(record));
        }
        if (!options.force) await assertFree(parts, record);
        return "destroy";
      });
    } catch (error) {
      if (!(error instanceof SandboxInUseError) || options.waitMs === undefined) throw error;
      if (Date.now() >= deadline) {
        throw new SandboxInUseError(
          id,
          `${error.busy}, still after waiting ${formatDuration(options.waitMs / 1000)}`,
          "wait longer (--wait 30m), or pass --force",
        );
      }
      if (!waited) options.onWait?.(error.busy);
      waited = true;
      await delay(WAIT_POLL_MS, options.signal);
    }
  }
}

/**
 * Take a record over for destruction if `decide` says so (under its lock),
 * then remove the sandbox from its handle. The heartbeat is this
 * process's own; another owner's (a live creator under `--force`) stays.
 *
 * @param parts The manager's parts.
 * @param id The sandbox id.
 * @param decide Whether to destroy the record as it is now.
 * @returns The record, `destroyed` when it was claimed.
 */
export async function destroyRecord(
  parts: ManagerParts,
  id: string,
  decide: (record: SandboxRecord) => Promise<"destroy" | "skip">,
): Promise<SandboxRecord> {
  await using _heartbeat = await parts.journal.heartbeat(id);
  const { record, claimed } = await parts.journal.claim(id, async (record) => {
    if (record.status === "destroyed") return undefined;
    if (await decide(record) === "skip") return undefined;
    return { status: "destroying", step: "destroy" };
  });
  if (!claimed) return record;
  const destroying = { expect: ["destroying"] } as const;
  if (record.handle) {
    try {
      const extension = parts.extension(record.extension, record.permissions ?? "none");
      await extension.destroy(parts.withAcceptedKey(record.handle), { id });
    } catch (error) {
      await parts.journal.update(
        id,
        { status: "failed", step: "destroy", error: oneLine(error) },
        destroying,
      );
      throw error;
    }
  }
  return await parts.journal.update(
    id,
    { status: "destroyed", step: null, error: null, ephemeral: false },
    destroying,
  );
}

/** Refuse a sandbox that another live process works on or in. */
async function assertFree(parts: ManagerParts, record: SandboxRecord): Promise<void> {
  const id = record.id;
  const mine = record.owner?.token === parts.journal.token;
  if (!mine && await parts.journal.ownerAlive(record)) {
    const who = `process ${record.owner.pid} on ${record.owner.host}`;
    if (record.status === "creating" || record.status === "destroying") {
      throw new SandboxInUseError(id, `is still ${record.status} in ${who}`);
    }
    if (record.ephemeral) {
      throw new SandboxInUseError(
        id,
        `belongs to a running "sandboxer run" (${who}), which destroys it when it ends`,
      );
    }
  }
  const users = await parts.journal.users(id);
  if (users.length) {
    throw new SandboxInUseError(
      id,
      `is in use by ${describeUsers(users)}`,
      "wait for it (destroy --wait), or pass --force to end it now",
    );
  }
}

/** How often `destroy --wait` looks again. */
const WAIT_POLL_MS = 200;

function describeUsers(users: readonly SandboxUse[]): string {
  const [first, ...rest] = users;
  return `${first.what} (process ${first.pid} on ${first.host})${
    rest.length ? ` and ${rest.length} more` : ""
  }`;
}

/**
 * Why a record this process no longer owns was left alone.
 *
 * @param from The ownership error, or the record as another process left it.
 * @returns The problem, as an error message words it.
 */
export function lostProblem(from: OwnershipLostError | SandboxRecord): string {
  if (from instanceof OwnershipLostError) return from.problem;
  return `was taken over by process ${from.owner?.pid} on ${from.owner?.host} and is ${from.status} now; this process changed and removed nothing more — see "sandboxer show ${from.id}"`;
}
