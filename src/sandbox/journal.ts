/**
 * The journal: one JSON record per sandbox under the state directory,
 * written atomically (temp file + rename) while holding that record's lock,
 * so concurrent CLI processes never lose or tear a record and a crash at any
 * point leaves the last complete record on disk.
 *
 * Every record has one owner: the process (identified by a random token, one
 * per journal handle, not its pid) that created it or took it over to destroy
 * it. Only the owner may change a record; anyone else must first take it over
 * with {@linkcode Journal.claim}, which checks the current state under the
 * lock. Processes show they are alive with heartbeat files, one per owner
 * (`<id>.<token>.alive`) and one per process using the sandbox
 * (`<id>.<token>.inuse`, for exec, sync and artifact copies).
 *
 * @module
 */

import { ID_PATTERN, validateId } from "../core/ids.ts";
import {
  JournalError,
  SandboxExistsError,
  SandboxNotFoundError,
  SandboxStateError,
} from "../core/errors.ts";
import { BEAT_FILE, fresh, Heartbeats } from "./heartbeats.ts";
import {
  lostTo,
  type SandboxOwner,
  type SandboxRecord,
  type SandboxStatus,
  type SandboxUse,
} from "./record.ts";
import { StateFiles } from "./state_files.ts";
import { transcriptPath } from "./transcript.ts";

/** Options for the {@linkcode Journal} constructor. */
export interface JournalOptions {
  /** Host and user recorded as the owner of what this journal writes. Default "unknown". */
  identity?: { host: string; user: string };
}

/** Options for {@linkcode Journal.list}. */
export interface JournalListOptions {
  /**
   * Called for each record file that cannot be read; the others are still
   * returned. Without it, the first corrupt record is thrown.
   */
  onCorrupt?: (error: JournalError) => void;
}

/** Options for {@linkcode Journal.update}. */
export interface JournalUpdateOptions {
  /** The states the record may be in for the change to apply. */
  expect?: readonly SandboxStatus[];
}

/** A sandbox marked in use by this process; dispose it when the work ends. */
export interface SandboxInUse extends AsyncDisposable {
  /** The record, as it was when the use began (status `ready`). */
  readonly record: SandboxRecord;
}

/** The journal of sandbox records in one state directory. */
export class Journal {
  /** The state directory. */
  readonly dir: string;
  /**
   * This journal handle's owner token: random, one per handle (a CLI process
   * has one). Records this handle creates or takes over carry it.
   */
  readonly token: string;
  #files: StateFiles;
  #identity: { host: string; user: string };
  #beats: Heartbeats;

  /**
   * Create it.
   *
   * @param dir The state directory (created on first write).
   * @param options The owner identity to record.
   */
  constructor(dir: string, options: JournalOptions = {}) {
    this.dir = dir;
    this.#files = new StateFiles(dir);
    this.#beats = new Heartbeats(this.#files);
    this.#identity = options.identity ?? { host: "unknown", user: "unknown" };
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    this.token = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** The owner this journal handle writes into records it creates or takes over. */
  get owner(): SandboxOwner {
    return { pid: Deno.pid, ...this.#identity, token: this.token };
  }

  /**
   * Add a new record, owned by this journal handle.
   *
   * @param record The record; its id must be unused. Its `owner` is replaced by this handle's.
   * @returns The stored record.
   * @throws {SandboxExistsError} when the id is taken.
   */
  async insert(record: SandboxRecord): Promise<SandboxRecord> {
    validateId(record.id);
    return await this.#files.locked(record.id, async (lock) => {
      // A destroyed sandbox's name is free again; its old record is replaced.
      const existing = await this.#files.read(record.id);
      if (existing !== undefined && existing.status !== "destroyed") {
        throw new SandboxExistsError(record.id);
      }
      const next = { ...record, owner: this.owner };
      try {
        await this.#files.write(next);
      } catch (error) {
        // Nothing was recorded, so the lock file must not stay behind either.
        if (existing === undefined) lock.drop = true;
        throw error;
      }
      return next;
    });
  }

