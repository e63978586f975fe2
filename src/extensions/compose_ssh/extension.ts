/**
 * `ext.compose-ssh`: each sandbox is a docker compose project `sbx-<id>`
 * with one service reachable over SSH. sandboxer generates that service's
 * host key (and, unless the profile names one, a user key), hands both to it
 * through the compose environment, pins the host key, waits for SSH to
 * answer and then makes `<workspace.root>/sbx-<id>` in it exactly as
 * `ext.vm-packer` does: attach, exec, sync and quoting are the shared
 * {@linkcode SshWorkspaceExtension}'s. Teardown is `compose down`.
 *
 * @module
 */

import { ID_SOURCE } from "../../core/ids.ts";
import {
  ComposeError,
  ConfigError,
  errorText,
  HostKeyError,
  ServiceNotReadyError,
  SshError,
  TimeoutError,
} from "../../core/errors.ts";
import { dirname, resolve } from "node:path";
import { defaultStateDir } from "../../core/paths.ts";
import { optionalEnv } from "../../core/permissions.ts";
import type { ConfigSchema, ConfigSource } from "../../config/types.ts";
import type { JsonObject } from "../../core/types.ts";
import { SshWorkspaceExtension } from "../ssh_workspace/extension.ts";
import type { SshWorkspaceHandle } from "../ssh_workspace/handle.ts";
import { workspacePath, workspaceRootProblem } from "../ssh_workspace/workspace_path.ts";
import type { CreateContext, DestroyContext, ExtensionOptions } from "../types.ts";
import type { SshConnection } from "../../transport/ssh/connection.ts";
import {
  composeDown,
  type ComposeProject,
  composeUp,
  detectComposeCommand,
  dockerDaemonName,
  DockerUnreachableError,
  PROJECT_LABEL,
  type ProjectContainer,
  projectContainers,
  projectObjects,
  serviceLogs,
  sweepProject,
} from "./compose.ts";
import { composeEnvironment, parseEnvEntries } from "./environment.ts";
import {
  generateKeyPair,
  identityPublicKey,
  isKeyDirOf,
  KEY_FILES,
  makeKeyDir,
  publicKeyFingerprint,
  writeKnownHosts,
} from "./keys.ts";

/** How often the wait for SSH checks that the service is still running. */
const STATE_CHECK_INTERVAL_MS = 1_000;
/** Pause between SSH attempts while the service starts. */
const POLL_INTERVAL_MS = 200;
/** Log lines of the service shown when it does not become ready. */
const LOG_TAIL_LINES = 12;
/** Bound on the best-effort workspace removal at teardown. */
const REMOVE_WORKSPACE_TIMEOUT_MS = 5_000;
/** Bound on the `docker ps` that explains a refused SSH connection. */
const REFUSED_PROBE_TIMEOUT_MS = 10_000;
const PROJECT_PATTERN = new RegExp(`^sbx-(${ID_SOURCE})$`);

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

/**
 * Sandboxes as docker compose projects with an SSH-reachable service.
 *
 * @example Profile
 * ```yaml
 * id: profile.compose-sshd
 * extension: ext.compose-ssh
 * compose: { file: compose-sshd/compose.yaml, service: sshd }
 * ssh: { user: sbx }
 * workspace: { root: /build }
 * ready_timeout: 60s
 * ```
 */
export class ComposeSshExtension extends SshWorkspaceExtension<ComposeSshConfig, ComposeSshHandle> {
  /** The registration id. */
  readonly id: string = "ext.compose-ssh";
  #composeCommand: Promise<string[]> | undefined;

  /** @param options Logger and host-key policy. */
  constructor(options: ExtensionOptions = {}) {
    super(options);
  }

