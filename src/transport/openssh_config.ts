/**
 * The files plain OpenSSH needs to reach a host the way sandboxer does: a
 * `Host` block that trusts only a known_hosts file of sandboxer's own (under
 * HostKeyAlias, so the user's ~/.ssh/known_hosts is never read or written),
 * and that file holding exactly the pinned key. `sandboxer ssh`/`ssh-config`
 * and the shared connections of `exec` (ssh_mux.ts) write them.
 *
 * @module
 */

import { fingerprintSha256, readKnownHosts } from "./known_hosts.ts";

/** The values of one `Host` block. */
export interface SshConfigValues {
  /** The `Host` name, also the HostKeyAlias. */
  alias: string;
  /** Where to connect. */
  host: string;
  /** The port. */
  port: number;
  /** The login user. */
  user: string;
  /** The only known_hosts file to trust. */
  knownHostsFile: string;
  /** The private key, if any (else ssh-agent). */
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

/**
 * The key with this fingerprint (`type base64`) from a known_hosts file, any
 * line holding it: the pin is what every connection checks.
 *
 * @param knownHosts The known_hosts file the key was verified against.
 * @param fingerprint `SHA256:…`.
 * @returns The key, or undefined when the file no longer holds it.
 */
export async function pinnedKeyLine(
  knownHosts: string,
  fingerprint: string,
): Promise<string | undefined> {
  for (const entry of await readKnownHosts(knownHosts)) {
    if (entry.marker) continue;
    if (fingerprintSha256(entry.keyBlob) === fingerprint) {
      return `${entry.keyType} ${entry.keyBase64}`;
    }
  }
  return undefined;
}

/**
 * Write a file only its owner may read (0600, also when it existed with another mode).
 *
 * @param path The file.
 * @param text Its content.
 */
export async function writePrivate(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  await Deno.chmod(path, 0o600);
}
