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

import { ID_PATTERN, ID_SOURCE, validateId } from "../core/ids.ts";
import type { JsonObject } from "../core/types.ts";
import type { SyncSettings } from "../config/types.ts";
import {
  JournalError,
  localFileErrorFrom,
  OwnershipLostError,
  SandboxExistsError,
  SandboxNotFoundError,
  SandboxStateError,
  StateDirError,
} from "../core/errors.ts";
import { mapPermissionError } from "../core/permissions.ts";
import { transcriptPath } from "./transcript.ts";
import type { ResolvedPermissions } from "../extensions/confined/permissions.ts";

/** Lifecycle states: `creating → ready → destroying → destroyed`, or `failed` from any step. */
export type SandboxStatus = "creating" | "ready" | "destroying" | "destroyed" | "failed";

/** The process that owns a record: the only one that may change it without taking it over. */
export interface SandboxOwner {
  /** Its process id (for people; liveness is judged by the heartbeat, not the pid). */
  pid: number;
  /** Its host name. */
  host: string;
  /** Its user. */
  user: string;
  /**
   * Random token of the owning journal handle (one per process); its
   * heartbeat is `<id>.<token>.alive`. Absent in records written before
   * owners had tokens (their heartbeat is `<id>.alive`).
   */
  token?: string;
}

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
  /**
   * True while the sandbox belongs to a running `sandboxer run`: it lives only
   * as long as its owner's heartbeat, so `gc` destroys it once that process
   * died (like a crashed create). Cleared when `run --keep` keeps it.
   */
  ephemeral?: boolean;
  /** Who owns the record now: its creator, or the process that took it over to destroy it. */
  owner: SandboxOwner;
}

/** A process using a sandbox (an exec, sync or artifact copy in progress). */
export interface SandboxUse {
  /** What it does: `exec`, `sync`, `fetch`, `run`. */
  what: string;
  /** Its process id. */
  pid: number;
  /** Its host name. */
  host: string;
  /** Its user. */
  user: string;
}

/** How often a working process refreshes its heartbeats. */
const HEARTBEAT_INTERVAL_MS = 1000;
/** A heartbeat older than this means its process died (or is stopped). */
export const HEARTBEAT_STALE_MS = 4000;

/** `<id>.<token>.alive` (an owner at work) and `<id>.<token>.inuse` (a user of the sandbox). */
const BEAT_FILE = new RegExp(`^(${ID_SOURCE})\\.([0-9a-f]{16,64})\\.(alive|inuse)$`);

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

interface Beat {
  count: number;
  timer: ReturnType<typeof setInterval>;
  path: string;
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
  #recordsDir: string;
  #identity: { host: string; user: string };
  #beats = new Map<string, Beat>();

  /**
   * Create it.
   *
   * @param dir The state directory (created on first write).
   * @param options The owner identity to record.
   */
  constructor(dir: string, options: JournalOptions = {}) {
    this.dir = dir;
    this.#recordsDir = `${dir}/sandboxes`;
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
    return await this.#locked(record.id, async (lock) => {
      // A destroyed sandbox's name is free again; its old record is replaced.
      const existing = await this.#read(record.id);
      if (existing !== undefined && existing.status !== "destroyed") {
        throw new SandboxExistsError(record.id);
      }
      const next = { ...record, owner: this.owner };
      try {
        await this.#write(next);
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
    return await this.#locked(id, async (lock) => {
      const current = await this.#read(id);
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
      await this.#write(next);
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
  async forget(id: string, options: JournalUpdateOptions = {}): Promise<void> {
    validateId(id);
    await this.#locked(id, async (lock) => {
      const current = await this.#read(id);
      if (current === undefined) return;
      if (current.owner?.token !== this.token) throw lostTo(current);
      if (options.expect && !options.expect.includes(current.status)) {
        throw new SandboxStateError(
          id,
          `is ${current.status}, not ${options.expect.join(" or ")} as this step expects`,
        );
      }
      await Deno.remove(`${this.#recordsDir}/${id}.json`);
      await this.#cleanUp(id, lock);
    });
  }

