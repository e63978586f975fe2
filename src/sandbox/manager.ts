/**
 * The manager owns the sandbox lifecycle and the journal: it validates a
 * profile completely before anything is recorded, writes the record before
 * the first side effect, and updates it after each step so `destroy` and
 * `gc` can always finish what was started.
 *
 * @module
 */

import { listProfiles, loadProfile, profileSearchPath } from "../config/profile.ts";
import { formatDuration } from "../config/duration.ts";
import type { JsonObject } from "../core/types.ts";
import type { Profile, SyncSettings } from "../config/types.ts";
import type { SandboxExtension } from "../extensions/base.ts";
import { silentLogger } from "../core/types.ts";
import { ExtensionRegistry } from "../extensions/registry.ts";
import type { ExecIO, Logger, SyncProgress, SyncReport } from "../core/types.ts";
import type { SandboxHandle } from "../extensions/types.ts";
import {
  ConfigError,
  errorText,
  ExtensionError,
  ImageError,
  type JournalError,
  OwnershipLostError,
  SandboxInUseError,
  SandboxNotFoundError,
  SetupFailedError,
  UsageError,
} from "../core/errors.ts";
import { Journal, type SandboxInUse, type SandboxRecord, type SandboxUse } from "./journal.ts";
import { randomId, validateId } from "../core/ids.ts";
import { gcTarget, type GcTargetOptions, type GcTargetReport } from "./gc_target.ts";
import { defaultStateDir, type EnvReader, splitPathList } from "../core/paths.ts";
import { BUILTIN_PROFILES_DIR } from "../config/builtin_files.ts";
import { openPortRegistry, type PortRegistry } from "../core/ports/registry.ts";
import {
  type CachedImage,
  imagesDir,
  listImages,
  removeImage,
} from "../extensions/vm_packer/image/cache.ts";
import { buildImage } from "../extensions/vm_packer/image/packer.ts";
import { type VmPackerConfig, VmPackerExtension } from "../extensions/vm_packer/extension.ts";
import { currentIdentity, optionalEnv } from "../core/permissions.ts";
import { Transcript, transcriptCap, transcriptPath } from "./transcript.ts";
import {
  type ResolvedPermissions,
  resolvePermissions,
  withGrants,
} from "../extensions/confined/permissions.ts";

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
  env?: EnvReader;
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
}

/** Options for {@linkcode Manager.sync}. */
export interface ManagerSyncOptions {
  /** Local directory; default the profile's `sync.source`. */
  repo?: string;
  /** Progress callback. */
  onProgress?: (progress: SyncProgress) => void;
  /** Aborting stops the transfer. */
  signal?: AbortSignal;
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

let internals: (manager: Manager) => ManagerInternals;

/** What sandboxer's own modules (not the public API) need from a {@linkcode Manager}. */
export interface ManagerInternals {
  /** The journal of records. */
  journal: Journal;
  /** The registered extensions. */
  registry: ExtensionRegistry;
}

/**
 * The journal and registry of a manager, for sandboxer's own modules and tests; not exported
 * from mod.ts.
 *
 * @param manager An open manager.
 * @returns Its journal and extension registry.
 */
export function managerInternals(manager: Manager): ManagerInternals {
  return internals(manager);
}

/**
 * The lifecycle of sandboxes: create, exec, sync, destroy, gc.
 *
 * @example Create, run a command, destroy
 * ```ts
 * import { Manager } from "@sandboxer/sandboxer";
 *
 * async function build(): Promise<number> {
 *   await using manager = await Manager.open();
 *   const box = await manager.create({ profile: "vm-haskell-build", repo: "." });
 *   try {
 *     return await manager.exec(box.id, ["cabal", "build"]);
 *   } finally {
 *     await manager.destroy(box.id);
 *   }
 * }
 * ```
 */
export class Manager implements AsyncDisposable {
  // Private so that mod.ts does not publish the journal and the registry; the SDK's own modules
  // (run_sandbox.ts) reach them through managerInternals().
  #journal: Journal;
  #registry: ExtensionRegistry;
  /** Profile directories, searched in order. */
  readonly profilePath: readonly string[];
  #logger: Logger;
  #acceptNewHostKey: boolean;
  #acceptHostKey: string | undefined;
  #home: string | undefined;
  #env: EnvReader;
  #extensions = new Map<string, SandboxExtension<unknown>>();
  #warned = new Set<string>();
  #transcriptCap: number;

