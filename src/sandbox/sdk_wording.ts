/**
 * Error fixes reworded for SDK callers: the messages are written for the
 * CLI user (`rerun with --accept-new-host-key`), and a script has no such
 * flag to pass — it has the option of the same meaning.
 *
 * @module
 */

import type { SandboxerError } from "../core/errors.ts";

/** Each CLI phrasing of a fix and its SDK counterpart, most specific first. */
const REWRITES: ReadonlyArray<readonly [RegExp, string]> = [
  [/rerun with --accept-new-host-key/g, "pass acceptNewHostKey: true"],
  [
    /run the command again with --accept-host-key (\S+) right after "sandboxer"(?: \(e\.g\. "[^"]*"\))?/g,
    'pass acceptHostKey: "$1"',
  ],
  [/pick another --name,? or destroy/g, "pick another name or destroy"],
  [/wait for it \(destroy --wait\), or pass --force/g, "wait for it (waitMs), or pass force: true"],
  [/wait longer \(--wait [^)]*\), or pass --force/g, "wait longer (waitMs), or pass force: true"],
  [/pass --force/g, "pass force: true"],
  [/pass --repo DIR/g, "pass repo"],
  [/Cannot use --repo /g, "Cannot use repo "],
  [/add -- CMD \[ARGS\.\.\.\]/g, "pass the program and its arguments"],
  [/pass --replace to replace it/g, "pass replace: true to replace it"],
  [/list them with "sandboxer snapshot list( PROFILE)?"/g, "list them with manager.snapshots()"],
  [
    /take a new snapshot with "sandboxer snapshot ID ([^"]*)"/g,
    'take a new one with snapshot("$1")',
  ],
];

/**
 * Reword the fix in `error`'s message for an SDK caller, in place (the
 * error keeps its class, code, fields and stack).
 *
 * @param error An error thrown by the manager.
 * @returns The same error.
 */
export function sdkWording<E extends SandboxerError>(error: E): E {
  let message = error.message;
  for (const [pattern, replacement] of REWRITES) message = message.replace(pattern, replacement);
  if (message !== error.message) {
    error.stack = error.stack?.replace(error.message, message);
    error.message = message;
  }
  return error;
}