  /**
   * Validate against the schema, then check what the schema cannot say:
   * exactly one of `compose.file` and `compose.inline`, a compose file that
   * exists, `NAME=value` entries in `compose.env`, and a workspace root that
   * is not `/` or a system directory. Relative paths become absolute, so the
   * handle works from any directory later.
   *
   * @param raw The profile's extension fields.
   * @param source Locations, for errors.
   * @param schema The registration's schema.
   * @returns The configuration.
   * @throws {ConfigError} naming file, line and field.
   */
  override parseConfig(
    raw: JsonObject,
    source: ConfigSource,
    schema: ConfigSchema,
  ): ComposeSshConfig {
    const config = super.parseConfig(raw, source, schema);
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

  /**
   * Record the handle, generate the keys, `compose up -d`, wait until the
   * service's SSH answers (bounded by `ready_timeout`), then make the
   * workspace. A failure leaves the recorded handle, from which the
   * manager's rollback (or a later `destroy`) removes the project and keys.
   *
   * @param ctx The create context.
   * @returns The handle.
   * @throws {ComposeError} when compose cannot start the project.
   * @throws {ServiceNotReadyError} when the service stops or SSH does not answer in time.
   */
  override async create(ctx: CreateContext<ComposeSshConfig>): Promise<ComposeSshHandle> {
    const { compose, ssh, workspace } = ctx.config;
    const project = `sbx-${ctx.id}`;
    const keyDir = `${resolve(ctx.stateDir ?? defaultStateDir())}/keys/${ctx.id}`;
    const dockerHost = optionalEnv("DOCKER_HOST") ?? null;
    const generatedHostKey = ssh.known_hosts === undefined;
    const port = ssh.port ?? freeLoopbackPort();
    let handle: ComposeSshHandle = {
      ssh_target: `${ssh.user}@${ssh.host}`,
      ssh_port: port,
      workspace: workspacePath(workspace.root, ctx.id),
      host_key_fingerprint: null,
      identity_file: ssh.identity_file ?? `${keyDir}/${KEY_FILES.userKey}`,
      known_hosts: ssh.known_hosts ?? `${keyDir}/${KEY_FILES.knownHosts}`,
      passphrase_env: ssh.passphrase_env ?? null,
      jump: null,
      connect_timeout_ms: ssh.connect_timeout * 1000,
      keepalive_interval_ms: ssh.keepalive_interval * 1000,
      project,
      compose_file: compose.file ?? `${keyDir}/${KEY_FILES.inlineCompose}`,
      project_directory: compose.project_directory ?? null,
      service: compose.service,
      compose_command: await this.#detectComposeCommand(dockerEnv(dockerHost), ctx.signal),
      docker_host: dockerHost,
      key_dir: keyDir,
      compose_env: {},
    };
    // Recorded before the first side effect (the key directory), so a kill at
    // any later point leaves enough for `destroy`.
    await ctx.recordHandle(handle);
    await ctx.step("keys");
    handle = await this.#makeKeys(ctx, handle);
    await ctx.recordHandle(handle);
    await ctx.step("compose-up");
    this.logger.info(`starting compose project ${project} (${handle.compose_file})`);
    await composeUp(composeProject(handle), { signal: ctx.signal, logger: this.logger });
    await ctx.step("wait-ssh");
    await this.#waitForSsh(ctx, handle, !generatedHostKey);
    return await this.makeWorkspace(ctx, handle);
  }

  /**
   * `compose down -v --remove-orphans`, then remove anything still labelled
   * with the project and the key directory. Works from the handle alone and
   * succeeds when the project is already gone.
   *
   * @param handle The stored handle.
   * @param context The record's id; the handle's workspace must be that sandbox's.
   * @throws {DockerUnreachableError} when the Docker engine does not answer: nothing is removed,
   * the key directory included, so a later `destroy` can finish.
   * @throws {ComposeError} when docker cannot list or remove the project's objects.
   */
  override async destroy(handle: ComposeSshHandle, context?: DestroyContext): Promise<void> {
    const id = PROJECT_PATTERN.exec(handle.project)?.[1];
    if (id === undefined) {
      throw new ComposeError(
        String(handle.project),
        "is not a project sandboxer made (not sbx-<id>); remove it by hand with docker compose down",
      );
    }
    try {
      await this.#removeProject(handle, context?.id ?? id);
    } catch (error) {
      if (!(error instanceof DockerUnreachableError)) throw error;
      throw new DockerUnreachableError(
        handle.project,
        handle.docker_host,
        `cannot be removed: ${
          dockerDaemonName(handle.docker_host)
        } does not answer; start it (e.g. systemctl start docker) and run "sandboxer destroy ${id}" again`,
        { cause: error },
      );
    }
    if (isKeyDirOf(handle.key_dir, id)) {
      await Deno.remove(handle.key_dir, { recursive: true }).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    } else {
      this.logger.warn(`left ${handle.key_dir} alone: it is not a key directory sandboxer made`);
    }
  }

  /**
   * The pooled connection for a handle; a refused connection is explained from the service's
   * container state (stopped, removed, or the Docker engine itself down), asked of docker.
   *
   * @param handle The stored handle.
   * @param signal Abort signal.
   * @param acceptNewHostKey Trust an unknown host key.
   * @returns The connection.
   */
  protected override async connect(
    handle: ComposeSshHandle,
    signal?: AbortSignal,
    acceptNewHostKey = false,
  ): Promise<SshConnection> {
    try {
      return await super.connect(handle, signal, acceptNewHostKey);
    } catch (error) {
      if (
        !(error instanceof SshError) || error.stage !== "connect" ||
        errorCode(error.cause) !== "ECONNREFUSED"
      ) {
        throw error;
      }
      throw new SshError(error.target, "connect", await this.#whyRefused(handle), {
        cause: error,
      });
    }
  }

