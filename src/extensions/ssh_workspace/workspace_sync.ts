/**
 * Sending files into (and copying them out of) a checked workspace: rsync
 * started through the workspace wrapper, or the SFTP fallback through a lock
 * holder.
 *
 * @module
 */

import { HostKeyError, SshError, WorkspaceError, WorkspaceGoneError } from "../../core/errors.ts";
import type { Logger, SyncReport } from "../../core/types.ts";
import type { RsyncPlan } from "../../sync/rsync_types.ts";
import { runRsync } from "../../sync/rsync_run.ts";
import { runRsyncOverConnection } from "../../sync/rsync_relay.ts";
import { sftpSync, type SftpSyncPlan } from "../../sync/sftp_sync.ts";
import { pinnedKnownHostsFile } from "../../transport/known_hosts.ts";
import { remoteCommand } from "../../transport/quote.ts";
import type { SshConnection } from "../../transport/ssh/connection.ts";
import type { SyncOptions } from "../types.ts";
import { ExecGate } from "./exec_gate.ts";
import type { SshWorkspaceHandle } from "./handle.ts";
import type { SharedClient } from "./mux_exec.ts";
import {
  SCRIPT_EXIT,
  WORKSPACE_EXEC,
  WORKSPACE_HOLD,
  WORKSPACE_RSYNC,
  WORKSPACE_RSYNC_FROM,
} from "./remote_scripts.ts";
import {
  refusalFromStderr,
  repinError,
  type WorkspaceRef,
  workspaceRefusal,
} from "./workspace_ref.ts";

/** What the sync functions need of the extension: its logger and the sandbox's connection. */
export interface WorkspaceHost {
  /** The sandbox's handle. */
  handle: SshWorkspaceHandle;
  /** Where to log. */
  logger: Logger;
  /** The pooled connection to the sandbox's host (the pin checked). */
  connect(): Promise<SshConnection>;
}

/**
 * The SFTP fallback, which cannot run a shell per file: a lock holder
 * (WORKSPACE_HOLD) checks and locks the workspace and keeps it as its
 * working directory; on Linux every SFTP path then goes through
 * `/proc/<holder>/cwd/`, the checked directory itself, so a path swapped
 * for a symlink meanwhile is never written through. Ending the holder
 * (destroy does) ends the sync.
 *
 * @param connection The connection to the host.
 * @param ref The checked workspace.
 * @param plan What to send.
 * @param options Progress and abort signal.
 * @param logger Where to log.
 * @returns What was transferred.
 */