  static {
    internals = (manager) => ({ journal: manager.#journal, registry: manager.#registry });
  }

  private constructor(
    journal: Journal,
    registry: ExtensionRegistry,
    profilePath: readonly string[],
    options: ManagerOptions,
  ) {
    this.#journal = journal;
    this.#registry = registry;
    this.profilePath = profilePath;
    this.#logger = options.logger ?? silentLogger;
    this.#acceptNewHostKey = options.acceptNewHostKey ?? false;
    if (
      options.acceptHostKey !== undefined &&
      !/^SHA256:[A-Za-z0-9+/]{43}$/.test(options.acceptHostKey)
    ) {
      throw new UsageError(
        `Cannot use --accept-host-key ${
          JSON.stringify(options.acceptHostKey)
        }: give the fingerprint as the error message or "ssh-keygen -l" prints it (SHA256: and 43 characters)`,
      );
    }
    this.#acceptHostKey = options.acceptHostKey;
    this.#env = options.env ?? optionalEnv;
    this.#home = this.#env("HOME");
    this.#transcriptCap = transcriptCap(this.#env("SANDBOXER_LOG_MAX"));
  }

  /**
   * Where a sandbox's transcript (create, setup, sync and exec, timestamped)
   * is kept; it is removed with the sandbox.
   *
   * @param id The sandbox id.
   * @returns The file path (it may not exist yet).
   */
  transcriptPath(id: string): string {
    return transcriptPath(this.#journal.dir, validateId(id));
  }

  #transcript(id: string): Transcript {
    return new Transcript(this.#journal.dir, id, this.#transcriptCap);
  }

  /**
   * The port registry of this state directory (range from
   * `SANDBOXER_PORT_RANGE`, default 12222-12299).
   *
   * @returns The registry.
   */
  ports(): PortRegistry {
    return openPortRegistry(this.#journal.dir, this.#env("SANDBOXER_PORT_RANGE"));
  }

  /**
   * Read the extension registrations and set up the journal.
   *
   * @param options Directories, logger and host-key policy.
   * @returns A manager; close it with `await using` or {@linkcode Manager.close}.
   */
  static async open(options: ManagerOptions = {}): Promise<Manager> {
    const env = options.env ?? optionalEnv;
    const registry = await ExtensionRegistry.load({
      dirs: [...splitPathList(env("SANDBOXER_EXTENSION_PATH")), ...(options.extensionDirs ?? [])],
    });
    const profilePath = [
      ...profileSearchPath({
        builtinDir: BUILTIN_PROFILES_DIR.path,
        env: env("SANDBOXER_PROFILE_PATH"),
      }),
      ...(options.profileDirs ?? []),
    ];
    const journal = new Journal(options.stateDir ?? defaultStateDir(env), {
      identity: currentIdentity(env),
    });
    return new Manager(journal, registry, profilePath, options);
  }

  /**
   * Load and fully validate a profile (including the extension's config)
   * without creating anything.
   *
   * @param profile Name or file path.
   * @param overrides `dotted.path=value` overrides.
   * @returns The profile and the extension's parsed config.
   */
  async resolveProfile(
    profile: string,
    overrides: readonly string[] = [],
  ): Promise<{ profile: Profile; config: unknown }> {
    const loaded = await loadProfile(profile, {
      searchPath: this.profilePath,
      embedded: [BUILTIN_PROFILES_DIR],
      overrides,
      cwd: Deno.cwd(),
    });
    let registration;
    try {
      registration = this.#registry.get(loaded.extension);
    } catch (error) {
      if (!(error instanceof ExtensionError)) throw error;
      // Like every other profile error: the file, line and field to fix.
      throw new ConfigError(
        loaded.source.locate("extension"),
        `${JSON.stringify(loaded.extension)} ${error.problem}`,
        { cause: error },
      );
    }
    const extension = this.#extension(loaded.extension);
    const config = await extension.loadConfig(loaded.config, loaded.source, registration.config);
    return { profile: loaded, config };
  }

  /**
   * Create a sandbox: validate, record, let the extension make it, sync the
   * repo if given, run the profile's setup commands.
   *
   * @param options Profile, name, repo, overrides.
   * @returns The `ready` record.
   * @throws {ConfigError} for a bad profile (nothing is recorded or made).
   * @throws {SandboxerError} for any failure; when nothing was made the
   * record is removed, when all of it was rolled back the record ends
   * `destroyed`: either way the name is free again.
   * @throws {SetupFailedError} when a setup command fails (the record stays `failed` with its handle).
   */
  async create(options: CreateOptions): Promise<SandboxRecord> {
    const { profile, config } = await this.resolveProfile(options.profile, options.overrides);
    const id = options.name !== undefined ? validateId(options.name) : randomId();
    const repo = options.repo ?? undefined;
    if (repo !== undefined) await assertDirectory(repo, "--repo");
    const grants = this.#grantsFor(profile, config);
    const extension = this.#extension(profile.extension, withRepo(grants, repo));
    const ttl = options.ttlSeconds ?? profile.ttlSeconds;
    const now = new Date();
    const expiresAt = ttl === undefined ? null : new Date(now.getTime() + ttl * 1000).toISOString();
    // The heartbeat first: from the moment the record exists, its owner is visibly alive.
    await using _heartbeat = await this.#journal.heartbeat(id);
    const recorded = await this.#journal.insert({
      id,
      status: "creating",
      profile: profile.id,
      profile_file: profile.file,
      extension: profile.extension,
      workspace: null,
      handle: null,
      created_at: now.toISOString(),
      updated_at: now.toISOString(),
      expires_at: expiresAt,
      step: "create",
      error: null,
      owner: this.#journal.owner,
      sync: profile.sync,
      env: profile.env,
      permissions: grants === "none" ? null : grants,
      ...(options.ephemeral ? { ephemeral: true } : {}),
    });
    options.onRecorded?.(recorded);
    this.#logger.debug(`recorded sandbox ${id} in ${this.#journal.dir}`);
    const log = this.#transcript(id);
    await log.note(`create: ${profile.id} (${profile.extension}${repo ? `, repo ${repo}` : ""})`);
    // Every write below checks that this process still owns a `creating` record: a create that
    // was stopped past the heartbeat limit and finished by gc must not write `ready` over it.
    const creating = { expect: ["creating"] } as const;
    let handle: SandboxHandle | null = null;
    const handleFields = (next: SandboxHandle) => ({
      handle: next,
      workspace: extension.workspaceOf(next) ?? null,
    });
    let created = false;
    let started = performance.now();
    const phaseDone = (phase: string) => {
      const ms = performance.now() - started;
      options.onPhase?.(phase, ms);
      void log.note(`${phase}: done in ${Math.round(ms)} ms`);
      started = performance.now();
    };
    try {
      options.signal?.throwIfAborted();
      handle = await extension.create({
        id,
        config,
        profileId: profile.id,
        stateDir: this.#journal.dir,
        expiresAt: expiresAt ?? undefined,
        signal: options.signal,
        recordHandle: async (next) => {
          await this.#journal.update(id, handleFields(next), creating);
          handle = next;
        },
        step: async (step) => {
          await this.#journal.update(id, { step }, creating);
        },
      });
      await this.#journal.update(id, handleFields(handle), creating);
      created = true;
      phaseDone("create");
      if (repo !== undefined) {
        await this.#journal.update(id, { step: "sync" }, creating);
        await this.#sync(extension, id, handle, repo, profile.sync, options, log);
        phaseDone("sync");
      }
      if (profile.setup.length) {
        await this.#setup(extension, id, handle, profile, options, log);
        phaseDone("setup");
      }
      await log.note("ready");
      await log.flush();
      return await this.#journal.update(id, { status: "ready", step: null }, creating);
    } catch (error) {
      await log.note(`create failed: ${oneLine(error)}`);
      await log.flush();
      // Taken over while this process was stopped or slow: the new owner finishes the sandbox.
      if (error instanceof OwnershipLostError) throw error;
      try {
        await this.#journal.update(id, {
          status: "failed",
          error: oneLine(error),
          ...(handle ? handleFields(handle) : {}),
        }, creating);
      } catch (lost) {
        if (lost instanceof OwnershipLostError) {
          throw new OwnershipLostError(id, lostProblem(lost), { cause: error });
        }
        throw lost;
      }
      // Nothing made: no record is left, so the name is free and `list` shows only sandboxes
      // that exist. A half-made sandbox is rolled back at once (its record ends `destroyed`,
      // the name free again); one that failed later (sync, setup) is kept `failed` for
      // inspection until `destroy`.
      if (handle === null) await this.#forget(id);
      else if (!created) await this.#rollBack(extension, id, handle);
      throw error;
    }
  }

