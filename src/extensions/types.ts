/**
 * Types shared by the manager and every extension.
 *
 * @module
 */

import type { Logger, SyncProgress } from "../core/types.ts";
import type { JsonObject } from "../core/types.ts";

/**
 * Plain JSON an extension returns from `create` and the manager stores in the
 * journal: enough to tear the sandbox down without the profile.
 */
export type SandboxHandle = JsonObject;

/** Options for {@linkcode SandboxExtension.sync}. */
export interface SyncOptions {
  /** Extra exclude patterns (rsync syntax). */
  exclude?: readonly string[];
  /**
   * Leave out what is ignored: in a git work tree exactly what git ignores,
   * elsewhere what `.gitignore` files name. @default {true}
   */
  gitignore?: boolean;
  /** Send `.git` directories too. @default {false} */
  includeGit?: boolean;
  /** Called as the transfer progresses. */
  onProgress?: (progress: SyncProgress) => void;
  /** Aborting it stops the transfer. */
  signal?: AbortSignal;
  /**
   * Warm workspaces (the profile's `sync.seed*`): given only for the first
   * sync of a new sandbox, which may then start from a copy, made on the
   * host, of the last tree synced there for the same repository.
   */
  seed?: SeedPolicy;
  /**
   * A shared SSH connection (see {@linkcode ExecIO.sshMux}): with
   * `persistSeconds` above 0 the sync may run over one that is up, with no
   * handshake; 0 never uses one. Absent: only a first sync's tar stream uses
   * one that is up.
   */
  sshMux?: { persistSeconds: number };
}

/** How a new sandbox's workspace may start from a seed (docs/warm-workspaces.md). */
export interface SeedPolicy {
  /**
   * `source`: the synced files, as after the last first sync; `workspace`:
   * the whole workspace as it was at its last destroy; `off`: never.
   */
  mode: "source" | "workspace" | "off";
  /** The most the seeds of one remote user under one workspace root may take, in MiB. */
  maxMb: number;
  /** How long a seed is kept after it was last updated, in seconds. */
  ttlSeconds: number;
}

/** What {@linkcode SandboxExtension.create} is given. */
export interface CreateContext<Config> {
  /** The sandbox id, already validated. */
  readonly id: string;
  /** The profile's configuration as parsed by the extension's `parseConfig`. */
  readonly config: Config;
  /** Id of the profile. */
  readonly profileId: string;
  /** Expiry as an ISO date, if the profile has a ttl. */
  readonly expiresAt?: string;
  /**
   * sandboxer's state directory (the journal's). An extension that keeps
   * per-sandbox files locally (keys, generated configs) puts them under
   * `<stateDir>/<something>/<id>/` and records that path in its handle.
   */
  readonly stateDir?: string;
  /**
   * Store the destroy handle in the journal. Call it **before** the first
   * side effect (and again when the handle changes) so a crash at any point
   * leaves a record that `destroy` can finish. (For a scheduler backend: once
   * before the API call that makes the pod or job, and again with its name
   * and uid; see docs/scale-out.md.)
   */
  recordHandle(handle: SandboxHandle): Promise<void>;
  /** Name the step now running (shown in the journal if it fails). */
  step(name: string): Promise<void>;
  /** Aborting it stops the creation. */
  readonly signal?: AbortSignal;
  /**
   * How long a backend with limited room (a pool's slots) may queue for it
   * (`create --wait`); absent or 0: fail at once when there is none.
   */
  readonly waitSeconds?: number;
  /** Called now and then while queued: seconds waited and how many wait ahead. */
  readonly onWaiting?: (progress: WaitProgress) => void;
  /**
   * `create --from-snapshot NAME`: the snapshot the new workspace starts
   * from. The manager copies it in after `create` with
   * {@linkcode SandboxExtension.restoreSnapshot}; an extension that places
   * sandboxes itself (a pool) may use it to choose the host, or refuse.
   */
  readonly fromSnapshot?: string;
  /**
   * Share SSH connections with other sandboxer processes (the CLI's
   * `create`, from `SANDBOXER_SSH_MUX`; see {@linkcode ExecIO.sshMux}): a
   * backend that can creates over one already up, or starts one while it
   * creates, for the commands that follow. Absent: none.
   */
  readonly sshMux?: { persistSeconds: number };
}

/** Progress of a create queued for room (`create --wait`). */
export interface WaitProgress {
  /** Seconds waited so far. */
  waitedSeconds: number;
  /** Creates queued ahead of this one. */
  ahead: number;
}

