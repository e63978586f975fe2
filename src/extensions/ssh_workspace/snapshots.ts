/**
 * Snapshots of workspaces, kept on their host (docs/snapshots.md; the remote
 * side is snapshot_scripts.ts): save, restore into a new workspace, list,
 * remove and reap. A snapshot is named per remote user and workspace root,
 * and carries the owner id of this state directory (the seeds' owner), so
 * only this sandboxer's snapshots are used, replaced or removed.
 *
 * @module
 */

import { SnapshotError } from "../../core/errors.ts";
import { SNAPSHOT_NAME } from "../../core/ids.ts";
import type { Logger } from "../../core/types.ts";
import type { SshConnection } from "../../transport/ssh/connection.ts";
import type { SnapshotInfo, SnapshotScan } from "../types.ts";
import { handleTarget, type SshWorkspaceHandle } from "./handle.ts";
import { SCRIPT_EXIT } from "./remote_scripts.ts";
import { firstLine, rememberHost, seedOwner, seedUser } from "./seeds.ts";
import {
  SNAPSHOT_EXIT,
  SNAPSHOT_INTO,
  SNAPSHOT_LIST,
  SNAPSHOT_PRUNE,
  SNAPSHOT_REMOVE,
  SNAPSHOT_SAVE,
} from "./snapshot_scripts.ts";
import { newNonce } from "./workspace_path.ts";
import { type WorkspaceRef, workspaceRefusal } from "./workspace_ref.ts";

/** A host that keeps snapshots: a handle on it, its connection, the state directory. */
export interface SnapshotHost {
  /** A handle on the host (a sandbox's, or a profile's probe). */
  handle: SshWorkspaceHandle;
  /** Its pooled connection. */
  connection: SshConnection;
  /** sandboxer's state directory (the owner id). */
  stateDir: string;
  /** Where to log. */
  logger: Logger;
}

/** Root, user and owner of a host's snapshots, and how to name them. */
async function placeOf(host: SnapshotHost) {
  const workspace = host.handle.workspace;
  const root = workspace.slice(0, workspace.lastIndexOf("/"));
  const user = seedUser(host.handle);
  return {
    root,
    user,
    owner: await seedOwner(host.stateDir),
    target: `${handleTarget(host.handle)}:${host.handle.ssh_port}`,
    dir: `${root}/.sbx-snapshots/${user}`,
  };
}

/** Run a snapshot script on the host: `sh -c SCRIPT sh ARGS…`, the arguments made from the place. */
async function runOnHost(
  host: SnapshotHost,
  script: string,
  args: (place: Awaited<ReturnType<typeof placeOf>>) => (string | number)[],
  signal?: AbortSignal,
) {
  const place = await placeOf(host);
  const argv = ["sh", "-c", script, "sh", ...args(place).map(String)];
  return { place, result: await host.connection.run(argv, { signal }) };
}

/**
 * Save the checked workspace as the snapshot `name` (a real copy, made on
 * the host), and remember the host for `gc`.
 *
 * @param host The sandbox's host.
 * @param ref The workspace (checked on the host, as exec checks it).
 * @param name The snapshot's name.
 * @param options TTL in seconds and whether to replace one of ours.
 * @returns What was saved.
 */
export async function saveSnapshot(
  host: SnapshotHost,
  ref: WorkspaceRef,
  name: string,
  options: { ttlSeconds: number; replace?: boolean; signal?: AbortSignal },
): Promise<SnapshotInfo> {
  const { place, result } = await runOnHost(host, SNAPSHOT_SAVE, (place) => [
    ...[ref.workspace, ref.id, ref.nonce, place.user, name, place.owner, newNonce()],
    ...[options.ttlSeconds, options.replace ? "1" : "0"],
  ], options.signal);
  if (result.code !== 0) throw snapshotFailure(ref, name, place, result, "snapshot");
  const [created, expires, bytes] = result.stdout.trim().split(" ").map(Number);
  await rememberHost(host.stateDir, "snapshots", host.handle, place);
  host.logger.info(`saved ${ref.workspace} as the snapshot ${place.dir}/${name}`);
  return info(place, name, created, expires, bytes, ref.id);
}

/**
 * Copy the snapshot `name` into the fresh, checked workspace.
 *
 * @param host The new sandbox's host.
 * @param ref Its workspace.
 * @param name The snapshot's name.
 * @param signal Abort signal.
 */
export async function restoreSnapshot(
  host: SnapshotHost,
  ref: WorkspaceRef,
  name: string,
  signal?: AbortSignal,
): Promise<void> {
  const { place, result } = await runOnHost(
    host,
    SNAPSHOT_INTO,
    (place) => [ref.workspace, ref.id, ref.nonce, place.user, name, place.owner],
    signal,
  );
  if (result.code !== 0) throw snapshotFailure(ref, name, place, result, "start from");
  host.logger.info(`started ${ref.workspace} from the snapshot ${place.dir}/${name}`);
}

/**
 * The snapshots of the handle's user under its workspace root.
 *
 * @param host The host (a profile's probe handle).
 * @param signal Abort signal.
 * @returns Ours, and what else is there (never touched).
 */
