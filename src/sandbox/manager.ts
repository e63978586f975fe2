/**
 * The manager owns the sandbox lifecycle and the journal: it validates a
 * profile completely before anything is recorded, writes the record before
 * the first side effect, and updates it after each step so `destroy` and
 * `gc` can always finish what was started.
 *
 * @module
 */

import { listProfiles, loadProfile, profileSearchPath } from "../config/profile.ts";
import type { JsonObject } from "../core/types.ts";
import type { Profile } from "../config/types.ts";
import { ExtensionRegistry } from "../extensions/registry.ts";
import type { FixedTarget } from "../extensions/base.ts";
import type { ExecIO, SyncReport } from "../core/types.ts";
import { ConfigError, ExtensionError, ImageError, UsageError } from "../core/errors.ts";
import { validateId } from "../core/ids.ts";
import { Journal } from "./journal.ts";
import type { SandboxRecord } from "./record.ts";
import type { GcTargetOptions, GcTargetReport } from "./gc_target.ts";
import { gcProfileTarget } from "./gc_pool.ts";
import { defaultStateDir, splitPathList } from "../core/paths.ts";
import { BUILTIN_PROFILES_DIR } from "../config/builtin_files.ts";
import type { PortRegistry } from "../core/ports/registry.ts";
import {
  type CachedImage,
  imagesDir,
  listImages,
  removeImage,
} from "../extensions/vm_packer/image/cache.ts";
import { buildImage } from "../extensions/vm_packer/image/packer.ts";
import type { VmPackerConfig } from "../extensions/vm_packer/config.ts";
import { VmPackerExtension } from "../extensions/vm_packer/extension.ts";
import { currentIdentity, optionalEnv } from "../core/permissions.ts";
import { withGrants } from "../extensions/confined/permissions.ts";
import { createSandbox, syncInto } from "./create_flow.ts";
import { destroySandbox } from "./destroy_flow.ts";
import { collectGarbage, planGarbage } from "./gc_flow.ts";
import {
  assertDirectory,
  checkProgram,
  ManagerParts,
  oneLine,
  withEnv,
  withRepo,
} from "./manager_parts.ts";
import { transcriptPath } from "./transcript.ts";
import { profileSnapshots, removeProfileSnapshot, snapshotSandbox } from "./snapshot_flow.ts";
import type { SnapshotInfo, SnapshotScan } from "../extensions/types.ts";
import type {
  CreateOptions,
  DestroyOptions,
  GcOptions,
  GcReport,
  ManagerOptions,
  ManagerSyncOptions,
} from "./manager_options.ts";

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
  #parts: ManagerParts;
  /** Profile directories, searched in order. */
  readonly profilePath: readonly string[];

  static {
    internals = (manager) => ({
      journal: manager.#parts.journal,
      registry: manager.#parts.registry,
    });
  }

  private constructor(
    journal: Journal,
    registry: ExtensionRegistry,
    profilePath: readonly string[],
    options: ManagerOptions,
  ) {
    this.#parts = new ManagerParts(journal, registry, options);
    this.profilePath = profilePath;
  }

  /**
   * Where a sandbox's transcript (create, setup, sync and exec, timestamped)
   * is kept; it is removed with the sandbox.
   *
   * @param id The sandbox id.
   * @returns The file path (it may not exist yet).
   */
  transcriptPath(id: string): string {
    return transcriptPath(this.#parts.journal.dir, validateId(id));
  }

  /**
   * The port registry of this state directory (range from
   * `SANDBOXER_PORT_RANGE`, default 12222-12299).
   *
   * @returns The registry.
   */
  ports(): PortRegistry {
    return this.#parts.ports();
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
      registration = this.#parts.registry.get(loaded.extension);
    } catch (error) {
      if (!(error instanceof ExtensionError)) throw error;
      // Like every other profile error: the file, line and field to fix.
      throw new ConfigError(
        loaded.source.locate("extension"),
        `${JSON.stringify(loaded.extension)} ${error.problem}`,
        { cause: error },
      );
    }
    const extension = this.#parts.extension(loaded.extension);
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
    const resolved = await this.resolveProfile(options.profile, options.overrides);
    return await createSandbox(this.#parts, resolved, options);
  }

  /**
   * Every record in the journal, oldest first. A corrupt record file is
   * reported through the logger (one line: the file and the fix) and left out.
   *
   * @param options `all` includes destroyed sandboxes.
   * @returns The records.
   */
  async list(options: { all?: boolean } = {}): Promise<SandboxRecord[]> {
    const records = await this.#parts.records();
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
    return this.#parts.journal.get(id);
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
    await using use = await this.#parts.use(id, "exec", "run commands in");
    const { record, extension, handle } = use;
    const log = this.#parts.transcript(id);
    await log.note(`exec: ${JSON.stringify(argv)}`);
    let code: number;
    try {
      code = await extension.exec(handle, withEnv(record.env, argv), log.tee(io));
    } catch (error) {
      await log.flush();
      await log.note(`exec failed: ${oneLine(error)}`);
      throw error;
    }
    await log.flush();
    await log.note(`exec: exit code ${code}`);
    await this.#parts.keepPin(record, handle);
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
    const record = await this.#parts.journal.get(id);
    const repo = options.repo ?? record.sync.source;
    if (repo === undefined) {
      throw new UsageError(
        `Cannot sync sandbox "${id}": no directory given; pass --repo DIR or set sync.source in the profile`,
      );
    }
    await assertDirectory(repo, "--repo");
    await using use = await this.#parts.use(id, "sync", "sync into");
    const extension = this.#parts.extension(
      use.record.extension,
      withRepo(use.record.permissions ?? "none", repo),
    );
    const report = await syncInto(
      this.#parts,
      extension,
      id,
      use.handle,
      repo,
      use.record.sync,
      options,
      this.#parts.transcript(id),
    );
    await this.#parts.keepPin(use.record, use.handle);
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
   * @returns What was copied (files, bytes), when the extension can tell.
   */
  async fetch(
    id: string,
    remotePath: string,
    localDir: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<SyncReport | undefined> {
    await using use = await this.#parts.use(id, "fetch", "copy files from");
    const { record, handle } = use;
    const grants = record.permissions
      ? withGrants(record.permissions, { read: [localDir], write: [localDir] })
      : "none";
    const extension = this.#parts.extension(record.extension, grants);
    if (!extension.fetch) {
      throw new ExtensionError(extension.id, "cannot copy files back: it has no fetch()");
    }
    await Deno.mkdir(localDir, { recursive: true });
    const report = await extension.fetch(handle, remotePath, localDir, options);
    await this.#parts.keepPin(record, handle);
    return report ?? undefined;
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
  destroy(id: string, options: DestroyOptions = {}): Promise<SandboxRecord> {
    return destroySandbox(this.#parts, id, options);
  }

  /**
   * Destroy expired sandboxes and those whose creator, destroyer or `run`
   * died. An expired sandbox is destroyed even while an exec or sync uses it.
   *
   * @param options `now` for tests.
   * @returns What was destroyed and what could not be.
   */
  gc(options: GcOptions = {}): Promise<GcReport> {
    return collectGarbage(this.#parts, options);
  }

  /**
   * What {@linkcode gc} would destroy now, and why, without changing anything.
   *
   * @param options `now` for tests.
   * @returns The sandboxes and reasons.
   */
  gcPlan(options: GcOptions = {}): Promise<{ id: string; reason: string }[]> {
    return planGarbage(this.#parts, options.now ?? new Date(), options.only);
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
    return await gcProfileTarget(this.#parts.extension(loaded.extension), config, {
      journal: { list: () => this.#parts.records() },
      logger: this.#parts.logger,
      now: options.now,
      signal: options.signal,
    });
  }

  /**
   * Save a ready sandbox's workspace as a snapshot on its host
   * (docs/snapshots.md): a real copy, named per remote user and workspace
   * root, that `create({ fromSnapshot })` starts new sandboxes from and `gc`
   * reaps once it expires.
   *
   * @example Keep a built workspace for a week
   * ```ts ignore
   * const info = await manager.snapshot("build-1", "after-deps", { ttlSeconds: 7 * 86400 });
   * console.log(info.path, info.bytes);
   * ```
   *
   * @param id The sandbox id.
   * @param name `[a-z0-9][a-z0-9._-]{0,62}`.
   * @param options `ttlSeconds` (default: the profile's `snapshot_ttl`, 7d), `replace`, abort.
   * @returns What was saved.
   * @throws {SnapshotError} for a bad or taken name (without `replace`), or a path that is not ours.
   * @throws {SnapshotUnsupportedError} for a backend that keeps no snapshots.
   */
  snapshot(
    id: string,
    name: string,
    options: { ttlSeconds?: number; replace?: boolean; signal?: AbortSignal } = {},
  ): Promise<SnapshotInfo> {
    return snapshotSandbox(this.#parts, id, name, options);
  }

  /**
   * The snapshots this sandboxer keeps on a profile's target (one scan per
   * host of a pool), and what else is in their directory; without a profile,
   * on every host this state directory saved snapshots on.
   *
   * @example
   * ```ts ignore
   * for (const scan of await manager.snapshots("vm-haskell-build")) {
   *   for (const s of scan.snapshots) console.log(s.name, s.bytes, s.expires);
   * }
   * ```
   *
   * @param profile Profile name or file path; undefined for every known host.
   * @param options Overrides and abort signal.
   * @returns One scan per host.
   */
  async snapshots(
    profile?: string,
    options: { overrides?: readonly string[]; signal?: AbortSignal } = {},
  ): Promise<SnapshotScan[]> {
    const scope = await this.#snapshotScope(profile, options.overrides);
    return await profileSnapshots(this.#parts, scope, options.signal);
  }

  /**
   * Remove a snapshot from a profile's target (without a profile: from the
   * one known host that holds it), only when its marker says it is this
   * sandboxer's (a symlink is never followed).
   *
   * @param profile Profile name or file path; undefined to search the known hosts.
   * @param name The snapshot's name.
   * @param options Overrides and abort signal.
   * @returns What was removed.
   */
  async removeSnapshot(
    profile: string | undefined,
    name: string,
    options: { overrides?: readonly string[]; signal?: AbortSignal } = {},
  ): Promise<SnapshotInfo> {
    const scope = await this.#snapshotScope(profile, options.overrides);
    return await removeProfileSnapshot(this.#parts, scope, name, options.signal);
  }

  async #snapshotScope(profile: string | undefined, overrides?: readonly string[]) {
    if (profile === undefined) return undefined;
    const { profile: loaded, config } = await this.resolveProfile(profile, overrides);
    return { extension: this.#parts.extension(loaded.extension), config };
  }

  /**
   * Validate a profile and find the fixed SSH server its sandboxes are made on (`doctor`).
   *
   * @param profile Profile name or file path.
   * @param acceptNewHostKey Trust an unknown host key and add it to known_hosts.
   * @returns The profile, and its target (undefined when its extension has none to check).
   */
  async fixedTarget(
    profile: string,
    acceptNewHostKey = false,
  ): Promise<{ profile: Profile; target: FixedTarget | undefined }> {
    const { profile: loaded, config } = await this.resolveProfile(profile);
    const extension = this.#parts.extension(loaded.extension);
    return { profile: loaded, target: await extension.fixedTarget?.(config, acceptNewHostKey) };
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
      logger: this.#parts.logger,
      signal: options.signal,
    });
  }

  /**
   * The image cache directory: `$SANDBOXER_IMAGES`, else `<stateDir>/images`.
   *
   * @returns The directory.
   */
  imagesDir(): string {
    return imagesDir(this.#parts.journal.dir, this.#parts.env("SANDBOXER_IMAGES"));
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
    for (const record of await this.#parts.records()) {
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
    await this.#parts.close();
  }

  /** Same as {@linkcode Manager.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
