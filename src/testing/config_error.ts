/**
 * The `ConfigError` that `work` throws, failing the test when it throws
 * nothing or something else. For unit tests of the config layer.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConfigError } from "../core/errors.ts";

/**
 * Run `work` and return the `ConfigError` it throws.
 *
 * @param work Code expected to throw a `ConfigError`.
 * @returns The error.
 */
export function configError(work: () => unknown): ConfigError {
  try {
    work();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}
