/**
 * The base class every sandbox backend extends.
 *
 * @module
 */

import { silentLogger } from "../core/types.ts";
import { retry, type RetryOptions, withTimeout } from "../core/async.ts";
import { validateConfig } from "../config/schema.ts";
import type { ConfigSchema, ConfigSource } from "../config/types.ts";
import type { JsonObject } from "../core/types.ts";
import type {
  SnapshotInfo,
  SnapshotOptions,
  SnapshotScan,
  TargetScan,
  WorkspaceMarker,
} from "./types.ts";
import type {
  CreateContext,
  DestroyContext,
  ExtensionOptions,
  OrphanReapContext,
  SandboxHandle,
  SyncOptions,
} from "./types.ts";
import type { ExecIO, Logger, SyncReport } from "../core/types.ts";
import type { SshTarget } from "../transport/ssh/types.ts";

/** Where a profile's fixed SSH server and workspace root are, for `sandboxer doctor`. */
export interface FixedTarget {
  /** How to connect (host key policy included). */
  target: SshTarget;
  /** The directory workspaces are made in. */
  root: string;
  /** For a pool profile: every host (`target`/`root` above are the first's). */
  pool?: (FixedTarget & { label: string; capacity: number })[];
}

/** One host of a pool profile (`targets:`), as the single-target config the extension knows. */
export interface PoolEntryConfig<Config> {
  /** `host:port` as written, for messages. */
  label: string;
  /** How many sandboxes it holds at once. */
  capacity: number;
  /** The profile's config with only this host as its target. */
  config: Config;
}

/**
 * Base class of sandbox backends. A subclass holds only what is particular to
 * its backend; config validation, timeouts, retries and logging live here.
 *
 * The manager calls `parseConfig` before anything is recorded, then `create`
 * (which must call `ctx.recordHandle()` before its first side effect), then
 * `sync` and `exec` as asked, and `destroy` from the stored handle alone.
 *
 * A backend that places sandboxes through a scheduler (a Kubernetes pod, a
 * Nomad job) implements these same methods; docs/scale-out.md maps each one.
 *
 * @example A backend that makes a local directory
 * ```ts ignore
 * import { type CreateContext, type ExecIO, SandboxExtension } from "@sandboxer/sandboxer";
 *
 * export class TempDirExtension extends SandboxExtension<{ root: string }, { dir: string }> {
 *   readonly id = "ext.tempdir";
 *   async create(ctx: CreateContext<{ root: string }>): Promise<{ dir: string }> {
 *     const handle = { dir: `${ctx.config.root}/sbx-${ctx.id}` };
 *     await ctx.recordHandle(handle);
 *     await Deno.mkdir(handle.dir);
 *     return handle;
 *   }
 *   async exec(handle: { dir: string }, argv: readonly string[], io: ExecIO): Promise<number> {
 *     const [cmd, ...args] = argv;
 *     const out = await new Deno.Command(cmd, { args, cwd: handle.dir }).output();
 *     io.stdout?.(out.stdout);
 *     return out.code;
 *   }
 *   async destroy(handle: { dir: string }): Promise<void> {
 *     await Deno.remove(handle.dir, { recursive: true }).catch(() => {});
 *   }
 * }
 * ```
 */
export abstract class SandboxExtension<
  Config = JsonObject,
  Handle extends SandboxHandle = SandboxHandle,