  /**
   * Change a fact about the sandbox itself that any process using it may
   * learn (a host key the user accepted), without taking the record over:
   * the owner, status and every other field stay as the journal holds them.
   *
   * @param id The sandbox id.
   * @param change The fields to set, computed from the current record.
   * @returns The stored record.
   * @throws {SandboxNotFoundError} when there is no such record.
   */
  async amend(
    id: string,
    change: (record: SandboxRecord) => Pick<Partial<SandboxRecord>, "handle">,
  ): Promise<SandboxRecord> {
    validateId(id);
    return await this.#locked(id, async () => {
      const current = await this.#read(id);
      if (current === undefined) throw new SandboxNotFoundError(id);
      const next = { ...current, ...change(current), updated_at: new Date().toISOString() };
      await this.#write(next);
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
    return await this.#locked(id, async () => {
      const current = await this.#read(id);
      if (current === undefined) throw new SandboxNotFoundError(id);
      const change = await decide(current);
      if (change === undefined) return { record: current, claimed: false };
      const next: SandboxRecord = {
        ...current,
        ...change,
        owner: this.owner,
        updated_at: new Date().toISOString(),
      };
      await this.#write(next);
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
    const record = await this.#read(id);
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
    for (const name of await this.#entries()) {
      const match = /^(.+)\.json$/.exec(name);
      if (!match || !ID_PATTERN.test(match[1])) continue;
      try {
        const record = await this.#read(match[1]);
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
    return await this.#beat(this.#beatPath(validateId(id), "alive"), {
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
    return await this.#locked(id, async () => {
      const record = await this.#read(id);
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
      const beat = await this.#beat(this.#beatPath(id, "inuse"), use);
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
      ? `${this.#recordsDir}/${record.id}.${token}.alive`
      : `${this.#recordsDir}/${record.id}.alive`;
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
    for (const name of await this.#entries()) {
      const match = BEAT_FILE.exec(name);
      if (!match || match[1] !== id || match[3] !== "inuse") continue;
      const path = `${this.#recordsDir}/${name}`;
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
    for (const name of await this.#entries()) {
      const lock = /^(.+)\.lock$/.exec(name);
      const beat = BEAT_FILE.exec(name) ?? /^(.+)\.alive$/.exec(name);
      const id = lock?.[1] ?? beat?.[1];
      if (id !== undefined && ID_PATTERN.test(id)) ids.add(id);
    }
    for (const id of ids) {
      removed += await this.#locked(id, async (lock) => {
        let record: SandboxRecord | undefined;
        try {
          record = await this.#read(id);
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

  /** After a record reached `destroyed` (or vanished): drop its lock and stale heartbeats. */
  async #cleanUp(id: string, lock: { drop: boolean }): Promise<number> {
    let removed = 1;
    lock.drop = true;
    // The transcript goes with the sandbox it describes.
    await Deno.remove(transcriptPath(this.dir, id)).catch(() => {});
    for (const name of await this.#entries()) {
      const match = BEAT_FILE.exec(name);
      const legacy = name === `${id}.alive`;
      if (!legacy && (!match || match[1] !== id)) continue;
      const path = `${this.#recordsDir}/${name}`;
      if (await fresh(path)) continue;
      await Deno.remove(path).then(() => removed++, () => {});
    }
    return removed;
  }

  #beatPath(id: string, kind: "alive" | "inuse"): string {
    return `${this.#recordsDir}/${id}.${this.token}.${kind}`;
  }

  async #beat(path: string, content: object): Promise<AsyncDisposable> {
    let beat: Beat | undefined = this.#beats.get(path);
    if (beat) {
      beat.count++;
    } else {
      await this.#mkdir();
      try {
        await Deno.writeTextFile(path, JSON.stringify(content) + "\n", { mode: 0o600 });
      } catch (error) {
        // A full disk can leave the file made but empty: no heartbeat may outlive its process.
        await Deno.remove(path).catch(() => {});
        throw this.#stateError(error, path);
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

  async #entries(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.#recordsDir)) {
        if (entry.isFile) names.push(entry.name);
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw this.#stateError(mapPermissionError(error, "read", this.#recordsDir), this.dir);
    }
    return names;
  }

  async #mkdir(): Promise<void> {
    try {
      await Deno.mkdir(this.#recordsDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) {
        throw new StateDirError(
          this.dir,
          `holds a file named "sandboxes" where its records directory belongs; move that file away`,
          { cause: error },
        );
      }
      throw this.#stateError(mapPermissionError(error, "write", this.dir), this.dir);
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
   */
  async #locked<T>(id: string, work: (lock: { drop: boolean }) => Promise<T>): Promise<T> {
    const path = `${this.#recordsDir}/${id}.lock`;
    await this.#mkdir();
    for (;;) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { create: true, write: true, mode: 0o600 });
      } catch (error) {
        throw this.#stateError(mapPermissionError(error, "write", this.dir), path);
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
      const record = await this.#read(id);
      return record === undefined || record.status === "destroyed";
    } catch {
      return false;
    }
  }

  async #read(id: string): Promise<SandboxRecord | undefined> {
    const path = `${this.#recordsDir}/${id}.json`;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw this.#stateError(mapPermissionError(error, "read", path), path);
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
      throw this.#stateError(mapPermissionError(error, "write", path), path);
    }
  }

  /** A full disk, a file in place of the directory, …: one line naming the state directory. */
  #stateError(error: unknown, path: string): unknown {
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

/** Why a parsed record file cannot be used, or undefined. */
function recordProblem(record: unknown, id: string): string | undefined {
  if (record === null || typeof record !== "object" || Array.isArray(record)) {
    return "does not hold a JSON object";
  }
  const r = record as Partial<SandboxRecord>;
  if (r.id !== id) return `names sandbox ${JSON.stringify(r.id)}, not "${id}" as its file name`;
  const statuses = ["creating", "ready", "destroying", "destroyed", "failed"];
  if (typeof r.status !== "string" || !statuses.includes(r.status)) {
    return `has no valid status (got ${JSON.stringify(r.status)})`;
  }
  if (typeof r.created_at !== "string") return "has no created_at";
  if (r.owner === null || typeof r.owner !== "object") return "has no owner";
  return undefined;
}

function corrupt(path: string, problem: string, cause?: unknown): JournalError {
  return new JournalError(
    path,
    `is corrupt: it ${problem}; move it aside (mv ${path} ${path}.bad) and remove its sandbox by hand, or with "sandboxer gc --target PROFILE" once it expires`,
    { cause },
  );
}

function lostTo(current: SandboxRecord): OwnershipLostError {
  const owner = current.owner;
  return new OwnershipLostError(
    current.id,
    `was taken over by process ${owner?.pid ?? "?"} on ${
      owner?.host ?? "?"
    } (gc, destroy --force, or a new sandbox with this id) and is ${current.status} now; this process changed and removed nothing more — see "sandboxer show ${current.id}"`,
  );
}

async function fresh(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return Date.now() - (info.mtime?.getTime() ?? 0) < HEARTBEAT_STALE_MS;
  } catch {
    return false;
  }
}
