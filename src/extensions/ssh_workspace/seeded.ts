/**
 * Warm workspaces for backends whose hosts outlive their sandboxes
 * (`ext.vm-packer` attaching to build hosts): the first sync of a new
 * sandbox starts from a copy, made on the host, of the last tree synced there
 * for the same repository, and then sends only the difference
 * (docs/warm-workspaces.md; seeds.ts and seed_scripts.ts).
 *
 * @module
 */

import { defaultStateDir } from "../../core/paths.ts";
import type { SyncReport } from "../../core/types.ts";
import { errorText, SnapshotError, SnapshotUnsupportedError } from "../../core/errors.ts";
import type {
  DestroyContext,
  OrphanReapContext,
  SnapshotInfo,
  SnapshotOptions,
  SnapshotScan,
  SyncOptions,
  TargetScan,
} from "../types.ts";
import { SshWorkspaceExtension } from "./extension.ts";
import type { SshWorkspaceHandle } from "./handle.ts";
import { runShared, SharedLookup } from "./mux_exec.ts";
import {
  copySeed,
  pendingSeed,
  pruneSeeds,
  saveSeed,
  type SeedHost,
  seedHosts,
  seedPlace,
  seedUser,
  storeHosts,
} from "./seeds.ts";
import {
  listSnapshots,
  pruneSnapshots,
  removeSnapshot,
  restoreSnapshot,
  saveSnapshot,
  type SnapshotHost,
} from "./snapshots.ts";
import { type WorkspaceRef, workspaceRef } from "./workspace_ref.ts";
import { takeFresh } from "./workspace_tar.ts";

