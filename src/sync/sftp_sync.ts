/**
 * Sync over SFTP, for hosts where rsync cannot be used: the remote has no
 * rsync, or the key needs a passphrase that the external `ssh` rsync runs
 * cannot be given.
 *
 * The decisions are rsync's own, so both paths produce the same tree. The
 * remote workspace is walked over SFTP (never following symlinks) and
 * mirrored into a local "skeleton": the same names and kinds, files with the
 * remote size, mtime and mode, and the remote `.gitignore` files with their
 * real content (the receiving side's `.gitignore` is what protects a
 * remote-only build directory from `--delete`). The LOCAL rsync then runs
 * `--dry-run --delete` from the source into that skeleton with the same
 * filter arguments as a real sync ({@linkcode rsyncFilterArgs}: git's own
 * file listing in a work tree, see git_selection.ts) and itemizes
 * what it would delete, create, send and chmod. Those items are replayed over
 * one SFTP session.
 *
 * Safety: every remote path is `<workspace>/<relative path from rsync or from
 * a listing>`, checked to have no empty, `.` or `..` segment; the marker file
 * is never written or deleted; symlinks are removed with `unlink` (never
 * followed), and anything in the way of a new entry is removed first, so a
 * write can never land behind a symlink. There is no delta transfer: a file
 * whose size or mtime differs is sent whole (SFTP uploads do not keep the
 * mtime, so after a fallback sync every file counts as changed).
 *
 * @module
 */

import { CommandFailedError, errorText, SftpSyncError } from "../core/errors.ts";
import { type EntryKind, parseRsyncItems, type RsyncItem, safeSegments } from "./rsync_items.ts";
import { rsyncFilterArgs } from "./rsync.ts";
import { run } from "../process/run.ts";
import type { SftpSession, SftpStat } from "../transport/ssh/types.ts";
import type { Logger, SyncProgress, SyncReport } from "../core/types.ts";

/** What to sync over SFTP. */
export interface SftpSyncPlan {
  /** Local directory whose contents are sent. */
  source: string;
  /** Absolute remote directory that receives them (a checked workspace path). */
  workspace: string;
  /** Exclude patterns (rsync syntax); they also protect matching remote files from deletion. */
  exclude: readonly string[];
  /** Honour `.gitignore` files, on both sides, as rsync's `:- .gitignore` filter does. */
  gitignore: boolean;
  /** The file selection's rsync filter arguments (git's listing), used instead of `gitignore`. */
  selection?: readonly string[];
  /** Top-level names in the workspace that are never written or deleted (the marker). */
  protect: readonly string[];
}

/** Options for {@linkcode sftpSync}. */
export interface SftpSyncOptions {
  /** Called after each file sent. */
  onProgress?: (progress: SyncProgress) => void;
  /** Aborting it stops between operations. */
  signal?: AbortSignal;
  /** Where the rsync listing and skipped entries are logged. */
  logger?: Logger;
}

/** Anything that can open an SFTP session (an `SshConnection`). */
export interface SftpOpener {
  /** Open a session; it is closed when the sync ends. */
  sftp(): Promise<SftpSession>;
}

/** SFTP operations in flight at once: enough to hide round trips, few enough to bound memory. */
const CONCURRENCY = 16;
/** rsync's exit code when source files vanished while it ran: not a failure. */
const RSYNC_VANISHED = 24;
/** Points the skeleton's symlinks somewhere no real link points, so rsync always re-makes them. */
const SKELETON_LINK_TARGET = "/nonexistent/.sandboxer-skeleton-link";

/** A remote entry found by the walk; stats are from the listing and never follow symlinks. */
interface RemoteEntry {
  kind: EntryKind;
  stat: SftpStat;
}

function kindOf(stat: SftpStat): EntryKind {
  if (stat.isSymlink) return "symlink";
  if (stat.isDirectory) return "dir";
  if (stat.isFile) return "file";
  return "special";
}

function depth(path: string): number {
  return path === "" ? 0 : path.split("/").length;
}

