/**
 * `ext.vm-packer`: attach over SSH to a pre-built VM (often through a
 * reverse-tunnel port such as 12222) and give each sandbox its own
 * `<workspace.root>/sbx-<id>/`. Teardown removes that workspace only; the VM
 * keeps running.
 *
 * @module
 */

import { ConfigError } from "../../core/errors.ts";
import { optionalEnv } from "../../core/permissions.ts";
import type { ConfigSchema, ConfigSource, JsonObject } from "../../config/types.ts";
import { resolveSshConfig } from "../../transport/ssh_config.ts";
import type { CreateContext } from "../types.ts";
import { SshWorkspaceExtension } from "../ssh_workspace/extension.ts";
import type { SshWorkspaceHandle } from "../ssh_workspace/handle.ts";
import { workspacePath, workspaceRootProblem } from "../ssh_workspace/workspace_path.ts";

/** A profile's configuration for `ext.vm-packer`, after validation. */
export interface VmPackerConfig {
  /** Where to connect. */
  target: {
    host: string;
    port?: number;
    user?: string;
    identity_file?: string;
    passphrase_env?: string;
    known_hosts: string;
    ssh_config?: string;
    /** Seconds. */
    connect_timeout: number;
    /** Seconds. */
    keepalive_interval: number;
  };
  /** Where workspaces go. */
  workspace: { root: string };
}

/** The destroy handle of a vm-packer sandbox. */
export type VmPackerHandle = SshWorkspaceHandle;

/**
 * Workspaces on a pre-built VM reached over SSH.
 *
 * @example Profile
 * ```yaml
 * id: profile.vm-haskell-build
 * extension: ext.vm-packer
 * target: { host: 127.0.0.1, port: 12222, user: builder, identity_file: ~/.ssh/build_vm }
 * workspace: { root: /build }
 * ```
 */
export class VmPackerExtension extends SshWorkspaceExtension<VmPackerConfig, VmPackerHandle> {
  /** The registration id. */
  readonly id: string = "ext.vm-packer";

  /**
   * Validate against the schema, then refuse workspace roots that are
   * relative, `/` or system directories.
   *
   * @param raw The profile's extension fields.
   * @param source Locations, for errors.
   * @param schema The registration's schema.
   * @returns The configuration.
   */
  override parseConfig(
    raw: JsonObject,
    source: ConfigSource,
    schema: ConfigSchema,
  ): VmPackerConfig {
    const config = super.parseConfig(raw, source, schema);
    const problem = workspaceRootProblem(config.workspace.root);
    if (problem) throw new ConfigError(source.locate("workspace.root"), problem);
    // A missing key is a profile mistake: refuse it before anything is recorded.
    const key = config.target.identity_file;
    if (key !== undefined && !isFile(key)) {
      throw new ConfigError(
        source.locate("target.identity_file"),
        `no such file ${key}; give the path of the private key (e.g. ~/.ssh/id_ed25519), or leave the field out to use ssh-agent`,
      );
    }
    return config;
  }

  /**
   * Resolve the target (OpenSSH config aliases included), connect, record
   * the handle, then make the workspace.
   *
   * @param ctx The create context.
   * @returns The handle.
   */
  override async create(ctx: CreateContext<VmPackerConfig>): Promise<VmPackerHandle> {
    return await this.makeWorkspace(ctx, await this.handleForProfile(ctx.config, ctx.id));
  }

  /**
   * The handle of sandbox `id` on the configured target (OpenSSH config
   * aliases resolved), before anything is connected or made.
   *
   * @param config The profile's parsed config.
   * @param id The sandbox id.
   * @returns The handle, without a host key yet.
   */
  protected override async handleForProfile(
    config: VmPackerConfig,
    id: string,
  ): Promise<VmPackerHandle> {
    const { target, workspace } = config;
    const home = optionalEnv("HOME");
    // Without a readable $HOME (narrow permissions) the default config is simply not consulted.
    const sshConfig = target.ssh_config ?? (home ? `${home}/.ssh/config` : undefined);
    const resolved = sshConfig
      ? await resolveSshConfig(target.host, { file: sshConfig, home: home ?? "/" })
      : {};
    const host = resolved.hostName ?? target.host;
    const port = target.port ?? resolved.port ?? 22;
    const user = target.user ?? resolved.user ?? optionalEnv("USER") ?? "root";
    const identity = target.identity_file ?? resolved.identityFile?.[0] ?? null;
    let jump: string | null = null;
    if (resolved.proxyJump) {
      const spec = resolved.proxyJump.split(",")[0];
      const match = /^(?:([^@]+)@)?([^:]+)(?::(\d+))?$/.exec(spec);
      if (match) {
        const hop = sshConfig
          ? await resolveSshConfig(match[2], { file: sshConfig, home: home ?? "/" })
          : {};
        jump = `${match[1] ?? hop.user ?? user}@${hop.hostName ?? match[2]}:${
          match[3] ?? hop.port ?? 22
        }`;
      }
    }
    return {
      vm_target: `${user}@${host}`,
      ssh_port: port,
      workspace: workspacePath(workspace.root, id),
      host_key_fingerprint: null,
      identity_file: identity,
      known_hosts: target.known_hosts,
      passphrase_env: target.passphrase_env ?? null,
      jump,
      connect_timeout_ms: target.connect_timeout * 1000,
      keepalive_interval_ms: target.keepalive_interval * 1000,
    };
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
