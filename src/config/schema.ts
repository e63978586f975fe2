/**
 * Validate configuration against a {@linkcode ConfigSchema}: the small schema
 * language extension registrations use for their profile fields. Errors are
 * {@linkcode ConfigError}s naming file, line, column and field, and saying
 * how to fix the value.
 *
 * @module
 */

import { optionalEnv } from "../core/permissions.ts";
import { dirname, isAbsolute, join } from "node:path";
import { ConfigError } from "../core/errors.ts";
import { didYouMean, suggestionSuffix } from "./did_you_mean.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import type { ConfigSchema, ConfigSource, FieldSchema, FieldType } from "./types.ts";
import type { JsonObject, JsonValue } from "../core/types.ts";
import { isUrlLocation } from "./files.ts";
import { describeValue, getAt, isObject, setAt } from "./json_values.ts";

/** Options for {@linkcode validateConfig}. */
export interface ValidateOptions {
  /**
   * Directory that relative `path` values are resolved against. Defaults to
   * the directory of the file each value was written in; values set with
   * `--set` stay relative to the working directory.
   */
  baseDir?: string;
  /** Home directory for `~/` in `path` values. Defaults to `$HOME` when readable. */
  home?: string;
  /**
   * Dotted paths whose values are copied as they are, unchecked (the caller
   * validates them). They count as known fields.
   */
  passthrough?: readonly string[];
}

/**
 * A {@linkcode ConfigSource} for configuration that shares its file with other
 * top-level fields, as an extension's fields share a profile with `id`,
 * `setup`, `ttl`…: those names are offered as "did you mean" suggestions for
 * unknown top-level keys (so `setpu:` suggests `setup`).
 */
export interface SharedConfigSource extends ConfigSource {
  /** Top-level field names that belong to the file, not to this configuration. */
  readonly reservedFields: readonly string[];
}

/** Every {@linkcode FieldType}, in the order they are listed in messages. */
export const FIELD_TYPES: readonly FieldType[] = [
  "string",
  "path",
  "integer",
  "port",
  "boolean",
  "duration",
  "string[]",
  "object[]",
];

const DURATION_EXAMPLES = `a duration such as 90 (seconds), "30m", "8h", "2d" or "1h30m"`;

/**
 * Check `raw` against `schema` and return the configuration as a nested
 * object with defaults applied, `duration` fields converted to seconds and
 * `path` fields expanded (`~/`) and resolved.
 *
 * A `null` value (a key with nothing after it) counts as absent.
 *
 * @param raw The configuration as read (nested objects).
 * @param schema Dotted field paths to their schemas.
 * @param source Locates fields for error messages.
 * @param options Base directory, home directory and pass-through fields.
 * @returns The validated configuration.
 * @throws {ConfigError} for the first problem found: a missing required
 * field, a value of the wrong type or out of range, a value not in the
 * allowed list, an unknown field (with a "did you mean") or a non-mapping
 * where a mapping is expected.
 *
 * @example
 * ```ts
 * import { validateConfig } from "./schema.ts";
 * import type { JsonObject } from "../core/types.ts";
 * import { parseYamlDocument } from "./yaml_source.ts";
 * const { data, source } = parseYamlDocument("dev.yaml", "target:\n  host: build1\n");
 * const config = validateConfig(data as JsonObject, {
 *   "target.host": { type: "string", required: true },
 *   "target.port": { type: "port", default: 22 },
 * }, source);
 * console.log(config); // { target: { host: "build1", port: 22 } }
 * ```
 */
export function validateConfig(
  raw: JsonObject,
  schema: ConfigSchema,
  source: ConfigSource,
  options: ValidateOptions = {},
): JsonObject {
  return new Validator(schema, source, options).run(raw);
}

/**
 * Expand a leading `~` or `~/` to the home directory.
 *
 * @param path The path as written.
 * @param home The home directory.
 * @returns The expanded path (unchanged when it does not start with `~`).
 *
 * @example
 * ```ts
 * import { expandHome } from "./schema.ts";
 * console.log(expandHome("~/.ssh/id_ed25519", "/home/ana")); // "/home/ana/.ssh/id_ed25519"
 * ```
 */
export function expandHome(path: string, home: string): string {
  if (path === "~") return home;
  if (path.startsWith("~/")) return join(home, path.slice(2));
  return path;
}

