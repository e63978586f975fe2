/**
 * The journal: one JSON record per sandbox under the state directory,
 * written atomically (temp file + rename) while holding an exclusive lock, so
 * concurrent CLI processes never lose or tear a record and a crash at any
 * point leaves the last complete record on disk.
 *
 * @module
 */

import type { JsonObject, SyncSettings } from "../config/types.ts";
import {
  InvalidIdError,
  JournalError,
  SandboxExistsError,
  SandboxNotFoundError,
} from "./errors.ts";
import { mapPermissionError } from "./permissions.ts";
import type { ResolvedPermissions } from "../extensions/confined/permissions.ts";

/** Lifecycle states: `creating → ready → destroying → destroyed`, or `failed` from any step. */
export type SandboxStatus = "creating" | "ready" | "destroying" | "destroyed" | "failed";

/** What the journal stores for each sandbox. Field names are the CLI's JSON output. */
export interface SandboxRecord {
  /** The sandbox id. */
  id: string;
  /** Where it is in its lifecycle. */
  status: SandboxStatus;
  /** Id of the profile it was made from (`profile.<name>`). */
  profile: string;
  /** The profile file, for `sync` defaults. */
  profile_file: string;
  /** Id of the extension that made it. */
  extension: string;
  /** The workspace path on the target, once known. */
  workspace: string | null;
  /** The extension's destroy handle; `null` until the extension records one. */
  handle: JsonObject | null;
  /** ISO time of creation. */
  created_at: string;
  /** ISO time of the last change. */
  updated_at: string;
  /** ISO time after which `gc` destroys it, or `null` for no expiry. */
  expires_at: string | null;
  /** The step running or last run (`create`, `sync`, `setup`, `destroy`, …). */
  step: string | null;
  /** The error that made it `failed` (one line), if any. */
  error: string | null;
  /** The profile's sync settings, kept so `sync` works without the profile. */
  sync: SyncSettings;
  /** The profile's `NAME=value` environment for every command. */
  env?: string[];
  /** For a third-party extension: exactly what its confined code may touch for this sandbox. */
  permissions?: ResolvedPermissions | null;
  /** Who made it: process id and host, to tell a live creator from a crashed one. */
  owner: { pid: number; host: string; user: string };
}

/** How often a working process refreshes its heartbeat. */
const HEARTBEAT_INTERVAL_MS = 1000;
/** A heartbeat older than this means its process died. */
export const HEARTBEAT_STALE_MS = 4000;

const ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Check a sandbox id.
 *
 * @param id The id to check.
 * @returns The id.
 * @throws {InvalidIdError} when it is not `[a-z0-9][a-z0-9-]{0,62}`.
 */
export function validateId(id: string): string {
  if (!ID_PATTERN.test(id)) throw new InvalidIdError(id);
  return id;
}

/**
 * A random id: 10 characters of `[a-z0-9]`, starting with a letter.
 *
 * @returns A fresh id.
 */
export function randomId(): string {
  const letters = "abcdefghijklmnopqrstuvwxyz";
  const alphabet = letters + "0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  let id = letters[bytes[0] % letters.length];
  for (const byte of bytes.slice(1)) id += alphabet[byte % alphabet.length];
  return id;
}

/** The journal of sandbox records in one state directory. */
export class Journal {
  /** The state directory. */
  readonly dir: string;
  #recordsDir: string;

  /**
   * Create it.
   *
   * @param dir The state directory (created on first write).
   */
  constructor(dir: string) {
    this.dir = dir;
    this.#recordsDir = `${dir}/sandboxes`;
  }