export async function sftpSyncInWorkspace(
  connection: SshConnection,
  ref: WorkspaceRef,
  plan: SftpSyncPlan,
  options: SyncOptions,
  logger: Logger,
): Promise<SyncReport> {
  const holder = await connection.openRawExec(
    remoteCommand(["sh", "-c", WORKSPACE_HOLD, "sh", ref.workspace, ref.id, ref.nonce]),
    { signal: options.signal },
  );
  const stderr = new Response(holder.stderr).text().catch(() => "");
  const reader = holder.stdout.getReader();
  let ready = "";
  while (!ready.includes("\n") && ready.length < 100) {
    const next = await reader.read().catch(() => undefined);
    if (!next || next.done) break;
    ready += new TextDecoder().decode(next.value);
  }
  reader.releaseLock();
  await holder.stdout.cancel().catch(() => {});
  const pid = /^ready (\d+)\n/.exec(ready)?.[1];
  const stdin = holder.stdin.getWriter();
  const release = async () => {
    await stdin.close().catch(() => {});
    return await holder.exit.catch(() => -1);
  };
  if (pid === undefined) {
    const code = await release();
    throw refusalFromStderr(ref, await stderr, "sync into") ??
      workspaceRefusal(ref, code, (await stderr).trim(), "sync into");
  }
  const gone = new AbortController();
  let finished = false;
  holder.exit.then(() => finished || gone.abort(), () => finished || gone.abort());
  const signal = options.signal ? AbortSignal.any([options.signal, gone.signal]) : gone.signal;
  try {
    const base = `/proc/${pid}/cwd`;
    const session = await connection.sftp();
    const viaProc = await session.stat(base).then((s) => s?.isDirectory === true, () => false)
      .finally(() => session.close());
    if (!viaProc) {
      logger.debug(`no /proc on ${ref.where}: SFTP writes go to ${ref.workspace} by path`);
    }
    return await sftpSync(
      connection,
      { ...plan, workspace: viaProc ? base : ref.workspace },
      { onProgress: options.onProgress, signal, logger: logger },
    );
  } catch (error) {
    if (gone.signal.aborted && !options.signal?.aborted) {
      throw new WorkspaceGoneError(
        ref.workspace,
        `was removed on ${ref.where} during the sync (sandboxer's lock holder there was ended); nothing was recreated — create a new sandbox`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    finished = true;
    await release();
  }
}

/**
 * rsync over `connection` (the relay), or over rsync's own `ssh` with a
 * known_hosts file that holds only the key `connection` verified (the pin);
 * either way the remote rsync starts through WORKSPACE_RSYNC, in the
 * checked workspace, with paths relative to it.
 *
 * @param host How to reach the sandbox again, its handle and the logger.
 * @param ref The checked workspace.
 * @param plan What to sync.
 * @param connection The pooled connection (it verified the pin).
 * @param relay Whether to relay over `connection`.
 * @param options Progress and abort signal.
 * @param verb What sandboxer does, for errors ("sync into").
 * @returns What was transferred.
 */
export async function rsyncInWorkspace(
  host: WorkspaceHost,
  ref: WorkspaceRef,
  plan: RsyncPlan,
  connection: SshConnection,
  relay: boolean,
  options: Pick<SyncOptions, "onProgress" | "signal">,
  verb: string,
): Promise<SyncReport> {
  const transport = relay ? { relay: connection } : { pinnedBy: connection };
  return await guardedRsync(host, ref, plan, transport, options, verb);
}

/**
 * rsync over a shared connection that is up ({@linkcode SharedClient}: a
 * mux client as rsync's `-e`, no handshake), through the same workspace
 * check as {@linkcode rsyncInWorkspace}. The master accepts the pinned key
 * alone, so the pin holds without the pooled connection.
 *
 * @param host How to reach the sandbox again, its handle and the logger.
 * @param ref The checked workspace.
 * @param plan What to sync (`target.host` is replaced by the master's alias).
 * @param shared The mux client.
 * @param options Progress and abort signal.
 * @returns What was transferred, or undefined when the shared connection
 *   failed (ssh's failure, or no rsync on the host): the caller then syncs
 *   over its own connection, which names the problem.
 * @throws {WorkspaceError} When the workspace is not this sandbox's.
 * @throws {WorkspaceGoneError} When it was removed during the sync (a destroy).
 */
export async function rsyncOverShared(
  host: WorkspaceHost,
  ref: WorkspaceRef,
  plan: RsyncPlan,
  shared: SharedClient,
  options: Pick<SyncOptions, "onProgress" | "signal">,
): Promise<SyncReport | undefined> {
  try {
    return await guardedRsync(host, ref, plan, { shared }, options, "sync into");
  } catch (error) {
    if (!(error instanceof SshError)) throw error;
    host.logger.debug(`rsync over the shared connection failed (${error.message}); connecting`);
    return undefined;
  }
}

/** How rsync reaches the host: relayed over the pooled connection, its own `ssh` pinned to the key that connection verified, or a mux client of a shared connection. */
type RsyncTransport =
  | { relay: SshConnection }
  | { pinnedBy: SshConnection }
  | { shared: SharedClient };

/**
 * rsync through the workspace check over `transport`, its failures told as
 * the workspace's: the check's refusal, a pin that no longer holds, or a
 * workspace a destroy removed meanwhile (which rsync only sees as its
 * server end going away); any other failure as rsync reported it.
 */
async function guardedRsync(
  host: WorkspaceHost,
  ref: WorkspaceRef,
  plan: RsyncPlan,
  transport: RsyncTransport,
  options: Pick<SyncOptions, "onProgress" | "signal">,
  verb: string,
): Promise<SyncReport> {
  const guarded = guardedPlan(ref, plan);
  const runOptions = {
    onProgress: options.onProgress,
    signal: options.signal,
    logger: host.logger,
    explainFailure: (stderr: string) => refusalFromStderr(ref, stderr, verb),
  };
  try {
    if ("relay" in transport) {
      return await runRsyncOverConnection(guarded, transport.relay, runOptions);
    }
    if ("shared" in transport) {
      const { alias, rsh } = transport.shared;
      return await runRsync(
        { ...guarded, target: { ...plan.target, host: alias }, rsh },
        runOptions,
      );
    }
    const connection = transport.pinnedBy;
    await using pinned = await pinnedKnownHostsFile({
      host: plan.target.host,
      port: plan.target.port,
      keyType: connection.hostKey.type,
      keyBase64: connection.hostKey.base64,
    });
    const target = {
      ...plan.target,
      knownHostsFile: pinned.path,
      pinnedHostKey: connection.hostKeyFingerprint,
    };
    return await runRsync({ ...guarded, target }, runOptions);
  } catch (error) {
    if (error instanceof HostKeyError && error.reason === "pinned") {
      throw repinError(error, host.handle);
    }
    if (
      error instanceof WorkspaceError || error instanceof WorkspaceGoneError ||
      options.signal?.aborted
    ) {
      throw error;
    }
    throw await goneDuring(host, ref, verb, error) ?? error;
  }
}

/**
 * The plan with its remote rsync started through the workspace check: WORKSPACE_RSYNC for a
 * push; for a pull of `./DIR/NAME`, WORKSPACE_RSYNC_FROM in DIR as the host resolves it, reading
 * `./NAME` there, so nothing outside the workspace is read through a symlink.
 */
function guardedPlan(ref: WorkspaceRef, plan: RsyncPlan): RsyncPlan {
  const check = ["sh", "-c", WORKSPACE_RSYNC, "sh", ref.workspace, ref.id, ref.nonce];
  if (plan.direction !== "pull") return { ...plan, rsyncPath: [...check, "rsync"] };
  const slash = plan.remoteDir.lastIndexOf("/");
  const dir = slash > 0 ? plan.remoteDir.slice(0, slash) : ".";
  const name = plan.remoteDir.slice(slash + 1);
  check[2] = WORKSPACE_RSYNC_FROM;
  return { ...plan, remoteDir: `./${name}`, rsyncPath: [...check, dir, name, "rsync"] };
}

/** The error to report when the workspace was removed while rsync ran in it, if it was. */
async function goneDuring(
  host: WorkspaceHost,
  ref: WorkspaceRef,
  verb: string,
  cause: unknown,
): Promise<Error | undefined> {
  try {
    const connection = await host.connect();
    const gate = new ExecGate(undefined);
    const result = await connection.exec(
      ["sh", "-c", WORKSPACE_EXEC, "sh", ref.workspace, ref.id, ref.nonce, "true"],
      { stdout: gate.write },
    );
    if (gate.started) return undefined;
    if (result.code !== SCRIPT_EXIT.missing && result.code !== SCRIPT_EXIT.otherNonce) {
      return undefined;
    }
    return new WorkspaceGoneError(
      ref.workspace,
      `was removed on ${ref.where} during an attempt to ${verb} it (${gate.reason}); nothing was recreated — create a new sandbox`,
      { cause },
    );
  } catch {
    return undefined;
  }
}