/**
 * Checks values against field schemas. {@linkcode validateConfig} runs it over a
 * whole configuration; the registration parser uses `check()` and `bound()` on
 * the defaults, bounds and `enum` values a registration declares.
 */
export class Validator {
  readonly #schema: ConfigSchema;
  readonly #source: ConfigSource;
  readonly #options: ValidateOptions;
  readonly #groups: Set<string>;
  readonly #passthrough: Set<string>;

  constructor(schema: ConfigSchema, source: ConfigSource, options: ValidateOptions) {
    this.#schema = schema;
    this.#source = source;
    this.#options = options;
    this.#passthrough = new Set(options.passthrough ?? []);
    this.#groups = new Set();
    for (const name of [...Object.keys(schema), ...this.#passthrough]) {
      const segments = name.split(".");
      for (let length = 1; length < segments.length; length++) {
        this.#groups.add(segments.slice(0, length).join("."));
      }
    }
  }

  run(raw: unknown): JsonObject {
    if (!isObject(raw)) {
      throw new ConfigError(
        { file: this.#source.file },
        `must be a mapping of fields (got ${
          describeValue(raw)
        }); write one \`name: value\` per line`,
      );
    }
    const out: JsonObject = {};
    this.#walk(raw, "", out);
    for (const [name, field] of Object.entries(this.#schema)) {
      if (getAt(out, name) !== undefined) continue;
      if (field.default !== undefined && field.default !== null) {
        setAt(out, name, this.check(name, field.default, field, true));
      } else if (field.required) {
        this.#missing(raw, name, field);
      }
    }
    return out;
  }

  #walk(object: JsonObject, prefix: string, out: JsonObject): void {
    for (const [key, value] of Object.entries(object)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (this.#passthrough.has(path)) {
        if (value !== null) setAt(out, path, value);
      } else if (Object.hasOwn(this.#schema, path)) {
        if (value === null) continue;
        if (getAt(out, path) !== undefined) {
          throw new ConfigError(
            this.#source.locate(path),
            "is set twice (once nested and once as a dotted key); keep one of them",
          );
        }
        setAt(out, path, this.check(path, value, this.#schema[path], true));
      } else if (this.#groups.has(path)) {
        if (value === null) continue;
        if (!isObject(value)) {
          throw new ConfigError(
            this.#source.locate(path),
            `must be a mapping with ${this.#children(path).join(", ")} (got ${
              describeValue(value)
            }); indent its fields below \`${key}:\``,
          );
        }
        this.#walk(value, path, out);
      } else {
        this.#unknown(path, prefix);
      }
    }
  }

  #children(prefix: string): string[] {
    const names = new Set<string>();
    const start = prefix ? prefix.length + 1 : 0;
    for (const name of [...Object.keys(this.#schema), ...this.#passthrough]) {
      if (prefix && !name.startsWith(`${prefix}.`)) continue;
      names.add(name.slice(start).split(".")[0]);
    }
    return [...names];
  }

  #unknown(path: string, prefix: string): never {
    const known = [...Object.keys(this.#schema), ...this.#groups, ...this.#passthrough];
    const reserved = prefix === "" && "reservedFields" in this.#source
      ? (this.#source as SharedConfigSource).reservedFields
      : [];
    let suggestion = didYouMean(path, [...known, ...reserved]);
    if (suggestion === undefined) {
      const last = path.split(".").at(-1)!.toLowerCase();
      const sameName = known.filter((name) => name.split(".").at(-1)!.toLowerCase() === last);
      if (sameName.length === 1) suggestion = sameName[0];
    }
    const siblings = this.#children(prefix);
    const fix = suggestion !== undefined
      ? `remove it or fix its name (did you mean ${JSON.stringify(suggestion)}?)`
      : siblings.length === 0
      ? "remove it (no fields are allowed here)"
      : siblings.length <= 12
      ? `remove it or use one of: ${siblings.join(", ")}`
      : "remove it or fix its name";
    throw new ConfigError(this.#source.locate(path), `is not a known field; ${fix}`);
  }

  #missing(raw: JsonObject, name: string, field: FieldSchema): never {
    const segments = name.split(".");
    let present = 0;
    let node: JsonValue = raw;
    while (present < segments.length - 1 && isObject(node)) {
      const next: JsonValue | undefined = node[segments[present]];
      if (!isObject(next)) break;
      node = next;
      present++;
    }
    const rest = segments.slice(present);
    let snippet = `${rest.at(-1)}: ${placeholder(field)}`;
    for (const segment of rest.slice(0, -1).reverse()) snippet = `${segment}: {${snippet}}`;
    const where = present === 0 ? "" : ` under \`${segments[present - 1]}:\``;
    const about = field.description ? ` (${field.description})` : "";
    throw new ConfigError(
      this.#source.locate(name),
      `is required${about}; add \`${snippet}\`${where}`,
    );
  }

  /** Check a `min`/`max` of a registration schema; returns it as a number. */
  bound(path: string, type: FieldType, value: JsonValue): number {
    const locate = () => this.#source.locate(path);
    if (type === "boolean") {
      throw new ConfigError(locate(), "does not apply to boolean fields; remove it");
    }
    if (type === "duration" && typeof value === "string") {
      try {
        return parseDuration(value);
      } catch {
        throw new ConfigError(
          locate(),
          `must be ${DURATION_EXAMPLES} (got ${describeValue(value)})`,
        );
      }
    }
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new ConfigError(locate(), `must be a number (got ${describeValue(value)})`);
    }
    return value;
  }

  /** Check one value; returns it converted (`convert`) or as given. */
  check(path: string, value: JsonValue, field: FieldSchema, convert: boolean): JsonValue {
    const fail = (problem: string): never => {
      throw new ConfigError(this.#source.locate(path), problem);
    };
    let result: JsonValue = value;
    switch (field.type) {
      case "string":
      case "path": {
        if (typeof value !== "string") {
          fail(
            `must be a ${field.type === "path" ? "path (a string)" : "string"} (got ${
              describeValue(value)
            })${
              typeof value === "number" || typeof value === "boolean"
                ? `; put it in quotes: "${value}"`
                : ""
            }`,
          );
        }
        const text = value as string;
        if (field.type === "path") {
          if (text.trim() === "") fail(`must be a path (got "")`);
          if (convert) result = this.#resolvePath(path, text);
        }
        this.#checkRange(path, text.length, field, "characters long", JSON.stringify(text));
        break;
      }
      case "integer":
      case "port": {
        const min = field.min ?? (field.type === "port" ? 1 : undefined);
        const max = field.max ?? (field.type === "port" ? 65535 : undefined);
        if (
          typeof value !== "number" || !Number.isInteger(value) ||
          (min !== undefined && value < min) || (max !== undefined && value > max)
        ) {
          const quoted = typeof value === "string" && /^-?\d+$/.test(value.trim());
          fail(
            `must be ${describeInteger(min, max)} (got ${describeValue(value)})${
              quoted ? "; remove the quotes" : ""
            }`,
          );
        }
        break;
      }
      case "boolean":
        if (typeof value !== "boolean") fail(`must be true or false (got ${describeValue(value)})`);
        break;
      case "duration": {
        let seconds = 0;
        try {
          if (typeof value !== "string" && typeof value !== "number") throw new RangeError();
          seconds = parseDuration(value);
        } catch {
          fail(`must be ${DURATION_EXAMPLES} (got ${describeValue(value)})`);
        }
        if (field.min !== undefined && seconds < field.min) {
          fail(`must be at least ${formatDuration(field.min)} (got ${describeValue(value)})`);
        }
        if (field.max !== undefined && seconds > field.max) {
          fail(`must be at most ${formatDuration(field.max)} (got ${describeValue(value)})`);
        }
        if (convert) result = seconds;
        break;
      }
      case "string[]": {
        if (!Array.isArray(value)) {
          fail(
            `must be a list of strings (got ${describeValue(value)})${
              typeof value === "string"
                ? `; a single string is not a list, write it as [${JSON.stringify(value)}]`
                : ""
            }`,
          );
        }
        const items = value as JsonValue[];
        items.forEach((item, index) => {
          if (typeof item !== "string") {
            throw new ConfigError(
              this.#source.locate(`${path}[${index}]`),
              `must be a string (got ${describeValue(item)})${
                typeof item === "number" || typeof item === "boolean"
                  ? `; put it in quotes: "${item}"`
                  : ""
              }`,
            );
          }
          if (field.enum) this.#checkEnum(`${path}[${index}]`, item, field.enum);
        });
        this.#checkRange(path, items.length, field, "items long", "a list");
        return items.slice();
      }
      case "object[]":
        return this.#checkEntries(path, value, field, convert);
    }
    if (field.enum) this.#checkEnum(path, value, field.enum);
    return result;
  }

  /** A list of mappings, each validated against `field.items` and located as `path[i].field`. */
  #checkEntries(path: string, value: JsonValue, field: FieldSchema, convert: boolean): JsonValue {
    const fields = Object.keys(field.items ?? {});
    if (!Array.isArray(value)) {
      throw new ConfigError(
        this.#source.locate(path),
        `must be a list of mappings (got ${describeValue(value)}); write one \`- { ${
          fields.slice(0, 2).map((name) => `${name}: …`).join(", ")
        } }\` per entry`,
      );
    }
    this.#checkRange(path, value.length, field, "items long", "a list");
    return value.map((item, index) => {
      const at = `${path}[${index}]`;
      const source: ConfigSource = {
        file: this.#source.file,
        locate: (name) => this.#source.locate(`${at}.${name}`),
      };
      if (!isObject(item)) {
        throw new ConfigError(
          this.#source.locate(at),
          `must be a mapping with ${fields.join(", ")} (got ${describeValue(item)})`,
        );
      }
      const entry = new Validator(field.items ?? {}, source, this.#options);
      return convert ? entry.run(item) : (entry.run(item), item);
    });
  }

  #checkRange(
    path: string,
    size: number,
    field: FieldSchema,
    unit: string,
    got: string,
  ): void {
    const problem = field.min === 1 && size === 0
      ? "must not be empty"
      : field.min !== undefined && size < field.min
      ? `must be at least ${field.min} ${unit}`
      : field.max !== undefined && size > field.max
      ? `must be at most ${field.max} ${unit}`
      : undefined;
    if (problem) {
      throw new ConfigError(
        this.#source.locate(path),
        size === 0 ? problem : `${problem} (got ${got}, ${size} ${unit.split(" ")[0]})`,
      );
    }
  }

  #checkEnum(path: string, value: JsonValue, allowed: readonly JsonValue[]): void {
    if (allowed.some((option) => option === value)) return;
    const words = allowed.filter((option): option is string => typeof option === "string");
    throw new ConfigError(
      this.#source.locate(path),
      `must be one of ${allowed.map((option) => JSON.stringify(option)).join(", ")} (got ${
        describeValue(value)
      })${typeof value === "string" ? suggestionSuffix(value, words) : ""}`,
    );
  }

  #resolvePath(path: string, text: string): string {
    let expanded = text;
    if (text === "~" || text.startsWith("~/")) {
      const home = this.#options.home ?? readHome();
      if (home === undefined) {
        throw new ConfigError(
          this.#source.locate(path),
          `cannot expand "~": the home directory is unknown; write the full path or run with --allow-env=HOME`,
        );
      }
      expanded = expandHome(text, home);
    }
    if (isAbsolute(expanded)) return expanded;
    const location = this.#source.locate(path);
    if (location.file.startsWith("--set ")) return expanded;
    if (this.#options.baseDir === undefined && isUrlLocation(location.file)) {
      // A built-in profile of a sandboxer imported by URL: nothing next to it is on this disk.
      throw new ConfigError(
        location,
        `is relative to a file that is not on this machine (${location.file}); copy that file (and what it refers to) into a directory on $SANDBOXER_PROFILE_PATH, or set an absolute path with --set ${path}=/…`,
      );
    }
    const baseDir = this.#options.baseDir ?? dirname(location.file);
    return join(baseDir, expanded);
  }
}

function describeInteger(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `an integer from ${min} to ${max}`;
  if (min !== undefined) return `an integer of at least ${min}`;
  if (max !== undefined) return `an integer of at most ${max}`;
  return "an integer";
}

function placeholder(field: FieldSchema): string {
  if (field.enum?.length) return field.enum.map((option) => String(option)).join("|");
  switch (field.type) {
    case "boolean":
      return "true|false";
    case "duration":
      return "<duration, e.g. 8h>";
    case "string[]":
      return "[<string>, …]";
    case "object[]":
      return "[{…}, …]";
    default:
      return `<${field.type}>`;
  }
}

function readHome(): string | undefined {
  return optionalEnv("HOME");
}
