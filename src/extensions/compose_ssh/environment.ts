/**
 * The variables `ext.compose-ssh` gives compose for interpolation: how the
 * compose file learns its port, login user and keys. They travel in the
 * environment of the compose process, never on a command line.
 *
 * @module
 */

/** What {@linkcode composeEnvironment} is built from. */
export interface ComposeEnvironmentInput {
  /** The profile's `compose.env`, parsed. */
  user: Record<string, string>;
  /** Sandbox id. */
  id: string;
  /** Project name, `sbx-<id>`. */
  project: string;
  /** The SSH port the service must listen on. */
  port: number;
  /** Login user. */
  sshUser: string;
  /** Public key line allowed to log in. */
  authorizedKey: string;
  /** Host path of the generated private host key, or "" when the service keeps its own. */
  hostKeyFile: string;
  /** The sandbox's key directory. */
  keyDir: string;
  /** `workspace.root`. */
  workspaceRoot: string;
}

/**
 * Variables sandboxer sets itself; `compose.env` may not set them. `DOCKER_HOST`
 * is left out on purpose: it must come from the environment so that every
 * docker call (not only compose's) reaches the same engine.
 */
export const RESERVED_ENV: readonly string[] = [
  "SBX_ID",
  "SBX_PROJECT",
  "SBX_SSH_PORT",
  "SBX_SSH_USER",
  "SBX_AUTHORIZED_KEY",
  "SBX_HOST_KEY_FILE",
  "SBX_KEY_DIR",
  "SBX_WORKSPACE_ROOT",
  "DOCKER_HOST",
  "COMPOSE_FILE",
  "COMPOSE_PROJECT_NAME",
];

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Parse `NAME=value` entries (the value may contain `=` and be empty).
 *
 * @param entries The entries.
 * @returns Names to values; a later entry wins.
 * @throws {TypeError} for an entry without `=`, a bad name, or a reserved name.
 *
 * @example
 * ```ts
 * import { parseEnvEntries } from "./environment.ts";
 * console.log(parseEnvEntries(["SBX_SSH_IMAGE=sshd:1", "A=b=c"])); // { SBX_SSH_IMAGE: "sshd:1", A: "b=c" }
 * ```
 */
export function parseEnvEntries(entries: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of entries) {
    const equals = entry.indexOf("=");
    const name = equals < 0 ? entry : entry.slice(0, equals);
    if (equals < 0 || !NAME.test(name)) {
      throw new TypeError(
        `has ${
          JSON.stringify(entry)
        }, which is not NAME=value; write entries such as "SBX_SSH_IMAGE=my/sshd:1"`,
      );
    }
    if (RESERVED_ENV.includes(name)) {
      throw new TypeError(
        `sets ${name}, which sandboxer sets itself${
          name === "DOCKER_HOST" ? " from the environment (export DOCKER_HOST instead)" : ""
        }; remove it`,
      );
    }
    env[name] = entry.slice(equals + 1);
  }
  return env;
}

/**
 * The whole interpolation environment: the profile's `compose.env` plus the
 * `SBX_*` variables sandboxer owns.
 *
 * @param input The values.
 * @returns The variables.
 *
 * @example
 * ```ts
 * import { composeEnvironment } from "./environment.ts";
 * const env = composeEnvironment({
 *   user: {}, id: "a1", project: "sbx-a1", port: 40022, sshUser: "sbx",
 *   authorizedKey: "ssh-ed25519 AAAA", hostKeyFile: "/s/keys/a1/ssh_host_ed25519_key",
 *   keyDir: "/s/keys/a1", workspaceRoot: "/build",
 * });
 * console.log(env.SBX_SSH_PORT); // "40022"
 * ```
 */
export function composeEnvironment(input: ComposeEnvironmentInput): Record<string, string> {
  return {
    ...input.user,
    SBX_ID: input.id,
    SBX_PROJECT: input.project,
    SBX_SSH_PORT: String(input.port),
    SBX_SSH_USER: input.sshUser,
    SBX_AUTHORIZED_KEY: input.authorizedKey,
    SBX_HOST_KEY_FILE: input.hostKeyFile,
    SBX_KEY_DIR: input.keyDir,
    SBX_WORKSPACE_ROOT: input.workspaceRoot,
  };
}
