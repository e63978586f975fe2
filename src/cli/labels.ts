/**
 * `--label KEY=VALUE`: parsing, and matching records against label filters.
 *
 * @module
 */

import { UsageError } from "../core/errors.ts";
import type { SandboxRecord } from "../sandbox/record.ts";

const KEY = /^[a-z0-9][a-z0-9._/-]{0,62}$/i;
// Printable text only: labels are printed by list and show.
// deno-lint-ignore no-control-regex
const VALUE = /^[^\u0000-\u001f\u007f-\u009f]{0,200}$/;

/**
 * Parse repeated `--label KEY=VALUE` values into one map.
 *
 * @param values The option values.
 * @returns The labels.
 * @throws {UsageError} for a value that is not `KEY=VALUE`.
 */
export function parseLabels(values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const value of values) {
    const equals = value.indexOf("=");
    const key = equals < 0 ? value : value.slice(0, equals);
    const text = equals < 0 ? "" : value.slice(equals + 1);
    if (equals < 0 || !KEY.test(key) || !VALUE.test(text)) {
      throw new UsageError(
        `Cannot use --label ${
          JSON.stringify(value)
        }: write KEY=VALUE, KEY of letters, digits, . _ / - (at most 63), VALUE printable (at most 200)`,
      );
    }
    labels[key] = text;
  }
  return labels;
}

/**
 * Whether a record carries every label of `filter`.
 *
 * @param record The record.
 * @param filter The labels it must have.
 * @returns True when all match (also for an empty filter).
 */
export function hasLabels(record: SandboxRecord, filter: Record<string, string>): boolean {
  return Object.entries(filter).every(([key, value]) => record.labels?.[key] === value);
}
