/**
 * The manager owns the sandbox lifecycle and the journal: it validates a
 * profile completely before anything is recorded, writes the record before
 * the first side effect, and updates it after each step so `destroy` and
 * `gc` can always finish what was started.
 *
 * @module
 */

import { listProfiles, loadProfile, profileSearchPath } from "../config/profile.ts";
import type { ConfigError } from "../core/errors.ts";
import type { JsonObject, Profile, SyncSettings } from "../config/types.ts";
import type { SandboxExtension } from "../extensions/base.ts";
import { silentLogger } from "../extensions/base.ts";
import { ExtensionRegistry } from "../extensions/registry.ts";
import type {
  ExecIO,
  Logger,
  SandboxHandle,
  SyncProgress,
  SyncReport,
} from "../extensions/types.ts";
import { ExtensionError, SandboxStateError, SetupFailedError, UsageError } from "./errors.ts";
import { Journal, randomId, type SandboxRecord, validateId } from "./journal.ts";
import { gcTarget, type GcTargetOptions, type GcTargetReport } from "./gc_target.ts";
import {
  BUILTIN_EXTENSIONS_DIR,
  BUILTIN_PROFILES_DIR,
  defaultStateDir,
  type EnvReader,
  splitPathList,
} from "./paths.ts";
import { optionalEnv } from "./permissions.ts";
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
  /** How to read the environment. Default: only variables the process may read. */
  env?: EnvReader;
  /** Built-in directories, for tests. */
  builtinExtensionsDir?: string;
  /** Built-in profiles directory, for tests. */
  builtinProfilesDir?: string;
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
  /** Aborting stops creation; the record is left `failed` for `destroy`. */
  signal?: AbortSignal;
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
  /** Destroy even while another live process is still creating it. */
  force?: boolean;
}

/** What {@linkcode Manager.gc} did. */
export interface GcReport {
  /** Sandboxes destroyed, with why. */
  destroyed: { id: string; reason: string }[];
  /** Sandboxes that should have gone but could not, with the error. */
  failed: { id: string; reason: string; error: string }[];
}

/** The lifecycle of sandboxes: create, exec, sync, destroy, gc. */
export class Manager implements AsyncDisposable {
  /** The journal of records. */
  readonly journal: Journal;
  /** The registered extensions. */
  readonly registry: ExtensionRegistry;
  /** Profile directories, searched in order. */
  readonly profilePath: readonly string[];
  #logger: Logger;
  #acceptNewHostKey: boolean;
  #home: string | undefined;
  #extensions = new Map<string, SandboxExtension<unknown>>();

