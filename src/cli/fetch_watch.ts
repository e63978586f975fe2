/**
 * How far a copy out of a workspace has got, seen from this side: the bytes
 * and files that have arrived at the destination so far. `fetch` and
 * `run --artifact` show it while stderr is a terminal.
 *
 * @module
 */

import type { SyncProgress } from "../core/types.ts";

/** How often the destination is looked at. */
const POLL_MS = 250;

/**
 * Watch `REMOTE`'s copy arrive in `localDir` (as `localDir/<last segment>`,
 * or, for a single file still being written, rsync's `.<name>.XXXXXX`
 * beside it) and report it now and every 250 ms until stopped. Regular files
 * count; symlinks are never followed; what cannot be read is skipped.
 *
 * @param localDir The local directory the copy goes into.
 * @param remote The path in the workspace as given.
 * @param onProgress Called with the bytes and files there so far.
 * @returns A function that stops watching.
 */
export function watchArrival(
  localDir: string,
  remote: string,
  onProgress: (progress: SyncProgress) => void,
): () => void {
  const name = remote.split("/").filter((s) => s !== "" && s !== ".").at(-1) ?? "";
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const look = async () => {
    const seen = { bytes: 0, files: 0 };
    for await (const entry of readDir(localDir)) {
      if (entry.name !== name && !entry.name.startsWith(`.${name}.`)) continue;
      await measure(`${localDir}/${entry.name}`, seen);
    }
    if (stopped) return;
    onProgress(seen);
    timer = setTimeout(look, POLL_MS);
  };
  void look();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Add a file's size, or a directory tree's sizes and file count, to `seen`. */
async function measure(path: string, seen: { bytes: number; files: number }): Promise<void> {
  const info = await Deno.lstat(path).catch(() => undefined);
  if (info?.isFile) {
    seen.bytes += info.size;
    seen.files++;
  } else if (info?.isDirectory) {
    for await (const entry of readDir(path)) await measure(`${path}/${entry.name}`, seen);
  }
}

/** A directory's entries, or none when it cannot be read (not there yet). */
async function* readDir(path: string): AsyncGenerator<Deno.DirEntry> {
  try {
    yield* Deno.readDir(path);
  } catch {
    return;
  }
}
