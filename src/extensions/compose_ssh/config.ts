/**
 * The profile configuration of `ext.compose-ssh`: its type, and the checks
 * beyond the registration's schema (one of `compose.file` and
 * `compose.inline`, paths resolved, env entries well formed).
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { isFile } from "../../core/fs.ts";
import { ConfigError } from "../../core/errors.ts";
import type { ConfigSource } from "../../config/types.ts";
import { workspaceRootProblem } from "../ssh_workspace/workspace_path.ts";
import { parseEnvEntries } from "./environment.ts";

/** A profile's configuration for `ext.compose-ssh`, after validation. */
export interface ComposeSshConfig {
  /** The compose project. */
  compose: {
    /** Absolute path of the compose file (exclusive with `inline`). */
    file?: string;
    /** The compose file's text (exclusive with `file`). */
    inline?: string;
    /** The service to attach to. */
    service: string;
    /** Absolute directory relative paths in the compose file resolve against. */
    project_directory?: string;
    /** Extra `NAME=value` variables for compose's interpolation. */
    env: string[];
  };
  /** How to reach the service. */
  ssh: {
    host: string;
    port?: number;
    user: string;
    identity_file?: string;
    passphrase_env?: string;
    known_hosts?: string;
    /** Seconds. */
    connect_timeout: number;
    /** Seconds. */
    keepalive_interval: number;
  };
  /** Where workspaces go inside the service. */
  workspace: { root: string };
  /** Seconds to wait for the service's SSH to answer. */
  ready_timeout: number;
}

/**
 * Check what the schema cannot and resolve the paths of a schema-valid
 * configuration.
 *
 * @param config The configuration the schema accepted (changed in place).
 * @param source Locations, for errors.
 * @returns The same configuration, its paths absolute.
 * @throws {ConfigError} naming file, line and field.
 */
export function checkComposeSshConfig(
  config: ComposeSshConfig,
  source: ConfigSource,
): ComposeSshConfig {
  const { compose, ssh } = config;
  if ((compose.file === undefined) === (compose.inline === undefined)) {
    throw new ConfigError(
      source.locate(compose.file === undefined ? "compose" : "compose.inline"),
      compose.file === undefined
        ? "needs the compose project: set compose.file (a path relative to the profile) or compose.inline (the YAML itself)"
        : "cannot be set together with compose.file; keep one of them",
    );
  }
  if (compose.file !== undefined) {
    compose.file = resolve(compose.file);
    if (!isFile(compose.file)) {
      throw new ConfigError(
        source.locate("compose.file"),
        `is not a file (${compose.file}); give the compose file's path relative to the profile`,
      );
    }
  } else if (compose.inline!.trim() === "") {
    throw new ConfigError(source.locate("compose.inline"), "is empty; write the compose YAML");
  }
  if (compose.project_directory !== undefined) {
    compose.project_directory = resolve(compose.project_directory);
  } else if (compose.inline !== undefined) {
    // An inline file is written to the state directory; its relative paths mean the profile's.
    compose.project_directory = dirname(resolve(source.file));
  }
  try {
    parseEnvEntries(compose.env);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    throw new ConfigError(source.locate("compose.env"), error.message);
  }
  if (ssh.passphrase_env !== undefined && ssh.identity_file === undefined) {
    throw new ConfigError(
      source.locate("ssh.passphrase_env"),
      "only applies to ssh.identity_file; set that too, or remove it (generated keys have no passphrase)",
    );
  }
  if (ssh.identity_file !== undefined) ssh.identity_file = resolve(ssh.identity_file);
  if (ssh.known_hosts !== undefined) ssh.known_hosts = resolve(ssh.known_hosts);
  const problem = workspaceRootProblem(config.workspace.root);
  if (problem) throw new ConfigError(source.locate("workspace.root"), problem);
  return config;
}
