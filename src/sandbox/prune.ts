/**
 * `gc --prune AGE`: destroyed records are kept so `list --all` can show what
 * ran; this forgets those destroyed longer ago than AGE.
 *
 * @module
 */

import { type Manager, managerInternals } from "./manager.ts";

/** Options of {@linkcode pruneDestroyed}. */
export interface PruneOptions {
  /** Forget records destroyed at least this many seconds ago. */
  olderThanSeconds: number;
  /** Only say which records would go. */
  dryRun?: boolean;
  /** The current time, for tests. */
  now?: Date;
}

/**
 * Forget destroyed records older than a given age (their last change is the destroy).
 *
 * @param manager An open manager.
 * @param options The age, and whether to only report.
 * @returns The ids forgotten (or that would be, with `dryRun`).
 */
export async function pruneDestroyed(manager: Manager, options: PruneOptions): Promise<string[]> {
  const now = (options.now ?? new Date()).getTime();
  const old = (updatedAt: string) => now - Date.parse(updatedAt) >= options.olderThanSeconds * 1000;
  const { journal } = managerInternals(manager);
  const pruned: string[] = [];
  for (const record of await manager.list({ all: true })) {
    if (record.status !== "destroyed" || !old(record.updated_at)) continue;
    if (options.dryRun) {
      pruned.push(record.id);
      continue;
    }
    // Decided again under the lock: the id may have been reused since it was listed.
    const gone = await journal.forget(
      record.id,
      (r) => r.status === "destroyed" && old(r.updated_at),
    );
    if (gone) pruned.push(gone.id);
  }
  return pruned;
}
