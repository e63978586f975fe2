/**
 * Shapes of the YAML files sandboxer reads: profiles and extension
 * registrations, and the small schema language registrations use to describe
 * an extension's configuration.
 *
 * @module
 */

import type { JsonObject, JsonValue } from "../core/types.ts";
import type { ConfigLocation } from "../core/errors.ts";

/** Types a configuration field may have. `path` is a string with `~/` expanded. */
export type FieldType =
  | "string"
  | "path"
  | "integer"
  | "port"
  | "boolean"
  | "duration"
  | "string[]"
  | "object[]";

/** One field of a {@linkcode ConfigSchema}. */
export interface FieldSchema {
  /** The value's type. */
  type: FieldType;
  /** Whether the field must be given. */
  required?: boolean;
  /** Value used when the field is absent. */
  default?: JsonValue;
  /** Smallest allowed value (integers) or length (strings). */
  min?: number;
  /** Largest allowed value (integers) or length (strings). */
  max?: number;
  /** Allowed values. */
  enum?: readonly JsonValue[];
  /** One line for `sandboxer extensions` and error messages. */
  description?: string;
  /** For `object[]`: the fields of each entry (dotted paths, as in a {@linkcode ConfigSchema}). */
  items?: ConfigSchema;
}

/**
 * An extension's configuration schema: dotted field paths (`target.port`) to
 * their schemas. Intermediate objects are implied by the paths.
 */
export type ConfigSchema = { readonly [dottedPath: string]: FieldSchema };

/**
 * Where values of a parsed YAML document came from, so an error can name the
 * file, line, column and field.
 */
export interface ConfigSource {
  /** The file the document was read from (as given by the user). */
  readonly file: string;
  /** Locate a dotted field path (`target.port`), falling back to its nearest located parent. */
  locate(field: string): ConfigLocation;
}

/** Permissions an extension's registration declares for its own code. */
export interface DeclaredPermissions {
  /** Hosts (`host:port`), may use `{placeholders}` filled from the profile. */
  net?: string[];
  /** Programs it may run. */
  run?: string[];
  /** Paths it may read. */
  read?: string[];
  /** Paths it may write. */
  write?: string[];
  /** Environment variables it may read. */
  env?: string[];
}

/** A validated `extensions/ext.<name>.yaml`. */
export interface ExtensionRegistration {
  /** `ext.<name>`. */
  id: string;
  /** The extension's version (semver). */
  version: string;
  /** One line. */
  description: string;
  /** Module specifier as written: a path relative to the YAML file, or a URL. */
  module: string;
  /** The module resolved to an absolute `file:` or remote URL. */
  moduleUrl: string;
  /** Name of the exported class. */
  export: string;
  /** What the extension's code may touch. */
  permissions: DeclaredPermissions;
  /** Schema of the extension's configuration in a profile. */
  config: ConfigSchema;
  /** The YAML file this came from. */
  file: string;
  /** True for the extensions shipped with sandboxer (statically imported). */
  builtin: boolean;
}

/** A profile's `sync` section. */
export interface SyncSettings {
  /** Local directory to sync by default (relative paths are relative to the working directory). */
  source?: string;
  /** rsync exclude patterns. */
  exclude: string[];
  /** Leave out what git ignores (in a git work tree), else what `.gitignore` files name. */
  gitignore: boolean;
  /** Send `.git` directories too (`sync.include_git`); absent in records made before it existed. */
  includeGit?: boolean;
  /** Warm workspaces: `source` (default), `workspace` or `off`; absent in older records. */
  seed?: "source" | "workspace" | "off";
  /** `sync.seed_max_mb`: the seeds of one remote user per workspace root take at most this. */
  seedMaxMb?: number;
  /** `sync.seed_ttl` in seconds: a seed not updated for this long is reaped. */
  seedTtlSeconds?: number;
}

/** A validated profile. */
export interface Profile {
  /** `profile.<name>`. */
  id: string;
  /** `<name>`. */
  name: string;
  /** The file it came from. */
  file: string;
  /** One line. */
  description?: string;
  /** Id of the extension that makes it. */
  extension: string;
  /** Everything else at top level: the extension's configuration, not yet validated by it. */
  config: JsonObject;
  /** Sync settings. */
  sync: SyncSettings;
  /** Shell commands run in the workspace after create (and sync). */
  setup: string[];
  /** `NAME=value` pairs set for setup commands and every exec. */
  env: string[];
  /** Lifetime in seconds; `gc` destroys the sandbox after it. */
  ttlSeconds?: number;
  /** `snapshot_ttl` in seconds: how long a snapshot of its sandboxes is kept by default. */
  snapshotTtlSeconds?: number;
  /** Locations of every value, for error messages. */
  source: ConfigSource;
}
