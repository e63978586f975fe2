/**
 * Plain-data helpers for configuration values: describing a value for a
 * message and reading or writing it at a dotted field path.
 *
 * @module
 */

import type { JsonObject, JsonValue } from "../core/types.ts";
import { splitFieldPath } from "./yaml_source.ts";

/**
 * Describe a value for the `(got …)` part of a message: strings quoted and
 * shortened, lists and mappings by kind.
 *
 * @param value The offending value.
 * @returns A short description.
 *
 * @example
 * ```ts
 * import { describeValue } from "./json_values.ts";
 * console.log(describeValue("abc")); // "\"abc\""
 * console.log(describeValue([1])); // "a list"
 * ```
 */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return value.length ? "a list" : "an empty list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") {
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  }
  return String(value);
}

/** Whether a value is a mapping (not a list, not null). */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The value at a dotted path (segments as {@linkcode splitFieldPath} reads them). */
export function getAt(object: JsonObject, path: string): JsonValue | undefined {
  let node: JsonValue | undefined = object;
  for (const segment of splitFieldPath(path)) {
    if (!isObject(node) || !Object.hasOwn(node, segment)) return undefined;
    node = node[segment];
  }
  return node;
}

/**
 * Set the value at a dotted path, creating mappings on the way. Properties are
 * defined, not assigned, so a key such as `__proto__` stays plain data.
 */
export function setAt(object: JsonObject, path: string, value: JsonValue): void {
  const segments = path.split(".");
  let node = object;
  for (const segment of segments.slice(0, -1)) {
    const next = Object.hasOwn(node, segment) ? node[segment] : undefined;
    if (isObject(next)) {
      node = next;
    } else {
      const created: JsonObject = {};
      Object.defineProperty(node, segment, {
        value: created,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      node = created;
    }
  }
  Object.defineProperty(node, segments.at(-1)!, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}
