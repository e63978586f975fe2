/**
 * Extension registrations: `extensions/ext.<name>.yaml` files saying where an
 * extension's code is, what it may touch and what configuration it takes.
 *
 * @module
 */

import { basename, normalize, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../core/errors.ts";
import {
  configFilePath,
  type EmbeddedDir,
  isUrlLocation,
  readConfigDir,
  readConfigFile,
} from "./files.ts";
import { describeValue } from "./json_values.ts";
import { parseRegistrationSchema } from "./registration_schema.ts";
import { validateConfig } from "./schema.ts";
import type {
  ConfigSchema,
  ConfigSource,
  DeclaredPermissions,
  ExtensionRegistration,
} from "./types.ts";
import type { JsonValue } from "../core/types.ts";
import { parseYamlDocument } from "./yaml_source.ts";
import { BUILTIN_REGISTRATION_DATA } from "./builtin_registration_data.ts";

/** What an extension id looks like: `ext.` then lower-case letters, digits, `-` and `_`. */
export const EXTENSION_ID_PATTERN: RegExp = /^ext\.[a-z0-9][a-z0-9_-]*$/;

const REGISTRATION_FILE = /^ext\..+\.ya?ml$/;
const SEMVER = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const MODULE_PROTOCOLS = ["https:", "http:", "file:"];
const PERMISSION_KINDS = ["net", "run", "read", "write", "env"] as const;

const REGISTRATION_SCHEMA: ConfigSchema = {
  id: { type: "string", required: true, description: "ext.<name>, as in the file name" },
  description: { type: "string", required: true, min: 1, description: "one line" },
  module: {
    type: "string",
    required: true,
    min: 1,
    description: "path relative to this file, or a URL",
  },
  export: { type: "string", required: true, description: "the exported class name" },
  ...Object.fromEntries(
    PERMISSION_KINDS.map((kind) => [`permissions.${kind}`, { type: "string[]" as const }]),
  ),
};

/** Options for {@linkcode parseRegistration}. */
export interface ParseRegistrationOptions {
  /** Whether this registration ships with sandboxer. */
  builtin: boolean;
}

/** Options for {@linkcode loadRegistrations}. */
export interface LoadRegistrationsOptions {
  /** The directory of the built-in registrations; those found there are `builtin`. */
  builtinDir?: string;
  /** Directories held in memory (the built-in one), read instead of the disk. */
  embedded?: readonly EmbeddedDir[];
}

/** The result of {@linkcode loadRegistrations}. */
export interface LoadedRegistrations {
  /** The valid registrations, the first of each id. */
  registrations: ExtensionRegistration[];
  /** One error per broken file or duplicate id. */
  errors: ConfigError[];
}

/**
 * Parse and validate one registration file.
 *
 * @param file Path of the YAML file (its name must be `<id>.yaml`); a
 * relative `module` is resolved against its directory.
 * @param text The file's contents.
 * @param options Whether it is built in.
 * @returns The registration, with `moduleUrl` an absolute URL.
 * @throws {ConfigError} naming the bad field, with line and column.
 *
 * @example
 * ```ts
 * import { parseRegistration } from "./registration.ts";
 * const registration = parseRegistration("/opt/ext/ext.demo.yaml", [
 *   "id: ext.demo",
 *   "version: 1.0.0",
 *   "description: Demo backend",
 *   "module: ./demo.ts",
 *   "export: DemoExtension",
 * ].join("\n"), { builtin: false });
 * console.log(registration.moduleUrl); // "file:///opt/ext/demo.ts"
 * ```
 */
export function parseRegistration(
  file: string,
  text: string,
  options: ParseRegistrationOptions,
): ExtensionRegistration {
  return parseWithSource(file, text, options.builtin).registration;
}

/**
 * Read every `ext.*.yaml` (or `.yml`) file in each directory. The first
 * registration of an id wins; a later one with the same id is reported as an
 * error naming both files. A broken file is reported without hiding the
 * others; a missing directory is skipped.
 *
 * @param dirs Directories to read, built-in first.
 * @param options Which directory holds the built-in registrations.
 * @returns The registrations and the problems found.
 *
 * @example
 * ```ts ignore
 * import { loadRegistrations } from "./registration.ts";
 * const { registrations, errors } = await loadRegistrations(["./extensions"], {
 *   builtinDir: "./extensions",
 * });
 * console.log(registrations.map((r) => r.id), errors.length);
 * ```
 */
export async function loadRegistrations(
  dirs: readonly string[],
  options: LoadRegistrationsOptions = {},
): Promise<LoadedRegistrations> {
  const registrations: ExtensionRegistration[] = [];
  const errors: ConfigError[] = [];
  const byId = new Map<string, ExtensionRegistration>();
  const builtinDir = options.builtinDir === undefined ? undefined : samePathKey(options.builtinDir);
  for (const dir of dirs) {
    const builtin = builtinDir !== undefined && samePathKey(dir) === builtinDir;
    const listing = await readConfigDir(dir, options.embedded);
    if (listing instanceof ConfigError) {
      errors.push(listing);
      continue;
    }
    const names = (listing ?? []).filter((name) => REGISTRATION_FILE.test(name)).sort();
    for (const name of names) {
      const file = configFilePath(dir, name);
      try {
        const text = await readConfigFile(file, options.embedded);
        if (text === undefined) continue; // removed while we were listing
        const parsed = builtin ? BUILTIN_REGISTRATION_DATA[name] : undefined;
        const { registration, source } = parseWithSource(file, text, builtin, parsed);
        const first = byId.get(registration.id);
        if (first) {
          errors.push(
            new ConfigError(
              source.locate("id"),
              `duplicates ${
                JSON.stringify(registration.id)
              }, already registered by ${first.file}; remove one of the two files or change this id`,
            ),
          );
          continue;
        }
        byId.set(registration.id, registration);
        registrations.push(registration);
      } catch (error) {
        if (error instanceof ConfigError) errors.push(error);
        else throw error;
      }
    }
  }
  return { registrations, errors };
}

/** A source that parses its YAML only when a location is asked for (to report an error). */
function lazySource(file: string, text: string): ConfigSource {
  let parsed: ConfigSource | undefined;
  return {
    file,
    locate: (field) => (parsed ??= parseYamlDocument(file, text).source).locate(field),
  };
}

function parseWithSource(
  file: string,
  text: string,
  builtin: boolean,
  parsed?: { readonly text: string; readonly data: JsonValue },
): { registration: ExtensionRegistration; source: ConfigSource } {
  // A built-in file exactly as it was parsed ahead of time needs no YAML parse.
  const { data, source } = parsed?.text === text
    ? { data: structuredClone(parsed.data), source: lazySource(file, text) }
    : parseYamlDocument(file, text);
  if (data === null) {
    throw new ConfigError(
      { file },
      "is empty; a registration needs id, version, description, module and export",
    );
  }
  const valid = validateConfig(data as never, REGISTRATION_SCHEMA, source, {
    passthrough: ["version", "config"],
  });
  const fail = (field: string, problem: string): never => {
    throw new ConfigError(source.locate(field), problem);
  };

  const id = valid.id as string;
  if (!EXTENSION_ID_PATTERN.test(id)) {
    fail(
      "id",
      `must be "ext." then lower-case letters, digits, "-" or "_" (got ${
        describeValue(id)
      }); e.g. "ext.vm-packer"`,
    );
  }
  const stem = basename(file).replace(/\.ya?ml$/, "");
  if (stem !== id) {
    fail(
      "id",
      `must match the file name ${basename(file)}, which expects "${stem}" (got ${
        JSON.stringify(id)
      }); rename the file to ${id}.yaml or change the id`,
    );
  }

  const version: JsonValue | undefined = valid.version;
  if (version === undefined) fail("version", "is required; add `version: 1.0.0`");
  if (typeof version !== "string" || !SEMVER.test(version)) {
    fail(
      "version",
      `must be a semantic version x.y.z such as "1.0.0" (got ${describeValue(version)})${
        typeof version === "number" ? "; write all three parts" : ""
      }`,
    );
  }

  const module = valid.module as string;
  let moduleUrl: string;
  if (URL_SCHEME.test(module)) {
    let url: URL | undefined;
    try {
      url = new URL(module);
    } catch {
      // reported below
    }
    if (!url || !MODULE_PROTOCOLS.includes(url.protocol)) {
      fail(
        "module",
        `must be a path relative to this file or an https:, http: or file: URL (got ${
          describeValue(module)
        })`,
      );
    }
    moduleUrl = url!.href;
  } else {
    moduleUrl = new URL(module, isUrlLocation(file) ? file : pathToFileURL(resolve(file))).href;
  }

  const exportName = valid.export as string;
  if (!IDENTIFIER.test(exportName)) {
    fail(
      "export",
      `must be the name of the exported class, a JavaScript identifier (got ${
        describeValue(exportName)
      }); e.g. "VmPackerExtension"`,
    );
  }

  const permissions: DeclaredPermissions = {};
  const declared = (valid.permissions ?? {}) as Record<string, string[]>;
  for (const kind of PERMISSION_KINDS) {
    if (declared[kind] !== undefined) permissions[kind] = declared[kind];
  }

  const raw = data as Record<string, unknown>;
  const config = parseRegistrationSchema(raw.config, source);

  return {
    registration: {
      id,
      version: version as string,
      description: valid.description as string,
      module,
      moduleUrl,
      export: exportName,
      permissions,
      config,
      file,
      builtin,
    },
    source,
  };
}

function samePathKey(path: string): string {
  if (isUrlLocation(path)) return path.replace(/\/+$/, "");
  return normalize(resolve(path)).replace(/\/+$/, "");
}
