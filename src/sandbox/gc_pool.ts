/**
 * `sandboxer gc --target PROFILE` for a pool (`targets:`): the target scan
 * of gc_target.ts on every host, then the host's dead leases reclaimed
 * (creates that died, sandboxes expired and removed or vanished). A host
 * that cannot be reached is skipped with a warning.
 *
 * @module
 */

import { errorText, ExtensionError, SandboxerError } from "../core/errors.ts";
import type { Logger } from "../core/types.ts";
import type { PoolEntryConfig, SandboxExtension } from "../extensions/base.ts";
import {
  gcTarget,
  type GcTargetInput,
  type GcTargetReport,
  type PoolHostReport,
} from "./gc_target.ts";

/** Input of {@linkcode gcPool}. */
export interface GcPoolInput<Config> extends GcTargetInput<Config> {
  /** The pool's hosts. */
  entries: PoolEntryConfig<Config>[];
  /** Reclaim one host's dead leases. */
  reapLeases(
    entry: PoolEntryConfig<Config>,
    options: { signal?: AbortSignal },
  ): Promise<{ reaped: string[]; live: string[] }>;
  /** Where a skipped host is reported. */
  logger: Logger;
}

/**
 * Scan every host of a pool and reclaim its dead leases.
 *
 * @param input Journal, extension, the hosts, clock and logger.
 * @returns The merged report (every host's workspaces), with one report per host in `hosts`.
 */
export async function gcPool<Config>(
  input: GcPoolInput<Config>,
): Promise<GcTargetReport & { hosts: PoolHostReport[] }> {
  const hosts: PoolHostReport[] = [];
  for (const entry of input.entries) {
    input.signal?.throwIfAborted();
    try {
      const scan = await gcTarget({ ...input, config: entry.config });
      const leases = await input.reapLeases(entry, { signal: input.signal });
      hosts.push({ ...scan, host: entry.label, ...leases });
    } catch (error) {
      if (input.signal?.aborted || !(error instanceof SandboxerError)) throw error;
      const why = errorText(error).split("\n")[0];
      input.logger.warn(`skipped pool host ${entry.label}: ${why}`);
      hosts.push({
        host: entry.label,
        target: entry.label,
        root: "",
        removed: [],
        kept: [],
        failed: [],
        ignored: [],
        reaped: [],
        live: [],
        skipped: why,
      });
    }
  }
  return {
    target: hosts.map((h) => h.target).join(", "),
    root: [...new Set(hosts.map((h) => h.root).filter(Boolean))].join(", "),
    removed: hosts.flatMap((h) => h.removed),
    kept: hosts.flatMap((h) => h.kept),
    failed: hosts.flatMap((h) => h.failed),
    ignored: hosts.flatMap((h) => h.ignored),
    hosts,
  };
}

/**
 * `gc --target` on a profile's extension: the target scan (gc_target.ts), or for a pool profile
 * the scan and lease reaping on every host ({@linkcode gcPool}).
 *
 * @param extension The profile's extension.
 * @param config The profile's parsed config.
 * @param input The journal, logger, clock and abort signal.
 * @returns The report.
 * @throws {ExtensionError} when the extension cannot scan a target.
 */
export async function gcProfileTarget(
  extension: SandboxExtension<unknown>,
  config: unknown,
  input: Pick<GcPoolInput<unknown>, "journal" | "logger" | "now" | "signal">,
): Promise<GcTargetReport> {
  const list = extension.listMarkedWorkspaces?.bind(extension);
  const remove = extension.removeMarkedWorkspace?.bind(extension);
  if (!list || !remove) {
    throw new ExtensionError(
      extension.id,
      "cannot scan a target for leaked workspaces; use plain gc for its sandboxes",
    );
  }
  const scan = {
    ...input,
    extension: { listMarkedWorkspaces: list, removeMarkedWorkspace: remove },
    config,
  };
  const entries = extension.poolEntries?.(config);
  const reapLeases = extension.reapLeases?.bind(extension);
  if (!entries || !reapLeases) return await gcTarget(scan);
  return await gcPool({ ...scan, entries, reapLeases });
}
