/**
 * Where sandboxer keeps things on the local disk. (Its built-in YAML travels
 * in the module graph: `src/config/builtin_files.ts`.)
 *
 * @module
 */

import { optionalEnv } from "./permissions.ts";

/** Reads an environment variable; injectable for tests and narrow permissions. */
export type EnvReader = (name: string) => string | undefined;

/**
 * The state directory: `$SANDBOXER_HOME`, else `$XDG_STATE_HOME/sandboxer`,
 * else `~/.local/state/sandboxer`.
 *
 * @param env How to read the environment.
 * @returns An absolute path.
 */
export function defaultStateDir(env: EnvReader = optionalEnv): string {
  const explicit = env("SANDBOXER_HOME");
  if (explicit) return explicit;
  const xdg = env("XDG_STATE_HOME");
  if (xdg) return `${xdg}/sandboxer`;
  return `${homeDir(env)}/.local/state/sandboxer`;
}

/**
 * The user's home directory, from `$HOME`.
 *
 * @param env How to read the environment.
 * @returns The home directory, or "/" when unknown.
 */
export function homeDir(env: EnvReader = optionalEnv): string {
  return env("HOME") ?? "/";
}

/**
 * Split a colon-separated path list, dropping empty entries.
 *
 * @param value The list, or undefined.
 * @returns The entries.
 */
export function splitPathList(value: string | undefined): string[] {
  return (value ?? "").split(":").filter((entry) => entry !== "");
}
