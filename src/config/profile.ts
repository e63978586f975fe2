/**
 * Profiles: `profiles/<name>.yaml` files naming an extension and holding its
 * configuration, plus sync settings, setup commands and a lifetime.
 *
 * @module
 */

import { optionalEnv } from "../core/permissions.ts";
import { basename, isAbsolute, join } from "node:path";
import { ConfigError, PermissionError, ProfileNotFoundError } from "../core/errors.ts";
import { configFilePath, type EmbeddedDir, readConfigDir, readConfigFile } from "./files.ts";
import { applyOverrides } from "./overrides.ts";
import { EXTENSION_ID_PATTERN } from "./registration.ts";
import { describeValue } from "./json_values.ts";
import { expandHome, type SharedConfigSource, validateConfig } from "./schema.ts";
import type { ConfigSchema, Profile } from "./types.ts";
import type { JsonObject } from "../core/types.ts";
import { parseYamlDocument, withOverrides } from "./yaml_source.ts";
import { MAX_TTL_SECONDS } from "./duration.ts";

/** Top-level profile keys that belong to sandboxer; every other key is the extension's. */
export const PROFILE_KEYS: readonly string[] = [
  "id",
  "description",
  "extension",
  "sync",
  "setup",
  "env",
  "ttl",
  "snapshot_ttl",
];

const PROFILE_SCHEMA: ConfigSchema = {
  id: { type: "string", required: true, description: "profile.<name>, as in the file name" },
  description: { type: "string" },
  extension: { type: "string", required: true, description: "the extension id, ext.<name>" },
  "sync.source": { type: "string", min: 1 },
  "sync.exclude": { type: "string[]", default: [] },
  "sync.gitignore": { type: "boolean", default: true },
  "sync.include_git": { type: "boolean", default: false, description: "send .git too" },
  "sync.seed": {
    type: "string",
    default: "source",
    enum: ["source", "workspace", "off"],
    description: "start new sandboxes from a copy on the host (docs/warm-workspaces.md)",
  },
  "sync.seed_max_mb": { type: "integer", default: 4096, min: 1, max: 1048576 },
  "sync.seed_ttl": { type: "duration", default: "7d", min: 60, max: MAX_TTL_SECONDS },
  setup: { type: "string[]", default: [] },
  env: { type: "string[]", default: [], description: "NAME=value pairs for setup and exec" },
  ttl: { type: "duration", min: 1, max: MAX_TTL_SECONDS },
  snapshot_ttl: {
    type: "duration",
    default: "7d",
    min: 60,
    max: MAX_TTL_SECONDS,
    description: "how long `sandboxer snapshot` keeps a snapshot (docs/snapshots.md)",
  },
};

const ENV_ENTRY = /^[A-Za-z_][A-Za-z0-9_]*=/;

const PROFILE_FILE = /\.ya?ml$/;

/** Options for {@linkcode profileSearchPath}. */
export interface ProfileSearchPathOptions {
  /** The directory of the built-in profiles. */
  builtinDir: string;
  /** The value of `$SANDBOXER_PROFILE_PATH`: directories separated by `:`. */
  env?: string;
}

/** Options for {@linkcode parseProfile}. */
export interface ParseProfileOptions {
  /** `--set dotted.path=value` overrides, applied before validation. */
  overrides?: readonly string[];
  /** Home directory for `~/` in `sync.source`; defaults to `$HOME` when readable. */
  home?: string;
}

/** Options for {@linkcode loadProfile}. */
export interface LoadProfileOptions extends ParseProfileOptions {
  /** Directories searched for `<name>.yaml`, in order. */
  searchPath: readonly string[];
  /** Directories of the search path held in memory (the built-in one), read instead of the disk. */
  embedded?: readonly EmbeddedDir[];
  /** Directory that a relative profile path is relative to. */
  cwd?: string;
}

/** The result of {@linkcode listProfiles}. */
export interface ListedProfiles {
  /** The valid profiles, sorted by name; the first of each name on the search path. */
  profiles: Profile[];
  /** One error per broken file or unreadable directory. */
  errors: ConfigError[];
}

/**
 * The directories searched for profiles: the built-in directory first, then
 * each entry of `$SANDBOXER_PROFILE_PATH` (empty entries and repeats dropped).
 *
 * @param options The built-in directory and the variable's value.
 * @returns The directories in search order.
 *
 * @example
 * ```ts
 * import { profileSearchPath } from "./profile.ts";
 * console.log(profileSearchPath({ builtinDir: "/opt/sbx/profiles", env: "/etc/sbx:" }));
 * // ["/opt/sbx/profiles", "/etc/sbx"]
 * ```
 */
