/**
 * PROTOTYPE (benchmark only): the journal with one lock per record instead
 * of one lock for the whole state directory.
 *
 * `Journal` takes an exclusive `flock` on `<state>/journal.lock` for every
 * insert and update (about six per create, each with an fsync), so 32
 * concurrent creates — in one process or in 32 — queue up behind each other
 * although they touch different files. Each record is its own file and is
 * replaced atomically (temp + fsync + rename), so only changes to the SAME
 * record need to be serialised: here the lock is `sandboxes/<id>.lock`. The
 * id's uniqueness check in `insert` happens under that id's lock, so it
 * stays race-free. Readers never lock (rename makes every read whole).
 *
 * @module
 */

import { SandboxExistsError, SandboxNotFoundError } from "../src/core/errors.ts";
import { Journal, type SandboxRecord, validateId } from "../src/core/journal.ts";

/** {@linkcode Journal} with per-record locks. */
export class PerRecordJournal extends Journal {
  #recordsDir: string;

  /** @param dir The state directory. */
  constructor(dir: string) {
    super(dir);
    this.#recordsDir = `${dir}/sandboxes`;
  }

  /** Same contract as {@linkcode Journal.insert}. */
  override async insert(record: SandboxRecord): Promise<void> {
    validateId(record.id);
    await this.#locked(record.id, async () => {
      const existing = await this.#read(record.id);
      if (existing !== undefined && existing.status !== "destroyed") {
        throw new SandboxExistsError(record.id);
      }
      await this.#write(record);
    });
  }

  /** Same contract as {@linkcode Journal.update}. */
  override async update(
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

  async #locked<T>(id: string, work: () => Promise<T>): Promise<T> {
    await Deno.mkdir(this.#recordsDir, { recursive: true, mode: 0o700 });
    const file = await Deno.open(`${this.#recordsDir}/${id}.lock`, {
      create: true,
      write: true,
      mode: 0o600,
    });
    try {
      await file.lock(true);
      return await work();
    } finally {
      file.close();
    }
  }

  async #read(id: string): Promise<SandboxRecord | undefined> {
    try {
      return JSON.parse(await Deno.readTextFile(`${this.#recordsDir}/${id}.json`));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  async #write(record: SandboxRecord): Promise<void> {
    const path = `${this.#recordsDir}/${record.id}.json`;
    const temp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    const file = await Deno.open(temp, { create: true, write: true, truncate: true, mode: 0o600 });
    try {
      await file.write(new TextEncoder().encode(JSON.stringify(record, null, 2) + "\n"));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  }
}