export async function listSnapshots(
  host: SnapshotHost,
  signal?: AbortSignal,
): Promise<SnapshotScan> {
  const { place, result } = await runOnHost(
    host,
    SNAPSHOT_LIST,
    (place) => [place.root, place.user, place.owner],
    signal,
  );
  if (result.code !== 0) {
    throw new SnapshotError(
      `directory ${place.dir}`,
      `on ${place.target} was refused: ${
        firstLine(result)
      }; inspect it on the host — nothing there was read`,
    );
  }
  const scan: SnapshotScan = { target: place.target, root: place.root, snapshots: [], ignored: [] };
  for (const line of result.stdout.split("\n")) {
    const [kind, name, ...rest] = line.split("\t");
    if (kind === "snapshot" && SNAPSHOT_NAME.test(name) && rest.length === 4) {
      const [created, expires, bytes] = rest.slice(0, 3).map(Number);
      scan.snapshots.push(info(place, name, created, expires, bytes, rest[3]));
    } else if (kind === "ignored" && name !== undefined) {
      scan.ignored.push({ path: `${place.dir}/${name}`, reason: rest.join("\t") });
    }
  }
  scan.snapshots.sort((a, b) => a.name.localeCompare(b.name));
  return scan;
}

/**
 * Remove the snapshot `name` of the handle's user, when its marker says it is ours.
 *
 * @param host The host (a profile's probe handle).
 * @param name The snapshot's name.
 * @param signal Abort signal.
 * @returns What was removed.
 */
export async function removeSnapshot(
  host: SnapshotHost,
  name: string,
  signal?: AbortSignal,
): Promise<SnapshotInfo> {
  const { place, result } = await runOnHost(
    host,
    SNAPSHOT_REMOVE,
    (place) => [place.root, place.user, name, place.owner],
    signal,
  );
  if (result.code !== 0) throw snapshotFailure(undefined, name, place, result, "remove");
  const [created, expires, bytes, source] = result.stdout.trim().split(" ");
  host.logger.info(`removed the snapshot ${place.dir}/${name}`);
  return info(place, name, Number(created), Number(expires), Number(bytes), source);
}

/**
 * Reap the expired snapshots of the handle's user under its root.
 *
 * @param host The host.
 * @returns One `snapshot <path> (expired)` line per snapshot reaped; undefined when the user has none there.
 */
export async function pruneSnapshots(host: SnapshotHost): Promise<string[] | undefined> {
  const { place, result } = await runOnHost(host, SNAPSHOT_PRUNE, (p) => [p.root, p.user]);
  if (result.stdout.trim() === "none") return undefined;
  if (result.code !== 0) {
    host.logger.warn(`did not prune the snapshots under ${place.root}: ${firstLine(result)}`);
  }
  const reaped = result.stdout.split("\n").filter((line) => line.startsWith("reaped "))
    .map((line) => `snapshot ${place.dir}/${line.slice(7)}`);
  for (const line of reaped) host.logger.info(`reaped ${line}`);
  return reaped;
}

/**
 * Remember a host whose snapshots `gc` visits, without saving one (a probe).
 *
 * @param host The host.
 */
export async function rememberSnapshotHost(host: SnapshotHost): Promise<void> {
  await rememberHost(host.stateDir, "snapshots", host.handle, await placeOf(host));
}

function info(
  place: { target: string; dir: string },
  name: string,
  created: number,
  expires: number,
  bytes: number,
  source: string,
): SnapshotInfo {
  return {
    name,
    target: place.target,
    path: `${place.dir}/${name}`,
    created: new Date(created * 1000).toISOString(),
    expires: new Date(expires * 1000).toISOString(),
    bytes,
    source,
  };
}

/** One typed error per refusal of a snapshot script, with the fix. */
function snapshotFailure(
  ref: WorkspaceRef | undefined,
  name: string,
  place: { target: string; dir: string },
  result: { code: number; stderr: string },
  verb: string,
): Error {
  const why = firstLine(result);
  const where = `on ${place.target}`;
  switch (result.code) {
    case SNAPSHOT_EXIT.none:
      return new SnapshotError(
        name,
        `does not exist ${where} (${place.dir}); list them with "sandboxer snapshot list PROFILE"`,
      );
    case SNAPSHOT_EXIT.exists:
      return new SnapshotError(
        name,
        `already exists ${where} (${place.dir}/${name}); pass --replace to replace it, or pick another name`,
      );
    case SNAPSHOT_EXIT.expired:
      return new SnapshotError(
        name,
        `has expired ${where} (gc reaps it); take a new snapshot with "sandboxer snapshot ID ${name}"`,
      );
    case SNAPSHOT_EXIT.refused:
      return new SnapshotError(
        name,
        `${where} was refused (${why}); nothing there was read, copied or deleted — inspect it on the host`,
      );
    case SNAPSHOT_EXIT.failed:
      return new SnapshotError(
        name,
        `could not be copied ${where} (${why}); check the free space under ${place.dir}`,
      );
  }
  if (ref && (Object.values(SCRIPT_EXIT) as number[]).includes(result.code)) {
    return workspaceRefusal(ref, result.code, why, verb);
  }
  return new SnapshotError(
    name,
    `could not be handled ${where} (exit ${result.code}: ${why}); check that the login user's shell is a POSIX sh`,
  );
}
