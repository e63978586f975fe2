/**
 * `sandboxer gc --target PROFILE`: reap leaked workspaces from the host side.
 *
 * The plain `gc` works from this machine's journal; it cannot see a
 * workspace made from another machine, or one whose record was lost. Here the
 * extension lists the marked workspaces (`<root>/sbx-<id>/.sandboxer.json`)
 * on the profile's target, and each one is:
 *
 * - left to the plain `gc` when this machine's journal has that sandbox (the
 *   same id and, when both are known, the same creation nonce) in a state
 *   other than `destroyed`: its record knows more than the marker;
 * - kept when its marker has no creation nonce (made by a sandboxer before
 *   nonces: only a destroy of its own record removes it), when it has no
 *   expiry, or has not expired yet;
 * - otherwise removed — by the extension's removal script, which re-checks on
 *   the host, in the same step as the removal, that the marker still holds
 *   the id and nonce listed.
 *
 * A tombstone (`<root>/.sbx-<id>.tomb-<nonce>`, a removal that was cut short)
 * whose marker holds its id and nonce is always finished, unless this
 * machine's journal still has that sandbox. Directories without a readable
 * marker naming them are reported and never touched.
 *
 * @module
 */

import { errorText } from "../core/errors.ts";
import type { TargetScan, WorkspaceMarker } from "../extensions/types.ts";
import type { Journal } from "./journal.ts";

/**
 * The part of an extension `gc --target` needs: the optional
 * `listMarkedWorkspaces` / `removeMarkedWorkspace` pair of
 * {@linkcode SandboxExtension}.
 */
export interface MarkedWorkspaceReaper<Config = unknown> {
  /** List the marked workspaces on the target `config` points at. */
  listMarkedWorkspaces(config: Config, options: { signal?: AbortSignal }): Promise<TargetScan>;
  /** Remove one of them; the removal re-checks its marker names `marker.id`. */
  removeMarkedWorkspace(
    config: Config,
    marker: WorkspaceMarker,
    options: { signal?: AbortSignal },
  ): Promise<void>;
}

/** What {@linkcode gcTarget} did. */
export interface GcTargetReport {
  /** `user@host:port`. */
  target: string;
  /** The workspace root scanned. */
  root: string;
  /** Expired workspaces removed. */
  removed: (WorkspaceMarker & { reason: string })[];
  /** Marked workspaces left in place, with why. */
  kept: (WorkspaceMarker & { reason: string })[];
  /** Expired workspaces whose removal failed, with the error. */
  failed: (WorkspaceMarker & { reason: string; error: string })[];
  /** `sbx-*` entries that are not marked workspaces; never touched. */
  ignored: { workspace: string; reason: string }[];
  /** Seeds reaped (expired warm workspaces, see docs/warm-workspaces.md). */
  seeds?: string[];
  /** Snapshots reaped (expired, see docs/snapshots.md). */
  snapshots?: string[];
  /** For a pool profile: what was done on each host, leases included (see gc_pool.ts). */
  hosts?: PoolHostReport[];
}

/** What `gc --target` did on one host of a pool. */
export interface PoolHostReport extends GcTargetReport {
  /** `host:port` as written in the profile. */
  host: string;
  /** Leases reclaimed: `slot-N (id)`. */
  reaped: string[];
  /** Leases still held: `slot-N (id)`. */
  live: string[];
  /** Why the host was skipped (unreachable), if it was. */
  skipped?: string;
}

/** Input of {@linkcode gcTarget}. */
export interface GcTargetInput<Config> {
  /** This machine's journal, to leave its own sandboxes to the plain `gc`. */
  journal: Pick<Journal, "list">;
  /** The profile's extension. */
  extension: MarkedWorkspaceReaper<Config>;
  /** The profile's parsed extension config. */
  config: Config;
  /** The current time, for tests. */
  now?: Date;
  /** Aborting stops between removals. */
  signal?: AbortSignal;
}

/**
 * Scan a target and remove its expired, unknown, marked workspaces.
 *
 * @param input Journal, extension, config and clock.
 * @returns What was removed, kept, failed and ignored.
 */
export async function gcTarget<Config>(input: GcTargetInput<Config>): Promise<GcTargetReport> {
  const now = (input.now ?? new Date()).getTime();
  const scan = await input.extension.listMarkedWorkspaces(input.config, { signal: input.signal });
  const local = new Map<string, { status: string; nonce: unknown }>();
  for (const record of await input.journal.list()) {
    if (record.status !== "destroyed") {
      local.set(record.id, { status: record.status, nonce: record.handle?.["nonce"] });
    }
  }
  const report: GcTargetReport = {
    target: scan.target,
    root: scan.root,
    removed: [],
    kept: [],
    failed: [],
    ignored: scan.ignored,
    ...(scan.seeds?.length ? { seeds: scan.seeds } : {}),
    ...(scan.snapshots?.length ? { snapshots: scan.snapshots } : {}),
  };
  for (const marker of scan.markers) {
    const mine = local.get(marker.id);
    // Another machine's sandbox of the same name is not this journal's to wait for.
    const sameSandbox = mine !== undefined &&
      (typeof mine.nonce !== "string" || marker.nonce === null || mine.nonce === marker.nonce);
    if (mine !== undefined && sameSandbox) {
      report.kept.push({
        ...marker,
        reason: `this machine's journal has it (${mine.status}); plain gc and destroy handle it`,
      });
      continue;
    }
    if (marker.nonce === null) {
      report.kept.push({
        ...marker,
        reason:
          "its marker has no creation nonce (made by an older sandboxer); only a destroy of its own record removes it",
      });
      continue;
    }
    if (marker.tombstone) {
      input.signal?.throwIfAborted();
      await remove(input, marker, "a removal that was cut short (tombstone)", report);
      continue;
    }
    if (marker.expires_at === null) {
      report.kept.push({ ...marker, reason: "it has no expiry" });
      continue;
    }
    if (Date.parse(marker.expires_at) > now) {
      report.kept.push({ ...marker, reason: `it expires at ${marker.expires_at}` });
      continue;
    }
    input.signal?.throwIfAborted();
    await remove(input, marker, `expired at ${marker.expires_at}`, report);
  }
  return report;
}

async function remove<Config>(
  input: GcTargetInput<Config>,
  marker: WorkspaceMarker,
  reason: string,
  report: GcTargetReport,
): Promise<void> {
  try {
    await input.extension.removeMarkedWorkspace(input.config, marker, { signal: input.signal });
    report.removed.push({ ...marker, reason });
  } catch (error) {
    const message = errorText(error);
    report.failed.push({ ...marker, reason, error: message.split("\n")[0] });
  }
}

/** Options for `Manager.gcTarget`. */
export interface GcTargetOptions {
  /** `dotted.path=value` overrides of profile fields (`--set`). */
  overrides?: readonly string[];
  /** The current time, for tests. */
  now?: Date;
  /** Aborting stops the scan or between removals. */
  signal?: AbortSignal;
}
