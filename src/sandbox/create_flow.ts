/**
 * How a sandbox is created: record first, then let the extension make it,
 * sync the repo, run the setup commands; a half-made sandbox is rolled back.
 *
 * @module
 */

import type { Profile, SyncSettings } from "../config/types.ts";
import type { SandboxExtension } from "../extensions/base.ts";
import type { SyncReport } from "../core/types.ts";
import type { SandboxHandle, SeedPolicy, SyncOptions } from "../extensions/types.ts";
import { ExtensionError, OwnershipLostError, SetupFailedError } from "../core/errors.ts";
import type { SandboxRecord } from "./record.ts";
import { randomId, validateId } from "../core/ids.ts";
import { lostProblem } from "./destroy_flow.ts";
import { assertDirectory, type ManagerParts, oneLine, withEnv, withRepo } from "./manager_parts.ts";
import type { Transcript } from "./transcript.ts";
import type { CreateOptions } from "./manager_options.ts";
import { checkFromSnapshot } from "./snapshot_flow.ts";

/**
 * Create a sandbox: validate, record, let the extension make it, sync the
 * repo if given, run the profile's setup commands.
 *
 * @param parts The manager's parts.
 * @param resolved The profile, validated, and the extension's config.
 * @param options Name, repo, TTL, callbacks.
 * @returns The `ready` record.
 * @throws {ConfigError} for a bad profile (nothing is recorded or made).
 * @throws {SandboxerError} for any failure. When nothing was made, or what
 * was made is rolled back, the record is removed and the name is free again;
 * when the rollback itself fails the record stays `failed` with its handle,
 * for `destroy` or `gc` to finish.
 * @throws {SetupFailedError} when a setup command fails (the record stays `failed` with its handle).
 */
