/**
 * What every backend that attaches to a workspace over SSH shares: the
 * connection pool, making and removing the workspace, exec, sync and fetch.
 * `ext.vm-packer` and `ext.compose-ssh` differ only in how the SSH server
 * comes to exist.
 *
 * @module
 */

import { ExtensionError, HostKeyError, WorkspaceError } from "../../core/errors.ts";
import type { TargetScan, WorkspaceMarker } from "../../core/gc_target.ts";
import { optionalEnv } from "../../core/permissions.ts";
import {
  type RsyncPlan,
  rsyncRelaySupported,
  runRsync,
  runRsyncOverConnection,
} from "../../process/rsync.ts";
import { type SshConnection, SshPool, sshTargetKey } from "../../transport/ssh.ts";
import { SandboxExtension } from "../base.ts";
import type { CreateContext, ExecIO, ExtensionOptions, SyncOptions, SyncReport } from "../types.ts";
import { splitUserHost, type SshWorkspaceHandle, targetFromHandle } from "./handle.ts";
import {
  HAS_PROGRAM,
  MAKE_WORKSPACE,
  MARKER_FILE,
  REMOVE_WORKSPACE,
  SCRIPT_EXIT,
} from "./remote_scripts.ts";
import { scanMarkedWorkspaces } from "./reap.ts";
import { sftpSync } from "./sftp_sync.ts";
import { selectFiles } from "../../process/git_selection.ts";
import { pinnedKnownHostsFile } from "../../transport/known_hosts.ts";
import { checkWorkspacePath } from "./workspace_path.ts";

