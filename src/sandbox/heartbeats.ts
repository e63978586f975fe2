/**
 * Heartbeat files: a working process touches its file every second, so other
 * processes can tell a live owner or user from a crashed or stopped one
 * (Deno cannot look at /proc or signal other processes without --allow-all).
 *
 * @module
 */

import { ID_SOURCE } from "../core/ids.ts";
import type { StateFiles } from "./state_files.ts";

/** How often a working process refreshes its heartbeats. */
const HEARTBEAT_INTERVAL_MS = 1000;
/** A heartbeat older than this means its process died (or is stopped). */
export const HEARTBEAT_STALE_MS = 4000;

/** `<id>.<token>.alive` (an owner at work) and `<id>.<token>.inuse` (a user of the sandbox). */
export const BEAT_FILE = new RegExp(`^(${ID_SOURCE})\\.([0-9a-f]{16,64})\\.(alive|inuse)$`);

interface Beat {
  count: number;
  timer: ReturnType<typeof setInterval>;
  path: string;
}

/** The heartbeats this process keeps; nested beats of one file share it. */
export class Heartbeats {
  #files: StateFiles;
  #beats = new Map<string, Beat>();

  /** @param files The state directory's files. */
  constructor(files: StateFiles) {
    this.#files = files;
  }

  /**
   * Start (or join) the heartbeat of one file.
   *
   * @param path The heartbeat file.
   * @param content What the file says about this process.
   * @returns Dispose it when the work is done.
   */
  async beat(path: string, content: object): Promise<AsyncDisposable> {
    let beat: Beat | undefined = this.#beats.get(path);
    if (beat) {
      beat.count++;
    } else {
      await this.#files.mkdir();
      try {
        await Deno.writeTextFile(path, JSON.stringify(content) + "\n", { mode: 0o600 });
      } catch (error) {
        // A full disk can leave the file made but empty: no heartbeat may outlive its process.
        await Deno.remove(path).catch(() => {});
        throw this.#files.stateError(error, path);
      }
      const tick = (): void => {
        const now = new Date();
        // A file removed by someone else means the process lost its claim: never bring it back.
        Deno.utime(path, now, now).catch(() => clearInterval(timer));
      };
      const timer = setInterval(tick, HEARTBEAT_INTERVAL_MS);
      Deno.unrefTimer(timer);
      beat = { count: 1, timer, path };
      this.#beats.set(path, beat);
    }
    const held: Beat = beat;
    let disposed = false;
    return {
      [Symbol.asyncDispose]: async () => {
        if (disposed) return;
        disposed = true;
        if (--held.count > 0) return;
        clearInterval(held.timer);
        this.#beats.delete(held.path);
        await Deno.remove(held.path).catch(() => {});
      },
    };
  }
}

/**
 * Whether a heartbeat file was touched within the staleness limit.
 *
 * @param path The heartbeat file.
 * @returns False when it is stale or missing.
 */
export async function fresh(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return Date.now() - (info.mtime?.getTime() ?? 0) < HEARTBEAT_STALE_MS;
  } catch {
    return false;
  }
}
