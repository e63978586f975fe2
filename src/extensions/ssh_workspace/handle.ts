/**
 * The destroy handle of a workspace reached over SSH, and how to turn it
 * back into a connection target without the profile.
 *
 * @module
 */

import type { JsonObject } from "../../core/types.ts";
import { mapPermissionError, optionalEnv } from "../../core/permissions.ts";
import type { SshTarget } from "../../transport/ssh/types.ts";

/**
 * What every SSH-attached sandbox stores: enough to reconnect and tear down.
 * The login target is `ssh_target`, or `vm_target` where it is a VM
 * (`ext.vm-packer`, and compose handles recorded before compose used
 * `ssh_target`, which still read): read it with {@linkcode handleTarget}.
 */
export type SshWorkspaceHandle = JsonObject & {
  /** `user@host` as connected to (after OpenSSH config resolution), when it is not a VM. */
  ssh_target?: string;
  /** `user@host` of a VM (`ext.vm-packer`), and of compose handles of older records. */
  vm_target?: string;
  /** The SSH port. */
  ssh_port: number;
  /** `<root>/sbx-<id>` on the target. */
  workspace: string;
  /**
   * Random creation nonce (32 hex digits), also written into the workspace's
   * marker: removal and every verb require both to match. Absent in handles
   * recorded before nonces existed (and before the workspace step of create).
   */
  nonce?: string | null;
  /** SHA256 fingerprint of the host key seen at create; later connections must match it. */
  host_key_fingerprint: string | null;
  /** Private key file, or null for ssh-agent. */
  identity_file: string | null;
  /** known_hosts file the key is verified against. */
  known_hosts: string;
  /** Env var holding the key's passphrase (the name only; never the value). */
  passphrase_env: string | null;
  /** `user@host:port` of a ProxyJump host, or null. */
  jump: string | null;
  /** Connect timeout in milliseconds. */
  connect_timeout_ms: number;
  /** Keepalive interval in milliseconds. */
  keepalive_interval_ms: number;
};

/**
 * Read a key's passphrase from the environment variable the profile names.
 *
 * @param name The variable's name, or null.
 * @returns The passphrase, or undefined when no variable is named or it is unset.
 * @throws {PermissionError} when the process may not read that variable.
 */
export function passphraseFrom(name: string | null): string | undefined {
  if (!name) return undefined;
  try {
    return Deno.env.get(name);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw mapPermissionError(
        error,
        "env",
        name,
        `--allow-env=${name} (the compiled binary and task may read SANDBOXER_* variables: name it e.g. SANDBOXER_KEY_PASSPHRASE)`,
      );
    }
    throw error;
  }
}

/**
 * The connection target a handle describes, pinned to the host key
 * recorded at create (when there is one).
 *
 * @param handle The stored handle.
 * @param acceptNewHostKey Trust an unknown host key (only at create).
 * @returns The target.
 */
export function targetFromHandle(handle: SshWorkspaceHandle, acceptNewHostKey = false): SshTarget {
  const [user, host] = splitUserHost(handleTarget(handle));
  const common = {
    identityFile: handle.identity_file ?? undefined,
    passphrase: passphraseFrom(handle.passphrase_env),
    passphraseEnv: handle.passphrase_env ?? undefined,
    agent: optionalEnv("SSH_AUTH_SOCK"),
    knownHostsFile: handle.known_hosts,
    acceptNewHostKey,
    connectTimeoutMs: handle.connect_timeout_ms,
    keepaliveIntervalMs: handle.keepalive_interval_ms,
  };
  const target: SshTarget = { host, port: handle.ssh_port, user, ...common };
  // Checked before authentication; the jump host has no pin of its own.
  if (handle.host_key_fingerprint) target.pinnedHostKey = handle.host_key_fingerprint;
  if (handle.jump) {
    const match = /^(.+)@(.+):(\d+)$/.exec(handle.jump);
    if (match) target.jump = { user: match[1], host: match[2], port: Number(match[3]), ...common };
  }
  return target;
}

/**
 * The `user@host` a handle logs in to, whichever name it was recorded under.
 *
 * @param handle The stored handle.
 * @returns `user@host`.
 * @throws {TypeError} when the handle has neither `ssh_target` nor `vm_target`.
 */
export function handleTarget(handle: SshWorkspaceHandle): string {
  const target = handle.ssh_target ?? handle.vm_target;
  if (typeof target !== "string") {
    throw new TypeError(
      "Cannot read the SSH target of a handle that has neither ssh_target nor vm_target",
    );
  }
  return target;
}

/**
 * `user@host` as [user, host].
 *
 * @param userHost The string.
 * @returns The parts.
 */
export function splitUserHost(userHost: string): [string, string] {
  const at = userHost.indexOf("@");
  return [userHost.slice(0, at), userHost.slice(at + 1)];
}
