/**
 * The record of a compose-ssh sandbox, and what it says about reaching its
 * compose project and docker engine again.
 *
 * @module
 */

import type { SshWorkspaceHandle } from "../ssh_workspace/handle.ts";
import type { ComposeProject } from "./compose.ts";
import { ID_SOURCE } from "../../core/ids.ts";
import { KEY_FILES } from "./keys.ts";

/** A compose project sandboxer made: `sbx-<id>`, the id captured. */
export const PROJECT_PATTERN = new RegExp(`^sbx-(${ID_SOURCE})$`);

/** The destroy handle of a compose-ssh sandbox: the SSH workspace's, plus the project. */
export type ComposeSshHandle = SshWorkspaceHandle & {
  /** Compose project name, `sbx-<id>`. */
  project: string;
  /** Absolute path of the compose file (for `compose.inline`, the copy in `key_dir`). */
  compose_file: string;
  /** `--project-directory`, or null for compose's default (the file's directory). */
  project_directory: string | null;
  /** The service attached to. */
  service: string;
  /** The compose program used: `["docker", "compose"]` or `["docker-compose"]`. */
  compose_command: string[];
  /** `DOCKER_HOST` at create, or null when unset (the default engine). */
  docker_host: string | null;
  /** `<stateDir>/keys/<id>`: generated keys, known_hosts, inline compose file. */
  key_dir: string;
  /** The variables compose interpolated at `up`, given again at `down`. */
  compose_env: { [name: string]: string };
};

/** The compose invocation a handle describes. */
export function composeProject(handle: ComposeSshHandle): ComposeProject {
  return {
    command: handle.compose_command,
    project: handle.project,
    file: handle.compose_file,
    projectDirectory: handle.project_directory ?? undefined,
    env: { ...handle.compose_env, ...dockerEnv(handle.docker_host) },
    origin: handle.compose_file === `${handle.key_dir}/${KEY_FILES.inlineCompose}`
      ? "compose.inline in the profile"
      : undefined,
  };
}

/** The environment that points docker at the engine recorded in the handle. */
export function dockerEnv(dockerHost: string | null): Record<string, string> {
  return dockerHost === null ? {} : { DOCKER_HOST: dockerHost };
}
