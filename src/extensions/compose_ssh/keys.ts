/**
 * Per-sandbox SSH key material for `ext.compose-ssh`. sandboxer starts the
 * SSH server itself, so it can know the host key in advance instead of
 * trusting the first one it sees: it generates one with `ssh-keygen`, hands
 * it to the service, and pins it in a known_hosts file of its own.
 *
 * @module
 */

import { ID_PATTERN } from "../../core/ids.ts";
import { Buffer } from "node:buffer";
import { ComposeError } from "../../core/errors.ts";
import { run } from "../../process/run.ts";
import { appendKnownHost, fingerprintSha256 } from "../../transport/known_hosts.ts";

/** File names inside a sandbox's key directory. */
export const KEY_FILES = {
  /** Private host key handed to the service. */
  hostKey: "ssh_host_ed25519_key",
  /** Private user key, when the profile gives no identity. */
  userKey: "id_ed25519",
  /** known_hosts pinning the host key for `[host]:port`. */
  knownHosts: "known_hosts",
  /** `compose.inline` written out as a file. */
  inlineCompose: "compose.yaml",
} as const;

/** An OpenSSH public key, split. */
export interface PublicKey {
  /** Key type, such as `ssh-ed25519`. */
  type: string;
  /** The key blob in base64. */
  base64: string;
  /** The whole `type base64 [comment]` line. */
  line: string;
}

/**
 * Parse one OpenSSH public key line.
 *
 * @param text `type base64 [comment]`, surrounding space allowed.
 * @returns The parts.
 * @throws {TypeError} when it is not a public key line.
 *
 * @example
 * ```ts
 * import { parsePublicKey } from "./keys.ts";
 * console.log(parsePublicKey("ssh-ed25519 AAAAC3Nz me@host\n").type); // ssh-ed25519
 * ```
 */
export function parsePublicKey(text: string): PublicKey {
  const line = text.trim();
  const [type, base64] = line.split(/\s+/);
  if (!type || !base64 || !/^[a-z0-9@.-]+$/.test(type) || !/^[A-Za-z0-9+/]+=*$/.test(base64)) {
    throw new TypeError('Cannot parse public key: expected a line such as "ssh-ed25519 AAAA…"');
  }
  return { type, base64, line };
}

/**
 * The SHA256 fingerprint of a public key, as `ssh-keygen -l` prints it.
 *
 * @param key The public key.
 * @returns `SHA256:…`.
 */
export function publicKeyFingerprint(key: PublicKey): string {
  return fingerprintSha256(new Uint8Array(Buffer.from(key.base64, "base64")));
}

/**
 * Generate an ed25519 key pair without a passphrase with `ssh-keygen`
 * (`file` and `file.pub`, the private half mode 0600).
 *
 * @param file Path of the private key; must not exist.
 * @param comment Comment of the public key.
 * @param signal Abort signal.
 * @returns The public key.
 * @throws {MissingProgramError} when ssh-keygen is not installed.
 * @throws {PermissionError} when `--allow-run` does not cover ssh-keygen.
 */
export async function generateKeyPair(
  file: string,
  comment: string,
  signal?: AbortSignal,
): Promise<PublicKey> {
  // stdin is null, so ssh-keygen can never stop at an "Overwrite (y/n)?" prompt.
  await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file], {
    signal,
    timeoutMs: 30_000,
  });
  return parsePublicKey(await Deno.readTextFile(`${file}.pub`));
}

/**
 * The public key of a profile's `ssh.identity_file`: `<file>.pub` when it
 * exists, else derived with `ssh-keygen -y` (keys without a passphrase only:
 * a passphrase never goes on a command line).
 *
 * @param identityFile The private key.
 * @param project Project name, for errors.
 * @returns The public key.
 * @throws {ComposeError} when neither works.
 */
export async function identityPublicKey(identityFile: string, project: string): Promise<PublicKey> {
  try {
    return parsePublicKey(await Deno.readTextFile(`${identityFile}.pub`));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const derived = await run(["ssh-keygen", "-y", "-f", identityFile], {
    allowFailure: true,
    timeoutMs: 30_000,
  });
  if (derived.code !== 0) {
    throw new ComposeError(
      project,
      `cannot give the service the public key of ssh.identity_file ${identityFile}: ${identityFile}.pub is missing and "ssh-keygen -y" could not derive it (a key with a passphrase?); put the public key next to it as ${identityFile}.pub`,
    );
  }
  return parsePublicKey(derived.stdout);
}

/**
 * Write a known_hosts file that pins `key` for `host:port`.
 *
 * @param file The known_hosts file (created mode 0600).
 * @param host Host the client connects to.
 * @param port Port the client connects to.
 * @param key The host's public key.
 */
export async function writeKnownHosts(
  file: string,
  host: string,
  port: number,
  key: PublicKey,
): Promise<void> {
  await appendKnownHost({ file, host, port, keyType: key.type, keyBase64: key.base64 });
}

/**
 * Make the key directory `<stateDir>/keys/<id>` (mode 0700). A leftover of
 * the same id (its journal record was removed by hand) is replaced: the
 * journal has just given this id to a new sandbox.
 *
 * @param dir The directory.
 */
export async function makeKeyDir(dir: string): Promise<void> {
  await Deno.mkdir(dir.slice(0, dir.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  try {
    await Deno.mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    await Deno.remove(dir, { recursive: true });
    await Deno.mkdir(dir, { mode: 0o700 });
  }
}

/**
 * Whether `dir` is a key directory sandboxer made for sandbox `id`
 * (`…/keys/<id>`), so a tampered handle can never make `destroy` delete
 * anything else.
 *
 * @param dir The recorded directory.
 * @param id The sandbox id.
 * @returns True when it may be removed.
 *
 * @example
 * ```ts
 * import { isKeyDirOf } from "./keys.ts";
 * console.log(isKeyDirOf("/s/keys/a1", "a1"), isKeyDirOf("/home/me", "a1")); // true false
 * ```
 */
export function isKeyDirOf(dir: string, id: string): boolean {
  return dir.startsWith("/") && !/(^|\/)\.\.?(\/|$)/.test(dir) && dir.endsWith(`/keys/${id}`) &&
    ID_PATTERN.test(id);
}
