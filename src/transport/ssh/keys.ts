/**
 * Loading a private key for authentication.
 *
 * @module
 */

import { SshError } from "../../core/errors.ts";
import { mapPermissionError } from "../../core/permissions.ts";
import type { Logger } from "../../core/types.ts";
import { describe, isNotCapable } from "./errors.ts";
import type { SshTarget } from "./types.ts";
import { Buffer } from "node:buffer";
import { loadSsh2 } from "../../deps/ssh2.ts";

/** The identity file's key (decrypted with the target's passphrase), or undefined for agent-only auth. */
export async function loadPrivateKey(
  target: SshTarget,
  logger?: Logger,
): Promise<Buffer | undefined> {
  const file = target.identityFile;
  if (file === undefined) return undefined;
  let data: Uint8Array;
  try {
    data = await Deno.readFile(file);
  } catch (error) {
    if (isNotCapable(error)) {
      throw mapPermissionError(error, "read", file);
    }
    if (error instanceof Deno.errors.NotFound) {
      throw new SshError(
        describe(target),
        "authenticate",
        `identity file ${file} does not exist; check target.identity_file`,
        { cause: error },
      );
    }
    throw error;
  }
  const key = Buffer.from(data);
  const parsed = (await loadSsh2()).utils.parseKey(key, target.passphrase);
  if (!(parsed instanceof Error)) return key;
  const env = target.passphraseEnv;
  if (/no passphrase given/i.test(parsed.message)) {
    if (target.agent !== undefined) {
      logger?.debug(`identity file ${file} is encrypted and no passphrase is set: using the agent`);
      return undefined;
    }
    throw new SshError(
      describe(target),
      "authenticate",
      `identity file ${file} is encrypted; set ${
        env ? `$${env}` : "its passphrase"
      } to the passphrase, or load the key into ssh-agent`,
    );
  }
  if (/passphrase/i.test(parsed.message)) {
    throw new SshError(
      describe(target),
      "authenticate",
      `the passphrase for identity file ${file} is wrong${env ? ` (check $${env})` : ""}`,
    );
  }
  throw new SshError(
    describe(target),
    "authenticate",
    `cannot read identity file ${file} (${parsed.message}); it must be an OpenSSH, PEM or PPK private key`,
  );
}