export async function createSandbox(
  parts: ManagerParts,
  resolved: { profile: Profile; config: unknown },
  options: CreateOptions,
): Promise<SandboxRecord> {
  const { profile, config } = resolved;
  const id = options.name !== undefined ? validateId(options.name) : randomId();
  const repo = options.repo ?? undefined;
  if (repo !== undefined) await assertDirectory(repo, "--repo");
  const grants = parts.grantsFor(profile, config);
  const extension = parts.extension(profile.extension, withRepo(grants, repo));
  if (options.fromSnapshot !== undefined) {
    await checkFromSnapshot(parts, extension, config, options.fromSnapshot, options.signal);
  }
  const ttl = options.ttlSeconds ?? profile.ttlSeconds;
  const now = new Date();
  const expiresAt = ttl === undefined ? null : new Date(now.getTime() + ttl * 1000).toISOString();
  // The heartbeat first: from the moment the record exists, its owner is visibly alive.
  await using _heartbeat = await parts.journal.heartbeat(id);
  const recorded = await parts.journal.insert({
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
    owner: parts.journal.owner,
    sync: profile.sync,
    env: profile.env,
    permissions: grants === "none" ? null : grants,
    ...(options.ephemeral ? { ephemeral: true } : {}),
    ...(options.labels && Object.keys(options.labels).length ? { labels: options.labels } : {}),
    ...(profile.snapshotTtlSeconds ? { snapshot_ttl_seconds: profile.snapshotTtlSeconds } : {}),
  });
  options.onRecorded?.(recorded);
  parts.logger.debug(`recorded sandbox ${id} in ${parts.journal.dir}`);
  const log = parts.transcript(id);
  await log.note(`create: ${profile.id} (${profile.extension}${repo ? `, repo ${repo}` : ""})`);
  // Every write below checks that this process still owns a `creating` record: a create that
  // was stopped past the heartbeat limit and finished by gc must not write `ready` over it.
  const creating = { expect: ["creating"] } as const;
  let handle: SandboxHandle | null = null;
  const handleFields = (next: SandboxHandle) => ({
    handle: next,
    workspace: extension.workspaceOf(next) ?? null,
  });
  let created = false;
  let started = performance.now();
  const phaseDone = (phase: string) => {
    const ms = performance.now() - started;
    options.onPhase?.(phase, ms);
    void log.note(`${phase}: done in ${Math.round(ms)} ms`);
    started = performance.now();
  };
  try {
    options.signal?.throwIfAborted();
    handle = await extension.create({
      id,
      config,
      profileId: profile.id,
      stateDir: parts.journal.dir,
      expiresAt: expiresAt ?? undefined,
      ...(options.fromSnapshot !== undefined ? { fromSnapshot: options.fromSnapshot } : {}),
      signal: options.signal,
      waitSeconds: options.waitSeconds,
      onWaiting: options.onWaiting,
      ...(options.sshMux ? { sshMux: options.sshMux } : {}),
      recordHandle: async (next) => {
        await parts.journal.update(id, handleFields(next), creating);
        handle = next;
      },
      step: async (step) => {
        await parts.journal.update(id, { step }, creating);
      },
    });
    await parts.journal.update(id, handleFields(handle), creating);
    if (options.fromSnapshot !== undefined) {
      // Part of making it: a snapshot that fails now rolls the create back, leaving nothing.
      await parts.journal.update(id, { step: "snapshot" }, creating);
      await extension.restoreSnapshot!(handle, options.fromSnapshot, {
        id,
        stateDir: parts.journal.dir,
        signal: options.signal,
      });
      await log.note(`create: started from the snapshot ${options.fromSnapshot}`);
    }
    created = true;
    phaseDone("create");
    if (repo !== undefined) {
      await parts.journal.update(id, { step: "sync" }, creating);
      // A workspace started from a snapshot takes no seed: its copy would overwrite the snapshot's.
      const seed = options.fromSnapshot === undefined ? seedPolicy(profile.sync) : undefined;
      await syncInto(parts, extension, id, handle, repo, profile.sync, { ...options, seed }, log);
      phaseDone("sync");
    }
    if (profile.setup.length) {
      await runSetup(parts, extension, id, handle, profile, options, log);
      phaseDone("setup");
    }
    await log.note("ready");
    await log.flush();
    return await parts.journal.update(id, { status: "ready", step: null }, creating);
  } catch (error) {
    await log.note(`create failed: ${oneLine(error)}`);
    await log.flush();
    // Taken over while this process was stopped or slow: the new owner finishes the sandbox.
    if (error instanceof OwnershipLostError) throw error;
    try {
      await parts.journal.update(id, {
        status: "failed",
        error: oneLine(error),
        ...(handle ? handleFields(handle) : {}),
      }, creating);
    } catch (lost) {
      if (lost instanceof OwnershipLostError) {
        throw new OwnershipLostError(id, lostProblem(lost), { cause: error });
      }
      throw lost;
    }
    // Nothing made: no record is left, so the name is free and `list` shows only sandboxes
    // that exist. A half-made sandbox is rolled back at once and its record removed too (the
    // name free again); one that failed later (sync, setup) is kept `failed` for inspection
    // (`ssh`, `logs`) until `destroy` or `gc`.
    if (handle === null) await forget(parts, id);
    else if (!created) await rollBack(parts, extension, id, handle);
    throw error;
  }
}

/** Drop the record of a create that left nothing behind; a failure here only warns. */
async function forget(parts: ManagerParts, id: string): Promise<void> {
  try {
    await parts.journal.forgetOwn(id, { expect: ["failed"] });
  } catch (error) {
    if (error instanceof OwnershipLostError) return;
    parts.logger.warn(`could not remove the record of ${id}: ${oneLine(error)}`);
  }
}