/** Base class of backends whose sandboxes are workspace directories reached over SSH. */
export abstract class SshWorkspaceExtension<Config, Handle extends SshWorkspaceHandle>
  extends SandboxExtension<Config, Handle> {
  #pool: SshPool;
  #hasRsync = new Map<string, Promise<boolean>>();

  /**
   * Create it.
   *
   * @param options Logger and host-key policy.
   */
  constructor(options: ExtensionOptions = {}) {
    super(options);
    this.#pool = new SshPool({ logger: this.logger });
  }

  /**
   * The pooled connection for a handle. The host key must be the one seen
   * when the sandbox was made (`host_key_fingerprint`): the transport checks
   * that pin with known_hosts, before authenticating.
   *
   * @param handle The stored handle.
   * @param signal Abort signal.
   * @param acceptNewHostKey Trust an unknown host key (only while creating).
   * @returns The connection.
   * @throws {HostKeyError} When the key is refused; for the pin, with the command that re-pins.
   */
  protected async connect(
    handle: Handle,
    signal?: AbortSignal,
    acceptNewHostKey = false,
  ): Promise<SshConnection> {
    try {
      return await this.#pool.get(targetFromHandle(handle, acceptNewHostKey), { signal });
    } catch (error) {
      if (!(error instanceof HostKeyError) || error.reason !== "pinned") throw error;
      throw repinError(error, handle);
    }
  }

  /**
   * Connect, record the handle (with the host key fingerprint) and only then
   * make `<root>/sbx-<id>` with its marker file.
   *
   * @param ctx The create context.
   * @param handle The handle so far; its `workspace` must be set.
   * @returns The handle as recorded.
   */
  protected async makeWorkspace(ctx: CreateContext<Config>, handle: Handle): Promise<Handle> {
    checkWorkspacePath(handle.workspace);
    await ctx.step("connect");
    const connection = await this.connect(
      handle,
      ctx.signal,
      this.options.acceptNewHostKey ?? false,
    );
    const recorded = { ...handle, "host_key_fingerprint": connection.hostKeyFingerprint };
    await ctx.recordHandle(recorded);
    await ctx.step("workspace");
    const marker = JSON.stringify({
      id: ctx.id,
      profile: ctx.profileId,
      creator: `${optionalUser()}@${localHost()}`,
      created_at: new Date().toISOString(),
      expires_at: ctx.expiresAt ?? null,
    });
    const root = handle.workspace.slice(0, handle.workspace.lastIndexOf("/"));
    const result = await connection.run(
      ["sh", "-c", MAKE_WORKSPACE, "sh", root, handle.workspace, marker],
      { signal: ctx.signal },
    );
    if (result.code !== 0) throw workspaceScriptError(handle.workspace, result, "create");
    this.logger.debug(`made ${handle.workspace} on ${handle.vm_target}:${handle.ssh_port}`);
    return recorded;
  }

  /**
   * Run `argv` in the workspace.
   *
   * @param handle The stored handle.
   * @param argv Program and arguments, kept literal.
   * @param io Output sinks, stdin and abort signal.
   * @returns The exit code (128+N for a remote signal N).
   */
  override async exec(handle: Handle, argv: readonly string[], io: ExecIO): Promise<number> {
    const connection = await this.connect(handle, io.signal);
    const result = await connection.exec(argv, { ...io, cwd: handle.workspace });
    return result.code;
  }

  /**
   * rsync a local directory into the workspace (archive mode, `--delete`
   * inside the workspace only, excludes honoured; in a git work tree exactly
   * the files git lists, elsewhere `.gitignore` files as rsync reads them, see
   * git_selection.ts). On Linux
   * with rsync 3.2.4+ rsync runs over the pooled connection (no second
   * handshake); elsewhere over its own `ssh`. When rsync cannot be used — the
   * remote has none, or (external `ssh` only) the key needs a passphrase and
   * no ssh-agent could give it to `ssh` — the same tree is sent over SFTP
   * instead, with a warning.
   *
   * @param handle The stored handle.
   * @param from Local directory.
   * @param options Excludes, progress and abort.
   * @returns What was transferred.
   */
  override async sync(handle: Handle, from: string, options: SyncOptions): Promise<SyncReport> {
    const connection = await this.connect(handle, options.signal);
    const workspace = checkWorkspacePath(handle.workspace);
    // The marker is ours, not the repo's: never send over it or delete it.
    const exclude = [...(options.exclude ?? []), `/${MARKER_FILE}`];
    const gitignore = options.gitignore ?? true;
    await using selection = await selectFiles(from, {
      gitignore,
      includeGit: options.includeGit ?? false,
      signal: options.signal,
    });
    if (selection.notice !== undefined) this.logger.info(`sync: ${selection.notice}`);
    const relay = await rsyncRelaySupported();
    const whyNotRsync = await this.#whyNotRsync(handle, connection, relay);
    if (whyNotRsync !== undefined) {
      this.logger.warn(`${whyNotRsync}; syncing over SFTP (slower, no delta transfer)`);
      return await sftpSync(
        connection,
        {
          source: from,
          workspace,
          exclude,
          gitignore,
          selection: selection.filterArgs,
          protect: [MARKER_FILE],
        },
        { onProgress: options.onProgress, signal: options.signal, logger: this.logger },
      );
    }
    return await this.#rsync(
      handle,
      {
        source: from,
        target: targetFromHandle(handle),
        remoteDir: workspace,
        exclude,
        gitignore,
        selection: selection.filterArgs,
        delete: true,
        progress: options.onProgress !== undefined,
      },
      connection,
      relay,
      options,
    );
  }

  /**
   * Copy a file or directory from the workspace into a local directory
   * (rsync pull, archive mode: symlinks are copied as symlinks, never followed).
   *
   * @param handle The stored handle.
   * @param remotePath Path relative to the workspace, or absolute inside it.
   * @param localDir Local directory to copy into.
   * @param options Abort signal.
   */
  override async fetch(
    handle: Handle,
    remotePath: string,
    localDir: string,
    options: { signal?: AbortSignal },
  ): Promise<void> {
    const workspace = checkWorkspacePath(handle.workspace);
    const relay = await rsyncRelaySupported();
    // Connected first even for rsync's own ssh: the connection verifies the pin, and its key is
    // the only one that ssh is then given to accept.
    const connection = await this.connect(handle, options.signal);
    await this.#rsync(
      handle,
      {
        source: localDir,
        target: targetFromHandle(handle),
        remoteDir: pathInWorkspace(workspace, remotePath),
        exclude: [],
        gitignore: false,
        delete: false,
        progress: false,
        direction: "pull",
        remoteEntry: true,
      },
      connection,
      relay,
      options,
    );
  }

  /**
   * rsync over `connection` (the relay), or over rsync's own `ssh` with a
   * known_hosts file that holds only the key `connection` verified (the pin).
   */
  async #rsync(
    handle: Handle,
    plan: RsyncPlan,
    connection: SshConnection,
    relay: boolean,
    options: Pick<SyncOptions, "onProgress" | "signal">,
  ): Promise<SyncReport> {
    const runOptions = {
      onProgress: options.onProgress,
      signal: options.signal,
      logger: this.logger,
    };
    if (relay) return await runRsyncOverConnection(plan, connection, runOptions);
    await using pinned = await pinnedKnownHostsFile({
      host: plan.target.host,
      port: plan.target.port,
      keyType: connection.hostKey.type,
      keyBase64: connection.hostKey.base64,
    });
    const target = {
      ...plan.target,
      knownHostsFile: pinned.path,
      pinnedHostKey: connection.hostKeyFingerprint,
    };
    try {
      return await runRsync({ ...plan, target }, runOptions);
    } catch (error) {
      if (!(error instanceof HostKeyError) || error.reason !== "pinned") throw error;
      throw repinError(error, handle);
    }
  }

  /**
   * Remove the workspace, and only it. Idempotent.
   *
   * @param handle The stored handle.
   */
  protected async removeWorkspace(handle: Handle): Promise<void> {
    const workspace = checkWorkspacePath(handle.workspace);
    const id = workspace.slice(workspace.lastIndexOf("/sbx-") + 5);
    const connection = await this.connect(handle);
    const result = await connection.run(["sh", "-c", REMOVE_WORKSPACE, "sh", workspace, id]);
    if (result.code !== 0) throw workspaceScriptError(workspace, result, "remove");
  }

  /**
   * Tear down: remove the workspace. Subclasses that made more call this too.
   *
   * @param handle The stored handle.
   */
  override async destroy(handle: Handle): Promise<void> {
    await this.removeWorkspace(handle);
  }

  /**
   * The handle sandbox `id` made from `config` would get (before its host key
   * is recorded), so `gc --target` can reach a profile's target without a
   * record. Backends whose SSH server is made per sandbox have no such target
   * and keep this default (undefined).
   *
   * @param _config The profile's parsed config.
   * @param _id A sandbox id.
   * @returns The handle, or undefined.
   */
  protected handleForProfile(_config: Config, _id: string): Promise<Handle | undefined> {
    return Promise.resolve(undefined);
  }

  /**
   * List `<root>/sbx-*` on the profile's target with their markers (see reap.ts).
   *
   * @param config The profile's parsed config.
   * @param options Abort signal.
   * @returns The scan.
   */
  override async listMarkedWorkspaces(
    config: Config,
    options: { signal?: AbortSignal },
  ): Promise<TargetScan> {
    const probe = await this.#handleForReaping(config, "probe");
    const connection = await this.connect(probe, options.signal);
    const root = probe.workspace.slice(0, probe.workspace.lastIndexOf("/"));
    return await scanMarkedWorkspaces(connection, root, options);
  }

  /**
   * Remove a marked workspace with the same script as `destroy`, which
   * re-checks on the host that the marker names `marker.id`.
   *
   * @param config The profile's parsed config.
   * @param marker The marker found by {@linkcode listMarkedWorkspaces}.
   */
  override async removeMarkedWorkspace(config: Config, marker: WorkspaceMarker): Promise<void> {
    const handle = await this.#handleForReaping(config, marker.id);
    if (handle.workspace !== marker.workspace) {
      throw new WorkspaceError(
        marker.workspace,
        `is not where this profile puts sandbox ${marker.id} (${handle.workspace}); scan with the profile that made it`,
      );
    }
    await this.removeWorkspace(handle);
  }

  async #handleForReaping(config: Config, id: string): Promise<Handle> {
    const handle = await this.handleForProfile(config, id);
    if (!handle) {
      throw new ExtensionError(
        this.id,
        "cannot scan a target for leaked workspaces: its sandboxes have no fixed SSH target; use plain gc",
      );
    }
    return handle;
  }

  /** Close the pooled SSH connections. */
  override async close(): Promise<void> {
    await this.#pool.closeAll();
  }

  /** Why rsync cannot be used for this handle, or undefined when it can. */
  async #whyNotRsync(
    handle: Handle,
    connection: SshConnection,
    relay: boolean,
  ): Promise<string | undefined> {
    // The external ssh runs in batch mode: it cannot be handed a key's passphrase. The relay
    // uses the pooled connection, which is already authenticated.
    if (
      !relay && handle.passphrase_env && handle.identity_file && !optionalEnv("SSH_AUTH_SOCK")
    ) {
      return `the key ${handle.identity_file} needs a passphrase and no ssh-agent is running (SSH_AUTH_SOCK is unset), so rsync's ssh cannot use it`;
    }
    if (!(await this.#remoteHasRsync(connection))) {
      return `rsync is not installed on ${splitUserHost(handle.vm_target)[1]}`;
    }
    return undefined;
  }

  #remoteHasRsync(connection: SshConnection): Promise<boolean> {
    const key = sshTargetKey(connection.target);
    let known = this.#hasRsync.get(key);
    if (!known) {
      known = connection.run(["sh", "-c", HAS_PROGRAM, "sh", "rsync"]).then((r) => r.code === 0);
      this.#hasRsync.set(key, known);
      known.catch(() => this.#hasRsync.delete(key));
    }
    return known;
  }
}

