/**
 * Reading configuration files and directories, with Deno's errors turned
 * into sandboxer's.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { ConfigError } from "../core/errors.ts";
import { mapPermissionError } from "../core/permissions.ts";

/**
 * A directory of configuration files held in memory: sandboxer's built-in
 * registrations and profiles, which travel in the module graph
 * (`builtin_files.ts`) instead of being read from beside the code.
 */
export interface EmbeddedDir {
  /** Where the directory is (a path, or a URL when sandboxer was imported by URL). */
  readonly path: string;
  /** File name to contents. */
  readonly files: Readonly<Record<string, string>>;
}

const URL_LIKE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * Whether a configuration location is a URL rather than a path (a built-in
 * file of a sandboxer imported by URL).
 *
 * @param location A path or URL.
 * @returns `true` for `scheme://…`.
 */
export function isUrlLocation(location: string): boolean {
  return URL_LIKE.test(location);
}

/**
 * The location of a file in a configuration directory; unlike `join()` it
 * keeps a URL a URL.
 *
 * @param dir The directory: a path or a URL.
 * @param name The file name.
 * @returns The file's path or URL.
 */
export function configFilePath(dir: string, name: string): string {
  if (!isUrlLocation(dir)) return join(dir, name);
  return new URL(name, dir.endsWith("/") ? dir : `${dir}/`).href;
}

function embeddedText(file: string, embedded: readonly EmbeddedDir[]): string | undefined {
  for (const dir of embedded) {
    for (const [name, text] of Object.entries(dir.files)) {
      if (configFilePath(dir.path, name) === file) return text;
    }
  }
  return undefined;
}

function sameDir(a: string, b: string): boolean {
  return a.replace(/\/+$/, "") === b.replace(/\/+$/, "");
}

/**
 * Read a configuration file as text.
 *
 * @param file The file to read.
 * @param embedded In-memory directories, consulted before the disk.
 * @returns Its text, or `undefined` when it does not exist.
 * @throws {PermissionError} when Deno lacks `--allow-read` for it.
 * @throws {ConfigError} when the system refuses it or it is a directory.
 */
export async function readConfigFile(
  file: string,
  embedded: readonly EmbeddedDir[] = [],
): Promise<string | undefined> {
  const inMemory = embeddedText(file, embedded);
  if (inMemory !== undefined) return inMemory;
  // A built-in directory at a URL has no other files; the disk has no such path.
  if (embedded.some((dir) => sameDir(dir.path, dirname(file)))) return undefined;
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof Deno.errors.NotCapable) {
      throw mapPermissionError(error, "read", file);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new ConfigError(
        { file },
        "cannot be read: the system denied access; check the file's owner and mode",
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.IsADirectory) {
      throw new ConfigError({ file }, "is a directory, not a YAML file; rename or move it", {
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * List the names of the entries of a configuration directory that may be
 * files.
 *
 * @param dir The directory.
 * @param embedded In-memory directories: one at `dir` is listed instead of the disk.
 * @returns The entry names; `undefined` when the directory does not exist; a
 * {@linkcode ConfigError} (not thrown) when it cannot be read, so callers can
 * report it next to other problems.
 */
export async function readConfigDir(
  dir: string,
  embedded: readonly EmbeddedDir[] = [],
): Promise<string[] | undefined | ConfigError> {
  const inMemory = embedded.find((entry) => sameDir(entry.path, dir));
  if (inMemory) return Object.keys(inMemory.files).sort();
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile || entry.isSymlink) names.push(entry.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof Deno.errors.NotCapable) {
      const cause = mapPermissionError(error, "read", dir);
      return new ConfigError(
        { file: dir },
        `cannot be listed without read permission; run again with --allow-read=${dir}`,
        { cause },
      );
    }
    if (error instanceof Deno.errors.NotADirectory) {
      return new ConfigError({ file: dir }, "is not a directory; fix the search path");
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      return new ConfigError(
        { file: dir },
        "cannot be listed: the system denied access; check the directory's owner and mode",
        { cause: error },
      );
    }
    throw error;
  }
  return names.sort();
}
