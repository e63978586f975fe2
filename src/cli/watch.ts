/**
 * `sandboxer sync ID --watch`: one sync now, then one more each time local
 * files that a sync would send change, until Ctrl-C.
 *
 * Changes are gathered for a quiet spell ({@linkcode WATCH_DEBOUNCE_MS}) so
 * an editor's save or a `git checkout` costs one sync, not one per file. Only
 * one sync runs at a time; whatever changes while it runs schedules exactly
 * one more, which picks all of it up (rsync compares the whole tree).
 *
 * @module
 */

import type { SyncReport } from "../core/types.ts";
import { changeFilter, type WatchFilterOptions } from "../sync/watch_filter.ts";

/** How long the tree must stay quiet before a sync starts. */
export const WATCH_DEBOUNCE_MS = 300;

/** What {@linkcode watchSync} needs. */
export interface WatchSyncOptions {
  /** The local directory, as given or from the profile. */
  repo: string;
  /** The sandbox's sync settings (which changes matter). */
  settings: WatchFilterOptions;
  /** Run one sync; it must stop when `signal` is aborted. */
  sync: (signal: AbortSignal) => Promise<SyncReport>;
  /** Called after each sync with its report and duration. */
  onSync: (report: SyncReport, ms: number) => void;
  /** Called when a sync after the first fails; the watch goes on. */
  onError: (error: unknown) => void;
  /** Aborted on Ctrl-C: the watch ends and resolves. */
  signal: AbortSignal;
  /** Quiet spell before a sync, in ms. */
  debounceMs?: number;
}

/**
 * Sync once, then on every relevant change until `signal` is aborted.
 *
 * @param options Directory, settings, the sync itself, where lines go, the stop signal.
 * @throws The first sync's error: a sandbox that cannot be synced now will not be later.
 */
export async function watchSync(options: WatchSyncOptions): Promise<void> {
  const { signal, onError } = options;
  const debounceMs = options.debounceMs ?? WATCH_DEBOUNCE_MS;

  const syncOnce = async () => {
    const started = performance.now();
    const result = await options.sync(signal);
    options.onSync(result, Math.round(performance.now() - started));
  };

  // First, so a missing or wrong directory is the sync's own clear error.
  try {
    await syncOnce();
  } catch (error) {
    // Ctrl-C during the first sync is the user stopping the watch, not a failure.
    if (signal.aborted) return;
    throw error;
  }
  if (signal.aborted) return;
  const root = await Deno.realPath(options.repo);
  const relevant = changeFilter(root, options.settings);

  // Opened after the first sync so its own reads never count as changes.
  const watcher = Deno.watchFs(root, { recursive: true });
  const stop = () => watcher.close();
  signal.addEventListener("abort", stop, { once: true });

  let changed: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  const loop = async () => {
    do {
      again = false;
      try {
        await syncOnce();
      } catch (error) {
        if (signal.aborted) return;
        // A dropped connection or a busy host is not the end of a watch: the next change retries.
        onError(error);
      }
    } while (again && !signal.aborted);
  };

  const settle = async () => {
    timer = undefined;
    const batch = changed;
    changed = [];
    if ((await relevant(batch, signal)).length === 0 || signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = loop().finally(() => running = undefined);
  };

  try {
    for await (const event of watcher) {
      if (event.kind === "access") continue;
      changed.push(...event.paths);
      clearTimeout(timer);
      timer = setTimeout(() => {
        settle().catch(onError);
      }, debounceMs);
    }
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", stop);
    try {
      watcher.close();
    } catch {
      // Already closed by the abort.
    }
    await running;
  }
}