  /** Drop the record of a create that left nothing behind; a failure here only warns. */
  async #forget(id: string): Promise<void> {
    try {
      await this.#journal.forget(id, { expect: ["failed"] });
    } catch (error) {
      if (error instanceof OwnershipLostError) return;
      this.#logger.warn(`could not remove the record of ${id}: ${oneLine(error)}`);
    }
  }

  async #rollBack(
    extension: SandboxExtension<unknown>,
    id: string,
    handle: SandboxHandle,
  ): Promise<void> {
    try {
      // Still ours? A `destroy` may have taken the failed record over; then it removes it.
      await this.#journal.update(id, { status: "destroying" }, { expect: ["failed"] });
      try {
        await extension.destroy(handle, { id });
      } catch (error) {
        await this.#journal.update(id, { status: "failed" }, { expect: ["destroying"] });
        throw error;
      }
      await this.#journal.update(id, { status: "destroyed" }, { expect: ["destroying"] });
      this.#logger.info(`rolled back the half-made sandbox ${id}`);
    } catch (error) {
      if (error instanceof OwnershipLostError) return;
      this.#logger.warn(
        `could not roll back the half-made sandbox ${id} (${
          oneLine(error)
        }); run "sandboxer destroy ${id}" once the target is reachable`,
      );
    }
  }

  /**
   * Every record in the journal, oldest first. A corrupt record file is
   * reported through the logger (one line: the file and the fix) and left out.
   *
   * @param options `all` includes destroyed sandboxes.
   * @returns The records.
   */
  async list(options: { all?: boolean } = {}): Promise<SandboxRecord[]> {
    const records = await this.#records();
    return options.all ? records : records.filter((r) => r.status !== "destroyed");
  }

  /**
   * One record.
   *
   * @param id The sandbox id.
   * @returns The record.
   * @throws {JournalError} when its file is corrupt (the message says what is wrong).
   */
  show(id: string): Promise<SandboxRecord> {
    return this.#journal.get(id);
  }

  /**
   * Run a command in a ready sandbox's workspace. The sandbox is marked in
   * use while the command runs, so `destroy` (without `--force`) refuses it.
   *
   * @param id The sandbox id.
   * @param argv Program and arguments, kept literal.
   * @param io Output sinks and abort signal.
   * @returns The command's exit code.
   */
  async exec(id: string, argv: readonly string[], io: ExecIO = {}): Promise<number> {
    if (argv.length === 0) {
      throw new UsageError("Cannot exec: no command given; add -- CMD [ARGS...]");
    }
    checkProgram(argv[0]);
    await using use = await this.#use(id, "exec", "run commands in");
    const { record, extension, handle } = use;
    const log = this.#transcript(id);
    await log.note(`exec: ${JSON.stringify(argv)}`);
    let code: number;
    try {
      code = await extension.exec(handle, withEnv(record.env, argv), {
        ...io,
        stdout: (chunk) => {
          log.output("stdout", chunk);
          io.stdout?.(chunk);
        },
        stderr: (chunk) => {
          log.output("stderr", chunk);
          io.stderr?.(chunk);
        },
      });
    } catch (error) {
      await log.flush();
      await log.note(`exec failed: ${oneLine(error)}`);
      throw error;
    }
    await log.flush();
    await log.note(`exec: exit code ${code}`);
    await this.#keepPin(record, handle);
    return code;
  }

  /**
   * Sync a local directory into a ready sandbox's workspace, marking it in
   * use meanwhile.
   *
   * @param id The sandbox id.
   * @param options The directory (default: the profile's `sync.source`) and progress.
   * @returns What was transferred.
   */
  async sync(id: string, options: ManagerSyncOptions = {}): Promise<SyncReport> {
    const record = await this.#journal.get(id);
    const repo = options.repo ?? record.sync.source;
    if (repo === undefined) {
      throw new UsageError(
        `Cannot sync sandbox "${id}": no directory given; pass --repo DIR or set sync.source in the profile`,
      );
    }
    await assertDirectory(repo, "--repo");
    await using use = await this.#use(id, "sync", "sync into");
    const extension = this.#extension(
      use.record.extension,
      withRepo(use.record.permissions ?? "none", repo),
    );
    const report = await this.#sync(
      extension,
      id,
      use.handle,
      repo,
      use.record.sync,
      options,
      this.#transcript(id),
    );
    await this.#keepPin(use.record, use.handle);
    return report;
  }

  /**
   * Copy a path from a ready sandbox's workspace to a local directory,
   * marking it in use meanwhile.
   *
   * @param id The sandbox id.
   * @param remotePath Path relative to the workspace, or absolute inside it.
   * @param localDir Local directory to copy into (created if missing).
   * @param options Abort signal.
   */
  async fetch(
    id: string,
    remotePath: string,
    localDir: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    await using use = await this.#use(id, "fetch", "copy files from");
    const { record, handle } = use;
    const grants = record.permissions
      ? withGrants(record.permissions, { read: [localDir], write: [localDir] })
      : "none";
    const extension = this.#extension(record.extension, grants);
    if (!extension.fetch) {
      throw new ExtensionError(extension.id, "cannot copy files back: it has no fetch()");
    }
    await Deno.mkdir(localDir, { recursive: true });
    await extension.fetch(handle, remotePath, localDir, options);
    await this.#keepPin(record, handle);
  }

  /**
   * Tear a sandbox down from its stored handle. Idempotent: a destroyed
   * sandbox is left alone and returned as is. A sandbox another live process
   * is creating, destroying or running (`sandboxer run`), or one an exec or
   * sync is using, is refused unless `force` is given — or waited for with
   * `waitMs`.
   *
   * @param id The sandbox id.
   * @param options `force`, `waitMs`, `onlyOwn` and an abort signal.
   * @returns The `destroyed` record.
   * @throws {SandboxInUseError} when another process is at work on or in it.
   * @throws {OwnershipLostError} with `onlyOwn`, when another process owns it now.
   */
  async destroy(id: string, options: DestroyOptions = {}): Promise<SandboxRecord> {
    const deadline = Date.now() + (options.waitMs ?? 0);
    let waited = false;
    for (;;) {
      try {
        return await this.#destroy(id, async (record) => {
          if (options.onlyOwn && record.owner?.token !== this.#journal.token) {
            throw new OwnershipLostError(id, lostProblem(record));
          }
          if (!options.force) await this.#assertFree(record);
          return "destroy";
        });
      } catch (error) {
        if (!(error instanceof SandboxInUseError) || options.waitMs === undefined) throw error;
        if (Date.now() >= deadline) {
          throw new SandboxInUseError(
            id,
            `${error.busy}, still after waiting ${formatDuration(options.waitMs / 1000)}`,
            "wait longer (--wait 30m), or pass --force",
          );
        }
        if (!waited) options.onWait?.(error.busy);
        waited = true;
        await delay(WAIT_POLL_MS, options.signal);
      }
    }
  }

  /**
   * Destroy expired sandboxes and those whose creator, destroyer or `run`
   * died. An expired sandbox is destroyed even while an exec or sync uses it.
   *
   * @param options `now` for tests.
   * @returns What was destroyed and what could not be.
   */
  async gc(options: { now?: Date } = {}): Promise<GcReport> {
    const now = options.now ?? new Date();
    const report: GcReport = { destroyed: [], failed: [], reaped: [] };
    // Anything destroyed sandboxes left in the state directory (locks, stale heartbeats).
    await this.#journal.prune().catch((error) => {
      this.#logger.warn(`could not tidy the state directory: ${oneLine(error)}`);
    });
    for (const listed of await this.#records()) {
      if (listed.status === "destroyed") continue;
      let reason: string | undefined;
      try {
        // Decided again under the record's lock: it may have changed since it was listed.
        const record = await this.#destroy(listed.id, async (record) => {
          reason = await this.#gcReason(record, now);
          return reason === undefined ? "skip" : "destroy";
        });
        if (reason !== undefined && record.status === "destroyed") {
          report.destroyed.push({ id: listed.id, reason });
        }
      } catch (error) {
        if (reason !== undefined) {
          report.failed.push({ id: listed.id, reason, error: oneLine(error) });
        }
      }
    }
    report.reaped = await this.#reapOrphans();
    return report;
  }

  /** What no live record owns any more: extensions' orphans (VMs), then port leases. */
  async #reapOrphans(): Promise<string[]> {
    const live = async (id: string) => {
      try {
        const record = await this.#journal.get(id);
        return record.status === "destroyed" ? undefined : record.handle;
      } catch (error) {
        if (error instanceof SandboxNotFoundError) return undefined;
        return null; // a corrupt record: keep everything of that id
      }
    };
    const reaped: string[] = [];
    // Built-ins only: a confined extension gets no access to the state directory.
    for (const registration of this.#registry.registrations.filter((r) => r.builtin)) {
      const extension = this.#extension(registration.id);
      if (!extension.reapOrphans) continue;
      try {
        reaped.push(
          ...await extension.reapOrphans({ stateDir: this.#journal.dir, liveHandle: live }),
        );
      } catch (error) {
        this.#logger.warn(`could not reap leftovers of ${registration.id}: ${oneLine(error)}`);
      }
    }
    try {
      for (const lease of await this.ports().reap(async (id) => await live(id) !== undefined)) {
        reaped.push(`port ${lease.port} (leased to sandbox ${lease.name})`);
      }
    } catch (error) {
      this.#logger.warn(`could not reap port leases: ${oneLine(error)}`);
    }
    return reaped;
  }

  /**
   * Scan a profile's target for marked workspaces that no local record knows
   * (made from another machine, or whose record was lost) and remove the
   * expired ones; see `gc_target.ts`.
   *
   * @param profile Profile name or file path.
   * @param options Overrides, clock and abort signal.
   * @returns What was removed, kept, failed and ignored.
   */
  async gcTarget(profile: string, options: GcTargetOptions = {}): Promise<GcTargetReport> {
    const { profile: loaded, config } = await this.resolveProfile(profile, options.overrides);
    const extension = this.#extension(loaded.extension);
    const list = extension.listMarkedWorkspaces?.bind(extension);
    const remove = extension.removeMarkedWorkspace?.bind(extension);
    if (!list || !remove) {
      throw new ExtensionError(
        extension.id,
        "cannot scan a target for leaked workspaces; use plain gc for its sandboxes",
      );
    }
    return await gcTarget({
      journal: { list: () => this.#records() },
      extension: { listMarkedWorkspaces: list, removeMarkedWorkspace: remove },
      config,
      now: options.now,
      signal: options.signal,
    });
  }

  /**
   * Build (or find in the cache) the image of a boot-mode profile with
   * `packer build`; packer's progress goes to the logger.
   *
   * @param profile Profile name or file path.
   * @param options `force` rebuilds; overrides; abort signal.
   * @returns The image and whether it was built now.
   * @throws {ImageError} when the profile is not a boot-mode vm-packer profile.
   * @throws {ImageBuildError} when packer fails (one line and the log's path).
   */
  async buildImage(
    profile: string,
    options: { force?: boolean; overrides?: readonly string[]; signal?: AbortSignal } = {},
  ): Promise<{ image: CachedImage; built: boolean }> {
    const { profile: loaded, config } = await this.resolveProfile(profile, options.overrides);
    if (loaded.extension !== "ext.vm-packer") {
      throw new ImageError(
        `of profile ${loaded.id}`,
        `cannot be built: its extension is ${loaded.extension}; images are for ext.vm-packer profiles in boot mode`,
      );
    }
    const vmConfig = config as VmPackerConfig;
    return await buildImage(VmPackerExtension.imageInputs(vmConfig), {
      images: this.imagesDir(),
      profile: loaded.id,
      force: options.force,
      accel: vmConfig.vm.accel,
      logger: this.#logger,
      signal: options.signal,
    });
  }

  /**
   * The image cache directory: `$SANDBOXER_IMAGES`, else `<stateDir>/images`.
   *
   * @returns The directory.
   */
  imagesDir(): string {
    return imagesDir(this.#journal.dir, this.#env("SANDBOXER_IMAGES"));
  }

  /**
   * The cached images, newest first.
   *
   * @returns The images.
   */
  images(): Promise<CachedImage[]> {
    return listImages(this.imagesDir());
  }

  /**
   * Remove a cached image by key (or a unique prefix of 6+ digits); refused
   * while a sandbox that is not destroyed boots from it.
   *
   * @param key The key or prefix.
   * @returns The removed image.
   */
  async removeImage(key: string): Promise<CachedImage> {
    const inUse = new Set<string>();
    for (const record of await this.#records()) {
      const imageKey = (record.handle as JsonObject | null)?.image_key;
      if (record.status !== "destroyed" && typeof imageKey === "string") inUse.add(imageKey);
    }
    return await removeImage(this.imagesDir(), key, inUse);
  }

  /**
   * Every profile on the search path, and the broken ones.
   *
   * @returns Profiles and errors.
   */
  profiles(): Promise<{ profiles: Profile[]; errors: ConfigError[] }> {
    return listProfiles(this.profilePath, [BUILTIN_PROFILES_DIR]);
  }

  /** Close connections held by extensions. */
  async close(): Promise<void> {
    const extensions = [...this.#extensions.values()];
    this.#extensions.clear();
    await Promise.allSettled(extensions.map((e) => e.close()));
  }

  /** Same as {@linkcode Manager.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** One instance per extension and set of grants (a confined extension's worker has fixed permissions). */
  #extension(id: string, grants: ResolvedPermissions | "none" = "none"): SandboxExtension<unknown> {
    const key = `${id} ${JSON.stringify(grants)}`;
    let extension = this.#extensions.get(key);
    if (!extension) {
      extension = this.#registry.instantiate(id, {
        logger: this.#logger,
        acceptNewHostKey: this.#acceptNewHostKey,
        home: this.#home,
        stateDir: this.#journal.dir,
      }, grants);
      this.#extensions.set(key, extension);
    }
    return extension;
  }

  /** What a third-party extension may touch for this profile; "none" marks a built-in. */
  #grantsFor(profile: Profile, config: unknown): ResolvedPermissions | "none" {
    const registration = this.#registry.get(profile.extension);
    if (registration.builtin) return "none";
    const values = { ...(config as JsonObject), sync: { ...profile.sync } } as JsonObject;
    return resolvePermissions(registration.permissions, values, {
      source: profile.source,
      home: this.#home,
    });
  }

  /** Mark a ready sandbox in use for the duration of an exec, sync or copy. */
  async #use(
    id: string,
    what: string,
    verb: string,
  ): Promise<
    SandboxInUse & { extension: SandboxExtension<unknown>; handle: SandboxHandle }
  > {
    const use = await this.#journal.use(id, what, verb);
    const record = use.record;
    return {
      record,
      extension: this.#extension(record.extension, record.permissions ?? "none"),
      handle: this.#withAcceptedKey(record.handle as SandboxHandle),
      [Symbol.asyncDispose]: () => use[Symbol.asyncDispose](),
    };
  }

  /** The handle with `--accept-host-key` as its pin, when it pinned another key. */
  #withAcceptedKey(handle: SandboxHandle): SandboxHandle {
    const accepted = this.#acceptHostKey;
    const pinned = (handle as JsonObject).host_key_fingerprint;
    if (accepted === undefined || typeof pinned !== "string" || pinned === accepted) return handle;
    return { ...handle, host_key_fingerprint: accepted };
  }

  /** Record the accepted key as the new pin once a command has reached the host with it. */
  async #keepPin(record: SandboxRecord, handle: SandboxHandle): Promise<void> {
    if (handle === record.handle) return;
    const pin = (handle as JsonObject).host_key_fingerprint;
    // Only the pin changes, whoever owns the record: the rest of the handle is whatever the
    // journal holds now.
    await this.#journal.amend(record.id, (current) => ({
      handle: current.handle ? { ...current.handle, host_key_fingerprint: pin } : current.handle,
    }));
    this.#logger.warn(
      `pinned host key ${
        (handle as JsonObject).host_key_fingerprint
      } for sandbox ${record.id} (was ${(record.handle as JsonObject).host_key_fingerprint})`,
    );
  }

  /**
   * Take a record over for destruction if `decide` says so (under its lock),
   * then remove the sandbox from its handle. The heartbeat is this
   * process's own; another owner's (a live creator under `--force`) stays.
   */
  async #destroy(
    id: string,
    decide: (record: SandboxRecord) => Promise<"destroy" | "skip">,
  ): Promise<SandboxRecord> {
    await using _heartbeat = await this.#journal.heartbeat(id);
    const { record, claimed } = await this.#journal.claim(id, async (record) => {
      if (record.status === "destroyed") return undefined;
      if (await decide(record) === "skip") return undefined;
      return { status: "destroying", step: "destroy" };
    });
    if (!claimed) return record;
    const destroying = { expect: ["destroying"] } as const;
    if (record.handle) {
      try {
        const extension = this.#extension(record.extension, record.permissions ?? "none");
        await extension.destroy(this.#withAcceptedKey(record.handle), { id });
      } catch (error) {
        await this.#journal.update(
          id,
          { status: "failed", step: "destroy", error: oneLine(error) },
          destroying,
        );
        throw error;
      }
    }
    return await this.#journal.update(
      id,
      { status: "destroyed", step: null, error: null, ephemeral: false },
      destroying,
    );
  }

  /** Refuse a sandbox that another live process works on or in. */
  async #assertFree(record: SandboxRecord): Promise<void> {
    const id = record.id;
    const mine = record.owner?.token === this.#journal.token;
    if (!mine && await this.#journal.ownerAlive(record)) {
      const who = `process ${record.owner.pid} on ${record.owner.host}`;
      if (record.status === "creating" || record.status === "destroying") {
        throw new SandboxInUseError(id, `is still ${record.status} in ${who}`);
      }
      if (record.ephemeral) {
        throw new SandboxInUseError(
          id,
          `belongs to a running "sandboxer run" (${who}), which destroys it when it ends`,
        );
      }
    }
    const users = await this.#journal.users(id);
    if (users.length) {
      throw new SandboxInUseError(
        id,
        `is in use by ${describeUsers(users)}`,
        "wait for it (destroy --wait), or pass --force to end it now",
      );
    }
  }

  /** Why `gc` should destroy this record now, or undefined. */
  async #gcReason(record: SandboxRecord, now: Date): Promise<string | undefined> {
    if (record.status === "destroyed") return undefined;
    const inProgress = record.status === "creating" || record.status === "destroying";
    if ((inProgress || record.ephemeral) && await this.#journal.ownerAlive(record)) {
      // A live creator, destroyer or run finishes (or tears down) the sandbox itself.
      return undefined;
    }
    const who = `process ${record.owner?.pid} on ${record.owner?.host}`;
    if (record.ephemeral) {
      return `its run (${who}) stopped without tearing it down`;
    }
    if (record.expires_at && Date.parse(record.expires_at) <= now.getTime()) {
      return `expired at ${record.expires_at}`;
    }
    if (inProgress) return `stuck in ${record.status}: ${who} stopped working on it`;
    // A teardown that failed may have left a half-removed workspace (a tombstone): try again.
    if (record.status === "failed" && record.step === "destroy") {
      return `its destroy failed (${record.error ?? "no detail"}); trying again`;
    }
    return undefined;
  }

  /** The journal's records; a corrupt one is reported once (file and fix) and left out. */
  async #records(): Promise<SandboxRecord[]> {
    return await this.#journal.list({
      onCorrupt: (error: JournalError) => {
        if (this.#warned.has(error.message)) return;
        this.#warned.add(error.message);
        this.#logger.warn(error.message);
      },
    });
  }

  async #sync(
    extension: SandboxExtension<unknown>,
    id: string,
    handle: SandboxHandle,
    repo: string,
    settings: SyncSettings,
    options: { onProgress?: (p: SyncProgress) => void; signal?: AbortSignal },
    log: Transcript,
  ): Promise<SyncReport> {
    if (!extension.sync) {
      throw new ExtensionError(
        extension.id,
        `cannot sync files into sandbox "${id}": it has no sync()`,
      );
    }
    const started = performance.now();
    const report = await extension.sync(handle, repo, {
      exclude: settings.exclude,
      gitignore: settings.gitignore,
      includeGit: settings.includeGit ?? false,
      onProgress: options.onProgress,
      signal: options.signal,
    });
    this.#logger.info(
      `synced ${repo} → ${
        extension.workspaceOf(handle) ?? id
      } by ${report.method}: ${report.files} files sent, ${report.deleted} deleted (${
        Math.round(performance.now() - started)
      } ms)`,
    );
    if (report.notice !== undefined) this.#logger.info(`sync: ${report.notice}`);
    await log.note(
      `sync: ${repo} by ${report.method}: ${report.files} files sent, ${report.deleted} deleted, ${report.bytes} bytes`,
    );
    return report;
  }

  async #setup(
    extension: SandboxExtension<unknown>,
    id: string,
    handle: SandboxHandle,
    profile: Profile,
    options: CreateOptions,
    log: Transcript,
  ): Promise<void> {
    const commands = profile.setup;
    await this.#journal.update(id, { step: "setup" });
    for (const command of commands) {
      options.signal?.throwIfAborted();
      this.#logger.info(`setup: ${command}`);
      await log.note(`setup: ${command}`);
      let tail = "";
      const decoder = new TextDecoder();
      const keepTail = (chunk: Uint8Array) => {
        tail = (tail + decoder.decode(chunk, { stream: true })).slice(-2000);
      };
      const io = options.setupIO;
      const code = await extension.exec(handle, withEnv(profile.env, ["sh", "-c", command]), {
        stdout: (chunk) => {
          log.output("setup", chunk);
          if (io?.stdout) io.stdout(chunk);
          else this.#logger.info(decoder.decode(chunk).trimEnd());
        },
        stderr: (chunk) => {
          log.output("setup", chunk);
          keepTail(chunk);
          if (io?.stderr) io.stderr(chunk);
          else this.#logger.info(new TextDecoder().decode(chunk).trimEnd());
        },
        signal: options.signal,
      });
      await log.flush();
      await log.note(`setup: exit code ${code}`);
      if (code !== 0) {
        const lastLine = tail.trim().split("\n").at(-1) ?? "";
        throw new SetupFailedError(command, code, lastLine);
      }
    }
  }
}