async function rollBack(
  parts: ManagerParts,
  extension: SandboxExtension<unknown>,
  id: string,
  handle: SandboxHandle,
): Promise<void> {
  try {
    // Still ours? A `destroy` may have taken the failed record over; then it removes it.
    await parts.journal.update(id, { status: "destroying" }, { expect: ["failed"] });
    try {
      await extension.destroy(handle, { id });
    } catch (error) {
      await parts.journal.update(id, { status: "failed" }, { expect: ["destroying"] });
      throw error;
    }
    // Nothing is left of it: neither is its record, so the name is free again.
    await parts.journal.forgetOwn(id, { expect: ["destroying"] }).catch(async (error) => {
      if (error instanceof OwnershipLostError) throw error;
      // The record could not be removed: `destroyed` frees the name just as well.
      await parts.journal.update(id, { status: "destroyed" }, { expect: ["destroying"] });
    });
    parts.logger.info(`rolled back the half-made sandbox ${id}: nothing is left, the name is free`);
  } catch (error) {
    if (error instanceof OwnershipLostError) return;
    parts.logger.warn(
      `could not roll back the half-made sandbox ${id} (${
        oneLine(error)
      }); run "sandboxer destroy ${id}" once the target is reachable`,
    );
  }
}

/**
 * Sync a directory into a sandbox's workspace and log what was sent.
 *
 * @param parts The manager's parts.
 * @param extension The sandbox's extension.
 * @param id The sandbox id.
 * @param handle Its handle.
 * @param repo The local directory.
 * @param settings The profile's sync settings.
 * @param options Progress and abort signal.
 * @param log The sandbox's transcript, told what was sent.
 * @returns What was transferred.
 */
export async function syncInto(
  parts: ManagerParts,
  extension: SandboxExtension<unknown>,
  id: string,
  handle: SandboxHandle,
  repo: string,
  settings: SyncSettings,
  options: Pick<SyncOptions, "onProgress" | "signal" | "seed" | "sshMux">,
  log: Transcript,
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
    includeGit: settings.includeGit ?? false,
    onProgress: options.onProgress,
    signal: options.signal,
    ...(options.seed ? { seed: options.seed } : {}),
    ...(options.sshMux ? { sshMux: options.sshMux } : {}),
  });
  parts.logger.info(
    `synced ${repo} → ${
      extension.workspaceOf(handle) ?? id
    } by ${report.method}: ${report.files} files sent, ${report.deleted} deleted (${
      Math.round(performance.now() - started)
    } ms)`,
  );
  if (report.notice !== undefined) parts.logger.info(`sync: ${report.notice}`);
  await log.note(
    `sync: ${repo} by ${report.method}: ${report.files} files sent, ${report.deleted} deleted, ${report.bytes} bytes`,
  );
  return report;
}

/** A profile's warm-workspace settings (defaults for records made before they existed). */
function seedPolicy(settings: SyncSettings): SeedPolicy {
  return {
    mode: settings.seed ?? "source",
    maxMb: settings.seedMaxMb ?? 4096,
    ttlSeconds: settings.seedTtlSeconds ?? 7 * 86400,
  };
}

async function runSetup(
  parts: ManagerParts,
  extension: SandboxExtension<unknown>,
  id: string,
  handle: SandboxHandle,
  profile: Profile,
  options: CreateOptions,
  log: Transcript,
): Promise<void> {
  const commands = profile.setup;
  await parts.journal.update(id, { step: "setup" });
  for (const command of commands) {
    options.signal?.throwIfAborted();
    parts.logger.info(`setup: ${command}`);
    await log.note(`setup: ${command}`);
    let tail = "";
    const decoder = new TextDecoder();
    const keepTail = (chunk: Uint8Array) => {
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-2000);
    };
    const io = options.setupIO;
    const code = await extension.exec(handle, withEnv(profile.env, ["sh", "-c", command]), {
      stdout: (chunk) => {
        log.output("setup", chunk);
        if (io?.stdout) io.stdout(chunk);
        else parts.logger.info(decoder.decode(chunk).trimEnd());
      },
      stderr: (chunk) => {
        log.output("setup", chunk);
        keepTail(chunk);
        if (io?.stderr) io.stderr(chunk);
        else parts.logger.info(new TextDecoder().decode(chunk).trimEnd());
      },
      // Over its own connection, not a shared one: a create killed mid-setup must take its
      // command's session with it (a master would keep it up).
      signal: options.signal,
    });
    await log.flush();
    await log.note(`setup: exit code ${code}`);
    if (code !== 0) {
      const lastLine = tail.trim().split("\n").at(-1) ?? "";
      throw new SetupFailedError(command, code, lastLine);
    }
  }
}