/** The pin error again, with the command that pins the offered key for this sandbox. */
function repinError(error: HostKeyError, handle: SshWorkspaceHandle): HostKeyError {
  const id = handle.workspace.slice(handle.workspace.lastIndexOf("/sbx-") + 5);
  const flag = `--accept-host-key ${error.fingerprint}`;
  return new HostKeyError(error.host, error.fingerprint, "pinned", handle.known_hosts, {
    pinned: error.pinned,
    knownHostsToo: error.knownHostsToo,
    repin:
      `run the command again with ${flag} right after "sandboxer" (e.g. "sandboxer ${flag} destroy ${id}"); that key is then pinned`,
  });
}

/**
 * Resolve a path given relative to the workspace (or absolute inside it),
 * refusing anything that would leave it.
 */
function pathInWorkspace(workspace: string, path: string): string {
  const relative = path.startsWith(`${workspace}/`) ? path.slice(workspace.length + 1) : path;
  const segments = relative.split("/").filter((s) => s !== "" && s !== ".");
  if (relative.startsWith("/") || segments.length === 0 || segments.includes("..")) {
    throw new WorkspaceError(
      workspace,
      `cannot serve ${
        JSON.stringify(path)
      }: give a path inside the workspace, relative to it (e.g. dist/app.tar)`,
    );
  }
  return `${workspace}/${segments.join("/")}`;
}

