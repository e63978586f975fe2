/**
 * Warm workspaces: which seed a sync may start from, and what this machine
 * remembers about seeds (docs/warm-workspaces.md; the remote side is
 * seed_scripts.ts).
 *
 * A repository is named by a hash: in a git work tree of its root commits,
 * its `origin` URL (user and password dropped) and the synced directory's
 * place in the tree; elsewhere of this machine's id and the directory's
 * absolute path. Only the hash reaches the host.
 *
 * Kept in the state directory (mode 0700), under `seeds/`:
 * - `owner`: a random id written once; every seed this state directory makes
 *   carries it in its marker, and only seeds that do are ever used;
 * - `hosts/<key>.json`: a host, workspace root and user that hold seeds of
 *   ours (the connection fields of a handle), so the plain `gc` can visit it;
 * - `pending/<id>.json`: a sandbox with `sync.seed: workspace`, whose
 *   workspace becomes the seed at its destroy.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Logger } from "../../core/types.ts";
import { run } from "../../process/run.ts";
import type { SshConnection } from "../../transport/ssh/connection.ts";
import type { SeedPolicy, SyncOptions } from "../types.ts";
import { handleTarget, splitUserHost, type SshWorkspaceHandle } from "./handle.ts";
import { SEED_EXIT, SEED_INTO, SEED_PRUNE, SEED_UPDATE } from "./seed_scripts.ts";
import { newNonce } from "./workspace_path.ts";
import type { WorkspaceRef } from "./workspace_ref.ts";

/** Where a repository's seed lives on a host, and whose it is. */
export interface SeedPlace {
  /** The workspace root (the seeds are under `<root>/.sbx-seeds/<user>/`). */
  root: string;
  /** The remote user's directory name. */
  user: string;
  /** The repository's hash (32 hex digits). */
  hash: string;
  /** This state directory's owner id. */
  owner: string;
}

/** What the seed functions need: the handle, a connection, the logger and the state directory. */
export interface SeedHost {
  /** The sandbox's handle. */
  handle: SshWorkspaceHandle;
  /** What runs the seed scripts: its pooled connection (the pin checked), or a shared one. */
  connection: Pick<SshConnection, "run">;
  /** Where to log. */
  logger: Logger;
  /** sandboxer's state directory. */
  stateDir: string;
}

const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

/**
 * The hash that names the repository (or directory) at `dir`.
 *
 * @param dir The local directory being synced.
 * @param signal Aborting it stops git.
 * @returns 32 hex digits.
 */
export async function repoIdentity(dir: string, signal?: AbortSignal): Promise<string> {
  const path = await Deno.realPath(dir);
  const git = (...args: string[]) =>
    run(["git", "-C", path, ...args], { allowFailure: true, signal }).then(
      (r) => r.code === 0 ? r.stdout.trim() : "",
      () => "",
    );
  // At once: outside a work tree all three fail fast, and the answer is the path's.
  const [roots, origin, prefix] = await Promise.all([
    git("rev-list", "--max-parents=0", "HEAD"),
    git("config", "--get", "remote.origin.url"),
    git("rev-parse", "--show-prefix"),
  ]);
  if (roots !== "") {
    const url = withoutCredentials(origin);
    return digest(["git", roots.split("\n").sort().join(","), url, prefix]);
  }
  return digest(["path", await machineId(), path]);
}

/** A URL without `user:password@`; scp-like `git@host:path` keeps its user (no secret). */
function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, "$1");
}

async function machineId(): Promise<string> {
  for (const file of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
    const id = await Deno.readTextFile(file).then((t) => t.trim(), () => "");
    if (id !== "") return id;
  }
  try {
    return Deno.hostname();
  } catch {
    return "unknown-machine";
  }
}

function digest(parts: string[]): string {
  return createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 32);
}

/**
 * This state directory's owner id, made on first use.
 *
 * @param stateDir sandboxer's state directory.
 * @returns 32 hex digits.
 */