async function eachLimited<T>(
  items: readonly T[],
  signal: AbortSignal | undefined,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      signal?.throwIfAborted();
      await work(items[next++]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
}

/** Group paths by depth: shallowest first, or deepest first. */
function byDepth(paths: readonly string[], deepestFirst: boolean): string[][] {
  const groups = new Map<number, string[]>();
  for (const path of paths) {
    const d = depth(path);
    const group = groups.get(d);
    if (group) group.push(path);
    else groups.set(d, [path]);
  }
  return [...groups.keys()].sort((a, b) => deepestFirst ? b - a : a - b)
    .map((d) => groups.get(d) ?? []);
}

/**
 * Sync a local directory into a remote one over SFTP, selecting and deleting
 * exactly what `rsync --archive --delete` with the same filters would.
 *
 * @param connection Opens the SFTP session.
 * @param plan Source, workspace, filters and protected names.
 * @param options Progress, abort signal and logger.
 * @returns Files sent, entries deleted and bytes sent, with method `"sftp"`.
 * @throws {SshError} When an SFTP operation fails.
 * @throws {CommandFailedError} When the local rsync listing fails.
 * @throws {MissingProgramError} When rsync is not installed locally.
 */
export async function sftpSync(
  connection: SftpOpener,
  plan: SftpSyncPlan,
  options: SftpSyncOptions = {},
): Promise<SyncReport> {
  const session = await connection.sftp();
  try {
    return await new SftpSync(session, plan, options).run();
  } finally {
    await session.close();
  }
}

class SftpSync {
  #sftp: SftpSession;
  #plan: SftpSyncPlan;
  #options: SftpSyncOptions;
  #remote = new Map<string, RemoteEntry>();
  #gitignores = new Map<string, Uint8Array>();
  /** Remote directories made owner-writable for the sync, with the mode to put back. */
  #opened = new Map<string, number>();
  /** Mode of the workspace directory itself. */
  #rootMode = 0o700;
  #source: string;

  constructor(sftp: SftpSession, plan: SftpSyncPlan, options: SftpSyncOptions) {
    this.#sftp = sftp;
    this.#plan = plan;
    this.#options = options;
    const source = plan.source.startsWith("/") ? plan.source : `${Deno.cwd()}/${plan.source}`;
    this.#source = source.replace(/\/+$/, "") || "/";
  }

  async run(): Promise<SyncReport> {
    await this.#walk();
    const items = await this.#rsyncItems();
    const report: SyncReport = { method: "sftp", files: 0, deleted: 0, bytes: 0 };
    await this.#openAncestors(items);
    await this.#delete(items.filter((i) => i.action === "delete"), report);
    await this.#apply(items.filter((i) => i.action !== "delete"), report);
    return report;
  }

  /** The remote path of a relative one, after checking it stays inside the workspace. */
  #remotePath(path: string): string {
    const segments = safeSegments(path);
    return segments.length === 0 ? this.#plan.workspace : `${this.#plan.workspace}/${path}`;
  }

  #isProtected(path: string): boolean {
    return this.#plan.protect.includes(path);
  }

  /** List the remote tree into `#remote`, level by level, descending only into real directories. */
  async #walk(): Promise<void> {
    this.#rootMode = (await this.#sftp.stat(this.#plan.workspace))?.mode ?? this.#rootMode;
    let level = [""];
    while (level.length > 0) {
      const next: string[] = [];
      await eachLimited(level, this.#options.signal, async (dir) => {
        for (const { name, stat } of await this.#sftp.readdir(this.#remotePath(dir))) {
          if (name.includes("/") || name === "." || name === "..") continue;
          const path = dir === "" ? name : `${dir}/${name}`;
          const kind = kindOf(stat);
          this.#remote.set(path, { kind, stat });
          if (kind === "dir") next.push(path);
          // The receiving side's .gitignore files decide which remote-only files --delete spares.
          if (kind === "file" && name === ".gitignore" && this.#plan.gitignore) {
            this.#gitignores.set(path, await this.#sftp.readFile(this.#remotePath(path)));
          }
        }
      });
      level = next;
    }
  }

  /** Mirror the remote tree locally and ask rsync what a real sync would do to it. */
  async #rsyncItems(): Promise<RsyncItem[]> {
    const skeleton = await Deno.makeTempDir({ prefix: "sbx-sftp-sync-" });
    try {
      await this.#buildSkeleton(skeleton);
      const argv: [string, ...string[]] = [
        "rsync",
        "--archive",
        "--dry-run",
        "--delete",
        ...rsyncFilterArgs(this.#plan),
        "--out-format=%i %n",
        "--",
        `${this.#source}/`,
        `${skeleton}/`,
      ];
      this.#options.logger?.debug(`listing with the local rsync: ${argv.join(" ")}`);
      const result = await run(argv, { signal: this.#options.signal, allowFailure: true });
      if (result.code !== 0 && result.code !== RSYNC_VANISHED) {
        throw new CommandFailedError(argv, result.code, result.stderr.slice(-4_000));
      }
      return parseRsyncItems(result.stdout);
    } finally {
      await this.#removeSkeleton(skeleton);
    }
  }

  #skeletonDirs(): string[] {
    return [...this.#remote].filter(([, e]) => e.kind === "dir").map(([path]) => path);
  }

  async #buildSkeleton(skeleton: string): Promise<void> {
    const paths = [...this.#remote.keys()];
    for (const level of byDepth(paths, false)) {
      await eachLimited(level, this.#options.signal, async (path) => {
        const entry = this.#remote.get(path) as RemoteEntry;
        const local = `${skeleton}/${path}`;
        switch (entry.kind) {
          case "dir":
            await Deno.mkdir(local, { mode: 0o700 });
            return;
          case "symlink":
            await Deno.symlink(SKELETON_LINK_TARGET, local);
            return;
          case "file": {
            const gitignore = this.#gitignores.get(path);
            await Deno.writeFile(local, gitignore ?? new Uint8Array());
            // Sparse, with the remote size and mtime: rsync's quick check decides as it would there.
            if (!gitignore) await Deno.truncate(local, entry.stat.size);
            const seconds = Math.floor(entry.stat.mtimeMs / 1000);
            await Deno.utime(local, seconds, seconds);
            await Deno.chmod(local, entry.stat.mode & 0o7777);
            return;
          }
          default:
            await Deno.writeFile(local, new Uint8Array());
        }
      });
    }
    // Directory modes last (their contents are in place); owner r-x stays so rsync can list them.
    for (const level of byDepth(this.#skeletonDirs(), true)) {
      await eachLimited(level, this.#options.signal, async (path) => {
        const mode = (this.#remote.get(path) as RemoteEntry).stat.mode;
        await Deno.chmod(`${skeleton}/${path}`, (mode & 0o7777) | 0o500);
      });
    }
    await Deno.chmod(skeleton, (this.#rootMode & 0o7777) | 0o500);
  }

  async #removeSkeleton(skeleton: string): Promise<void> {
    // Without owner write on its directories an unprivileged user could not delete it.
    await Deno.chmod(skeleton, 0o700).catch(() => {});
    for (const level of byDepth(this.#skeletonDirs(), false)) {
      await Promise.all(
        level.map((path) => Deno.chmod(`${skeleton}/${path}`, 0o700).catch(() => {})),
      );
    }
    await Deno.remove(skeleton, { recursive: true }).catch(() => {});
  }

  /**
   * Make every existing remote directory that something will be written to or deleted from
   * owner-writable for the duration (rsync does the same for read-only directories).
   */
  async #openAncestors(items: readonly RsyncItem[]): Promise<void> {
    const ancestors = new Set<string>();
    for (const { path } of items) {
      const segments = safeSegments(path);
      for (let i = 0; i < segments.length; i++) ancestors.add(segments.slice(0, i).join("/"));
    }
    for (const level of byDepth([...ancestors], false)) {
      await eachLimited(level, this.#options.signal, async (path) => {
        const entry = this.#remote.get(path);
        const mode = path === ""
          ? this.#rootMode
          : entry?.kind === "dir"
          ? entry.stat.mode
          : undefined;
        if (mode === undefined || (mode & 0o700) === 0o700) return;
        await this.#sftp.chmod(this.#remotePath(path), (mode & 0o7777) | 0o700);
        this.#opened.set(path, mode & 0o7777);
      });
    }
  }

  /** Delete what rsync would, deepest first; a directory still holding protected entries stays. */
  async #delete(items: readonly RsyncItem[], report: SyncReport): Promise<void> {
    const paths = items.map((i) => i.path).filter((path) => {
      if (path === "" || this.#isProtected(path)) {
        this.#options.logger?.warn(`sftp sync: not deleting ${JSON.stringify(path)}: it is ours`);
        return false;
      }
      return true;
    });
    for (const level of byDepth(paths, true)) {
      await eachLimited(level, this.#options.signal, async (path) => {
        const entry = this.#remote.get(path);
        if (!entry) return;
        const remote = this.#remotePath(path);
        if (entry.kind === "dir") {
          try {
            await this.#sftp.rmdir(remote);
          } catch (error) {
            // rsync keeps a directory that still holds protected (excluded) entries.
            this.#options.logger?.warn(`sftp sync: kept ${remote}: ${errorText(error)}`);
            return;
          }
        } else {
          await this.#sftp.unlink(remote);
        }
        this.#remote.delete(path);
        report.deleted++;
      });
    }
  }

  /** Remove whatever is at `path` (a whole tree for a directory), never following symlinks. */
  async #removeAny(path: string): Promise<void> {
    const entry = this.#remote.get(path);
    if (!entry) return;
    if (path === "" || this.#isProtected(path)) {
      throw new SftpSyncError(
        this.#remotePath(path),
        "is in the way and is not sandboxer's to remove; move it out of the workspace",
      );
    }
    const remote = this.#remotePath(path);
    if (entry.kind === "dir") {
      if ((entry.stat.mode & 0o700) !== 0o700) await this.#sftp.chmod(remote, 0o700);
      // Listed again now: the walk's view of it may be stale after the deletions.
      for (const child of await this.#sftp.readdir(remote)) {
        if (child.name.includes("/") || child.name === "." || child.name === "..") continue;
        const childPath = `${path}/${child.name}`;
        this.#remote.set(childPath, { kind: kindOf(child.stat), stat: child.stat });
        await this.#removeAny(childPath);
      }
      await this.#sftp.rmdir(remote);
    } else {
      await this.#sftp.unlink(remote);
    }
    this.#remote.delete(path);
  }

  async #apply(items: readonly RsyncItem[], report: SyncReport): Promise<void> {
    const signal = this.#options.signal;
    const dirs = items.filter((i) => i.kind === "dir").map((i) => i.path);
    const listed = new Set(dirs);
    const leaves = items.filter((i) => i.kind !== "dir" && !this.#isProtected(i.path));

    // New directories first, parents before children, owner-writable until the end so their
    // contents can be written even when their final mode is read-only.
    for (const level of byDepth(dirs, false)) {
      await eachLimited(level, signal, async (path) => {
        if (path === "" || this.#remote.get(path)?.kind === "dir") return;
        await this.#removeAny(path);
        await this.#sftp.mkdir(this.#remotePath(path), { mode: 0o700 });
      });
    }

    const sizes = new Map<string, number>();
    for (const item of leaves) {
      if (item.kind === "file" && item.action === "send") {
        sizes.set(item.path, (await Deno.lstat(this.#local(item.path))).size);
      }
    }
    const total = [...sizes.values()].reduce((a, b) => a + b, 0);
    await eachLimited(leaves, signal, async (item) => {
      const local = this.#local(item.path);
      const remote = this.#remotePath(item.path);
      if (item.kind === "special") {
        this.#options.logger?.warn(`sftp sync: skipped ${item.path}: SFTP cannot make devices`);
        return;
      }
      if (item.kind === "symlink") {
        if (item.action !== "create") return;
        const target = await Deno.readLink(local);
        await this.#removeAny(item.path);
        await this.#sftp.symlink(target, remote);
        return;
      }
      const mode = (await Deno.lstat(local)).mode ?? 0o644;
      if (item.action === "send") {
        const data = await Deno.readFile(local);
        // Replace rather than overwrite: the old file may be read-only, a hard link, or a
        // symlink that a write would follow.
        await this.#removeAny(item.path);
        await this.#sftp.writeFile(remote, data, { mode: 0o600 });
        report.files++;
        report.bytes += data.byteLength;
        this.#options.onProgress?.({
          bytes: report.bytes,
          percent: total === 0 ? 100 : Math.floor((report.bytes / total) * 100),
          file: item.path,
        });
      }
      if (item.action === "send" || item.modeChanged) await this.#sftp.chmod(remote, mode & 0o7777);
    });

    // Final directory modes, deepest first so a read-only parent is closed last: the source's
    // mode where rsync would set it, the original mode where we only opened it.
    const finalModes = new Map(this.#opened);
    for (const path of dirs) {
      finalModes.set(path, ((await Deno.stat(this.#local(path))).mode ?? 0o755) & 0o7777);
    }
    for (const level of byDepth([...finalModes.keys()], true)) {
      await eachLimited(level, signal, async (path) => {
        // A directory opened for a deletion may have been deleted with it.
        if (path !== "" && !listed.has(path) && this.#remote.get(path)?.kind !== "dir") return;
        await this.#sftp.chmod(this.#remotePath(path), finalModes.get(path) as number);
      });
    }
  }

  #local(path: string): string {
    return path === "" ? this.#source : `${this.#source}/${path}`;
  }
}
