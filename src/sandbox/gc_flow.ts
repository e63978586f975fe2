/**
 * What `gc` does: destroy expired sandboxes and those whose creator,
 * destroyer or run died, then reap what no live record owns.
 *
 * @module
 */

import { SandboxNotFoundError } from "../core/errors.ts";
import type { SandboxRecord } from "./record.ts";
import { destroyRecord } from "./destroy_flow.ts";
import { type ManagerParts, oneLine } from "./manager_parts.ts";
import type { GcOptions, GcReport } from "./manager_options.ts";

/**
 * Destroy expired sandboxes and those whose creator, destroyer or `run`
 * died. An expired sandbox is destroyed even while an exec or sync uses it.
 *
 * @param parts The manager's parts.
 * @param options `now` for tests; `only` limits it to the records it accepts (`gc --label`).
 * @returns What was destroyed and what could not be.
 */
export async function collectGarbage(
  parts: ManagerParts,
  options: GcOptions = {},
): Promise<GcReport> {
  const now = options.now ?? new Date();
  const report: GcReport = { destroyed: [], failed: [], reaped: [] };
  // Anything destroyed sandboxes left in the state directory (locks, stale heartbeats).
  await parts.journal.prune().catch((error) => {
    parts.logger.warn(`could not tidy the state directory: ${oneLine(error)}`);
  });
  for (const listed of await parts.records()) {
    if (listed.status === "destroyed" || options.only?.(listed) === false) continue;
    let reason: string | undefined;
    try {
      // Decided again under the record's lock: it may have changed since it was listed.
      const record = await destroyRecord(parts, listed.id, async (record) => {
        reason = await gcReason(parts, record, now);
        return reason === undefined ? "skip" : "destroy";
      });
      if (reason !== undefined && record.status === "destroyed") {
        report.destroyed.push({ id: listed.id, reason });
      }
    } catch (error) {
      if (reason !== undefined) {
        report.failed.push({ id: listed.id, reason, error: oneLine(error) });
      }
    }
  }
  report.reaped = await reapOrphans(parts);
  return report;
}

/**
 * What `gc` would destroy now, and why, changing nothing (`gc --dry-run`).
 * Orphan reaping is not planned: it asks each extension's host.
 *
 * @param parts The manager's parts.
 * @param now The current time.
 * @returns The sandboxes gc would destroy, with the reason.
 */
export async function planGarbage(
  parts: ManagerParts,
  now: Date,
  only: GcOptions["only"] = () => true,
): Promise<{ id: string; reason: string }[]> {
  const plan: { id: string; reason: string }[] = [];
  for (const record of (await parts.records()).filter(only)) {
    const reason = await gcReason(parts, record, now);
    if (reason !== undefined) plan.push({ id: record.id, reason });
  }
  return plan;
}

/** What no live record owns any more: extensions' orphans (VMs), then port leases. */
async function reapOrphans(parts: ManagerParts): Promise<string[]> {
  const live = async (id: string) => {
    try {
      const record = await parts.journal.get(id);
      return record.status === "destroyed" ? undefined : record.handle;
    } catch (error) {
      if (error instanceof SandboxNotFoundError) return undefined;
      return null; // a corrupt record: keep everything of that id
    }
  };
  const reaped: string[] = [];
  // Built-ins only: a confined extension gets no access to the state directory.
  for (const registration of parts.registry.registrations.filter((r) => r.builtin)) {
    const extension = parts.extension(registration.id);
    if (!extension.reapOrphans) continue;
    try {
      reaped.push(
        ...await extension.reapOrphans({ stateDir: parts.journal.dir, liveHandle: live }),
      );
    } catch (error) {
      parts.logger.warn(`could not reap leftovers of ${registration.id}: ${oneLine(error)}`);
    }
  }
  try {
    for (const lease of await parts.ports().reap(async (id) => await live(id) !== undefined)) {
      reaped.push(`port ${lease.port} (leased to sandbox ${lease.name})`);
    }
  } catch (error) {
    parts.logger.warn(`could not reap port leases: ${oneLine(error)}`);
  }
  return reaped;
}

/** Why `gc` should destroy this record now, or undefined. */
async function gcReason(
  parts: ManagerParts,
  record: SandboxRecord,
  now: Date,
): Promise<string | undefined> {
  if (record.status === "destroyed") return undefined;
  const inProgress = record.status === "creating" || record.status === "destroying";
  if ((inProgress || record.ephemeral) && await parts.journal.ownerAlive(record)) {
    // A live creator, destroyer or run finishes (or tears down) the sandbox itself.
    return undefined;
  }
  const who = `process ${record.owner?.pid} on ${record.owner?.host}`;
  if (record.ephemeral) {
    return `its run (${who}) stopped without tearing it down`;
  }
  if (record.expires_at && Date.parse(record.expires_at) <= now.getTime()) {
    return `expired at ${record.expires_at}`;
  }
  if (inProgress) return `stuck in ${record.status}: ${who} stopped working on it`;
  // A teardown that failed may have left a half-removed workspace (a tombstone): try again.
  if (record.status === "failed" && record.step === "destroy") {
    return `its destroy failed (${record.error ?? "no detail"}); trying again`;
  }
  return undefined;
}
