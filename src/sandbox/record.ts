/**
 * A sandbox's record as the journal keeps it (one JSON file per sandbox),
 * and what makes a record file unusable.
 *
 * @module
 */

import type { JsonObject } from "../core/types.ts";
import type { SyncSettings } from "../config/types.ts";
import { JournalError, OwnershipLostError } from "../core/errors.ts";
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
  /** The user's `KEY=VALUE` labels from `create --label`, for filtering list, destroy and gc. */
  labels?: Record<string, string>;
  /** The profile's `snapshot_ttl` in seconds: how long `sandboxer snapshot ID NAME` keeps one by default. */
  snapshot_ttl_seconds?: number;
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

/**
 * Why a parsed record file cannot be used, or undefined.
 *
 * @param record The parsed JSON.
 * @param id The id its file name gives.
 * @returns The problem, or undefined.
 */
export function recordProblem(record: unknown, id: string): string | undefined {
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

/**
 * The error for a record file that cannot be used.
 *
 * @param path The file.
 * @param problem What is wrong with it.
 * @param cause The parse error, if any.
 * @returns The error, with the fix.
 */
export function corrupt(path: string, problem: string, cause?: unknown): JournalError {
  return new JournalError(
    path,
    `is corrupt: it ${problem}; move it aside (mv ${path} ${path}.bad) and remove its sandbox by hand, or with "sandboxer gc --target PROFILE" once it expires`,
    { cause },
  );
}

/**
 * The error for a process whose record another process took over.
 *
 * @param current The record as the new owner left it.
 * @returns The error.
 */
export function lostTo(current: SandboxRecord): OwnershipLostError {
  const owner = current.owner;
  return new OwnershipLostError(
    current.id,
    `was taken over by process ${owner?.pid ?? "?"} on ${
      owner?.host ?? "?"
    } (gc, destroy --force, or a new sandbox with this id) and is ${current.status} now; this process changed and removed nothing more — see "sandboxer show ${current.id}"`,
  );
}