export function profileSearchPath(options: ProfileSearchPathOptions): string[] {
  const dirs = [options.builtinDir, ...(options.env ?? "").split(":")]
    .map((dir) => dir.trim())
    .filter((dir) => dir !== "");
  return [...new Set(dirs)];
}

/**
 * Parse and validate a profile's text. The extension's fields (every
 * top-level key except {@linkcode PROFILE_KEYS}) are collected into
 * `config` unvalidated: the extension validates them.
 *
 * @param file Path of the file; its name (`<name>.yaml`) must match `id`.
 * @param text The file's contents.
 * @param options Overrides and home directory.
 * @returns The profile.
 * @throws {ConfigError} naming the bad field (or `--set` flag), line and column.
 * @throws {UsageError} for a malformed override.
 *
 * @example
 * ```ts
 * import { parseProfile } from "./profile.ts";
 * const profile = parseProfile(
 *   "profiles/dev.yaml",
 *   "id: profile.dev\nextension: ext.vm-packer\ntarget:\n  host: build1\nttl: 8h\n",
 *   { overrides: ["target.port=2222"] },
 * );
 * console.log(profile.ttlSeconds, profile.config); // 28800 { target: { host: "build1", port: 2222 } }
 * ```
 */
export function parseProfile(
  file: string,
  text: string,
  options: ParseProfileOptions = {},
): Profile {
  const parsed = parseYamlDocument(file, text);
  if (parsed.data === null) {
    throw new ConfigError(
      { file },
      "is empty; a profile needs at least `id: profile.<name>` and `extension: ext.<name>`",
    );
  }
  if (typeof parsed.data !== "object" || Array.isArray(parsed.data)) {
    throw new ConfigError(
      { file },
      `must be a mapping of fields (got ${
        describeValue(parsed.data)
      }); start it with \`id: profile.<name>\``,
    );
  }
  const { data, fields } = applyOverrides(parsed.data as JsonObject, options.overrides ?? []);
  const located = withOverrides(parsed.source, fields);
  // The extension validates `config` with this source: its "did you mean"
  // then also offers the profile's own keys (`setpu` → `setup`).
  const source: SharedConfigSource = {
    file: located.file,
    locate: (field) => located.locate(field),
    reservedFields: PROFILE_KEYS,
  };

  const own: JsonObject = {};
  const config: JsonObject = {};
  for (const [key, value] of Object.entries(data)) {
    Object.defineProperty(PROFILE_KEYS.includes(key) ? own : config, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  const valid = validateConfig(own, PROFILE_SCHEMA, source);

  const name = basename(file).replace(PROFILE_FILE, "");
  const id = valid.id as string;
  if (id !== `profile.${name}`) {
    throw new ConfigError(
      source.locate("id"),
      `must be "profile.${name}" to match the file name ${basename(file)} (got ${
        JSON.stringify(id)
      }); change the id or rename the file`,
    );
  }

  const extension = valid.extension as string;
  if (!EXTENSION_ID_PATTERN.test(extension)) {
    const fixed = `ext.${
      extension.toLowerCase().replace(/^ext\./, "").replace(/[^a-z0-9_-]+/g, "-")
    }`;
    throw new ConfigError(
      source.locate("extension"),
      `must be an extension id like "ext.vm-packer" (got ${JSON.stringify(extension)})${
        EXTENSION_ID_PATTERN.test(fixed) ? `; did you mean ${JSON.stringify(fixed)}?` : ""
      }`,
    );
  }

  const env = valid.env as string[];
  env.forEach((entry, index) => {
    if (!ENV_ENTRY.test(entry)) {
      throw new ConfigError(
        source.locate(`env[${index}]`),
        `must be NAME=value with NAME of letters, digits and _ (got ${JSON.stringify(entry)})`,
      );
    }
  });

  const sync = (valid.sync ?? {}) as JsonObject;
  let syncSource = sync.source as string | undefined;
  if (syncSource?.startsWith("~")) {
    const home = options.home ?? readHome();
    if (home !== undefined) syncSource = expandHome(syncSource, home);
  }

  const profile: Profile = {
    id,
    name,
    file,
    extension,
    config,
    sync: {
      exclude: (sync.exclude ?? []) as string[],
      gitignore: (sync.gitignore ?? true) as boolean,
      includeGit: (sync.include_git ?? false) as boolean,
      seed: (sync.seed ?? "source") as "source" | "workspace" | "off",
      seedMaxMb: (sync.seed_max_mb ?? 4096) as number,
      seedTtlSeconds: (sync.seed_ttl ?? 7 * 86400) as number,
    },
    setup: valid.setup as string[],
    env,
    source,
  };
  if (syncSource !== undefined) profile.sync.source = syncSource;
  if (valid.description !== undefined) profile.description = valid.description as string;
  if (valid.ttl !== undefined) profile.ttlSeconds = valid.ttl as number;
  profile.snapshotTtlSeconds = (valid.snapshot_ttl ?? 7 * 86400) as number;
  return profile;
}

/**
 * Load a profile by name or by path.
 *
 * A value containing `/` or ending in `.yaml`/`.yml` is a file path
 * (relative to `cwd` when given). Anything else is a name, with or without the
 * `profile.` prefix, looked up as `<dir>/<name>.yaml`, then `<dir>/<name>.yml`,
 * in each directory of the search path.
 *
 * @param nameOrPath A profile name (`dev`, `profile.dev`) or a file path.
 * @param options Search path, overrides and working directory.
 * @returns The profile.
 * @throws {ProfileNotFoundError} when no such profile exists.
 * @throws {PermissionError} when Deno may not read the file.
 * @throws {ConfigError} when the file is invalid.
 * @throws {UsageError} for a malformed override.
 *
 * @example
 * ```ts ignore
 * import { loadProfile } from "./profile.ts";
 * const profile = await loadProfile("dev", {
 *   searchPath: ["./profiles"],
 *   overrides: ["target.port=2222"],
 * });
 * console.log(profile.extension);
 * ```
 */
export async function loadProfile(
  nameOrPath: string,
  options: LoadProfileOptions,
): Promise<Profile> {
  if (nameOrPath.includes("/") || PROFILE_FILE.test(nameOrPath)) {
    const file = options.cwd && !isAbsolute(nameOrPath)
      ? join(options.cwd, nameOrPath)
      : nameOrPath;
    const text = await readConfigFile(file);
    if (text === undefined) throw new ProfileNotFoundError(nameOrPath, [file]);
    return parseProfile(file, text, options);
  }
  const name = nameOrPath.replace(/^profile\./, "");
  if (name !== "") {
    for (const dir of options.searchPath) {
      for (const extension of [".yaml", ".yml"]) {
        const file = configFilePath(dir, `${name}${extension}`);
        const text = await readConfigFile(file, options.embedded);
        if (text !== undefined) return parseProfile(file, text, options);
      }
    }
  }
  throw new ProfileNotFoundError(nameOrPath, options.searchPath);
}

/**
 * Load every profile on the search path. The first file of each name wins
 * (`.yaml` before `.yml`); a broken file is reported in `errors` without
 * hiding the healthy ones; a missing directory is skipped.
 *
 * @param searchPath Directories to read, in order.
 * @param embedded Directories of the search path held in memory (the built-in one).
 * @returns The profiles and the problems found.
 *
 * @example
 * ```ts ignore
 * import { listProfiles } from "./profile.ts";
 * const { profiles, errors } = await listProfiles(["./profiles"]);
 * for (const profile of profiles) console.log(profile.name, profile.description ?? "");
 * for (const error of errors) console.error(error.message);
 * ```
 */
export async function listProfiles(
  searchPath: readonly string[],
  embedded: readonly EmbeddedDir[] = [],
): Promise<ListedProfiles> {
  const profiles: Profile[] = [];
  const errors: ConfigError[] = [];
  const seen = new Set<string>();
  for (const dir of searchPath) {
    const listing = await readConfigDir(dir, embedded);
    if (listing instanceof ConfigError) {
      errors.push(listing);
      continue;
    }
    const files = (listing ?? []).filter((name) => PROFILE_FILE.test(name)).sort((a, b) => {
      const [stemA, stemB] = [a, b].map((name) => name.replace(PROFILE_FILE, ""));
      return stemA === stemB ? (a.endsWith(".yaml") ? -1 : 1) : stemA < stemB ? -1 : 1;
    });
    for (const entry of files) {
      const name = entry.replace(PROFILE_FILE, "");
      if (seen.has(name)) continue;
      seen.add(name);
      const file = configFilePath(dir, entry);
      try {
        const text = await readConfigFile(file, embedded);
        if (text !== undefined) profiles.push(parseProfile(file, text));
      } catch (error) {
        if (error instanceof ConfigError) {
          errors.push(error);
        } else if (error instanceof PermissionError) {
          errors.push(
            new ConfigError({ file }, `cannot be read; run again with ${error.flag}`, {
              cause: error,
            }),
          );
        } else {
          throw error;
        }
      }
    }
  }
  profiles.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { profiles, errors };
}

function readHome(): string | undefined {
  return optionalEnv("HOME");
}
