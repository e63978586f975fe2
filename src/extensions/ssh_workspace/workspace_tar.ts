/**
 * The first sync into a workspace this process or an earlier one made and
 * nothing has been synced into yet: one tar stream over OpenSSH
 * (src/sync/tar_sync.ts), through a shared connection's master when one
 * already listens, else a direct `ssh` that accepts only the pinned host key.
 *
 * "Nothing synced yet" is a hint kept in the state directory
 * (`fresh/<id>.<nonce>`, written when the workspace is made, taken by the
 * first sync); the host decides: WORKSPACE_TAR refuses, before reading any of
 * the stream, a workspace that holds anything but its marker (an exec or a
 * seed put something there) or a host without GNU tar. Whatever goes wrong on
 * this path — no GNU tar here, a jump host, a key only ssh2 can unlock, a
 * refusal, a failed transfer — ends in the rsync sync, silently (a debug
 * line): rsync `--delete` then makes the tree exact and reports real errors
 * in its own words.
 *
 * @module
 */

import { errorText } from "../../core/errors.ts";
import { optionalEnv } from "../../core/permissions.ts";
import type { Logger, SyncReport } from "../../core/types.ts";
import { sshArgv } from "../../sync/rsync.ts";
import type { RsyncPlan } from "../../sync/rsync_types.ts";
import { pushTar } from "../../sync/tar_sync.ts";
import { pinnedKnownHostsFile } from "../../transport/known_hosts.ts";
import { pinnedKeyLine } from "../../transport/openssh_config.ts";
import { remoteCommand } from "../../transport/quote.ts";
import type { SyncOptions } from "../types.ts";
import { handleTarget, splitUserHost, type SshWorkspaceHandle } from "./handle.ts";
import type { SharedLookup } from "./mux_exec.ts";
import { TAR_STARTED, WORKSPACE_TAR } from "./remote_scripts.ts";
import type { WorkspaceRef } from "./workspace_ref.ts";

/** The state directory's folder of fresh-workspace hints. */
const FRESH_DIR = "fresh";

/** Ciphers for the bulk stream, fastest first where AES instructions exist. */
const CIPHERS = [
  "aes128-gcm@openssh.com",
  "chacha20-poly1305@openssh.com",
  "aes256-gcm@openssh.com",
  "aes128-ctr",
  "aes256-ctr",
].join(",");

function freshPath(stateDir: string, ref: WorkspaceRef): string {
  return `${stateDir}/${FRESH_DIR}/${ref.id}.${ref.nonce || "legacy"}`;
}

/**
 * Note that the workspace was just made empty (its first sync may use tar).
 * Best effort: without the note the first sync uses rsync.
 *
 * @param stateDir sandboxer's state directory.
 * @param ref The new workspace.
 */
export async function markFresh(stateDir: string, ref: WorkspaceRef): Promise<void> {
  try {
    await Deno.mkdir(`${stateDir}/${FRESH_DIR}`, { recursive: true, mode: 0o700 });
    await Deno.writeFile(freshPath(stateDir, ref), new Uint8Array(), { mode: 0o600 });
  } catch {
    // Only a hint.
  }
}

/**
 * Take the note: true for exactly one caller, once.
 *
 * @param stateDir sandboxer's state directory.
 * @param ref The workspace.
 * @returns Whether the workspace was noted as fresh.
 */
export async function takeFresh(stateDir: string, ref: WorkspaceRef): Promise<boolean> {
  try {
    await Deno.remove(freshPath(stateDir, ref));
    return true;
  } catch {
    return false;
  }
}

/**
 * Send the selection into the fresh workspace as a tar stream.
 *
 * @param handle The stored handle (its pin and key).
 * @param ref The checked workspace.
 * @param plan The source and its selection, as the rsync sync would use them.
 * @param options Progress, abort, and `sshMux` (`persistSeconds` 0: no shared connection).
 * @param setup The command's shared-connection look-up, and the logger.
 * @returns What was sent, or undefined when rsync must sync instead (nothing said).
 */
export async function tarIntoFreshWorkspace(
  handle: SshWorkspaceHandle,
  ref: WorkspaceRef,
  plan: Pick<RsyncPlan, "source" | "selection" | "gitignore" | "exclude">,
  options: Pick<SyncOptions, "onProgress" | "signal" | "sshMux">,
  setup: { shared: SharedLookup; logger: Logger },
): Promise<SyncReport | undefined> {
  const skip = (why: string) => {
    setup.logger.debug(`first sync into ${ref.workspace} by rsync, not tar: ${why}`);
    return undefined;
  };
  const fingerprint = handle.host_key_fingerprint;
  if (!fingerprint) return skip("no pinned host key");
  if (handle.jump) return skip("a jump host");
  if (handle.passphrase_env && !optionalEnv("SSH_AUTH_SOCK")) {
    return skip("the key needs a passphrase that OpenSSH cannot be given");
  }
  try {
    const command = remoteCommand([
      "sh",
      "-c",
      WORKSPACE_TAR,
      "sh",
      ref.workspace,
      ref.id,
      ref.nonce,
    ]);
    const shared = options.sshMux?.persistSeconds === 0 ? undefined : await setup.shared.live();
    let outcome;
    if (shared !== undefined) {
      setup.logger.debug(`first sync into ${ref.workspace} by tar over the shared connection`);
      outcome = await pushTar(plan, [...shared.command, command], options);
    } else {
      const key = await pinnedKeyLine(handle.known_hosts, fingerprint);
      if (key === undefined) return skip(`${handle.known_hosts} does not hold the pinned key`);
      const [keyType, keyBase64] = key.split(" ");
      const [user, host] = splitUserHost(handleTarget(handle));
      await using pinned = await pinnedKnownHostsFile({
        host,
        port: handle.ssh_port,
        keyType,
        keyBase64,
      });
      const ssh = sshArgv({
        host,
        port: handle.ssh_port,
        user,
        identityFile: handle.identity_file ?? undefined,
        knownHostsFile: pinned.path,
        connectTimeoutMs: handle.connect_timeout_ms,
        keepaliveIntervalMs: handle.keepalive_interval_ms,
      }, undefined);
      const argv: [string, ...string[]] = [
        "ssh",
        ...ssh.slice(1),
        "-T",
        "-o",
        "LogLevel=ERROR",
        "-c",
        CIPHERS,
        "-l",
        user,
        "--",
        host,
        command,
      ];
      outcome = await pushTar(plan, argv, options);
    }
    if (outcome === undefined) return skip("no GNU tar on this machine");
    if (!outcome.listed) {
      return skip("the selection holds devices, sockets or FIFOs, or rsync could not list it");
    }
    if (!outcome.remoteStdout.startsWith(`${TAR_STARTED}\n`)) {
      return skip(
        `the host did not start tar (exit ${outcome.remoteCode}: ${outcome.remoteStderr.trim()})`,
      );
    }
    if (outcome.localCode !== 0 || outcome.remoteCode !== 0) {
      return skip(
        `tar failed (here: exit ${outcome.localCode} ${outcome.localStderr.trim()}; there: exit ${outcome.remoteCode} ${outcome.remoteStderr.trim()})`,
      );
    }
    return { method: "tar", files: outcome.files, deleted: 0, bytes: outcome.bytes };
  } catch (error) {
    options.signal?.throwIfAborted();
    return skip(errorText(error));
  }
}
