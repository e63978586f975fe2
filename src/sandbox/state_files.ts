/**
 * The files of one state directory's journal: records written atomically,
 * one lock file per record, and the errors of a state directory that cannot
 * be used.
 *
 * @module
 */

import { localFileErrorFrom, StateDirError } from "../core/errors.ts";
import { mapPermissionError } from "../core/permissions.ts";
import { corrupt, recordProblem, type SandboxRecord } from "./record.ts";

/** The records directory of a state directory, and its file operations. */
export class StateFiles {
  /** The state directory. */
  readonly dir: string;
  /** `<dir>/sandboxes`. */
  readonly recordsDir: string;

  /** @param dir The state directory (created on first write). */
  constructor(dir: string) {
    this.dir = dir;
    this.recordsDir = `${dir}/sandboxes`;
  }

  /**
   * The file names in the records directory.
   *
   * @returns The names (none when the directory does not exist yet).
   */
  async entries(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.recordsDir)) {
        if (entry.isFile) names.push(entry.name);
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw this.stateError(mapPermissionError(error, "read", this.recordsDir), this.dir);
    }
    return names;
  }

  /** Make the records directory (mode 0700) if it is missing. */
  async mkdir(): Promise<void> {
    try {
      await Deno.mkdir(this.recordsDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) {
        throw new StateDirError(
          this.dir,
          `holds a file named "sandboxes" where its records directory belongs; move that file away`,
          { cause: error },
        );
      }
      throw this.stateError(mapPermissionError(error, "write", this.dir), this.dir);
    }
  }

  /**
   * Run `work` holding the exclusive lock of one record. Each record is its
   * own file replaced atomically, so only changes to the same record need
   * serialising; readers never lock. flock is released by the kernel if this
   * process dies, so a crash never wedges the journal. A lock file may be
   * removed (with its destroyed record's leftovers) while held: whoever
   * waited on the removed file sees that the path no longer names the file
   * it locked, and locks again.
   *
   * @param id The sandbox id.
   * @param work What to do under the lock; set `lock.drop` to remove the lock file after.
   * @returns What `work` returns.
   */
  async locked<T>(id: string, work: (lock: { drop: boolean }) => Promise<T>): Promise<T> {
    const path = `${this.recordsDir}/${id}.lock`;
    await this.mkdir();
    for (;;) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { create: true, write: true, mode: 0o600 });
      } catch (error) {
        throw this.stateError(mapPermissionError(error, "write", this.dir), path);
      }
      const lock = { drop: false };
      try {
        await file.lock(true);
        const held = await file.stat();
        const named = await Deno.stat(path).catch(() => undefined);
        if (named?.ino !== held.ino) continue;
        try {
          return await work(lock);
        } finally {
          // A lock file lives exactly as long as a record that is not destroyed.
          if (lock.drop || await this.#settled(id)) await Deno.remove(path).catch(() => {});
        }
      } finally {
        file.close();
      }
    }
  }

  /** Whether the record is gone or destroyed (a corrupt one is left alone). */
  async #settled(id: string): Promise<boolean> {
    try {
      const record = await this.read(id);
      return record === undefined || record.status === "destroyed";
    } catch {
      return false;
    }
  }

  /**
   * Read one record.
   *
   * @param id The sandbox id.
   * @returns The record, or undefined when there is none.
   * @throws {JournalError} when its file is corrupt.
   */
  async read(id: string): Promise<SandboxRecord | undefined> {
    const path = `${this.recordsDir}/${id}.json`;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw this.stateError(mapPermissionError(error, "read", path), path);
    }
    let record: SandboxRecord;
    try {
      record = JSON.parse(text) as SandboxRecord;
    } catch (error) {
      throw corrupt(path, `is not valid JSON (${(error as Error).message})`, error);
    }
    const problem = recordProblem(record, id);
    if (problem) throw corrupt(path, problem);
    return record;
  }

  /**
   * Replace a record's file atomically (temp file, fsync, rename).
   *
   * @param record The record.
   */
  async write(record: SandboxRecord): Promise<void> {
    const path = `${this.recordsDir}/${record.id}.json`;
    const temp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    try {
      const file = await Deno.open(temp, {
        create: true,
        write: true,
        truncate: true,
        mode: 0o600,
      });
      try {
        const bytes = new TextEncoder().encode(JSON.stringify(record, null, 2) + "\n");
        let offset = 0;
        while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
        await file.sync();
      } finally {
        file.close();
      }
      await Deno.rename(temp, path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw this.stateError(mapPermissionError(error, "write", path), path);
    }
  }

  /**
   * A full disk, a file in place of the directory, …: one line naming the state directory.
   *
   * @param error What a file operation threw.
   * @param path The file it was on.
   * @returns The error to throw.
   */
  stateError(error: unknown, path: string): unknown {
    const local = localFileErrorFrom(error);
    if (!local) return error;
    const code = (error as { code?: string }).code;
    const problem = code === "ENOTDIR"
      ? "is not a directory (a file is in the way); point SANDBOXER_HOME at a directory, or move that file away"
      : code === "ENOSPC" || code === "EDQUOT"
      ? `cannot be written: ${
        code === "ENOSPC" ? "the disk is full" : "the disk quota is exceeded"
      } (writing ${path}); free space on that disk, or point SANDBOXER_HOME at another one`
      : `cannot be used: ${local.message}`;
    return new StateDirError(this.dir, problem, { cause: error });
  }
}
