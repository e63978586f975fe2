/**
 * Small file-system questions asked in several layers.
 *
 * @module
 */

/**
 * Whether something is at `path`.
 *
 * @param path The path.
 * @param options `follow: true` asks about a symlink's target (a dangling link is then "nothing");
 *   by default a symlink itself counts.
 * @returns True when something is there.
 */
export async function exists(path: string, options: { follow?: boolean } = {}): Promise<boolean> {
  try {
    await (options.follow ? Deno.stat(path) : Deno.lstat(path));
    return true;
  } catch (error) {
    // A file where a parent directory should be: nothing can be there either.
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return false;
    }
    throw error;
  }
}

/**
 * Whether `path` is a regular file (after following symlinks), for checks made while a
 * profile is validated, which is synchronous.
 *
 * @param path The path.
 * @returns False when nothing is there; a refusal to look (permissions) is thrown, not hidden.
 */
export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return false;
    }
    throw error;
  }
}

/**
 * The `code` of a Node-style error (`ECONNREFUSED`, `ENOENT`), if it has one.
 *
 * @param error Anything thrown.
 * @returns The code, or undefined.
 */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}