  private constructor(
    journal: Journal,
    registry: ExtensionRegistry,
    profilePath: readonly string[],
    options: ManagerOptions,
  ) {
    this.journal = journal;
    this.registry = registry;
    this.profilePath = profilePath;
    this.#logger = options.logger ?? silentLogger;
    this.#acceptNewHostKey = options.acceptNewHostKey ?? false;
    this.#home = (options.env ?? optionalEnv)("HOME");
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
      builtinDir: options.builtinExtensionsDir ?? BUILTIN_EXTENSIONS_DIR,
      dirs: [...splitPathList(env("SANDBOXER_EXTENSION_PATH")), ...(options.extensionDirs ?? [])],
    });
    const profilePath = [
      ...profileSearchPath({
        builtinDir: options.builtinProfilesDir ?? BUILTIN_PROFILES_DIR,
        env: env("SANDBOXER_PROFILE_PATH"),
      }),
      ...(options.profileDirs ?? []),
    ];
    const journal = new Journal(options.stateDir ?? defaultStateDir(env));
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
      overrides,
      cwd: Deno.cwd(),
    });
    const registration = this.registry.get(loaded.extension);
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
    await this.journal.insert({
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
      owner: currentOwner(),
      sync: profile.sync,
      env: profile.env,
      permissions: grants === "none" ? null : grants,
    });
    this.#logger.debug(`recorded sandbox ${id} in ${this.journal.dir}`);
    await using _heartbeat = await this.journal.heartbeat(id);
    let handle: SandboxHandle | null = null;
    const handleFields = (next: SandboxHandle) => ({
      handle: next,
      workspace: extension.workspaceOf(next) ?? null,
    });
    let created = false;
    let started = performance.now();
    const phaseDone = (phase: string) => {
      options.onPhase?.(phase, performance.now() - started);
      started = performance.now();
    };
    try {
      options.signal?.throwIfAborted();
      handle = await extension.create({
        id,
        config,
        profileId: profile.id,
        stateDir: this.journal.dir,
        expiresAt: expiresAt ?? undefined,
        signal: options.signal,
        recordHandle: async (next) => {
          handle = next;
          await this.journal.update(id, handleFields(next));
        },
        step: async (step) => {
          await this.journal.update(id, { step });
        },
      });
      await this.journal.update(id, handleFields(handle));
      created = true;
      phaseDone("create");
      if (repo !== undefined) {
        await this.journal.update(id, { step: "sync" });
        await this.#sync(extension, id, handle, repo, profile.sync, options);
        phaseDone("sync");
      }
      if (profile.setup.length) {
        await this.#setup(extension, id, handle, profile, options);
        phaseDone("setup");
      }
      return await this.journal.update(id, { status: "ready", step: null });
    } catch (error) {
      await this.journal.update(id, {
        status: "failed",
        error: oneLine(error),
        ...(handle ? handleFields(handle) : {}),
      });
      // A half-made sandbox is rolled back at once; one that failed later (sync, setup) is kept
      // for inspection until `destroy`.
      if (!created && handle) await this.#rollBack(extension, id, handle);
      throw error;
    }
  }

  async #rollBack(
    extension: SandboxExtension<unknown>,
    id: string,
    handle: SandboxHandle,
  ): Promise<void> {
    try {
      await extension.destroy(handle, { id });
      await this.journal.update(id, { status: "destroyed" });
      this.#logger.info(`rolled back the half-made sandbox ${id}`);
    } catch (error) {
      this.#logger.warn(
        `could not roll back the half-made sandbox ${id} (${
          oneLine(error)
        }); run "sandboxer destroy ${id}" once the target is reachable`,
      );
    }
  }

  /**
   * Every record in the journal, oldest first.
   *
   * @param options `all` includes destroyed sandboxes.
   * @returns The records.
   */
  async list(options: { all?: boolean } = {}): Promise<SandboxRecord[]> {
    const records = await this.journal.list();
    return options.all ? records : records.filter((r) => r.status !== "destroyed");
  }

  /**
   * One record.
   *
   * @param id The sandbox id.
   * @returns The record.
   */
  show(id: string): Promise<SandboxRecord> {
    return this.journal.get(id);
  }

  /**
   * Run a command in a ready sandbox's workspace.
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
    const { record, extension, handle } = await this.#ready(id, "run commands in");
    return await extension.exec(handle, withEnv(record.env, argv), io);
  }

  /**
   * Sync a local directory into a ready sandbox's workspace.
   *
   * @param id The sandbox id.
   * @param options The directory (default: the profile's `sync.source`) and progress.
   * @returns What was transferred.
   */
  async sync(id: string, options: ManagerSyncOptions = {}): Promise<SyncReport> {
    const { record, handle } = await this.#ready(id, "sync into");
    const settings = record.sync;
    const repo = options.repo ?? settings.source;
    if (repo === undefined) {
      throw new UsageError(
        `Cannot sync sandbox "${id}": no directory given; pass --repo DIR or set sync.source in the profile`,
      );
    }
    await assertDirectory(repo, "--repo");
    const extension = this.#extension(
      record.extension,
      withRepo(record.permissions ?? "none", repo),
    );
    return await this.#sync(extension, id, handle, repo, settings, options);
  }

  /**
   * Copy a path from a ready sandbox's workspace to a local directory.
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
    const { record, handle } = await this.#ready(id, "copy files from");
    const grants = record.permissions
      ? withGrants(record.permissions, { read: [localDir], write: [localDir] })
      : "none";
    const extension = this.#extension(record.extension, grants);
    if (!extension.fetch) {
      throw new ExtensionError(extension.id, "cannot copy files back: it has no fetch()");
    }
    await Deno.mkdir(localDir, { recursive: true });
    await extension.fetch(handle, remotePath, localDir, options);
  }

  /**
   * Tear a sandbox down from its stored handle. Idempotent: a destroyed
   * sandbox is left alone and returned as is.
   *
   * @param id The sandbox id.
   * @param options `force` destroys even while another live process is creating it.
   * @returns The `destroyed` record.
   */
  async destroy(id: string, options: DestroyOptions = {}): Promise<SandboxRecord> {
    const record = await this.journal.get(id);
    if (record.status === "destroyed") return record;
    if (
      (record.status === "creating" || record.status === "destroying") && !options.force &&
      await this.journal.heartbeatFresh(id)
    ) {
      throw new SandboxStateError(
        id,
        `is still ${record.status} in process ${record.owner.pid}; wait for it, or pass --force`,
      );
    }
    await using _heartbeat = await this.journal.heartbeat(id);
    await this.journal.update(id, { status: "destroying", step: "destroy" });
    if (record.handle) {
      try {
        const extension = this.#extension(record.extension, record.permissions ?? "none");
        await extension.destroy(record.handle, { id });
      } catch (error) {
        await this.journal.update(id, { status: "failed", step: "destroy", error: oneLine(error) });
        throw error;
      }
    }
    return await this.journal.update(id, { status: "destroyed", step: null, error: null });
  }

  /**
   * Destroy expired sandboxes and those whose creator or destroyer died.
   *
   * @param options `now` for tests.
   * @returns What was destroyed and what could not be.
   */
  async gc(options: { now?: Date } = {}): Promise<GcReport> {
    const now = options.now ?? new Date();
    const report: GcReport = { destroyed: [], failed: [] };
    for (const record of await this.journal.list()) {
      const reason = gcReason(record, now, await this.journal.heartbeatFresh(record.id));
      if (!reason) continue;
      try {
        await this.destroy(record.id);
        report.destroyed.push({ id: record.id, reason });
      } catch (error) {
        report.failed.push({ id: record.id, reason, error: oneLine(error) });
      }
    }
    return report;
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
      journal: this.journal,
      extension: { listMarkedWorkspaces: list, removeMarkedWorkspace: remove },
      config,
      now: options.now,
      signal: options.signal,
    });
  }

  /**
   * Every profile on the search path, and the broken ones.
   *
   * @returns Profiles and errors.
   */
  profiles(): Promise<{ profiles: Profile[]; errors: ConfigError[] }> {
    return listProfiles(this.profilePath);
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
      extension = this.registry.instantiate(id, {
        logger: this.#logger,
        acceptNewHostKey: this.#acceptNewHostKey,
        home: this.#home,
      }, grants);
      this.#extensions.set(key, extension);
    }
    return extension;
  }

  /** What a third-party extension may touch for this profile; "none" marks a built-in. */
  #grantsFor(profile: Profile, config: unknown): ResolvedPermissions | "none" {
    const registration = this.registry.get(profile.extension);
    if (registration.builtin) return "none";
    const values = { ...(config as JsonObject), sync: { ...profile.sync } } as JsonObject;
    return resolvePermissions(registration.permissions, values);
  }

  async #ready(
    id: string,
    verb: string,
  ): Promise<
    { record: SandboxRecord; extension: SandboxExtension<unknown>; handle: SandboxHandle }
  > {
    const record = await this.journal.get(id);
    if (record.status !== "ready" || !record.handle) {
      throw new SandboxStateError(
        id,
        `is ${record.status}, so sandboxer cannot ${verb} it; ${
          record.status === "failed" ? `it failed: ${record.error}; destroy it` : "create a new one"
        }`,
      );
    }
    return {
      record,
      extension: this.#extension(record.extension, record.permissions ?? "none"),
      handle: record.handle,
    };
  }

  async #sync(
    extension: SandboxExtension<unknown>,
    id: string,
    handle: SandboxHandle,
    repo: string,
    settings: SyncSettings,
    options: { onProgress?: (p: SyncProgress) => void; signal?: AbortSignal },
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
    return report;
  }

  async #setup(
    extension: SandboxExtension<unknown>,
    id: string,
    handle: SandboxHandle,
    profile: Profile,
    options: CreateOptions,
  ): Promise<void> {
    const commands = profile.setup;
    await this.journal.update(id, { step: "setup" });
    for (const command of commands) {
      options.signal?.throwIfAborted();
      this.#logger.info(`setup: ${command}`);
      let tail = "";
      const decoder = new TextDecoder();
      const keepTail = (chunk: Uint8Array) => {
        tail = (tail + decoder.decode(chunk, { stream: true })).slice(-2000);
      };
      const io = options.setupIO;
      const code = await extension.exec(handle, withEnv(profile.env, ["sh", "-c", command]), {
        stdout: io?.stdout ?? ((chunk) => this.#logger.info(decoder.decode(chunk).trimEnd())),
        stderr: (chunk) => {
          keepTail(chunk);
          if (io?.stderr) io.stderr(chunk);
          else this.#logger.info(new TextDecoder().decode(chunk).trimEnd());
        },
        signal: options.signal,
      });
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

function currentOwner(): SandboxRecord["owner"] {
  let host = "unknown";
  try {
    host = Deno.hostname();
  } catch {
    // hostname needs --allow-sys=hostname; the owner check then compares pids only.
  }
  return { pid: Deno.pid, host, user: optionalEnv("USER") ?? "unknown" };
}

function gcReason(record: SandboxRecord, now: Date, ownerWorking: boolean): string | undefined {
  if (record.status === "destroyed") return undefined;
  const inProgress = record.status === "creating" || record.status === "destroying";
  if (inProgress && ownerWorking) return undefined;
  if (record.expires_at && Date.parse(record.expires_at) <= now.getTime()) {
    return `expired at ${record.expires_at}`;
  }
  if (inProgress) {
    return `stuck in ${record.status}: process ${record.owner.pid} on ${record.owner.host} stopped working on it`;
  }
  // A teardown that failed may have left a half-removed workspace: try it again.
  if (record.status === "failed" && record.step === "destroy") {
    return `its destroy failed (${record.error ?? "no detail"}); trying again`;
  }
  return undefined;
}

/** Prefix `env NAME=value…` so the profile's environment reaches every command on any backend. */
function withEnv(env: readonly string[] | undefined, argv: readonly string[]): readonly string[] {
  if (!env?.length) return argv;
  if (argv[0]?.startsWith("-")) {
    throw new UsageError(
      `Cannot run ${JSON.stringify(argv[0])}: a program name may not start with "-"`,
    );
  }
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
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0];
}
