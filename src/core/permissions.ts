/**
 * Turning Deno's permission refusals into one actionable line.
 *
 * @module
 */

import { PermissionError } from "./errors.ts";

/** Deno permission names that map to an `--allow-*` flag. */
export type PermissionName = "read" | "write" | "net" | "run" | "env" | "sys" | "ffi" | "import";

/**
 * If `error` is Deno's refusal of a permission, return a
 * {@linkcode PermissionError} naming the flag to add; otherwise return the
 * error unchanged (so callers can `throw mapPermissionError(e, …)`).
 *
 * @param error What was caught.
 * @param permission The permission the failed operation needed (`"read/write"`
 *   when it needed both).
 * @param what The path, host, program or variable it was for.
 * @param flag The fix, when it is more than `--allow-<permission>=<what>`.
 * @returns The error to throw.
 */
export function mapPermissionError(
  error: unknown,
  permission: PermissionName | "read/write",
  what: string,
  flag = `--allow-${permission}=${what}`,
): unknown {
  // Errors that crossed npm code (ssh2) keep the name but lose the class.
  if (
    error instanceof Deno.errors.NotCapable ||
    (error instanceof Error && error.name === "NotCapable")
  ) {
    return new PermissionError(permission, what, flag, { cause: error });
  }
  return error;
}

/**
 * Parse Deno's NotCapable message ("Requires net access to "h:p", run again
 * with the --allow-net flag") into a {@linkcode PermissionError}.
 *
 * @param error A NotCapable error from anywhere.
 * @returns The typed error.
 */
export function permissionErrorFrom(error: Deno.errors.NotCapable): PermissionError {
  const match = /Requires (\w+) access to "?([^",]+)"?/.exec(error.message);
  if (!match) {
    // Deno names no permission in some refusals ("Can't escalate parent thread permissions").
    return new PermissionError(
      "some",
      `a resource Deno did not name (Deno said: "${error.message.split("\n")[0]}")`,
      "the --allow-* flag that grants it (see docs/permissions.md)",
      { cause: error },
    );
  }
  const [, permission, what] = match;
  return new PermissionError(permission, what, `--allow-${permission}=${what}`, { cause: error });
}

/**
 * Read an environment variable when allowed, without prompting or throwing:
 * optional settings must not demand a permission.
 *
 * @param name The variable.
 * @returns Its value, or undefined when unset or not permitted.
 */
export function optionalEnv(name: string): string | undefined {
  const { state } = Deno.permissions.querySync({ name: "env", variable: name });
  return state === "granted" ? Deno.env.get(name) : undefined;
}

/**
 * Who and where this process runs, as recorded for people (a record's owner,
 * a workspace marker's creator); "unknown" for what may not be read.
 *
 * @param env Reads `USER`; by default without prompting.
 * @returns The host name and the user name.
 */
export function currentIdentity(
  env: (name: string) => string | undefined = optionalEnv,
): { host: string; user: string } {
  let host = "unknown";
  try {
    host = Deno.hostname();
  } catch {
    // hostname needs --allow-sys=hostname; the record then says "unknown".
  }
  return { host, user: env("USER") ?? "unknown" };
}
