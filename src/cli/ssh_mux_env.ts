/**
 * `SANDBOXER_SSH_MUX` as the CLI reads it: whether, and for how long, the
 * SSH connections of `create` and `exec` are shared with later sandboxer
 * processes (docs/architecture.md, "Shared SSH connections").
 *
 * @module
 */

import { parseDuration } from "../config/duration.ts";
import { UsageError } from "../core/errors.ts";
import { optionalEnv } from "../core/permissions.ts";
import { muxPersistSeconds } from "../transport/ssh_mux.ts";

/**
 * The sharing the environment asks for; a malformed value is a usage error.
 *
 * @returns How long a shared connection stays up idle, in seconds (0: no sharing).
 * @throws {UsageError} When `SANDBOXER_SSH_MUX` is not 0, 1, a number or a duration.
 */
export function sshMuxFromEnv(): { persistSeconds: number } {
  const value = optionalEnv("SANDBOXER_SSH_MUX");
  try {
    return { persistSeconds: muxPersistSeconds(value, parseDuration) };
  } catch {
    throw new UsageError(
      `Cannot use SANDBOXER_SSH_MUX=${value}: write 0 (no shared connections), 1 (the default, 60s) or how long a shared connection stays up idle, such as 90s or 10m`,
    );
  }
}