  /**
   * Add a new record.
   *
   * @param record The record; its id must be unused.
   * @throws {SandboxExistsError} when the id is taken.
   */
  async insert(record: SandboxRecord): Promise<void> {
    validateId(record.id);
    await this.#locked(record.id, async () => {
      // A destroyed sandbox's name is free again; its old record is replaced.
      const existing = await this.#read(record.id);
      if (existing !== undefined && existing.status !== "destroyed") {
        throw new SandboxExistsError(record.id);
      }
      await this.#write(record);
    });
  }

  /**
   * Change a record under the lock and store it.
   *
   * @param id The sandbox id.
   * @param change Fields to set, or a function from the current record to the new one.
   * @returns The stored record.
   * @throws {SandboxNotFoundError} when there is no such record.
   */
  async update(
    id: string,
    change: Partial<SandboxRecord> | ((record: SandboxRecord) => SandboxRecord),
  ): Promise<SandboxRecord> {
    validateId(id);
    return await this.#locked(id, async () => {
      const current = await this.#read(id);
      if (current === undefined) throw new SandboxNotFoundError(id);
      const next = typeof change === "function" ? change(current) : { ...current, ...change };
      next.updated_at = new Date().toISOString();
      await this.#write(next);
      return next;
    });
  }

  /**
   * Read one record.
   *
   * @param id The sandbox id.
   * @returns The record.
   * @throws {SandboxNotFoundError} when there is none.
   */
  async get(id: string): Promise<SandboxRecord> {
    validateId(id);
    const record = await this.#read(id);
    if (record === undefined) throw new SandboxNotFoundError(id);
    return record;
  }

  /**
   * Every record, oldest first.
   *
   * @returns The records.
   */
  async list(): Promise<SandboxRecord[]> {
    const records: SandboxRecord[] = [];
    try {
      for await (const entry of Deno.readDir(this.#recordsDir)) {
        const match = /^(.+)\.json$/.exec(entry.name);
        if (!entry.isFile || !match || !ID_PATTERN.test(match[1])) continue;
        const record = await this.#read(match[1]);
        if (record) records.push(record);
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw mapPermissionError(error, "read", this.#recordsDir);
    }
    return records.sort((a, b) =>
      a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id)
    );
  }

  /**
   * Keep a heartbeat for `id` fresh while this process works on it, so other
   * processes can tell a live creator from a crashed one (Deno cannot look
   * at /proc or signal other processes without --allow-all).
   *
   * @param id The sandbox id.
   * @returns Dispose it when the work is done.
   */
  async heartbeat(id: string): Promise<AsyncDisposable> {
    const path = `${this.#recordsDir}/${validateId(id)}.alive`;
    const beat = () => Deno.writeTextFile(path, `${Deno.pid}\n`).catch(() => {});
    await beat();
    const timer = setInterval(beat, HEARTBEAT_INTERVAL_MS);
    Deno.unrefTimer(timer);
    return {
      async [Symbol.asyncDispose]() {
        clearInterval(timer);
        await Deno.remove(path).catch(() => {});
      },
    };
  }

  /**
   * Whether some process is still working on `id` (its heartbeat is fresh).
   *
   * @param id The sandbox id.
   * @returns True while the heartbeat is younger than the staleness limit.
   */
  async heartbeatFresh(id: string): Promise<boolean> {
    try {
      const info = await Deno.stat(`${this.#recordsDir}/${validateId(id)}.alive`);
      return Date.now() - (info.mtime?.getTime() ?? 0) < HEARTBEAT_STALE_MS;
    } catch {
      return false;
    }
  }

  /**
   * Run `work` holding the exclusive lock of one record. Each record is its
   * own file replaced atomically, so only changes to the same record need
   * serialising; readers never lock. flock is released by the kernel if this
   * process dies, so a crash never wedges the journal.
   */
  async #locked<T>(id: string, work: () => Promise<T>): Promise<T> {
    let file: Deno.FsFile;
    try {
      await Deno.mkdir(this.#recordsDir, { recursive: true, mode: 0o700 });
      file = await Deno.open(`${this.#recordsDir}/${id}.lock`, {
        create: true,
        write: true,
        mode: 0o600,
      });
    } catch (error) {
      throw mapPermissionError(error, "write", this.dir);
    }
    try {
      await file.lock(true);
      return await work();
    } finally {
      file.close();
    }
  }

  async #read(id: string): Promise<SandboxRecord | undefined> {
    const path = `${this.#recordsDir}/${id}.json`;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw mapPermissionError(error, "read", path);
    }
    try {
      const record = JSON.parse(text) as SandboxRecord;
      if (record?.id !== id || typeof record.status !== "string") throw new Error("missing fields");
      return record;
    } catch (error) {
      throw new JournalError(
        path,
        "is corrupt; move it aside and clean up its sandbox by hand",
        { cause: error },
      );
    }
  }

  async #write(record: SandboxRecord): Promise<void> {
    const path = `${this.#recordsDir}/${record.id}.json`;
    const temp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    try {
      const file = await Deno.open(temp, {
        create: true,
        write: true,
        truncate: true,
        mode: 0o600,
      });
      try {
        await file.write(new TextEncoder().encode(JSON.stringify(record, null, 2) + "\n"));
        await file.sync();
      } finally {
        file.close();
      }
      await Deno.rename(temp, path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw mapPermissionError(error, "write", path);
    }
  }
}
