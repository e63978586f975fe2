/**
 * Command-line overrides: `--set dotted.path=value`.
 *
 * @module
 */

import { ConfigError, UsageError } from "../core/errors.ts";
import type { JsonObject, JsonValue } from "../core/types.ts";
import { parseYamlDocument } from "./yaml_source.ts";

/** The result of {@linkcode applyOverrides}. */
export interface OverrideResult {
  /** A copy of the data with every override applied. */
  data: JsonObject;
  /**
   * Dotted path → the override as written (`target.port=2222`), for
   * `withOverrides` so errors name the `--set` flag.
   */
  fields: Map<string, string>;
}

const FORBIDDEN_SEGMENTS = new Set(["__proto__", "constructor", "prototype"]);

/**
 * Apply `--set` overrides to a copy of `data`.
 *
 * Each override is `dotted.path=value`. The value is read as a YAML scalar or
 * flow value: `12222` is a number, `true` a boolean, `[a, b]` a list, `{a: 1}`
 * a mapping, `"x"` a string, and nothing at all the empty string; anything else
 * that is not valid YAML on its own (`@home`, `a: b`) is taken as a plain
 * string. Missing intermediate mappings are created. Types are checked later,
 * when the configuration is validated.
 *
 * @param data The configuration as read from the file (not modified).
 * @param overrides The `--set` values, in command-line order (later wins).
 * @returns The new data and which fields were overridden.
 * @throws {UsageError} for an override without `=`, with an empty path or
 * segment, whose path runs through a value that is not a mapping, or whose
 * flow value (`[…]`, `{…}`, quoted) is not valid YAML, or whose value is YAML's
 * null (`~`, `null`): on the command line that would silently mean the default.
 *
 * @example
 * ```ts
 * import { applyOverrides } from "./overrides.ts";
 * const { data } = applyOverrides({ target: { host: "a" } }, ["target.port=2222"]);
 * console.log(data); // { target: { host: "a", port: 2222 } }
 * ```
 */
export function applyOverrides(
  data: JsonObject,
  overrides: readonly string[],
): OverrideResult {
  const result = structuredClone(data);
  const fields = new Map<string, string>();
  for (const override of overrides) {
    const equals = override.indexOf("=");
    if (equals < 0) {
      throw new UsageError(
        `Cannot parse --set ${
          JSON.stringify(override)
        }: expected dotted.path=value; write e.g. --set target.port=2222`,
      );
    }
    const segments = override.slice(0, equals).split(".").map((segment) => segment.trim());
    const path = segments.join(".");
    if (segments.some((segment) => segment === "")) {
      throw new UsageError(
        `Cannot parse --set ${JSON.stringify(override)}: ${
          path === "" ? 'the field path before "=" is empty' : `"${path}" has an empty segment`
        }; write e.g. --set target.port=2222`,
      );
    }
    const bad = segments.find((segment) => FORBIDDEN_SEGMENTS.has(segment));
    if (bad !== undefined) {
      throw new UsageError(
        `Cannot apply --set ${
          JSON.stringify(override)
        }: "${bad}" is not allowed as a field name; set a real field`,
      );
    }
    const value = parseValue(override, override.slice(equals + 1));
    let node = result;
    for (let index = 0; index < segments.length - 1; index++) {
      const segment = segments[index];
      const next = Object.hasOwn(node, segment) ? node[segment] : undefined;
      if (next === undefined || next === null) {
        node[segment] = {};
      } else if (Array.isArray(next) && /^\d+$/.test(segments[index + 1])) {
        // `targets.0.capacity=8`: an entry of a list of mappings, addressed by its index.
        const through = segments.slice(0, index + 1).join(".");
        const entry = Number(segments[index + 1]);
        if (entry >= next.length || typeof next[entry] !== "object" || next[entry] === null) {
          throw new UsageError(
            `Cannot apply --set ${override}: "${through}" has ${next.length} entr${
              next.length === 1 ? "y" : "ies"
            } (0 to ${next.length - 1})${
              entry < next.length ? `, and entry ${entry} is not a mapping` : ""
            }; address an existing entry, e.g. --set ${through}.0.${segments.at(-1)}=…`,
          );
        }
        if (index + 2 === segments.length) {
          node = next as unknown as JsonObject;
          break;
        }
        node = next[entry] as JsonObject;
        index++;
        continue;
      } else if (typeof next !== "object" || Array.isArray(next)) {
        const through = segments.slice(0, index + 1).join(".");
        throw new UsageError(
          `Cannot apply --set ${override}: "${through}" is ${
            Array.isArray(next) ? "a list" : `${JSON.stringify(next)}`
          }, not a mapping, so it has no field "${
            segments[index + 1]
          }"; set "${through}" itself, e.g. --set '${through}={${segments[index + 1]}: …}'`,
        );
      }
      node = node[segment] as JsonObject;
    }
    node[segments.at(-1)!] = value;
    for (const earlier of [...fields.keys()]) {
      if (earlier.startsWith(`${path}.`)) fields.delete(earlier);
    }
    fields.set(path, `${path}=${override.slice(equals + 1)}`);
  }
  return { data: result, fields };
}

function parseValue(override: string, written: string): JsonValue {
  const text = written.trim();
  if (text === "") return "";
  const flow = /^["'[{]/.test(text);
  let value: unknown;
  try {
    value = parseYamlDocument("--set", text).data;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    if (flow) {
      throw new UsageError(
        `Cannot parse the value of --set ${override}: ${error.problem}; fix it, or quote the whole value to pass it as a string`,
        { cause: error },
      );
    }
    return text;
  }
  if (value === null) {
    // In a file `root: ~` leaves a field at its default; on the command line that is never what
    // was meant (`--set workspace.root=~` silently gave /build), so say so instead.
    throw new UsageError(
      `Cannot use --set ${override}: YAML reads ${
        JSON.stringify(text)
      } as no value, which would leave the field at its default; write the value itself (a path may start with ~/), or "${text}" in quotes for that text`,
    );
  }
  if (!flow && typeof value === "object") return text;
  return value as JsonValue;
}
