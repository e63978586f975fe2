/**
 * Temporary directories that clean themselves up, for unit tests in src/ and the suite in
 * tests/ alike (tests/helpers.ts re-exports them): one definition, and src/ never imports tests/.
 *
 * @module
 */

/** A temporary directory removed on dispose. */
export interface TempDir extends AsyncDisposable {
  /** Its path. */
  readonly path: string;
}

/**
 * Make a temporary directory for `await using`.
 *
 * @param prefix Name prefix.
 * @returns The directory.
 */
export async function tempDir(prefix = "sbx-test-"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}
