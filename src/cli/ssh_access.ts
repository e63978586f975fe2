/**
 * What plain OpenSSH needs to reach a sandbox: a `Host sbx-<id>` block and a
 * known_hosts file of sandboxer's own holding the host key pinned at create
 * (under HostKeyAlias, so the user's ~/.ssh/known_hosts is never read or
 * written). `sandboxer ssh` runs `ssh` with these; `ssh-config` prints them.
 *
 * @module
 */

import { SandboxStateError } from "../core/errors.ts";
import { defaultStateDir } from "../core/paths.ts";
import type { SandboxRecord } from "../sandbox/record.ts";
import {
  handleTarget,
  splitUserHost,
  type SshWorkspaceHandle,
} from "../extensions/ssh_workspace/handle.ts";
import { knownHostsName } from "../transport/known_hosts.ts";
import { pinnedKeyLine, sshConfigBlock, writePrivate } from "../transport/openssh_config.ts";

/** How to reach one sandbox with OpenSSH. */
export interface SshAccess {
  /** `sbx-<id>`: the Host alias and the HostKeyAlias. */
  alias: string;
  /** The `Host` block. */
  config: string;
  /** The config file holding just that block (0600). */
  configFile: string;
  /** The sandbox's workspace on the host. */
  workspace: string;
  /** Its creation nonce ("" for records made before nonces). */
  nonce: string;
}

/**
 * Write the known_hosts and config files for a sandbox, refusing one that
 * has no workspace to reach.
 *
 * @param record The sandbox's record.
 * @param stateDir sandboxer's state directory.
 * @returns Where they are and what they say.
 * @throws {SandboxStateError} when the sandbox cannot be reached with ssh.
 */
export async function sshAccess(
  record: SandboxRecord,
  stateDir: string = defaultStateDir(),
): Promise<SshAccess> {
  const refuse = (problem: string) => new SandboxStateError(record.id, problem);
  if (record.status === "destroyed" || record.status === "destroying") {
    throw refuse(`is ${record.status}; there is nothing to log in to`);
  }
  const handle = record.handle as SshWorkspaceHandle | null;
  if (
    !handle || typeof handle.workspace !== "string" || !handle.host_key_fingerprint ||
    record.workspace === null
  ) {
    throw refuse(
      `has no workspace (its create stopped before making one); destroy it with "sandboxer destroy ${record.id}"`,
    );
  }
  if (typeof handle.ssh_target !== "string" && typeof handle.vm_target !== "string") {
    throw refuse(`was made by ${record.extension}, which offers no SSH login`);
  }
  if (handle.jump) {
    throw refuse(
      `is reached through a jump host (${handle.jump}); ssh and ssh-config do not support that yet`,
    );
  }
  const [user, host] = splitUserHost(handleTarget(handle));
  const alias = `sbx-${record.id}`;
  const dir = `${stateDir}/ssh`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const knownHosts = `${dir}/${alias}.known_hosts`;
  await writePrivate(knownHosts, `${alias} ${await pinnedKey(handle, host, record.id)}\n`);
  const config = sshConfigBlock({
    alias,
    host,
    port: handle.ssh_port,
    user,
    knownHostsFile: knownHosts,
    identityFile: handle.identity_file ?? undefined,
  }, refuse);
  const configFile = `${dir}/${alias}.config`;
  await writePrivate(configFile, config);
  return { alias, config, configFile, workspace: handle.workspace, nonce: handle.nonce ?? "" };
}

/** The pinned key (`type base64`), read from the known_hosts file it was verified against. */
async function pinnedKey(handle: SshWorkspaceHandle, host: string, id: string): Promise<string> {
  const name = knownHostsName(host, handle.ssh_port);
  const key = await pinnedKeyLine(handle.known_hosts, handle.host_key_fingerprint ?? "");
  if (key !== undefined) return key;
  throw new SandboxStateError(
    id,
    `has host key ${handle.host_key_fingerprint} pinned, but ${handle.known_hosts} no longer holds it for ${name}; add it back (ssh-keyscan, compare the fingerprint) and run this again`,
  );
}
