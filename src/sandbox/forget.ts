/**
 * `destroy --forget`: drop a record whose host is gone for good, touching no
 * host, and say what may still be there.
 *
 * @module
 */

import { SandboxInUseError, SandboxNotFoundError } from "../core/errors.ts";
import type { SandboxRecord } from "./record.ts";
import { type Manager, managerInternals } from "./manager.ts";

/**
 * Drop a sandbox's record without running its extension's destroy.
 *
 * @param manager An open manager.
 * @param id The sandbox id.
 * @returns The record as it was.
 * @throws {SandboxInUseError} while a live process creates or destroys it.
 * @throws {SandboxNotFoundError} when there is no such record.
 */
export async function forgetSandbox(manager: Manager, id: string): Promise<SandboxRecord> {
  const { journal } = managerInternals(manager);
  const seen = await manager.show(id);
  const busy = seen.status === "creating" || seen.status === "destroying";
  if (busy && await journal.ownerAlive(seen)) {
    throw new SandboxInUseError(
      id,
      `is ${seen.status} by process ${seen.owner.pid} on ${seen.owner.host}`,
      "wait for that process to finish, then forget it",
    );
  }
  // Under the lock: only the record that was looked at goes, not one changed since.
  const gone = await journal.forget(
    id,
    (r) => r.updated_at === seen.updated_at && r.status === seen.status,
  );
  if (gone === undefined) throw new SandboxNotFoundError(id);
  return gone;
}

/**
 * What a forgotten record may have left on its host, for the user to remove by hand.
 *
 * @param record The forgotten record.
 * @returns One sentence.
 */
export function leftBehind(record: SandboxRecord): string {
  if (record.status === "destroyed") return "it was already destroyed, nothing is left behind";
  const handle = record.handle ?? {};
  const host = [handle.vm_target, handle.target, handle.host].find((v) => typeof v === "string");
  const where = host ? ` on ${host}` : "";
  const lease = handle.pool_lease && typeof handle.pool_lease === "object"
    ? " and its pool lease"
    : "";
  const what = record.workspace
    ? `the workspace ${record.workspace}${lease}`
    : "whatever its create made";
  return `nothing was removed: ${what}${where} may be left there (its extension ${record.extension}); remove it by hand if the host comes back, or run gc --target with its profile`;
}