  /** compose down, then remove whatever still carries the project's label. */
  async #removeProject(handle: ComposeSshHandle, id: string): Promise<void> {
    const env = dockerEnv(handle.docker_host);
    const left = await projectObjects(env, handle.project);
    const running = left.containers.some((c) => c.service === handle.service && c.running);
    // Only a bind-mounted workspace.root outlives the service; remove ours from it while we can.
    if (running) await this.#removeWorkspaceQuietly(handle, id);
    const anything = left.containers.length + left.networks.length + left.volumes.length > 0;
    // compose down needs the file; the label sweep below also covers a missing or broken one.
    if (anything && await exists(handle.compose_file)) {
      try {
        const failed = await composeDown(composeProject(handle), { logger: this.logger });
        if (failed) {
          this.logger.debug(`compose down failed, sweeping by label: ${failed.join(" | ")}`);
        }
      } catch (error) {
        // A missing compose program and the like: the sweep still removes everything.
        this.logger.debug(`compose down could not run: ${errorText(error)}`);
      }
    }
    const swept = await sweepProject(env, handle.project);
    if (swept > 0) this.logger.debug(`removed ${swept} leftover objects of ${handle.project}`);
  }

  /** Why nothing answers SSH for a recorded sandbox, in words for the user, from docker ps. */
  async #whyRefused(handle: ComposeSshHandle): Promise<string> {
    const service = `service "${handle.service}" of compose project ${handle.project}`;
    const id = PROJECT_PATTERN.exec(handle.project)?.[1] ?? handle.project;
    const replace = `run "sandboxer destroy ${id}" and create a new sandbox`;
    let containers: ProjectContainer[];
    try {
      containers = await projectContainers(
        dockerEnv(handle.docker_host),
        handle.project,
        handle.service,
        REFUSED_PROBE_TIMEOUT_MS,
      );
    } catch (error) {
      if (error instanceof DockerUnreachableError) {
        return `connection refused: nothing answers SSH for ${service}, and ${
          dockerDaemonName(handle.docker_host)
        } does not answer either (stopped?); start it (e.g. systemctl start docker), then ${replace}`;
      }
      this.logger.debug(`docker ps for ${handle.project} failed: ${errorText(error)}`);
      return `connection refused: ${service} does not answer SSH on port ${handle.ssh_port}; check its container with "docker ps -a --filter label=${PROJECT_LABEL}=${handle.project}"`;
    }
    if (containers.length === 0) {
      return `connection refused: ${service} has no container any more (removed outside sandboxer); ${replace}`;
    }
    if (!containers.some((c) => c.running)) {
      return `connection refused: the container of ${service} is not running (${
        containers.map((c) => c.status).join(", ")
      }), so nothing answers SSH; ${replace}`;
    }
    return `connection refused: ${service} is running but nothing answers SSH on port ${handle.ssh_port}; check its log ("docker logs ${
      containers.find((c) => c.running)!.id.slice(0, 12)
    }")`;
  }

  #detectComposeCommand(env: Record<string, string>, signal?: AbortSignal): Promise<string[]> {
    // One probe per process: a CLI run creates one sandbox, an SDK user may create many.
    this.#composeCommand ??= detectComposeCommand(env, signal).catch((error) => {
      this.#composeCommand = undefined; // an aborted probe must not fail the next create
      throw error;
    });
    return this.#composeCommand;
  }

  /** Generate and write the key material; returns the handle with env and fingerprint. */
  async #makeKeys(
    ctx: CreateContext<ComposeSshConfig>,
    handle: ComposeSshHandle,
  ): Promise<ComposeSshHandle> {
    const { compose, ssh, workspace } = ctx.config;
    const keyDir = handle.key_dir;
    await makeKeyDir(keyDir);
    const userKey = ssh.identity_file === undefined
      ? await generateKeyPair(
        `${keyDir}/${KEY_FILES.userKey}`,
        `sandboxer ${handle.project}`,
        ctx.signal,
      )
      : await identityPublicKey(ssh.identity_file, handle.project);
    let hostKeyFile = "";
    let fingerprint: string | null = null;
    if (ssh.known_hosts === undefined) {
      hostKeyFile = `${keyDir}/${KEY_FILES.hostKey}`;
      const hostKey = await generateKeyPair(hostKeyFile, `${handle.project} host`, ctx.signal);
      await writeKnownHosts(handle.known_hosts, ssh.host, handle.ssh_port, hostKey);
      fingerprint = publicKeyFingerprint(hostKey);
    }
    if (compose.inline !== undefined) {
      await Deno.writeTextFile(handle.compose_file, compose.inline, { mode: 0o600 });
    }
    return {
      ...handle,
      host_key_fingerprint: fingerprint,
      compose_env: composeEnvironment({
        user: parseEnvEntries(compose.env),
        id: ctx.id,
        project: handle.project,
        port: handle.ssh_port,
        sshUser: ssh.user,
        authorizedKey: userKey.line,
        hostKeyFile,
        keyDir,
        workspaceRoot: workspace.root,
      }),
    };
  }

  /**
   * Try SSH until it answers, the service stops, or `ready_timeout` passes.
   * Host-key and permission refusals end the wait at once: they will not heal.
   */
  async #waitForSsh(
    ctx: CreateContext<ComposeSshConfig>,
    handle: ComposeSshHandle,
    userKnownHosts: boolean,
  ): Promise<void> {
    const timeoutMs = ctx.config.ready_timeout * 1000;
    const started = performance.now();
    const deadline = started + timeoutMs;
    const where = `${ctx.config.ssh.host}:${handle.ssh_port}`;
    let lastError: unknown;
    let nextStateCheck = started + STATE_CHECK_INTERVAL_MS;
    for (let left = timeoutMs; left > 0; left = deadline - performance.now()) {
      ctx.signal?.throwIfAborted();
      const probe = { ...handle, connect_timeout_ms: Math.min(handle.connect_timeout_ms, left) };
      try {
        await this.withTimeout(
          `reach ${where}`,
          Math.max(1, left),
          // Trust-on-first-use only ever applies to a key sandboxer did not generate.
          // super's: a refusal here is expected while sshd starts, and needs no explaining.
          (signal) => super.connect(probe, signal, userKnownHosts && this.#acceptsNewHostKeys()),
          ctx.signal,
        );
        this.logger.debug(
          `${where} answered SSH after ${Math.round(performance.now() - started)} ms`,
        );
        return;
      } catch (error) {
        if (ctx.signal?.aborted) throw error;
        if (error instanceof HostKeyError) {
          // With the profile's own known_hosts the transport's message already says what to do.
          if (userKnownHosts) throw error;
          throw await this.#notReady(
            handle,
            `offers host key ${error.fingerprint}, not the one sandboxer generated (${handle.host_key_fingerprint}); make sshd use the key mounted from $SBX_HOST_KEY_FILE (see docs/compose-ssh.md), or set ssh.known_hosts to check the service's own key`,
            error,
          );
        }
        // Anything else (a permission refusal, a bug) will not heal by waiting.
        if (!(error instanceof SshError || error instanceof TimeoutError)) throw error;
        lastError = error;
      }
      if (performance.now() >= nextStateCheck) {
        nextStateCheck = performance.now() + STATE_CHECK_INTERVAL_MS;
        const containers = await projectContainers(
          dockerEnv(handle.docker_host),
          handle.project,
          handle.service,
        );
        if (!containers.some((c) => c.running)) {
          throw await this.#notReady(
            handle,
            `stopped before its SSH answered (${
              containers.map((c) => c.status).join(", ") || "no container"
            }); fix the service so it keeps sshd running`,
            lastError,
          );
        }
      }
      await delay(Math.min(POLL_INTERVAL_MS, Math.max(0, deadline - performance.now())));
    }
    throw await this.#notReady(
      handle,
      `did not answer SSH on ${where} within ${ctx.config.ready_timeout}s (${brief(lastError)}); ${
        readyHint(lastError)
      }, or raise ready_timeout`,
      lastError,
    );
  }

  #acceptsNewHostKeys(): boolean {
    return this.options.acceptNewHostKey ?? false;
  }

  async #notReady(
    handle: ComposeSshHandle,
    problem: string,
    cause: unknown,
  ): Promise<ServiceNotReadyError> {
    const logs = await serviceLogs(composeProject(handle), handle.service, LOG_TAIL_LINES);
    return new ServiceNotReadyError(handle.project, handle.service, problem, logs, { cause });
  }

  async #removeWorkspaceQuietly(handle: ComposeSshHandle, id: string): Promise<void> {
    const quick = {
      ...handle,
      connect_timeout_ms: Math.min(handle.connect_timeout_ms, REMOVE_WORKSPACE_TIMEOUT_MS),
    };
    try {
      await this.withTimeout(
        `remove ${handle.workspace}`,
        REMOVE_WORKSPACE_TIMEOUT_MS,
        () => this.removeWorkspace(quick, id),
      );
    } catch (error) {
      this.logger.debug(`left ${handle.workspace} to compose down: ${errorText(error)}`);
    }
  }
}

/** The compose invocation a handle describes. */
function composeProject(handle: ComposeSshHandle): ComposeProject {
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
function dockerEnv(dockerHost: string | null): Record<string, string> {
  return dockerHost === null ? {} : { DOCKER_HOST: dockerHost };
}

/** The core of an SSH error message ("connection refused"), for one-line errors. */
function brief(error: unknown): string {
  if (error === undefined) return "no attempt finished";
  // An SshError's fix names vm-packer's fields (target.port …): keep only its problem.
  if (error instanceof SshError) return error.problem;
  return errorText(error).split(";")[0].trim();
}

function readyHint(error: unknown): string {
  if (error instanceof SshError && error.stage === "authenticate") {
    return "the service refuses the key: put $SBX_AUTHORIZED_KEY in the login user's authorized_keys (see docs/compose-ssh.md)";
  }
  return "make the service run sshd on port $SBX_SSH_PORT";
}

/**
 * A TCP port free on the loopback interface now. Another process could take
 * it before the service binds it; the service then stops and the error shows
 * its "address already in use" line.
 */
function freeLoopbackPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    return (listener.addr as Deno.NetAddr).port;
  } finally {
    listener.close();
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The `code` of a Node-style error (`ECONNREFUSED`), if any. */
function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}
