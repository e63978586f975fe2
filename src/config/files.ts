/**
 * Reading configuration files and directories, with Deno's errors turned
 * into sandboxer's.
 *
 * @module
 */

import { ConfigError, PermissionError } from "../core/errors.ts";

/**
 * Read a configuration file as text.
 *
 * @param file The file to read.
 * @returns Its text, or `undefined` when it does not exist.
 * @throws {PermissionError} when Deno lacks `--allow-read` for it.
 * @throws {ConfigError} when the system refuses it or it is a directory.
 */
export async function readConfigFile(file: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof Deno.errors.NotCapable) {
      throw new PermissionError("read", file, `--allow-read=${file}`, { cause: error });
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
 * @returns The entry names; `undefined` when the directory does not exist; a
 * {@linkcode ConfigError} (not thrown) when it cannot be read, so callers can
 * report it next to other problems.
 */
export async function readConfigDir(dir: string): Promise<string[] | undefined | ConfigError> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile || entry.isSymlink) names.push(entry.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof Deno.errors.NotCapable) {
      const cause = new PermissionError("read", dir, `--allow-read=${dir}`, { cause: error });
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
