/**
 * Sandbox ids: the one pattern every layer checks them against, and fresh
 * random ones; and snapshot names.
 *
 * @module
 */

import { InvalidIdError, SnapshotError } from "./errors.ts";

/**
 * A sandbox id as regular-expression source, for patterns that embed one
 * (`sbx-<id>` directories, heartbeat files): a lowercase letter or digit, then
 * up to 62 of them or `-`.
 */
export const ID_SOURCE = "[a-z0-9][a-z0-9-]{0,62}";

/** A whole sandbox id. */
export const ID_PATTERN: RegExp = new RegExp(`^${ID_SOURCE}$`);

/**
 * Check a sandbox id.
 *
 * @param id The id to check.
 * @returns The id.
 * @throws {InvalidIdError} when it is not `[a-z0-9][a-z0-9-]{0,62}`.
 */
export function validateId(id: string): string {
  if (!ID_PATTERN.test(id)) throw new InvalidIdError(id);
  return id;
}

/**
 * A random id: 10 characters of `[a-z0-9]`, starting with a letter.
 *
 * @returns A fresh id.
 */
export function randomId(): string {
  const letters = "abcdefghijklmnopqrstuvwxyz";
  const alphabet = letters + "0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  let id = letters[bytes[0] % letters.length];
  for (const byte of bytes.slice(1)) id += alphabet[byte % alphabet.length];
  return id;
}

/** A whole snapshot name: a lowercase letter or digit, then up to 62 of them or `.`, `_`, `-`. */
export const SNAPSHOT_NAME: RegExp = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/**
 * Check a snapshot's name.
 *
 * @param name The name, as given.
 * @returns The name.
 * @throws {SnapshotError} naming the value when it is not `[a-z0-9][a-z0-9._-]{0,62}`.
 */
export function checkSnapshotName(name: string): string {
  if (SNAPSHOT_NAME.test(name)) return name;
  throw new SnapshotError(
    JSON.stringify(name),
    "is not a valid snapshot name: use 1 to 63 of a-z 0-9 . _ -, starting with a letter or digit",
  );
}
