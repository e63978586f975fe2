/**
 * What every backend that attaches to a workspace over SSH shares: the
 * connection pool, making and removing the workspace, exec, sync and fetch.
 * `ext.vm-packer` and `ext.compose-ssh` differ only in how the SSH server
 * comes to exist.
 *
 * @module
 */

import { ExtensionError, HostKeyError, UsageError, WorkspaceError } from "../../core/errors.ts";
import type { TargetScan, WorkspaceMarker } from "../types.ts";
import { currentIdentity, optionalEnv } from "../../core/permissions.ts";
import { rsyncRelaySupported } from "../../sync/rsync_version.ts";
import type { SshConnection } from "../../transport/ssh/connection.ts";
import { SshPool } from "../../transport/ssh/pool.ts";
import { sshTargetKey } from "../../transport/ssh/types.ts";
import { type FixedTarget, SandboxExtension } from "../base.ts";
import type { CreateContext, DestroyContext, ExtensionOptions, SyncOptions } from "../types.ts";
import type { ExecIO, SyncReport } from "../../core/types.ts";
import {
  handleTarget,
  splitUserHost,
  type SshWorkspaceHandle,
  targetFromHandle,
} from "./handle.ts";
import {
  HAS_PROGRAM,
  MAKE_WORKSPACE,
  MARKER_FILE,
  PATH_EXISTS,
  REMOVE_WORKSPACE,
  SCRIPT_EXIT,
  WORKSPACE_EXEC,
  WORKSPACE_EXEC_IN,
} from "./remote_scripts.ts";
import { scanMarkedWorkspaces } from "./reap.ts";
import { selectFiles } from "../../sync/git_selection.ts";
import { checkWorkspacePath, newNonce, pathInWorkspace } from "./workspace_path.ts";
import { ExecGate } from "./exec_gate.ts";
import { muxExec, runShared, sharedForCreate, SharedLookup } from "./mux_exec.ts";
import {
  repinError,
  workspaceRef,
  workspaceRefusal,
  workspaceScriptError,
} from "./workspace_ref.ts";
import {
  rsyncInWorkspace,
  rsyncOverShared,
  sftpSyncInWorkspace,
  type WorkspaceHost,
} from "./workspace_sync.ts";
import { markFresh, takeFresh, tarIntoFreshWorkspace } from "./workspace_tar.ts";
import { defaultStateDir } from "../../core/paths.ts";

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
    checkWorkspacePath(handle.workspace, ctx.id);
    await ctx.step("connect");
    // A shared connection that is up serves the create with no handshake; else one is launched
    // for the commands after it, beside this create's own connection.
    const shared = ctx.sshMux && await sharedForCreate(handle, ctx.sshMux.persistSeconds, {
      stateDir: this.options.stateDir,
      logger: this.logger,
    });
    const connection = shared
      ? undefined
      : await this.connect(handle, ctx.signal, this.options.acceptNewHostKey ?? false);
    // The nonce is recorded before the workspace exists: whatever a crash leaves behind, only a
    // directory whose marker holds it is ever this sandbox's to remove.
    // A nonce already in the handle is the one a pool's lease holds: the marker gets the same.
    const nonce = typeof handle.nonce === "string" ? handle.nonce : newNonce();
    const recorded = {
      ...handle,
      "host_key_fingerprint": shared ? shared.fingerprint : connection!.hostKeyFingerprint,
      nonce,
    };
    await ctx.recordHandle(recorded);
    await ctx.step("workspace");
    // id and nonce first: the remote scripts match the marker's exact beginning.
    const marker = JSON.stringify({
      id: ctx.id,
      nonce,
      profile: ctx.profileId,
      creator: creatorOf(currentIdentity()),
      created_at: new Date().toISOString(),
      expires_at: ctx.expiresAt ?? null,
    });
    const root = handle.workspace.slice(0, handle.workspace.lastIndexOf("/"));
    const argv = ["sh", "-c", MAKE_WORKSPACE, "sh", root, handle.workspace, marker];
    let result = shared ? await runShared(shared.client, argv, ctx.signal) : undefined;
    if (result?.code === 255) {
      // ssh's own failure, most often a session the server refused (sshd's MaxSessions per
      // connection, with many creates at once): nothing ran, so the create connects itself. Had
      // the script run before the connection broke, it now says the workspace exists.
      this.logger.debug(`the shared connection failed (${result.stderr.trim()}); connecting`);
      result = undefined;
    }
    result ??= await (connection ?? await this.connect(recorded, ctx.signal)).run(argv, {
      signal: ctx.signal,
    });
    if (result.code !== 0) throw workspaceScriptError(handle.workspace, result, "create");
    await markFresh(this.#stateDir(), workspaceRef(recorded, ctx.id));
    this.logger.debug(`made ${handle.workspace} on ${handleTarget(handle)}:${handle.ssh_port}`);
    return recorded;
  }

  /**
   * Run `argv` in the workspace (over a shared OpenSSH connection when
   * `io.sshMux` asks for one, see mux_exec.ts).
   *
   * @param handle The stored handle.
   * @param argv Program and arguments, kept literal.
   * @param io Output sinks, stdin and abort signal.
   * @returns The exit code (128+N for a remote signal N).
   */
  override async exec(handle: Handle, argv: readonly string[], io: ExecIO): Promise<number> {
    if (argv.length === 0 || argv[0].startsWith("-")) {
      throw new UsageError(
        `Cannot run ${
          JSON.stringify(argv[0] ?? "")
        }: give a program name that does not start with "-" (e.g. ./${argv[0] ?? "prog"})`,
      );
    }
    const ref = workspaceRef(handle);
    const wrapper = io.cwd === undefined
      ? ["sh", "-c", WORKSPACE_EXEC, "sh", ref.workspace, ref.id, ref.nonce]
      : ["sh", "-c", WORKSPACE_EXEC_IN, "sh", ref.workspace, ref.id, ref.nonce, io.cwd];
    const setup = { stateDir: this.options.stateDir, logger: this.logger };
    const shared = await muxExec(handle, ref, [...wrapper, ...argv], io, setup);
    if (shared !== undefined) return shared;
    const connection = await this.connect(handle, io.signal);
    const gate = new ExecGate(io.stdout);
    const result = await connection.exec(
      [...wrapper, ...argv],
      { stdin: io.stdin, signal: io.signal, stderr: io.stderr, stdout: gate.write },
    );
    if (!gate.started) throw workspaceRefusal(ref, result.code, gate.reason, "run commands in");
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
    return await this.syncVia(handle, from, options, new SharedLookup(handle, this.#stateDir()));
  }

  /**
   * {@linkcode sync}, with the command's look-up of a shared connection
   * (a subclass's steps before the sync may have found one up already).
   *
   * @param handle The stored handle.
   * @param from Local directory.
   * @param options Excludes, progress and abort.
   * @param shared The command's shared-connection look-up.
   * @returns What was transferred.
   */
  protected async syncVia(
    handle: Handle,
    from: string,
    options: SyncOptions,
    shared: SharedLookup,
  ): Promise<SyncReport> {
    const ref = workspaceRef(handle);
    // The marker is ours, not the repo's: never send over it or delete it.
    const exclude = [...(options.exclude ?? []), `/${MARKER_FILE}`];
    const gitignore = options.gitignore ?? true;
    await using selection = await selectFiles(from, {
      gitignore,
      includeGit: options.includeGit ?? false,
      signal: options.signal,
    });
    const noted = (report: SyncReport): SyncReport =>
      selection.notice === undefined ? report : { ...report, notice: selection.notice };
    // The first sync into a workspace made empty: one tar stream (workspace_tar.ts), else rsync.
    if (await takeFresh(this.#stateDir(), ref)) {
      const sent = await tarIntoFreshWorkspace(
        handle,
        ref,
        { source: from, exclude, gitignore, selection: selection.filterArgs },
        options,
        { shared, logger: this.logger },
      );
      if (sent !== undefined) return noted(sent);
      // The tar stream did not go (the master may have gone with the host): rsync looks again.
      shared.forget();
    }
    const plan = {
      source: from,
      target: targetFromHandle(handle),
      remoteDir: ".",
      remoteLabel: ref.workspace,
      exclude,
      gitignore,
      selection: selection.filterArgs,
      delete: true,
      progress: options.onProgress !== undefined,
    };
    // A later sync from its own process (the CLI's): over a shared connection that is up.
    if ((options.sshMux?.persistSeconds ?? 0) > 0) {
      const client = await shared.live();
      const sent = client && await rsyncOverShared(this.#host(handle), ref, plan, client, options);
      if (sent) {
        this.logger.debug(`synced into ${ref.workspace} by rsync over the shared connection`);
        return noted(sent);
      }
    }
    const connection = await this.connect(handle, options.signal);
    const relay = await rsyncRelaySupported();
    const whyNotRsync = await this.#whyNotRsync(handle, connection, relay);
    if (whyNotRsync !== undefined) {
      this.logger.warn(`${whyNotRsync}; syncing over SFTP (slower, no delta transfer)`);
      return noted(
        await sftpSyncInWorkspace(
          connection,
          ref,
          {
            source: from,
            workspace: ref.workspace,
            exclude,
            gitignore,
            selection: selection.filterArgs,
            protect: [MARKER_FILE],
          },
          options,
          this.logger,
        ),
      );
    }
    return noted(
      await rsyncInWorkspace(
        this.#host(handle),
        ref,
        plan,
        connection,
        relay,
        options,
        "sync into",
      ),
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
   * @returns What rsync copied: regular files and their bytes.
   */
  override async fetch(
    handle: Handle,
    remotePath: string,
    localDir: string,
    options: { signal?: AbortSignal },
  ): Promise<SyncReport> {
    const ref = workspaceRef(handle);
    const relative = pathInWorkspace(ref.workspace, remotePath);
    const relay = await rsyncRelaySupported();
    // Connected first even for rsync's own ssh: the connection verifies the pin, and its key is
    // the only one that ssh is then given to accept.
    const connection = await this.connect(handle, options.signal);
    // Asked first so a missing path is one clear line, not rsync's link_stat output. A missing
    // workspace (exit 2) is left to the rsync step, which names it.
    const probe = await connection.run(["sh", "-c", PATH_EXISTS, "sh", ref.workspace, relative]);
    if (probe.code === 1) {
      throw new WorkspaceError(
        ref.workspace,
        `has no ${
          relative.slice(2)
        } to copy back; give a path relative to the workspace (see what is there with sandboxer exec ID -- ls)`,
      );
    }
    return await rsyncInWorkspace(
      this.#host(handle),
      ref,
      {
        source: localDir,
        target: targetFromHandle(handle),
        remoteDir: relative,
        remoteLabel: `${ref.workspace}/${relative.slice(2)}`,
        exclude: [],
        gitignore: false,
        delete: false,
        // Not rsync's --info=progress2: on a pull over the relay it now and then ended in a
        // protocol error ("unexpected tag -7 [sender]"); the CLI watches the files arrive instead.
        progress: false,
        direction: "pull",
        remoteEntry: true,
      },
      connection,
      relay,
      options,
      "copy files from",
    );
  }

  /** What workspace_sync.ts needs to reach this sandbox again. */
  #host(handle: Handle): WorkspaceHost {
    return { handle, logger: this.logger, connect: () => this.connect(handle) };
  }

  /**
   * Remove the workspace, and only it, after ending the sandbox's processes
   * on the host (REMOVE_WORKSPACE). Idempotent; finishes a removal that was
   * cut short.
   *
   * @param handle The stored handle.
   * @param recordId The id of the record the handle belongs to; the workspace must be `<root>/sbx-<it>`.
   * @returns `"removed"` (or nothing was there), or `"foreign"` when the path holds another
   *   sandbox of the same name, which is left alone.
   * @throws {WorkspaceError} when what is there is not provably this sandbox's.
   */
  protected async removeWorkspace(
    handle: Handle,
    recordId?: string,
  ): Promise<"removed" | "foreign"> {
    const ref = workspaceRef(handle, recordId);
    const connection = await this.connect(handle);
    const result = await connection.run([
      "sh",
      "-c",
      REMOVE_WORKSPACE,
      "sh",
      ref.workspace,
      ref.id,
      ref.nonce,
    ]);
    for (const line of result.stderr.split("\n")) {
      if (line.startsWith("sandboxer: ")) this.logger.warn(`${ref.where}: ${line.slice(11)}`);
    }
    if (result.code === 0) return "removed";
    if (result.code === SCRIPT_EXIT.otherNonce) {
      this.logger.warn(
        `left ${ref.workspace} on ${ref.where} alone: it holds another sandbox named ${ref.id} (another creation nonce); this sandbox's own workspace is not there`,
      );
      return "foreign";
    }
    throw workspaceScriptError(ref.workspace, result, "remove");
  }

  /**
   * Tear down: remove the workspace. Subclasses that made more call this too.
   *
   * @param handle The stored handle.
   * @param context The record's id; the handle's workspace must be that sandbox's.
   */
  override async destroy(handle: Handle, context?: DestroyContext): Promise<void> {
    await this.removeWorkspace(handle, context?.id);
    try {
      await takeFresh(this.#stateDir(), workspaceRef(handle, context?.id));
    } catch {
      // A handle that is not this record's was refused above.
    }
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
   * The profile's fixed SSH target and workspace root, for `sandboxer doctor`
   * (every host of a pool in `pool`).
   *
   * @param config The profile's parsed config.
   * @param acceptNewHostKey Trust an unknown host key and add it to known_hosts.
   * @returns The target and root, or undefined for a server made per sandbox.
   */
  override async fixedTarget(
    config: Config,
    acceptNewHostKey: boolean,
  ): Promise<FixedTarget | undefined> {
    const entries = this.poolEntries?.(config);
    if (entries) {
      const pool = [];
      for (const { label, capacity, config } of entries) {
        const one = await this.fixedTarget(config, acceptNewHostKey);
        if (one) pool.push({ ...one, label, capacity });
      }
      return pool.length ? { ...pool[0], pool } : undefined;
    }
    const handle = await this.handleForProfile(config, "probe");
    if (!handle) return undefined;
    const root = handle.workspace.slice(0, handle.workspace.lastIndexOf("/"));
    return { target: targetFromHandle(handle, acceptNewHostKey), root };
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
   * Remove a marked workspace (or finish a tombstone) with the same script as
   * `destroy`, which re-checks on the host, in the same step as the removal,
   * that the marker still holds the id and nonce the scan listed.
   *
   * @param config The profile's parsed config.
   * @param marker The marker found by {@linkcode listMarkedWorkspaces}.
   */
  override async removeMarkedWorkspace(config: Config, marker: WorkspaceMarker): Promise<void> {
    const handle = await this.#handleForReaping(config, marker.id);
    const root = handle.workspace.slice(0, handle.workspace.lastIndexOf("/"));
    if (
      `${root}/${marker.workspace.slice(marker.workspace.lastIndexOf("/") + 1)}` !==
        marker.workspace
    ) {
      throw new WorkspaceError(
        marker.workspace,
        `is not under this profile's workspace root ${root}; scan with the profile that made it`,
      );
    }
    if (!marker.nonce) {
      throw new WorkspaceError(
        marker.workspace,
        "has a marker without a creation nonce (made by an older sandboxer); only a destroy of its own record removes it",
      );
    }
    const outcome = await this.removeWorkspace({ ...handle, nonce: marker.nonce }, marker.id);
    if (outcome === "foreign") {
      throw new WorkspaceError(
        marker.workspace,
        "now holds another sandbox of the same name (its marker changed since the scan); left alone",
      );
    }
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

  #stateDir(): string {
    return this.options.stateDir ?? defaultStateDir();
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
      return `rsync is not installed on ${splitUserHost(handleTarget(handle))[1]}`;
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

function creatorOf(identity: { host: string; user: string }): string {
  return `${identity.user}@${identity.host}`;
}