async function assertDirectory(path: string, flag: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Cannot use ${flag} ${path}: no such directory`);
    }
    throw error;
  }
  if (!info.isDirectory) throw new UsageError(`Cannot use ${flag} ${path}: not a directory`);
}

/** How often `destroy --wait` looks again. */
const WAIT_POLL_MS = 200;

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function describeUsers(users: readonly SandboxUse[]): string {
  const [first, ...rest] = users;
  return `${first.what} (process ${first.pid} on ${first.host})${
    rest.length ? ` and ${rest.length} more` : ""
  }`;
}

function lostProblem(from: OwnershipLostError | SandboxRecord): string {
  if (from instanceof OwnershipLostError) return from.problem;
  return `was taken over by process ${from.owner?.pid} on ${from.owner?.host} and is ${from.status} now; this process changed and removed nothing more — see "sandboxer show ${from.id}"`;
}

/** A program name starting with "-" would be read as an option (of env, exec, or the shell). */
function checkProgram(program: string): void {
  if (program.startsWith("-")) {
    throw new UsageError(
      `Cannot run ${
        JSON.stringify(program)
      }: a program name may not start with "-"; write ./${program} or its full path`,
    );
  }
}

/** Prefix `env NAME=value…` so the profile's environment reaches every command on any backend. */
function withEnv(env: readonly string[] | undefined, argv: readonly string[]): readonly string[] {
  if (!env?.length) return argv;
  checkProgram(argv[0]);
  return ["env", ...env, ...argv];
}

/** A confined extension syncing a directory may read it: the user named it. */
function withRepo(
  grants: ResolvedPermissions | "none",
  repo: string | undefined,
): ResolvedPermissions | "none" {
  return grants === "none" || repo === undefined ? grants : withGrants(grants, { read: [repo] });
}

function oneLine(error: unknown): string {
  const message = errorText(error);
  return message.split("\n")[0];
}
