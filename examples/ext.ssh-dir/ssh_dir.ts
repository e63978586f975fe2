/**
 * `ext.ssh-dir`: a worked example of a third-party sandboxer extension.
 *
 * Each sandbox is a directory `<root>/sbx-<id>` on a host reached over SSH.
 * `create` makes it, `exec` runs commands in it, `destroy` removes it — and
 * only it. The code uses nothing but sandboxer's public SDK, and touches
 * nothing its registration (`ext.ssh-dir.yaml`) does not declare: one TCP
 * connection to the target, and reads of the key and `known_hosts`.
 *
 * It leaves out what a production backend would add (see `ext.vm-packer`):
 * file sync, ssh-agent and key passphrases, trusting new host keys, jump hosts.
 *
 * @module
 */

import {
  ConfigError,
  type ConfigSchema,
  type ConfigSource,
  type CreateContext,
  type ExecIO,
  HostKeyError,
  type JsonObject,
  SandboxExtension,
  type SshHost,
  SshHosts,
  type SshTarget,
  WorkspaceError,
} from "../../extension.ts";

/** A profile's configuration, as the registration's `config:` schema returns it. */
export interface SshDirConfig {
  /** Where to connect. */
  target: {
    host: string;
    port: number;
    user: string;
    identity_file: string;
    known_hosts: string;
  };
  /** Absolute directory on the host that holds the `sbx-<id>` directories. */
  root: string;
}

/**
 * The destroy handle: plain JSON, stored in sandboxer's journal, enough to
 * reconnect and tear down without the profile.
 */
export type SshDirHandle = {
  host: string;
  port: number;
  user: string;
  identity_file: string;
  known_hosts: string;
  /** The sandbox's directory, `<root>/sbx-<id>` (shown by `sandboxer list` and `show`). */
  workspace: string;
  /** SHA256 fingerprint of the host key seen at create; later connections must match it. */
  host_key: string | null;
};

/** File in each directory naming the sandbox that owns it. */
const OWNER_FILE = ".ssh-dir-owner";

// Remote scripts are constants; every value reaches them as a quoted positional argument.
const MAKE_DIR = `mkdir -m 700 -- "$1" && printf '%s\\n' "$2" > "$1/${OWNER_FILE}"`;
const REMOVE_DIR = `
[ -L "$1" ] && { echo "$1 is a symlink, not a sandbox directory" >&2; exit 3; }
[ -e "$1" ] || exit 0
[ "$(cat -- "$1/${OWNER_FILE}" 2>/dev/null)" = "$2" ] ||
  { echo "$1 does not belong to sandbox $2" >&2; exit 3; }
rm -rf -- "$1"`;

/** Sandboxes as directories on a host reached over SSH. */
export class SshDirExtension extends SandboxExtension<SshDirConfig, SshDirHandle> {
  /** Must equal the registration's `id`. */
  readonly id: string = "ext.ssh-dir";
  /** One connection per host, shared by every call of this process. */
  #hosts = new SshHosts({ logger: this.logger });

  /**
   * Check the profile against the schema, then what a schema cannot say:
   * `root` must be an absolute directory other than `/`.
   */
  override parseConfig(raw: JsonObject, source: ConfigSource, schema: ConfigSchema): SshDirConfig {
    const config = super.parseConfig(raw, source, schema);
    const { root } = config;
    if (!root.startsWith("/") || root.endsWith("/") || root.split("/").includes("..")) {
      throw new ConfigError(
        source.locate("root"),
        `must be an absolute directory other than / without ".." (got ${
          JSON.stringify(root)
        }); e.g. /srv/sandboxes`,
      );
    }
    return config;
  }

  /** Connect, record the handle, then make the directory. */
  override async create(ctx: CreateContext<SshDirConfig>): Promise<SshDirHandle> {
    const { target, root } = ctx.config;
    const handle: SshDirHandle = {
      host: target.host,
      port: target.port,
      user: target.user,
      identity_file: target.identity_file,
      known_hosts: target.known_hosts,
      workspace: `${root}/sbx-${ctx.id}`,
      host_key: null,
    };
    await ctx.step("connect");
    const connection = await this.#connect(handle, ctx.signal);
    handle.host_key = connection.hostKeyFingerprint;
    // Record before the first remote side effect: a crash from here on leaves
    // a journal record that `sandboxer destroy` can finish.
    await ctx.recordHandle(handle);
    await ctx.step("mkdir");
    const made = await connection.run(["sh", "-c", MAKE_DIR, "sh", handle.workspace, ctx.id], {
      signal: ctx.signal,
    });
    if (made.code !== 0) {
      throw new WorkspaceError(
        handle.workspace,
        `could not be created (${
          made.stderr.trim() || `exit ${made.code}`
        }); check that ${root} exists and ${target.user} may write to it`,
      );
    }
    return handle;
  }

  /** Run `argv` in the sandbox's directory; its exit code is the result. */
  override async exec(handle: SshDirHandle, argv: readonly string[], io: ExecIO): Promise<number> {
    const connection = await this.#connect(handle, io.signal);
    const result = await connection.exec(argv, { ...io, cwd: handle.workspace });
    return result.code;
  }

  /** Remove the directory if this sandbox made it. A missing directory is success. */
  override async destroy(handle: SshDirHandle): Promise<void> {
    const id = /\/sbx-([a-z0-9][a-z0-9-]*)$/.exec(handle.workspace)?.[1];
    if (id === undefined) {
      throw new WorkspaceError(
        handle.workspace,
        "is not of the form <root>/sbx-<id>; not removing it",
      );
    }
    const connection = await this.#connect(handle);
    const removed = await connection.run(["sh", "-c", REMOVE_DIR, "sh", handle.workspace, id]);
    if (removed.code !== 0) {
      throw new WorkspaceError(
        handle.workspace,
        `was not removed (${removed.stderr.trim() || `exit ${removed.code}`}); inspect it by hand`,
      );
    }
  }

  /** Close the pooled connections; the manager calls it when it closes. */
  override async close(): Promise<void> {
    await this.#hosts.closeAll();
  }

  /** The pooled connection, refusing a host key other than the one seen at create. */
  async #connect(handle: SshDirHandle, signal?: AbortSignal): Promise<SshHost> {
    const target: SshTarget = {
      host: handle.host,
      port: handle.port,
      user: handle.user,
      identityFile: handle.identity_file,
      knownHostsFile: handle.known_hosts,
    };
    const connection = await this.#hosts.get(target, { signal });
    if (handle.host_key !== null && connection.hostKeyFingerprint !== handle.host_key) {
      throw new HostKeyError(
        handle.port === 22 ? handle.host : `[${handle.host}]:${handle.port}`,
        connection.hostKeyFingerprint,
        "mismatch",
        handle.known_hosts,
      );
    }
    return connection;
  }
}
