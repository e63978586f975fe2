/**
 * Errors of configuration: invalid files, missing profiles, extension registrations.
 *
 * @module
 */

import { SandboxerError } from "./codes.ts";

/** Where in a configuration file (or command-line override) a value came from. */
export interface ConfigLocation {
  /** File path, or `"--set"` for a command-line override. */
  file: string;
  /** 1-based line, when known. */
  line?: number;
  /** 1-based column, when known. */
  column?: number;
  /** Dotted path of the field, such as `target.port`. */
  field?: string;
}

/**
 * A profile, registration or other YAML file is invalid. The message starts
 * with `file:line:column` and names the field.
 *
 * @example
 * ```ts
 * import { ConfigError } from "@sandboxer/sandboxer/errors";
 * const error = new ConfigError({ file: "p.yaml", line: 3, column: 9, field: "target.port" },
 *   "must be an integer from 1 to 65535 (got \"abc\")");
 * console.log(error.message); // p.yaml:3:9: target.port: must be an integer from 1 to 65535 (got "abc")
 * ```
 */
export class ConfigError extends SandboxerError {
  /** Where the bad value is. */
  readonly location: ConfigLocation;
  /** The problem alone, without the location prefix. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param location File, line, column and field of the bad value.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options.
   */
  constructor(location: ConfigLocation, problem: string, options?: ErrorOptions) {
    super("CONFIG_INVALID", `${formatLocation(location)}: ${problem}`, options);
    this.location = location;
    this.problem = problem;
  }
}

/** Render a location as `file:line:col: field`. */
export function formatLocation(location: ConfigLocation): string {
  let text = location.file;
  if (location.line !== undefined) {
    text += `:${location.line}`;
    if (location.column !== undefined) text += `:${location.column}`;
  }
  if (location.field) text += `: ${location.field}`;
  return text;
}

/**
 * No profile of that name is on the search path.
 *
 * @example
 * ```ts
 * import { ProfileNotFoundError } from "@sandboxer/sandboxer/errors";
 * console.log(new ProfileNotFoundError("dev", ["profiles"]).code); // "PROFILE_NOT_FOUND"
 * ```
 */
export class ProfileNotFoundError extends SandboxerError {
  /** The name or path that was asked for. */
  readonly profile: string;
  /** The directories searched. */
  readonly searched: readonly string[];
  /**
   * Create it.
   *
   * @param name The name or path that was asked for.
   * @param searched The directories searched.
   */
  constructor(name: string, searched: readonly string[]) {
    super(
      "PROFILE_NOT_FOUND",
      `Cannot find profile "${name}": searched ${
        searched.length ? searched.join(", ") : "no directories"
      }; pass a file path or add its directory to $SANDBOXER_PROFILE_PATH`,
    );
    this.profile = name;
    this.searched = searched;
  }
}

/**
 * No registered extension has that id, or its module could not be loaded.
 *
 * @example
 * ```ts
 * import { ExtensionError } from "@sandboxer/sandboxer/errors";
 * console.log(new ExtensionError("ext.nope", "is not registered").message);
 * ```
 */
export class ExtensionError extends SandboxerError {
  /** The extension id concerned. */
  readonly extensionId: string;
  /** The problem alone, without the `Extension "<id>"` prefix. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param extensionId The extension id.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options.
   */
  constructor(extensionId: string, problem: string, options?: ErrorOptions) {
    super("EXTENSION", `Extension "${extensionId}" ${problem}`, options);
    this.extensionId = extensionId;
    this.problem = problem;
  }
}
