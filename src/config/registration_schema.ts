/**
 * The `config:` block of an extension registration: the schema its profile
 * fields are validated against.
 *
 * @module
 */

import { ConfigError } from "../core/errors.ts";
import { suggestionSuffix } from "./did_you_mean.ts";
import { describeValue, isObject } from "./json_values.ts";
import { FIELD_TYPES, Validator } from "./schema.ts";
import type { ConfigSchema, ConfigSource, FieldSchema, FieldType } from "./types.ts";

const SPEC_KEYS = [
  "type",
  "required",
  "default",
  "min",
  "max",
  "enum",
  "description",
  "items",
  "items_like",
] as const;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$/;

/**
 * Validate the `config:` block of an extension registration: each key is a
 * dotted field path mapped to `{ type, required?, default?, min?, max?,
 * enum?, description? }`. Defaults and `enum` values must match the type.
 * An `object[]` field (a list of mappings, such as a pool's `targets`) gives
 * its entries' fields as `items` (a nested `config:` block) and/or
 * `items_like: GROUP`, which gives each entry every `GROUP.*` field of this
 * schema (`items_like: target` → `host`, `port`, … with their defaults).
 *
 * @param raw The value of the registration's `config` key.
 * @param source Locates fields of the registration for error messages.
 * @returns The schema.
 * @throws {ConfigError} naming the bad entry, e.g. `config.target.port.type`.
 *
 * @example
 * ```ts
 * import { parseRegistrationSchema } from "./registration_schema.ts";
 * import { fileSource } from "./yaml_source.ts";
 * const schema = parseRegistrationSchema(
 *   { "target.port": { type: "port", default: 22 } },
 *   fileSource("ext.demo.yaml"),
 * );
 * console.log(schema["target.port"].type); // "port"
 * ```
 */
export function parseRegistrationSchema(raw: unknown, source: ConfigSource): ConfigSchema {
  if (raw === null || raw === undefined) return {};
  if (!isObject(raw)) {
    throw new ConfigError(
      source.locate("config"),
      `must be a mapping of field names to their schemas (got ${
        describeValue(raw)
      }); write e.g. \`target.host: {type: string, required: true}\``,
    );
  }
  const schema: Record<string, FieldSchema> = {};
  const itemsLike = new Map<string, string>();
  const checker = new Validator({}, source, {});
  for (const [name, spec] of Object.entries(raw)) {
    const at = `config.${name}`;
    if (!FIELD_NAME.test(name)) {
      throw new ConfigError(
        source.locate(at),
        `is not a valid field name; use letters, digits, "_" and "-", with "." between levels`,
      );
    }
    if (!isObject(spec)) {
      throw new ConfigError(
        source.locate(at),
        `must be a mapping such as \`{type: string}\` (got ${
          describeValue(spec)
        }); give at least its type`,
      );
    }
    for (const key of Object.keys(spec)) {
      if (!(SPEC_KEYS as readonly string[]).includes(key)) {
        throw new ConfigError(
          source.locate(`${at}.${key}`),
          `is not a schema property; use ${SPEC_KEYS.join(", ")}${
            suggestionSuffix(key, SPEC_KEYS)
          }`,
        );
      }
    }
    const type = spec.type;
    if (typeof type !== "string" || !(FIELD_TYPES as readonly string[]).includes(type)) {
      throw new ConfigError(
        source.locate(`${at}.type`),
        type === undefined || type === null
          ? `is required; add \`type: <${FIELD_TYPES.join("|")}>\``
          : `must be one of ${FIELD_TYPES.join(", ")} (got ${describeValue(type)})${
            typeof type === "string" ? suggestionSuffix(type, FIELD_TYPES) : ""
          }`,
      );
    }
    const field: FieldSchema = { type: type as FieldType };
    if (spec.required !== undefined && spec.required !== null) {
      if (typeof spec.required !== "boolean") {
        throw new ConfigError(
          source.locate(`${at}.required`),
          `must be true or false (got ${describeValue(spec.required)})`,
        );
      }
      field.required = spec.required;
    }
    if (spec.description !== undefined && spec.description !== null) {
      if (typeof spec.description !== "string") {
        throw new ConfigError(
          source.locate(`${at}.description`),
          `must be a string (got ${describeValue(spec.description)}); put it in quotes`,
        );
      }
      field.description = spec.description;
    }
    for (const bound of ["min", "max"] as const) {
      const value = spec[bound];
      if (value === undefined || value === null) continue;
      field[bound] = checker.bound(`${at}.${bound}`, field.type, value);
    }
    if (field.min !== undefined && field.max !== undefined && field.min > field.max) {
      throw new ConfigError(
        source.locate(`${at}.min`),
        `must not be larger than max (${field.min} > ${field.max}); swap or fix them`,
      );
    }
    if (spec.enum !== undefined && spec.enum !== null) {
      if (!Array.isArray(spec.enum) || spec.enum.length === 0) {
        throw new ConfigError(
          source.locate(`${at}.enum`),
          `must be a non-empty list of the allowed values (got ${describeValue(spec.enum)})`,
        );
      }
      const itemType: FieldType = field.type === "string[]" ? "string" : field.type;
      spec.enum.forEach((value, index) =>
        checker.check(`${at}.enum[${index}]`, value, { type: itemType }, false)
      );
      field.enum = spec.enum;
    }
    if (spec.default !== undefined && spec.default !== null) {
      checker.check(`${at}.default`, spec.default, field, false);
      if (field.required) {
        throw new ConfigError(
          source.locate(`${at}.required`),
          "cannot be true for a field with a default (the default makes it optional); drop one of them",
        );
      }
      field.default = spec.default;
    }
    if (spec.items !== undefined || spec.items_like !== undefined) {
      if (field.type !== "object[]") {
        throw new ConfigError(
          source.locate(`${at}.${spec.items !== undefined ? "items" : "items_like"}`),
          `applies only to fields of type object[] (this one is ${field.type}); remove it`,
        );
      }
      const itemsSource: ConfigSource = {
        file: source.file,
        locate: (f) => source.locate(f.replace(/^config/, `${at}.items`)),
      };
      field.items = parseRegistrationSchema(spec.items, itemsSource);
      if (spec.items_like !== undefined && spec.items_like !== null) {
        if (typeof spec.items_like !== "string") {
          throw new ConfigError(
            source.locate(`${at}.items_like`),
            `must be the name of a group of fields, e.g. target (got ${
              describeValue(spec.items_like)
            })`,
          );
        }
        itemsLike.set(name, spec.items_like);
      }
    }
    schema[name] = field;
  }
  for (const [name, group] of itemsLike) {
    const copied = Object.entries(schema)
      .filter(([other]) => other.startsWith(`${group}.`))
      .map(([other, spec]) => [other.slice(group.length + 1), spec] as const);
    if (!copied.length) {
      throw new ConfigError(
        source.locate(`config.${name}.items_like`),
        `names ${JSON.stringify(group)}, but no field of this schema starts with "${group}."`,
      );
    }
    schema[name] = {
      ...schema[name],
      items: { ...Object.fromEntries(copied), ...schema[name].items },
    };
  }
  for (const name of Object.keys(schema)) {
    const segments = name.split(".");
    for (let length = 1; length < segments.length; length++) {
      const group = segments.slice(0, length).join(".");
      if (Object.hasOwn(schema, group)) {
        throw new ConfigError(
          source.locate(`config.${name}`),
          `cannot be inside "${group}", which is itself a field; rename one of them`,
        );
      }
    }
  }
  return schema;
}