function workspaceScriptError(
  workspace: string,
  result: { code: number; stderr: string },
  action: "create" | "remove",
): WorkspaceError {
  const detail = result.stderr.trim().split("\n").at(-1) ?? "";
  switch (result.code) {
    case SCRIPT_EXIT.noRoot:
      return new WorkspaceError(
        workspace,
        `cannot be created: ${detail}; create the root on the host (e.g. sudo install -d -o USER /build) or set workspace.root`,
      );
    case SCRIPT_EXIT.exists:
      return new WorkspaceError(
        workspace,
        "already exists on the host; pick another --name, or destroy the sandbox that owns it",
      );
    case SCRIPT_EXIT.notOurs:
    case SCRIPT_EXIT.noMarker:
      return new WorkspaceError(
        workspace,
        `was not removed: ${detail}; inspect it by hand — sandboxer only deletes workspaces it made`,
      );
    default:
      return new WorkspaceError(
        workspace,
        `could not be ${action === "create" ? "created" : "removed"} (exit ${result.code}${
          detail ? `: ${detail}` : ""
        }); check the login user may write there`,
      );
  }
}

function optionalUser(): string {
  try {
    return Deno.env.get("USER") ?? "unknown";
  } catch {
    return "unknown";
  }
}

function localHost(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}