/** An {@linkcode SshWorkspaceExtension} whose new sandboxes may start from a seed. */
export abstract class SeededWorkspaceExtension<Config, Handle extends SshWorkspaceHandle>
  extends SshWorkspaceExtension<Config, Handle> {
  /**
   * Whether sandboxes of this handle keep seeds on their host. A VM booted
   * per sandbox (`mode: boot`) would take them with it: no.
   *
   * @param handle The stored handle.
   * @returns True to use and keep seeds.
   */
  protected seedsWanted(handle: Handle): boolean {
    return handle["mode"] !== "boot";
  }

  /**
   * As {@linkcode SshWorkspaceExtension.sync}; with `options.seed` (the
   * create's first sync) the workspace first receives the repository's seed,
   * if the host holds one of ours, and afterwards becomes it (`source`), or is
   * remembered to become it at destroy (`workspace`). A seed that cannot be
   * used or kept only warns: the sync itself sends whatever is missing.
   *
   * @param handle The stored handle.
   * @param from Local directory.
   * @param options Excludes, progress, abort and the seed policy.
   * @returns What was transferred.
   */
  override async sync(handle: Handle, from: string, options: SyncOptions): Promise<SyncReport> {
    const policy = options.seed;
    if (!policy || policy.mode === "off" || !this.seedsWanted(handle)) {
      return await super.sync(handle, from, options);
    }
    const ref = workspaceRef(handle);
    const shared = new SharedLookup(handle, this.#stateDir());
    let seeding:
      | { host: SeedHost; place: Awaited<ReturnType<typeof seedPlace>>; seeded: boolean }
      | undefined;
    try {
      const [host, place] = await Promise.all([
        this.#seedHost(handle, options.signal, (options.sshMux?.persistSeconds ?? 0) > 0 && shared),
        seedPlace({ handle, stateDir: this.#stateDir() }, from, { ...options, mode: policy.mode }),
      ]);
      seeding = { host, place, seeded: await copySeed(host, ref, place, options.signal) };
      // A seeded workspace is not empty: its first sync is rsync's (a difference), not tar's.
      if (seeding.seeded) await takeFresh(this.#stateDir(), ref);
    } catch (error) {
      // The sync below meets the same failure (a lost connection) and reports it in one line.
      options.signal?.throwIfAborted();
      this.logger.debug(`did not look for a seed of ${from}: ${errorText(error)}`);
    }
    const report = await this.syncVia(handle, from, options, shared);
    if (seeding) {
      try {
        if (policy.mode === "workspace") {
          const { place, seeded } = seeding;
          await pendingSeed(seeding.host.stateDir, ref, { place, policy, seeded });
        } else {
          await saveSeed(seeding.host, ref, seeding.place, policy, seeding.seeded);
        }
      } catch (error) {
        this.logger.warn(`kept no seed of ${ref.workspace}: ${errorText(error)}`);
      }
    }
    return report;
  }

  /**
   * With `sync.seed: workspace`, copy the whole workspace (build outputs
   * included) into the repository's seed first; then remove the workspace.
   *
   * @param handle The stored handle.
   * @param context The record's id.
   */
  override async destroy(handle: Handle, context?: DestroyContext): Promise<void> {
    // A handle that is not this record's is refused by the removal below, in one line.
    const ref = this.seedsWanted(handle) ? tryWorkspaceRef(handle, context?.id) : undefined;
    const pending = ref && await pendingSeed(this.#stateDir(), ref).catch(() => undefined);
    if (ref && pending) {
      try {
        const host = await this.#seedHost(handle);
        await saveSeed(host, ref, pending.place, pending.policy, pending.seeded);
      } catch (error) {
        this.logger.warn(`kept no seed of ${ref.workspace}: ${errorText(error)}`);
      }
    }
    await super.destroy(handle, context);
  }

  /**
   * As {@linkcode SshWorkspaceExtension.listMarkedWorkspaces}, and reap the
   * expired seeds of the target's user under its root (`gc --target`).
   *
   * @param config The profile's parsed config.
   * @param options Abort signal.
   * @returns The scan, with the seeds reaped.
   */
  override async listMarkedWorkspaces(
    config: Config,
    options: { signal?: AbortSignal },
  ): Promise<TargetScan> {
    const scan = await super.listMarkedWorkspaces(config, options);
    const probe = await this.handleForProfile(config, "probe");
    if (!probe || !this.seedsWanted(probe)) return scan;
    const connection = await this.connect(probe, options.signal);
    const place = { root: scan.root, user: seedUser(probe) };
    const reaped = await pruneSeeds(connection, place, 0, this.logger);
    const snapshots = await pruneSnapshots(this.#snapshotHost(probe, connection));
    return {
      ...scan,
      ...(reaped?.length ? { seeds: reaped } : {}),
      ...(snapshots?.length ? { snapshots } : {}),
    };
  }

  /**
   * Reap the seeds on every host this state directory made seeds on
   * (expired, or over the budget last set there; an unreachable host is
   * skipped with a warning), and forget `workspace` seeds promised by
   * sandboxes whose record is gone.
   *
   * @param ctx The journal's view.
   * @returns One line per seed reaped.
   */
  override async reapOrphans(ctx: OrphanReapContext): Promise<string[]> {
    const reaped = [
      ...await this.#pruneStores(
        await seedHosts(ctx.stateDir),
        "seeds",
        (record, connection) =>
          pruneSeeds(connection, record, record.policy.maxMb * 1024, this.logger),
      ),
      ...await this.#pruneStores(
        await storeHosts(ctx.stateDir, "snapshots"),
        "snapshots",
        (record, connection) =>
          pruneSnapshots(this.#snapshotHost(record.handle as Handle, connection, ctx.stateDir)),
      ),
    ];
    const pending = `${ctx.stateDir}/seeds/pending`;
    try {
      for await (const entry of Deno.readDir(pending)) {
        const id = entry.name.replace(/\.json$/, "");
        if (entry.isFile && await ctx.liveHandle(id) === undefined) {
          await Deno.remove(`${pending}/${entry.name}`).catch(() => {});
        }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return reaped;
  }

  /**
   * Save the sandbox's workspace as the snapshot `name` on its host
   * (docs/snapshots.md): a real copy, checked as exec checks the workspace.
   *
   * @param handle The stored handle.
   * @param name The snapshot's name (validated).
   * @param options TTL, replace, the record's id and the state directory.
   * @returns What was saved.
   */
  override async snapshot(
    handle: Handle,
    name: string,
    options: SnapshotOptions,
  ): Promise<SnapshotInfo> {
    this.#snapshotsWanted(handle);
    const ref = workspaceRef(handle, options.id);
    const connection = await this.connect(handle, options.signal);
    return await saveSnapshot(this.#snapshotHost(handle, connection, options.stateDir), ref, name, {
      ttlSeconds: options.ttlSeconds,
      replace: options.replace,
      signal: options.signal,
    });
  }

  /**
   * Copy the snapshot `name` into a new sandbox's workspace.
   *
   * @param handle The new sandbox's handle.
   * @param name The snapshot's name.
   * @param options The record's id, the state directory and the abort signal.
   */
  override async restoreSnapshot(
    handle: Handle,
    name: string,
    options: Omit<SnapshotOptions, "ttlSeconds" | "replace">,
  ): Promise<void> {
    this.#snapshotsWanted(handle);
    const ref = workspaceRef(handle, options.id);
    const connection = await this.connect(handle, options.signal);
    const host = this.#snapshotHost(handle, connection, options.stateDir);
    // No longer empty: the first sync is rsync's (the host would refuse tar here anyway).
    await takeFresh(this.#stateDir(), ref);
    await restoreSnapshot(host, ref, name, options.signal);
  }

  /**
   * The snapshots on the profile's target (every host of a pool); without a
   * profile, on every host this state directory saved snapshots on (an
   * unreachable one is skipped with a warning).
   *
   * @param config The profile's parsed config, or undefined.
   * @param options The state directory and the abort signal.
   * @returns One scan per host.
   */
  override async snapshots(
    config: Config | undefined,
    options: { stateDir: string; signal?: AbortSignal },
  ): Promise<SnapshotScan[]> {
    const scans: SnapshotScan[] = [];
    for (const host of await this.#snapshotHosts(config, options)) {
      scans.push(await listSnapshots(host, options.signal));
    }
    return scans;
  }

  /**
   * Remove the snapshot `name` from the profile's target; with a pool or
   * without a profile, from the one host that holds it.
   *
   * @param config The profile's parsed config, or undefined for every known host.
   * @param name The snapshot's name.
   * @param options The state directory and the abort signal.
   * @returns What was removed.
   */
  override async removeSnapshot(
    config: Config | undefined,
    name: string,
    options: { stateDir: string; signal?: AbortSignal },
  ): Promise<SnapshotInfo> {
    const hosts = await this.#snapshotHosts(config, options);
    if (hosts.length === 1) return await removeSnapshot(hosts[0], name, options.signal);
    const holders: SnapshotHost[] = [];
    const where: string[] = [];
    for (const host of hosts) {
      const scan = await listSnapshots(host, options.signal).catch(() => undefined);
      if (scan?.snapshots.some((s) => s.name === name)) {
        holders.push(host);
        where.push(scan.target);
      }
    }
    if (holders.length > 1) {
      throw new SnapshotError(
        name,
        `exists on several hosts (${where.join(", ")}); pass --profile to say which one`,
      );
    }
    if (holders.length === 0) {
      throw new SnapshotError(
        name,
        `is on none of the hosts this sandboxer keeps snapshots on; list them with "sandboxer snapshot list"`,
      );
    }
    return await removeSnapshot(holders[0], name, options.signal);
  }

  /** The hosts of a profile (each pool entry's), connected. */
  async #snapshotHosts(
    config: Config | undefined,
    options: { stateDir: string; signal?: AbortSignal },
  ): Promise<SnapshotHost[]> {
    if (config === undefined) return await this.#knownSnapshotHosts(options);
    const pool = this.poolEntries?.(config);
    const hosts: SnapshotHost[] = [];
    for (const { label, config: one } of pool ?? [{ label: "", config }]) {
      const probe = await this.handleForProfile(one, "probe");
      if (!probe || !this.seedsWanted(probe)) this.#snapshotsWanted(undefined);
      try {
        const connection = await this.connect(probe!, options.signal);
        hosts.push(this.#snapshotHost(probe!, connection, options.stateDir));
      } catch (error) {
        // One host of a pool may be down: the others' snapshots still count.
        if (!pool || options.signal?.aborted) throw error;
        this.logger.warn(`skipped pool host ${label}: ${errorText(error)}`);
      }
    }
    return hosts;
  }

  /** The hosts this state directory saved snapshots on; an unreachable one is skipped. */
  async #knownSnapshotHosts(
    options: { stateDir: string; signal?: AbortSignal },
  ): Promise<SnapshotHost[]> {
    const hosts: SnapshotHost[] = [];
    for (const record of await storeHosts(options.stateDir, "snapshots")) {
      const handle = record.handle as Handle;
      try {
        const connection = await this.connect(handle, options.signal);
        hosts.push(this.#snapshotHost(handle, connection, options.stateDir));
      } catch (error) {
        options.signal?.throwIfAborted();
        this.logger.warn(`skipped the snapshots under ${record.root}: ${errorText(error)}`);
      }
    }
    return hosts;
  }

  /**
   * Prune one store (seeds or snapshots) on every host this state directory
   * remembers for it; forget a host whose user has none left there, and skip
   * an unreachable one with a warning.
   */
  async #pruneStores<R extends { file: string; root: string; handle: unknown }>(
    records: R[],
    what: string,
    prune: (record: R, connection: SnapshotHost["connection"]) => Promise<string[] | undefined>,
  ): Promise<string[]> {
    const reaped: string[] = [];
    for (const record of records) {
      try {
        const lines = await prune(record, await this.connect(record.handle as Handle));
        if (lines === undefined) await Deno.remove(record.file);
        else reaped.push(...lines);
      } catch (error) {
        this.logger.warn(`skipped the ${what} under ${record.root}: ${errorText(error)}`);
      }
    }
    return reaped;
  }

  /** Refuse a sandbox whose host goes with it (a VM booted per sandbox). */
  #snapshotsWanted(handle: Handle | undefined): void {
    if (handle && this.seedsWanted(handle)) return;
    throw new SnapshotUnsupportedError(
      this.id,
      "a VM booted per sandbox (mode: boot) takes its disk, and any snapshot on it, with it; use an attach-mode profile (target: or targets:)",
    );
  }

  #snapshotHost(handle: Handle, connection: SnapshotHost["connection"], stateDir?: string) {
    return {
      handle,
      connection,
      logger: this.logger,
      stateDir: stateDir ?? this.#stateDir(),
    } satisfies SnapshotHost;
  }

  async #seedHost(
    handle: Handle,
    signal?: AbortSignal,
    lookup: SharedLookup | false = false,
  ): Promise<SeedHost> {
    // The CLI's create: over a shared connection that is up, as the sync after it.
    if (lookup) {
      const shared = await lookup.live();
      if (shared !== undefined) {
        const connection = { run: (argv: readonly string[]) => runShared(shared, argv, signal) };
        return { handle, connection, logger: this.logger, stateDir: this.#stateDir() };
      }
    }
    const connection = await this.connect(handle, signal);
    return { handle, connection, logger: this.logger, stateDir: this.#stateDir() };
  }

  #stateDir(): string {
    return this.options.stateDir ?? defaultStateDir();
  }
}

function tryWorkspaceRef(
  handle: SshWorkspaceHandle,
  id: string | undefined,
): WorkspaceRef | undefined {
  try {
    return workspaceRef(handle, id);
  } catch {
    return undefined;
  }
}
