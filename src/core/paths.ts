/**
 * Where sandboxer keeps things on the local disk, and where its built-in
 * YAML lives (also inside a compiled binary, where `--include` embeds it).
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

/** The built-in `extensions/` directory. */
export const BUILTIN_EXTENSIONS_DIR: string = fromFileUrl(
  new URL("../../extensions", import.meta.url),
);

/** The built-in `profiles/` directory. */
export const BUILTIN_PROFILES_DIR: string = fromFileUrl(new URL("../../profiles", import.meta.url));

/**
 * A `file:` URL as a path.
 *
 * @param url The URL.
 * @returns The path.
 */
export function fromFileUrl(url: URL): string {
  if (url.protocol !== "file:") throw new TypeError(`Cannot use ${url.href}: not a file: URL`);
  return decodeURIComponent(url.pathname);
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
