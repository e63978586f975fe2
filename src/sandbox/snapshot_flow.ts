/**
 * Snapshots (docs/snapshots.md): save a ready sandbox's workspace on its
 * host, check a snapshot before a create starts from it, list and remove a
 * profile's snapshots. The host side is the extension's (`snapshot`,
 * `restoreSnapshot`, `snapshots`, `removeSnapshot`); an extension without
 * them is refused with {@linkcode SnapshotUnsupportedError}.
 *
 * @module
 */

import { SnapshotError, SnapshotUnsupportedError } from "../core/errors.ts";
import type { SandboxExtension } from "../extensions/base.ts";
import type { SnapshotInfo, SnapshotScan } from "../extensions/types.ts";
import { checkSnapshotName } from "../core/ids.ts";
import type { ManagerParts } from "./manager_parts.ts";

/** The ttl of a snapshot when neither `--ttl` nor the profile's `snapshot_ttl` says: 7 days. */
export const DEFAULT_SNAPSHOT_TTL_SECONDS = 7 * 86400;

const CONFINED_OR_OTHER =
  "it has no snapshot methods (compose-ssh workspaces live in their containers; a confined third-party extension cannot reach the state directory's owner id); use an ext.vm-packer attach-mode profile";

/**
 * Save sandbox `id`'s workspace as the snapshot `name` on its host, marking
 * the sandbox in use meanwhile.
 *
 * @param parts The manager's parts.
 * @param id The sandbox id.
 * @param name The snapshot's name.
 * @param options `ttlSeconds` (default: the profile's `snapshot_ttl`, else 7 days), `replace`, abort.
 * @returns What was saved.
 */
export async function snapshotSandbox(
  parts: ManagerParts,
  id: string,
  name: string,
  options: { ttlSeconds?: number; replace?: boolean; signal?: AbortSignal },
): Promise<SnapshotInfo> {
  checkSnapshotName(name);
  await using use = await parts.use(id, "snapshot", "snapshot");
  const { record, extension, handle } = use;
  if (!extension.snapshot) throw new SnapshotUnsupportedError(extension.id, CONFINED_OR_OTHER);
  const ttlSeconds = options.ttlSeconds ?? record.snapshot_ttl_seconds ??
    DEFAULT_SNAPSHOT_TTL_SECONDS;
  const info = await extension.snapshot(handle, name, {
    ttlSeconds,
    replace: options.replace,
    id,
    stateDir: parts.journal.dir,
    signal: options.signal,
  });
  await parts.transcript(id).note(
    `snapshot: saved as ${info.name} (${info.path}, ${info.bytes} bytes)`,
  );
  await parts.keepPin(record, handle);
  return info;
}

/**
 * Before a create records anything: check that the profile's target holds a
 * usable snapshot `name` of ours, so a missing, expired or foreign one is
 * refused with nothing made. The restore after the create checks again on
 * the host, under the snapshot's lock.
 *
 * @param parts The manager's parts.
 * @param extension The profile's extension.
 * @param config The profile's parsed config.
 * @param name The snapshot's name.
 * @param signal Abort signal.
 */
export async function checkFromSnapshot(
  parts: ManagerParts,
  extension: SandboxExtension<unknown>,
  config: unknown,
  name: string,
  signal?: AbortSignal,
): Promise<void> {
  checkSnapshotName(name);
  if (!extension.restoreSnapshot || !extension.snapshots) {
    throw new SnapshotUnsupportedError(extension.id, CONFINED_OR_OTHER);
  }
  const scans = await extension.snapshots(config, { stateDir: parts.journal.dir, signal });
  // With a pool, any host that keeps it will do: the extension places the sandbox there.
  const found = scans.flatMap((scan) => scan.snapshots).filter((s) => s.name === name);
  if (found.some((s) => Date.parse(s.expires) > Date.now())) return;
  if (found.length) {
    throw new SnapshotError(
      name,
      `has expired on ${found[0].target} (at ${
        found[0].expires
      }; gc reaps it); take a new snapshot`,
    );
  }
  for (const scan of scans) {
    const ignored = scan.ignored.find((i) => i.path.endsWith(`/${name}`));
    if (ignored) {
      throw new SnapshotError(
        name,
        `on ${scan.target} was refused (${ignored.reason}); nothing there was read, copied or deleted — inspect it on the host`,
      );
    }
  }
  throw new SnapshotError(
    name,
    `does not exist on ${
      scans.map((s) => s.target).join(", ") || "the profile's target"
    } for this user and workspace root; list them with "sandboxer snapshot list PROFILE"`,
  );
}

/** A profile's extension and parsed config; undefined for every host this state directory knows. */
export type SnapshotScope = { extension: SandboxExtension<unknown>; config: unknown } | undefined;

/**
 * The snapshots on a profile's target (every host of a pool), or on every
 * host this state directory saved snapshots on.
 *
 * @param parts The manager's parts.
 * @param scope The profile's extension and config, or undefined.
 * @param signal Abort signal.
 * @returns One scan per host.
 */
export async function profileSnapshots(
  parts: ManagerParts,
  scope: SnapshotScope,
  signal?: AbortSignal,
): Promise<SnapshotScan[]> {
  const options = { stateDir: parts.journal.dir, signal };
  if (scope === undefined) {
    const scans: SnapshotScan[] = [];
    for (const extension of builtinsWithSnapshots(parts)) {
      scans.push(...await extension.snapshots!(undefined, options));
    }
    return scans;
  }
  const { extension, config } = scope;
  if (!extension.snapshots) throw new SnapshotUnsupportedError(extension.id, CONFINED_OR_OTHER);
  return await extension.snapshots(config, options);
}

/**
 * Remove the snapshot `name` from a profile's target (without a profile:
 * from the one known host that holds it), only when its marker says it is
 * this sandboxer's.
 *
 * @param parts The manager's parts.
 * @param scope The profile's extension and config, or undefined.
 * @param name The snapshot's name.
 * @param signal Abort signal.
 * @returns What was removed.
 */
export async function removeProfileSnapshot(
  parts: ManagerParts,
  scope: SnapshotScope,
  name: string,
  signal?: AbortSignal,
): Promise<SnapshotInfo> {
  checkSnapshotName(name);
  const options = { stateDir: parts.journal.dir, signal };
  if (scope === undefined) {
    const [extension] = builtinsWithSnapshots(parts);
    if (!extension) throw new SnapshotError(name, "cannot be found: no extension keeps snapshots");
    return await extension.removeSnapshot!(undefined, name, options);
  }
  const { extension, config } = scope;
  if (!extension.removeSnapshot) {
    throw new SnapshotUnsupportedError(extension.id, CONFINED_OR_OTHER);
  }
  return await extension.removeSnapshot(config, name, options);
}

/** The built-in extensions that keep snapshots (a confined one gets no state directory). */
function builtinsWithSnapshots(parts: ManagerParts): SandboxExtension<unknown>[] {
  return parts.registry.registrations.filter((r) => r.builtin)
    .map((r) => parts.extension(r.id))
    .filter((extension) => extension.snapshots && extension.removeSnapshot);
}
