/**
 * Warm workspaces for backends whose hosts outlive their sandboxes
 * (`ext.vm-packer` attaching to build hosts): the first sync of a new
 * sandbox starts from a copy, made on the host, of the last tree synced there
 * for the same repository, and then sends only the difference
 * (docs/warm-workspaces.md; seeds.ts and seed_scripts.ts).
 *
 * @module
 */

import { errorText } from "../../core/errors.ts";
import { defaultStateDir } from "../../core/paths.ts";
import type { SyncReport } from "../../core/types.ts";
import type { DestroyContext, OrphanReapContext, SyncOptions, TargetScan } from "../types.ts";
import { SshWorkspaceExtension } from "./extension.ts";
import type { SshWorkspaceHandle } from "./handle.ts";
import {
  copySeed,
  pendingSeed,
  pruneSeeds,
  saveSeed,
  type SeedHost,
  seedHosts,
  seedPlace,
  seedUser,
} from "./seeds.ts";
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
    let seeding: { host: SeedHost; place: Awaited<ReturnType<typeof seedPlace>> } | undefined;
    try {
      const [host, place] = await Promise.all([
        this.#seedHost(handle, options.signal),
        seedPlace({ handle, stateDir: this.#stateDir() }, from, { ...options, mode: policy.mode }),
      ]);
      seeding = { host, place };
      // A seeded workspace is not empty: its first sync is rsync's (a difference), not tar's.
      if (await copySeed(host, ref, seeding.place, options.signal)) {
        await takeFresh(this.#stateDir(), ref);
      }
    } catch (error) {
      // The sync below meets the same failure (a lost connection) and reports it in one line.
      options.signal?.throwIfAborted();
      this.logger.debug(`did not look for a seed of ${from}: ${errorText(error)}`);
    }
    const report = await super.sync(handle, from, options);
    if (seeding) {
      try {
        if (policy.mode === "workspace") {
          await pendingSeed(seeding.host.stateDir, ref, { place: seeding.place, policy });
        } else {
          await saveSeed(seeding.host, ref, seeding.place, policy);
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
        await saveSeed(await this.#seedHost(handle), ref, pending.place, pending.policy);
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
    return reaped?.length ? { ...scan, seeds: reaped } : scan;
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
    const reaped: string[] = [];
    for (const record of await seedHosts(ctx.stateDir)) {
      try {
        const connection = await this.connect(record.handle as Handle);
        const lines = await pruneSeeds(connection, record, record.policy.maxMb * 1024, this.logger);
        if (lines === undefined) await Deno.remove(record.file);
        else reaped.push(...lines);
      } catch (error) {
        this.logger.warn(`skipped the seeds under ${record.root}: ${errorText(error)}`);
      }
    }
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

  async #seedHost(handle: Handle, signal?: AbortSignal): Promise<SeedHost> {
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
