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

import {
  ComposeError,
  errorText,
  HostKeyError,
  SshError,
  TimeoutError,
} from "../../core/errors.ts";
import { resolve } from "node:path";
import { delay } from "../../core/async.ts";
import { errorCode, exists } from "../../core/fs.ts";
import { defaultStateDir } from "../../core/paths.ts";
import { optionalEnv } from "../../core/permissions.ts";
import type { ConfigSchema, ConfigSource } from "../../config/types.ts";
import type { JsonObject } from "../../core/types.ts";
import { SshWorkspaceExtension } from "../ssh_workspace/extension.ts";
import { workspacePath } from "../ssh_workspace/workspace_path.ts";
import type { CreateContext, DestroyContext, ExtensionOptions } from "../types.ts";
import type { SshConnection } from "../../transport/ssh/connection.ts";
import {
  composeDown,
  composeUp,
  detectComposeCommand,
  dockerDaemonName,
  DockerUnreachableError,
} from "./compose.ts";
import { projectContainers, projectObjects, sweepProject } from "./project_objects.ts";
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
import { checkComposeSshConfig, type ComposeSshConfig } from "./config.ts";
import { brief, notReady, readyHint, whyRefused } from "./diagnose.ts";
import { composeProject, type ComposeSshHandle, dockerEnv, PROJECT_PATTERN } from "./handle.ts";

/** How often the wait for SSH checks that the service is still running. */
const STATE_CHECK_INTERVAL_MS = 1_000;
/** Pause between SSH attempts while the service starts. */
const POLL_INTERVAL_MS = 200;
/** Bound on the best-effort workspace removal at teardown. */
const REMOVE_WORKSPACE_TIMEOUT_MS = 5_000;

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
    return checkComposeSshConfig(super.parseConfig(raw, source, schema), source);
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
      throw new SshError(error.target, "connect", await whyRefused(handle, this.logger), {
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
    if (anything && await exists(handle.compose_file, { follow: true })) {
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
          throw await notReady(
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
          throw await notReady(
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
    throw await notReady(
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