  /**
   * Change a record this journal handle owns, under its lock. When the record
   * has been taken over (by `gc` or `destroy --force`, possibly followed by a
   * new sandbox with the same id), nothing is written.
   *
   * @param id The sandbox id.
   * @param change Fields to set, or a function from the current record to the new one.
   * @param options The states the record must be in.
   * @returns The stored record.
   * @throws {SandboxNotFoundError} when there is no such record.
   * @throws {OwnershipLostError} when another process owns the record now.
   * @throws {SandboxStateError} when the record is not in an expected state.
   */
  async update(
    id: string,
    change: Partial<SandboxRecord> | ((record: SandboxRecord) => SandboxRecord),
    options: JournalUpdateOptions = {},
  ): Promise<SandboxRecord> {
    validateId(id);
    return await this.#files.locked(id, async (lock) => {
      const current = await this.#files.read(id);
      if (current === undefined) throw new SandboxNotFoundError(id);
      if (current.owner?.token !== this.token) throw lostTo(current);
      if (options.expect && !options.expect.includes(current.status)) {
        throw new SandboxStateError(
          id,
          `is ${current.status}, not ${options.expect.join(" or ")} as this step expects`,
        );
      }
      const next = typeof change === "function" ? change(current) : { ...current, ...change };
      next.owner = current.owner;
      next.updated_at = new Date().toISOString();
      await this.#files.write(next);
      if (next.status === "destroyed") await this.#cleanUp(id, lock);
      return next;
    });
  }

  /**
   * Drop a record this journal handle owns, for a create that made nothing
   * (or rolled back what it made): a record with nothing behind it would only
   * hold the name and clutter `list`.
   *
   * @param id The sandbox id.
   * @param options The states the record must be in.
   * @throws {OwnershipLostError} when another process owns the record now.
   * @throws {SandboxStateError} when the record is not in an expected state.
   */
  async forgetOwn(id: string, options: JournalUpdateOptions = {}): Promise<void> {
    // The same removal as forget(), with the owner and state checks of update().
    await this.forget(id, (current) => {
      if (current.owner?.token !== this.token) throw lostTo(current);
      if (options.expect && !options.expect.includes(current.status)) {
        throw new SandboxStateError(
          id,
          `is ${current.status}, not ${options.expect.join(" or ")} as this step expects`,
        );
      }
      return true;
    });
  }

  /**
   * Change a fact about the sandbox itself that any process using it may
   * learn (a host key the user accepted, a later expiry), without taking the record over:
   * the owner, status and every other field stay as the journal holds them.
   *
   * @param id The sandbox id.
   * @param change The fields to set, computed from the current record.
   * @returns The stored record.
   * @throws {SandboxNotFoundError} when there is no such record.
   */
  async amend(
    id: string,
    change: (record: SandboxRecord) => Pick<Partial<SandboxRecord>, "handle" | "expires_at">,
  ): Promise<SandboxRecord> {
    validateId(id);
    return await this.#files.locked(id, async () => {
      const current = await this.#files.read(id);
      if (current === undefined) throw new SandboxNotFoundError(id);
      const next = { ...current, ...change(current), updated_at: new Date().toISOString() };
      await this.#files.write(next);
      return next;
    });
  }

  /**
   * Take a record over, deciding under its lock from its current state. The
   * decision may refuse (throw), leave the record alone (return undefined),
   * or return the fields to change; the record then belongs to this handle.
   *
   * @param id The sandbox id.
   * @param decide Looks at the current record and returns the change, undefined, or throws.
   * @returns The record after the decision, and whether it was taken over.
   * @throws {SandboxNotFoundError} when there is no such record.
   */
  async claim(
    id: string,
    decide: (record: SandboxRecord) => Promise<Partial<SandboxRecord> | undefined>,
  ): Promise<{ record: SandboxRecord; claimed: boolean }> {
    validateId(id);
    return await this.#files.locked(id, async () => {
      const current = await this.#files.read(id);
      if (current === undefined) throw new SandboxNotFoundError(id);
      const change = await decide(current);
      if (change === undefined) return { record: current, claimed: false };
      const next: SandboxRecord = {
        ...current,
        ...change,
        owner: this.owner,
        updated_at: new Date().toISOString(),
      };
      await this.#files.write(next);
      return { record: next, claimed: true };
    });
  }

  /**
   * Read one record.
   *
   * @param id The sandbox id.
   * @returns The record.
   * @throws {SandboxNotFoundError} when there is none.
   * @throws {JournalError} when its file is corrupt.
   */
  async get(id: string): Promise<SandboxRecord> {
    validateId(id);
    const record = await this.#files.read(id);
    if (record === undefined) throw new SandboxNotFoundError(id);
    return record;
  }

  /**
   * Every record, oldest first.
   *
   * @param options What to do with a corrupt record.
   * @returns The records.
   */
  async list(options: JournalListOptions = {}): Promise<SandboxRecord[]> {
    const records: SandboxRecord[] = [];
    for (const name of await this.#files.entries()) {
      const match = /^(.+)\.json$/.exec(name);
      if (!match || !ID_PATTERN.test(match[1])) continue;
      try {
        const record = await this.#files.read(match[1]);
        if (record) records.push(record);
      } catch (error) {
        if (!(error instanceof JournalError) || !options.onCorrupt) throw error;
        options.onCorrupt(error);
      }
    }
    return records.sort((a, b) =>
      a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id)
    );
  }

  /**
   * Keep this handle's owner heartbeat for `id` fresh while it works on the
   * sandbox, so other processes can tell a live owner from a crashed or
   * stopped one (Deno cannot look at /proc or signal other processes without
   * --allow-all). Nested calls share one file.
   *
   * @param id The sandbox id.
   * @returns Dispose it when the work is done.
   */
  async heartbeat(id: string): Promise<AsyncDisposable> {
    return await this.#beats.beat(this.#beatPath(validateId(id), "alive"), {
      pid: Deno.pid,
      ...this.#identity,
    });
  }

  /**
   * Mark a ready sandbox in use by this process (for exec, sync, artifact
   * copies), checked and written under the record's lock so a `destroy`
   * either sees the use or has already begun (and the use is refused).
   *
   * @param id The sandbox id.
   * @param what What the process does in it (`exec`, `sync`, …).
   * @param verb For the refusal: "run commands in", "sync into", ….
   * @returns The record and the disposable that ends the use.
   * @throws {SandboxStateError} when it is not ready.
   */
  async use(id: string, what: string, verb: string): Promise<SandboxInUse> {
    validateId(id);
    return await this.#files.locked(id, async () => {
      const record = await this.#files.read(id);
      if (record === undefined) throw new SandboxNotFoundError(id);
      if (record.status !== "ready" || !record.handle) {
        throw new SandboxStateError(
          id,
          `is ${record.status}, so sandboxer cannot ${verb} it; ${
            record.status === "failed"
              ? `it failed: ${record.error}; destroy it`
              : "create a new one"
          }`,
        );
      }
      const use: SandboxUse = { what, pid: Deno.pid, ...this.#identity };
      const beat = await this.#beats.beat(this.#beatPath(id, "inuse"), use);
      return { record, [Symbol.asyncDispose]: () => beat[Symbol.asyncDispose]() };
    });
  }

  /**
   * Whether the record's owner is still at work on it (its heartbeat is fresh).
   *
   * @param record The record.
   * @returns True while the owner's heartbeat is younger than the staleness limit.
   */
  async ownerAlive(record: SandboxRecord): Promise<boolean> {
    const token = record.owner?.token;
    const path = token
      ? `${this.#files.recordsDir}/${record.id}.${token}.alive`
      : `${this.#files.recordsDir}/${record.id}.alive`;
    return await fresh(path);
  }

  /**
   * The processes using a sandbox now (fresh in-use heartbeats), this one's included.
   *
   * @param id The sandbox id.
   * @returns Who uses it and for what.
   */
  async users(id: string): Promise<SandboxUse[]> {
    validateId(id);
    const users: SandboxUse[] = [];
    for (const name of await this.#files.entries()) {
      const match = BEAT_FILE.exec(name);
      if (!match || match[1] !== id || match[3] !== "inuse") continue;
      const path = `${this.#files.recordsDir}/${name}`;
      if (!(await fresh(path))) continue;
      try {
        users.push(JSON.parse(await Deno.readTextFile(path)) as SandboxUse);
      } catch {
        users.push({ what: "use", pid: 0, host: "unknown", user: "unknown" });
      }
    }
    return users;
  }

  /**
   * Remove what destroyed sandboxes left in the state directory: lock files
   * (also those of records that no longer exist) and stale heartbeats. Fresh
   * heartbeats belong to live processes and stay.
   *
   * @returns The number of files removed.
   */
  async prune(): Promise<number> {
    let removed = 0;
    const ids = new Set<string>();
    for (const name of await this.#files.entries()) {
      const lock = /^(.+)\.lock$/.exec(name);
      const beat = BEAT_FILE.exec(name) ?? /^(.+)\.alive$/.exec(name);
      const id = lock?.[1] ?? beat?.[1];
      if (id !== undefined && ID_PATTERN.test(id)) ids.add(id);
    }
    for (const id of ids) {
      removed += await this.#files.locked(id, async (lock) => {
        let record: SandboxRecord | undefined;
        try {
          record = await this.#files.read(id);
        } catch (error) {
          if (error instanceof JournalError) return 0; // left for a person to look at
          throw error;
        }
        if (record !== undefined && record.status !== "destroyed") return 0;
        return await this.#cleanUp(id, lock);
      });
    }
    return removed;
  }

  /**
   * Drop a record for good (its file, lock and stale heartbeats), if `may`
   * still allows it once the record's lock is held.
   *
   * @param id The sandbox id.
   * @param may Decides on the record as it is under the lock.
   * @returns The record dropped, or undefined when it was gone or `may` refused.
   */
  async forget(
    id: string,
    may: (record: SandboxRecord) => boolean,
  ): Promise<SandboxRecord | undefined> {
    validateId(id);
    return await this.#files.locked(id, async (lock) => {
      const record = await this.#files.read(id);
      if (record === undefined || !may(record)) return undefined;
      await Deno.remove(`${this.#files.recordsDir}/${id}.json`);
      await this.#cleanUp(id, lock);
      return record;
    });
  }

  /** After a record reached `destroyed` (or vanished): drop its lock and stale heartbeats. */
  async #cleanUp(id: string, lock: { drop: boolean }): Promise<number> {
    let removed = 1;
    lock.drop = true;
    // The transcript goes with the sandbox it describes.
    await Deno.remove(transcriptPath(this.dir, id)).catch(() => {});
    for (const name of await this.#files.entries()) {
      const match = BEAT_FILE.exec(name);
      const legacy = name === `${id}.alive`;
      if (!legacy && (!match || match[1] !== id)) continue;
      const path = `${this.#files.recordsDir}/${name}`;
      if (await fresh(path)) continue;
      await Deno.remove(path).then(() => removed++, () => {});
    }
    return removed;
  }

  #beatPath(id: string, kind: "alive" | "inuse"): string {
    return `${this.#files.recordsDir}/${id}.${this.token}.${kind}`;
  }
}