> {
  /** Must equal the `id` of the extension's YAML registration (`ext.<name>`). */
  abstract readonly id: string;
  /** Where this extension logs. */
  protected readonly logger: Logger;
  /** The options the extension was constructed with. */
  protected readonly options: ExtensionOptions;

  /**
   * Create it.
   *
   * @param options Logger and host-key policy, given by the manager.
   */
  constructor(options: ExtensionOptions = {}) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
  }

  /**
   * Validate a profile's configuration for this extension. The default checks
   * it against the registration's `config` schema (types, required fields,
   * defaults, unknown keys with a "did you mean"); override it to add checks,
   * calling `super.parseConfig` first.
   *
   * @param raw The profile's extension fields.
   * @param source Locations of those fields, for errors.
   * @param schema The registration's config schema.
   * @returns The typed configuration.
   * @throws {ConfigError} naming file, line and field.
   */
  parseConfig(raw: JsonObject, source: ConfigSource, schema: ConfigSchema): Config {
    return validateConfig(
      raw,
      schema,
      source,
      this.options.home ? { home: this.options.home } : {},
    ) as Config;
  }

  /**
   * What the manager calls to validate a profile's configuration: by default
   * {@linkcode SandboxExtension.parseConfig}. Confined third-party extensions
   * validate in their worker, which is asynchronous.
   *
   * @param raw The profile's extension fields.
   * @param source Locations of those fields, for errors.
   * @param schema The registration's config schema.
   * @returns The typed configuration.
   */
  loadConfig(raw: JsonObject, source: ConfigSource, schema: ConfigSchema): Promise<Config> {
    return Promise.resolve().then(() => this.parseConfig(raw, source, schema));
  }

  /**
   * Make the sandbox. Call `ctx.recordHandle(handle)` before the first side
   * effect.
   *
   * @param ctx Id, parsed config and the journal hooks.
   * @returns The final destroy handle.
   */
  abstract create(ctx: CreateContext<Config>): Promise<Handle>;

  /**
   * Run `argv` (kept literal) in the sandbox's workspace, streaming output.
   *
   * @param handle The stored handle.
   * @param argv Program and arguments.
   * @param io Output sinks and an abort signal.
   * @returns The command's exit code (128+N when killed by signal N).
   */
  abstract exec(handle: Handle, argv: readonly string[], io: ExecIO): Promise<number>;

  /**
   * Bring a local directory into the workspace. Extensions without it cannot
   * be synced.
   *
   * @param handle The stored handle.
   * @param from Local directory.
   * @param options Excludes, progress and abort.
   * @returns What was transferred.
   */
  sync?(handle: Handle, from: string, options: SyncOptions): Promise<SyncReport>;

  /**
   * Copy a path out of the workspace to a local directory.
   *
   * @param handle The stored handle.
   * @param remotePath Path inside the workspace (relative) or absolute.
   * @param localDir Local directory to copy into.
   * @param options Abort signal.
   * @returns What was copied (files, bytes), when the backend can tell.
   */
  fetch?(
    handle: Handle,
    remotePath: string,
    localDir: string,
    options: { signal?: AbortSignal },
  ): Promise<SyncReport | void>;

  /**
   * Tear the sandbox down from its handle alone. Must be idempotent: a
   * second call, or a call for a sandbox that was never fully made, succeeds.
   *
   * @param handle The stored handle.
   * @param context The id of the record the handle belongs to (the manager always gives it).
   */
  abstract destroy(handle: Handle, context?: DestroyContext): Promise<void>;

  /**
   * The fixed SSH server a profile's sandboxes are made on, for `sandboxer doctor`. Optional:
   * backends whose server is made per sandbox leave it out or return undefined.
   *
   * @param config The profile's parsed config.
   * @param acceptNewHostKey Trust an unknown host key and add it to known_hosts.
   * @returns The target and workspace root, or undefined.
   */
  fixedTarget?(config: Config, acceptNewHostKey: boolean): Promise<FixedTarget | undefined>;

  /**
   * The hosts of a pool profile, each as a single-target config, so `doctor`
   * and `gc --target` go over every one. Optional: undefined for a profile
   * with one target.
   *
   * @param config The profile's parsed config.
   * @returns The entries, or undefined.
   */
  poolEntries?(config: Config): PoolEntryConfig<Config>[] | undefined;

  /**
   * Reclaim the dead leases of one pool host (`gc --target`): those whose
   * create died or whose sandbox is gone from the host.
   *
   * @param entry One of {@linkcode SandboxExtension.poolEntries}.
   * @param options Abort signal.
   * @returns The slots reaped and those still live (`slot-N (id)`).
   */
  reapLeases?(
    entry: PoolEntryConfig<Config>,
    options: { signal?: AbortSignal },
  ): Promise<{ reaped: string[]; live: string[] }>;

  /**
   * List the marked workspaces on the target a profile's config points at,
   * for `sandboxer gc --target`. Optional: backends without a fixed target
   * leave it out.
   *
   * @param config The profile's parsed config.
   * @param options Abort signal.
   * @returns The marked workspaces, and the `sbx-*` entries that are not.
   */
  listMarkedWorkspaces?(config: Config, options: { signal?: AbortSignal }): Promise<TargetScan>;

  /**
   * Remove one workspace {@linkcode SandboxExtension.listMarkedWorkspaces}
   * found, re-checking on the host that its marker still names `marker.id`.
   *
   * @param config The profile's parsed config.
   * @param marker The marker found.
   * @param options Abort signal.
   */
  removeMarkedWorkspace?(
    config: Config,
    marker: WorkspaceMarker,
    options: { signal?: AbortSignal },
  ): Promise<void>;

  /**
   * Stop and remove what this extension keeps on this machine for sandboxes
   * that no longer have a live record (a create killed before it recorded
   * enough, a record deleted by hand), for `gc`. Optional: an extension that
   * keeps nothing locally leaves it out. It must check its own markers before
   * stopping or removing anything.
   *
   * @param ctx The state directory and the journal's view of each id.
   * @returns One line per thing reaped.
   */
  reapOrphans?(ctx: OrphanReapContext): Promise<string[]>;

  /**
   * Save the sandbox's workspace as the snapshot `name` on its host: a real
   * copy (never links), without the workspace's marker. Optional: the manager
   * refuses snapshots of an extension without it with
   * `SnapshotUnsupportedError`; the four snapshot methods come
   * together.
   *
   * @example
   * ```ts ignore
   * override async snapshot(handle: MyHandle, name: string, options: SnapshotOptions) {
   *   // Check the workspace as exec does, copy it on the host, write the marker last.
   *   return await copyOnHost(handle, name, options.ttlSeconds, options.replace ?? false);
   * }
   * ```
   *
   * @param handle The stored handle.
   * @param name The snapshot's name (validated).
   * @param options TTL, replace, the record's id, the state directory.
   * @returns What was saved.
   * @throws {SnapshotError} when the name is taken (without `replace`) or its path is not ours.
   */
  snapshot?(handle: Handle, name: string, options: SnapshotOptions): Promise<SnapshotInfo>;

  /**
   * Copy the snapshot `name` into a freshly made workspace
   * (`create --from-snapshot`); the manager rolls the create back when it
   * throws.
   *
   * @param handle The new sandbox's handle.
   * @param name The snapshot's name.
   * @param options The record's id, the state directory and the abort signal.
   * @throws {SnapshotError} when it is missing, expired or not ours.
   */
  restoreSnapshot?(
    handle: Handle,
    name: string,
    options: Omit<SnapshotOptions, "ttlSeconds" | "replace">,
  ): Promise<void>;

  /**
   * The snapshots on the target a profile's config points at, or, without a
   * config, on every host this state directory has kept snapshots on.
   *
   * @param config The profile's parsed config, or undefined for every known host.
   * @param options The state directory and the abort signal.
   * @returns One scan per host (one for a single target).
   */
  snapshots?(
    config: Config | undefined,
    options: { stateDir: string; signal?: AbortSignal },
  ): Promise<SnapshotScan[]>;

  /**
   * Remove the snapshot `name` from the target a profile's config points at
   * (without a config: from the one known host that holds it), only when its
   * marker says it is this sandboxer's.
   *
   * @param config The profile's parsed config, or undefined for every known host.
   * @param name The snapshot's name.
   * @param options The state directory and the abort signal.
   * @returns What was removed.
   * @throws {SnapshotError} when it is missing or not ours (nothing is deleted).
   */
  removeSnapshot?(
    config: Config | undefined,
    name: string,
    options: { stateDir: string; signal?: AbortSignal },
  ): Promise<SnapshotInfo>;

  /**
   * The workspace path, for display.
   *
   * @param handle The stored handle.
   * @returns The workspace path, when the handle has one.
   */
  workspaceOf(handle: Handle): string | undefined {
    const workspace = handle["workspace"];
    return typeof workspace === "string" ? workspace : undefined;
  }

  /** Release connections and other resources held across calls. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Run `work` with a time limit; see {@linkcode withTimeout}.
   *
   * @param what What is being done, for the error.
   * @param timeoutMs The limit in milliseconds.
   * @param work The operation.
   * @param outer A caller's signal to honour too.
   * @returns What `work` returned.
   */
  protected withTimeout<T>(
    what: string,
    timeoutMs: number,
    work: (signal: AbortSignal) => Promise<T>,
    outer?: AbortSignal,
  ): Promise<T> {
    return withTimeout(what, timeoutMs, work, outer);
  }

  /**
   * Retry `work` with backoff; see {@linkcode retry}.
   *
   * @param work The operation.
   * @param options Attempts and which errors to retry.
   * @returns What `work` returned.
   */
  protected retry<T>(work: (attempt: number) => Promise<T>, options?: RetryOptions): Promise<T> {
    return retry(work, options);
  }
}

/** A class that extends {@linkcode SandboxExtension}. */
// deno-lint-ignore no-explicit-any
export type ExtensionClass = new (options?: ExtensionOptions) => SandboxExtension<any, any>;
