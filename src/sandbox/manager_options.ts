/**
 * The options and reports of `Manager`'s methods (mod.ts exports them).
 *
 * @module
 */

import type { ExecIO, Logger, SyncProgress } from "../core/types.ts";
import type { SandboxRecord } from "./record.ts";
import type { WaitProgress } from "../extensions/types.ts";

/** Options for {@linkcode Manager.open}. */
export interface ManagerOptions {
  /** State directory. Default: `$SANDBOXER_HOME`, `$XDG_STATE_HOME/sandboxer`, `~/.local/state/sandboxer`. */
  stateDir?: string;
  /** Extra directories with extension registrations (after the built-ins and `$SANDBOXER_EXTENSION_PATH`). */
  extensionDirs?: readonly string[];
  /** Extra profile directories (after the built-ins and `$SANDBOXER_PROFILE_PATH`). */
  profileDirs?: readonly string[];
  /** Where progress goes. Default: nowhere. */
  logger?: Logger;
  /** Trust unknown SSH host keys on first use (and record them). Default false. */
  acceptNewHostKey?: boolean;
  /**
   * A host key fingerprint (`SHA256:…`) to accept in place of the one a
   * sandbox pinned at create, for a host that was rebuilt or re-keyed; the
   * server must offer exactly this key, and it becomes the new pin once a
   * command on the sandbox succeeds.
   */
  acceptHostKey?: string;
  /** How to read the environment. Default: only variables the process may read. */
  env?: (name: string) => string | undefined;
}

/** Options for {@linkcode Manager.create}. */
export interface CreateOptions {
  /** Profile name or file path. */
  profile: string;
  /** Sandbox id; random when absent. */
  name?: string;
  /** Local directory to sync into the workspace after creating it. */
  repo?: string;
  /** `dotted.path=value` overrides of profile fields. */
  overrides?: readonly string[];
  /** Lifetime in seconds, overriding the profile's `ttl`. */
  ttlSeconds?: number;
  /** Where setup commands' output goes. Default: the logger, line by line. */
  setupIO?: Pick<ExecIO, "stdout" | "stderr">;
  /** Sync progress. */
  onProgress?: (progress: SyncProgress) => void;
  /** Called as each phase (`create`, `sync`, `setup`) ends, with its duration. */
  onPhase?: (phase: string, ms: number) => void;
  /**
   * Seconds to queue for room when the backend has none (every slot of a
   * pool taken); absent or 0: fail at once.
   */
  waitSeconds?: number;
  /** Called now and then while queued for room, with the seconds waited and how many wait ahead. */
  onWaiting?: (progress: WaitProgress) => void;
  /**
   * Aborting stops creation; a sandbox already made is left `failed` for
   * `destroy`, one never made leaves no record.
   */
  signal?: AbortSignal;
  /**
   * Called once this create has written the sandbox's record (and so owns
   * it). A create refused before that (a bad profile, an id in use) never
   * calls it: what `run` uses to tear down only what its own create made.
   */
  onRecorded?: (record: SandboxRecord) => void;
  /**
   * Mark the sandbox as living only as long as this process: `gc` destroys it
   * once this process's owner heartbeat ({@linkcode Journal.heartbeat}) goes
   * stale, even when it is `ready`. What `run` uses; hold the heartbeat for
   * as long as the sandbox should live.
   */
  ephemeral?: boolean;
  /** Labels to record with the sandbox (`create --label KEY=VALUE`). */
  labels?: Record<string, string>;
  /**
   * Start the workspace as a copy of this snapshot (`create --from-snapshot
   * NAME`; docs/snapshots.md), kept on the profile's target; a repo is then
   * synced on top. A missing, expired or foreign snapshot is refused before
   * anything is made; one that fails later rolls the create back.
   */
  fromSnapshot?: string;
  /**
   * Share SSH connections with other sandboxer processes (what the CLI's
   * `create` does, from `SANDBOXER_SSH_MUX`): a shared connection already up
   * for the target serves this create and its first sync, with no
   * handshake; else one is started beside this create's own, and stays up
   * this many seconds after its last use, so that the next `sandboxer sync`
   * or `exec` pays no handshake. Absent: none.
   */
  sshMux?: { persistSeconds: number };
}

/** Options for {@linkcode Manager.sync}. */
export interface ManagerSyncOptions {
  /** Local directory; default the profile's `sync.source`. */
  repo?: string;
  /** Progress callback. */
  onProgress?: (progress: SyncProgress) => void;
  /** Aborting stops the transfer. */
  signal?: AbortSignal;
  /**
   * Run over a shared SSH connection that is up (see
   * {@linkcode CreateOptions.sshMux}; what the CLI's one-off `sync` does):
   * no handshake. `persistSeconds: 0` never uses one. Absent: only a first
   * sync's tar stream uses one that is up; the rest goes over this
   * manager's own connection.
   */
  sshMux?: { persistSeconds: number };
}

/** Options for {@linkcode Manager.destroy}. */
export interface DestroyOptions {
  /**
   * Destroy even while another live process creates it, runs a command or
   * syncs in it, or runs it (`sandboxer run`). Its remote processes are ended.
   */
  force?: boolean;
  /**
   * Instead of refusing a sandbox in use, wait up to this many milliseconds
   * for it to be free, then destroy it.
   */
  waitMs?: number;
  /** Called once when `waitMs` makes it wait, with why (the refusal's text). */
  onWait?: (why: string) => void;
  /** Destroy only if this manager's process still owns the record (what `run` does). */
  onlyOwn?: boolean;
  /** Aborting stops the wait. */
  signal?: AbortSignal;
}

/** What {@linkcode Manager.gc} did. */
export interface GcReport {
  /** Sandboxes destroyed, with why. */
  destroyed: { id: string; reason: string }[];
  /** Sandboxes that should have gone but could not, with the error. */
  failed: { id: string; reason: string; error: string }[];
  /**
   * Leftovers of sandboxes with no live record that were stopped or removed:
   * port leases, throwaway VMs (one line each).
   */
  reaped: string[];
}

/** Options of `Manager.gc()` and `Manager.gcPlan()`. */
export interface GcOptions {
  /** The current time, for tests. */
  now?: Date;
  /** Only records this accepts are destroyed (`gc --label`); orphans are reaped regardless. */
  only?: (record: SandboxRecord) => boolean;
}
