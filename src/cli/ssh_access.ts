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
import { fingerprintSha256, knownHostsName, readKnownHosts } from "../transport/known_hosts.ts";

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
  // The pin is what every connection checks; any line holding that exact key will do.
  for (const entry of await readKnownHosts(handle.known_hosts)) {
    if (entry.marker) continue;
    if (fingerprintSha256(entry.keyBlob) === handle.host_key_fingerprint) {
      return `${entry.keyType} ${entry.keyBase64}`;
    }
  }
  throw new SandboxStateError(
    id,
    `has host key ${handle.host_key_fingerprint} pinned, but ${handle.known_hosts} no longer holds it for ${name}; add it back (ssh-keyscan, compare the fingerprint) and run this again`,
  );
}

async function writePrivate(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  await Deno.chmod(path, 0o600);
}

/** The values of one `Host` block. */
export interface SshConfigValues {
  alias: string;
  host: string;
  port: number;
  user: string;
  knownHostsFile: string;
  identityFile?: string;
}

/**
 * An OpenSSH `Host` block that trusts only `knownHostsFile`. Every value is
 * double-quoted (a state directory may hold spaces) with `%` doubled where
 * OpenSSH expands `%` tokens, so a path or host is read back exactly; a value
 * no config file can hold (a quote, a backslash, a control character) is
 * refused instead of written.
 *
 * @param values The block's values.
 * @param refuse Builds the error for a value that cannot be written.
 * @returns The block, ending in a newline.
 */
export function sshConfigBlock(
  values: SshConfigValues,
  refuse: (problem: string) => Error,
): string {
  const arg = (field: string, value: string, tokens: boolean) => {
    const unsafe = [...value].some((c) => c < " " || c === "\x7f" || c === '"' || c === "\\");
    if (unsafe) {
      throw refuse(
        `has a ${field} an OpenSSH config file cannot hold (${
          JSON.stringify(value)
        }); use a path or name without quotes, backslashes or control characters`,
      );
    }
    return `"${tokens ? value.replaceAll("%", "%%") : value}"`;
  };
  const lines = [
    `Host ${values.alias}`,
    `  HostName ${arg("host", values.host, true)}`,
    `  Port ${values.port}`,
    `  User ${arg("user", values.user, false)}`,
    `  HostKeyAlias ${values.alias}`,
    `  UserKnownHostsFile ${arg("known_hosts path", values.knownHostsFile, true)}`,
    "  GlobalKnownHostsFile none",
    "  StrictHostKeyChecking yes",
    ...(values.identityFile
      ? [
        `  IdentityFile ${arg("identity file", values.identityFile, true)}`,
        "  IdentitiesOnly yes",
      ]
      : []),
  ];
  return lines.join("\n") + "\n";
}