export async function seedOwner(stateDir: string): Promise<string> {
  const file = join(stateDir, "seeds", "owner");
  const read = async () => (await Deno.readTextFile(file)).trim();
  try {
    const owner = await read();
    if (/^[0-9a-f]{32}$/.test(owner)) return owner;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(join(stateDir, "seeds"), { recursive: true, mode: 0o700 });
  await writeAtomically(file, `${newNonce()}\n`, false);
  return await read();
}

/**
 * Where the seed of the repository at `from` lives on the handle's host. The
 * name covers what decides the tree too — the seed mode and the file
 * selection (`sync.exclude`, `sync.gitignore`, `sync.include_git`) — so a
 * profile that leaves files out never starts from a seed that holds them.
 *
 * @param host The handle and the state directory.
 * @param from The local directory being synced.
 * @param options The sync's selection, the seed mode and the abort signal.
 * @returns The place.
 */
export async function seedPlace(
  host: Pick<SeedHost, "handle" | "stateDir">,
  from: string,
  options: Pick<SyncOptions, "exclude" | "gitignore" | "includeGit" | "signal"> & {
    mode: SeedPolicy["mode"];
  },
): Promise<SeedPlace> {
  const selection = JSON.stringify([
    options.mode,
    options.gitignore ?? true,
    options.includeGit ?? false,
    [...(options.exclude ?? [])],
  ]);
  return {
    root: host.handle.workspace.slice(0, host.handle.workspace.lastIndexOf("/")),
    user: seedUser(host.handle),
    hash: digest([await repoIdentity(from, options.signal), selection]),
    owner: await seedOwner(host.stateDir),
  };
}

/**
 * The directory name of the handle's remote user under `.sbx-seeds/`: the
 * name itself, or a hash of one that is not a plain file name.
 *
 * @param handle The handle.
 * @returns The name.
 */
export function seedUser(handle: SshWorkspaceHandle): string {
  const [user] = splitUserHost(handleTarget(handle));
  return USER_NAME.test(user) ? user : `u-${digest([user]).slice(0, 16)}`;
}

/**
 * Copy the seed into the fresh workspace, if there is one of ours.
 *
 * @param host The connection and logger.
 * @param ref The checked workspace.
 * @param place The seed's place.
 * @param signal Abort signal.
 * @returns Whether the workspace now holds the seed's files.
 */
export async function copySeed(
  host: SeedHost,
  ref: WorkspaceRef,
  place: SeedPlace,
  signal?: AbortSignal,
): Promise<boolean> {
  const result = await host.connection.run(seedScript(SEED_INTO, ref, place), { signal });
  if (result.code === 0) {
    host.logger.info(`started ${ref.workspace} from the seed ${seedPath(place)}`);
    return true;
  }
  if (result.code !== SEED_EXIT.none) {
    host.logger[seedLevel(result.code)](
      `did not use the seed ${seedPath(place)}: ${firstLine(result)}`,
    );
  }
  return false;
}

/**
 * How loudly to say a seed script failed: its own refusals warn; the workspace's check failing
 * (removed meanwhile) is the sync's or the destroy's to report, in its one line.
 */
function seedLevel(code: number): "warn" | "debug" {
  return (Object.values(SEED_EXIT) as number[]).includes(code) ? "warn" : "debug";
}

/**
 * Make the workspace's tree the repository's seed (atomically replacing the
 * last one of ours), prune the user's seeds, and remember the host for `gc`.
 *
 * @param host The connection, logger and state directory.
 * @param ref The checked workspace.
 * @param place The seed's place.
 * @param policy Size and age bounds.
 * @param seeded Whether the workspace started from the seed: a repository seen again, for which
 *   the host then makes a spare copy of the new seed in the background, so that the next create
 *   moves it in whole instead of copying it.
 */
export async function saveSeed(
  host: SeedHost,
  ref: WorkspaceRef,
  place: SeedPlace,
  policy: SeedPolicy,
  seeded = false,
): Promise<void> {
  const result = await host.connection.run(
    seedScript(
      SEED_UPDATE,
      ref,
      place,
      newNonce(),
      policy.ttlSeconds,
      policy.maxMb * 1024,
      seeded ? 1 : 0,
    ),
  );
  logReaped(host.logger, place, result.stdout);
  if (result.code !== 0) {
    host.logger[seedLevel(result.code)](
      `kept no seed of ${ref.workspace}: ${firstLine(result)}`,
    );
    return;
  }
  host.logger.debug(`saved ${ref.workspace} as the seed ${seedPath(place)}`);
  await rememberHost(host.stateDir, "seeds", host.handle, place, { policy });
}

/**
 * Remember that a host, workspace root and user hold entries of a store of
 * ours (`<stateDir>/<store>/hosts/<key>.json`: the connection fields of the
 * handle), so the plain `gc` can visit it.
 *
 * @param stateDir sandboxer's state directory.
 * @param store `seeds` or `snapshots`.
 * @param handle A handle on that host.
 * @param place Root and user.
 * @param extra More fields to keep (the seeds' bounds).
 */
export async function rememberHost(
  stateDir: string,
  store: "seeds" | "snapshots",
  handle: SshWorkspaceHandle,
  place: Pick<SeedPlace, "root" | "user">,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const key = digest([handleTarget(handle), String(handle.ssh_port), place.root, place.user]);
  await Deno.mkdir(join(stateDir, store, "hosts"), { recursive: true, mode: 0o700 });
  const { workspace: _, nonce: _n, ...connectionFields } = handle;
  await writeAtomically(
    join(stateDir, store, "hosts", `${key}.json`),
    JSON.stringify({ handle: connectionFields, root: place.root, user: place.user, ...extra }),
  );
}

/**
 * Reap the expired seeds of `user` under `root` and, with a budget, the
 * least recently updated ones over it.
 *
 * @param connection The host.
 * @param place Root and user.
 * @param budgetKb The budget in KiB; 0 reaps by age only.
 * @param logger Where to log.
 * @returns One line per seed reaped; undefined when the user has no seeds there.
 */
export async function pruneSeeds(
  connection: SshConnection,
  place: Pick<SeedPlace, "root" | "user">,
  budgetKb: number,
  logger: Logger,
): Promise<string[] | undefined> {
  const result = await connection.run(
    ["sh", "-c", SEED_PRUNE, "sh", place.root, place.user, String(budgetKb)],
  );
  if (result.stdout.trim() === "none") return undefined;
  if (result.code !== 0) {
    logger.warn(
      `did not prune the seeds under ${place.root}: ${firstLine(result)}`,
    );
  }
  return logReaped(logger, place, result.stdout);
}

/** A remembered host of seeds (`seeds/hosts/<key>.json`). */
export interface SeedHostRecord {
  /** Its file. */
  file: string;
  /** The connection fields of a handle. */
  handle: SshWorkspaceHandle;
  /** The workspace root. */
  root: string;
  /** The user's directory name. */
  user: string;
  /** The bounds last used there. */
  policy: SeedPolicy;
}

/**
 * The hosts this state directory made seeds on.
 *
 * @param stateDir sandboxer's state directory.
 * @returns Their records (unreadable files skipped).
 */
export function seedHosts(stateDir: string): Promise<SeedHostRecord[]> {
  return storeHosts<SeedHostRecord>(stateDir, "seeds");
}

/**
 * The hosts this state directory keeps entries of a store on (see {@linkcode rememberHost}).
 *
 * @param stateDir sandboxer's state directory.
 * @param store `seeds` or `snapshots`.
 * @returns Their records (unreadable files skipped).
 */
export async function storeHosts<Record extends Omit<SeedHostRecord, "policy">>(
  stateDir: string,
  store: "seeds" | "snapshots",
): Promise<Record[]> {
  const dir = join(stateDir, store, "hosts");
  const hosts: Record[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const file = join(dir, entry.name);
      try {
        const data = JSON.parse(await Deno.readTextFile(file));
        hosts.push({ file, ...data, handle: { ...data.handle, workspace: `${data.root}/sbx-gc` } });
      } catch {
        // Half-written by a crash before the rename cannot happen; anything else is not ours.
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return hosts;
}

/**
 * Remember (or, with `policy` undefined, read and forget) that sandbox `id`
 * is to leave its workspace as the seed at destroy (`sync.seed: workspace`).
 *
 * @param stateDir sandboxer's state directory.
 * @param ref The sandbox's workspace (id and nonce).
 * @param pending The place and bounds to remember, or undefined to take them.
 * @returns What was remembered, when taking.
 */
export async function pendingSeed(
  stateDir: string,
  ref: Pick<WorkspaceRef, "id" | "nonce">,
  pending?: PendingSeed,
): Promise<PendingSeed | undefined> {
  const dir = join(stateDir, "seeds", "pending");
  const file = join(dir, `${ref.id}.json`);
  if (pending) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAtomically(file, JSON.stringify({ nonce: ref.nonce, ...pending }));
    return pending;
  }
  let data: { nonce?: string } & PendingSeed;
  try {
    data = JSON.parse(await Deno.readTextFile(file));
  } catch {
    return undefined;
  }
  // Another sandbox of the same name (another nonce) left it: not this one's to act on.
  if (data.nonce !== ref.nonce) return undefined;
  await Deno.remove(file).catch(() => {});
  return { place: data.place, policy: data.policy, seeded: data.seeded === true };
}

/** A seed to save at destroy (`sync.seed: workspace`). */
export interface PendingSeed {
  /** The seed's place. */
  place: SeedPlace;
  /** Its bounds. */
  policy: SeedPolicy;
  /** Whether the workspace started from the seed (see {@linkcode saveSeed}). */
  seeded?: boolean;
}

/** `sh -c SCRIPT sh WORKSPACE ID NONCE USER HASH OWNER MORE…`, for SEED_INTO and SEED_UPDATE. */
function seedScript(
  script: string,
  ref: WorkspaceRef,
  place: SeedPlace,
  ...more: (string | number)[]
): string[] {
  return [
    ...["sh", "-c", script, "sh", ref.workspace, ref.id, ref.nonce],
    ...[place.user, place.hash, place.owner, ...more.map(String)],
  ];
}

function seedPath(place: Pick<SeedPlace, "root" | "user"> & { hash?: string }): string {
  return `${place.root}/.sbx-seeds/${place.user}${place.hash ? `/${place.hash}` : ""}`;
}

function logReaped(
  logger: Logger,
  place: Pick<SeedPlace, "root" | "user">,
  stdout: string,
): string[] {
  const lines = stdout.split("\n").filter((line) => line.startsWith("reaped "));
  const reaped = lines.map((line) => `seed ${seedPath(place)}/${line.slice(7)}`);
  for (const line of reaped) logger.info(`reaped ${line}`);
  return reaped;
}

/**
 * A store script's failure in a few words: its first line on stderr, else its exit code.
 *
 * @param result The script's exit code and stderr.
 * @returns The line.
 */
export function firstLine(result: { code: number; stderr: string }): string {
  return result.stderr.trim().split("\n")[0] || `exit code ${result.code}`;
}

async function writeAtomically(file: string, text: string, replace = true): Promise<void> {
  const temp = `${file}.${newNonce()}.tmp`;
  await Deno.writeTextFile(temp, text, { mode: 0o600 });
  try {
    if (replace) await Deno.rename(temp, file);
    else {await Deno.link(temp, file).catch((error) => {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      });}
  } finally {
    if (!replace) await Deno.remove(temp).catch(() => {});
  }
}
