/**
 * Whether a path exists (without following a final symlink): for unit tests in src/ and the
 * suite in tests/ alike (tests/helpers.ts re-exports it).
 *
 * @param path The path.
 * @returns True when something is there.
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    // A file where a parent directory should be: nothing can be there either.
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return false;
    }
    throw error;
  }
}