/** What {@linkcode SandboxExtension.destroy} is told besides the handle. */
export interface DestroyContext {
  /**
   * The id of the record the handle was read from. An extension that derives
   * what it removes from the handle (a workspace path) refuses a handle that
   * does not belong to this id, so a hand-edited record cannot aim a teardown
   * at another sandbox.
   */
  readonly id: string;
}

/** Options every extension constructor accepts. */
export interface ExtensionOptions {
  /** Where the extension logs. Default: nowhere. */
  logger?: Logger;
  /** Trust and record an unknown host key instead of refusing it. */
  acceptNewHostKey?: boolean;
  /** The user's home directory, for `~/` in config paths (a confined extension cannot read $HOME). */
  home?: string;
  /**
   * sandboxer's state directory. A confined extension whose module directory
   * holds it is refused: its code could read every journal record.
   */
  stateDir?: string;
}

/** What {@linkcode SandboxExtension.reapOrphans} is given by `gc`. */
export interface OrphanReapContext {
  /** sandboxer's state directory (the journal's). */
  readonly stateDir: string;
  /**
   * The handle of sandbox `id`'s record when that record exists and is not
   * destroyed (null while it has none yet); undefined when there is no such
   * live record, so whatever the extension keeps for `id` is an orphan.
   */
  liveHandle(id: string): Promise<SandboxHandle | null | undefined>;
}

/** A marked workspace found on a target. */
export interface WorkspaceMarker {
  /** The sandbox id (from the directory name; the marker names the same id). */
  id: string;
  /** `<root>/sbx-<id>`, or the tombstone `<root>/.sbx-<id>.tomb-<nonce>`. */
  workspace: string;
  /** The creation nonce, per the marker; null for a marker made before nonces. */
  nonce: string | null;
  /** A half-removed workspace (renamed for removal, then cut short). */
  tombstone: boolean;
  /** The profile it was made from, per the marker. */
  profile: string | null;
  /** `user@host` of the machine that made it, per the marker. */
  creator: string | null;
  /** ISO creation time, per the marker. */
  created_at: string | null;
  /** ISO expiry, or null for none. */
  expires_at: string | null;
}

/** What an extension found under a target's workspace root. */
export interface TargetScan {
  /** `user@host:port`. */
  target: string;
  /** The workspace root scanned. */
  root: string;
  /** Workspaces with a marker that names them. */
  markers: WorkspaceMarker[];
  /** `sbx-*` entries that are not marked workspaces, with why; never touched. */
  ignored: { workspace: string; reason: string }[];
  /** Seeds (warm workspaces) reaped on the way: expired ones. */
  seeds?: string[];
  /** Snapshots reaped on the way: expired ones. */
  snapshots?: string[];
}

/** A snapshot of a workspace kept on its host (docs/snapshots.md). */
export interface SnapshotInfo {
  /** Its name: `[a-z0-9][a-z0-9._-]{0,62}`, unique per remote user and workspace root. */
  name: string;
  /** The host that keeps it: `user@host:port`. */
  target: string;
  /** Its directory: `<root>/.sbx-snapshots/<user>/<name>`. */
  path: string;
  /** When it was taken (ISO). */
  created: string;
  /** When `gc` reaps it (ISO). */
  expires: string;
  /** Its size on the host, in bytes. */
  bytes: number;
  /** The id of the sandbox it was taken of. */
  source: string;
}

/** What {@linkcode SandboxExtension.snapshot} is told besides the handle and the name. */
export interface SnapshotOptions {
  /** How long the snapshot is kept, in seconds. */
  ttlSeconds: number;
  /** Replace a snapshot of ours with the same name instead of refusing. */
  replace?: boolean;
  /** The id of the record the handle belongs to. */
  id: string;
  /** sandboxer's state directory (where the owner id is kept). */
  stateDir: string;
  /** Aborting it stops the copy's wait (the copy on the host may still finish). */
  signal?: AbortSignal;
}

/** The snapshots a profile's target keeps for its remote user. */
export interface SnapshotScan {
  /** `user@host:port`. */
  target: string;
  /** The workspace root. */
  root: string;
  /** This sandboxer's snapshots, by name. */
  snapshots: SnapshotInfo[];
  /** Entries of the user's snapshot directory that are not ours, with why; never touched. */
  ignored: { path: string; reason: string }[];
}
