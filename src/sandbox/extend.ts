/**
 * `extend ID DURATION`: a later expiry for a live sandbox.
 *
 * @module
 */

import { SandboxStateError } from "../core/errors.ts";
import type { SandboxRecord } from "./record.ts";
import { type Manager, managerInternals } from "./manager.ts";

/**
 * Make a sandbox expire `seconds` from now. The owner stays: a running
 * create or `run` keeps its sandbox, only `gc`'s deadline moves.
 *
 * @param manager An open manager.
 * @param id The sandbox id.
 * @param seconds The new lifetime, from now.
 * @param now The current time, for tests.
 * @returns The updated record.
 * @throws {SandboxStateError} when the sandbox is destroyed or being destroyed.
 */
export async function extendSandbox(
  manager: Manager,
  id: string,
  seconds: number,
  now: Date = new Date(),
): Promise<SandboxRecord> {
  return await managerInternals(manager).journal.amend(id, (record) => {
    if (record.status === "destroyed" || record.status === "destroying") {
      throw new SandboxStateError(
        id,
        `is ${record.status}; there is nothing to extend (create a new one)`,
      );
    }
    return { expires_at: new Date(now.getTime() + seconds * 1000).toISOString() };
  });
}
