/**
 * Resolve a host alias through an OpenSSH client config file (`~/.ssh/config`),
 * so a profile can say `target.host: devbox` and get what `ssh devbox` would.
 *
 * Matching is done by npm:ssh-config's `compute` (Host patterns, first value
 * wins, `Match host/user/all`). `Match exec` is never run. `Include` is not
 * followed. Tokens expanded in paths: `~`, `%d` (home), `%h` (host name),
 * `%p` (port), `%r` (remote user) and `%%`.
 *
 * @module
 */

import SSHConfig from "../deps/ssh_config.ts";
import { ConfigError } from "../core/errors.ts";
import { mapPermissionError } from "../core/permissions.ts";
import { readConfigFile } from "./files.ts";

/** The settings sandboxer takes from an ssh config file; absent ones are unset. */
export interface ResolvedSshConfig {
  /** `HostName`: the real host to connect to. */
  hostName?: string;
  /** `Port`. */
  port?: number;
  /** `User`. */
  user?: string;
  /** `IdentityFile` entries, in order, with `~` and tokens expanded. */
  identityFile?: string[];
  /** `ProxyJump`, as written (`none` is left out). */
  proxyJump?: string;
  /** The first `UserKnownHostsFile`, expanded. */
  userKnownHostsFile?: string;
}

/** Options for {@linkcode resolveSshConfig}. */
export interface ResolveSshConfigOptions {
  /** The config file. @default {"<home>/.ssh/config"} */
  file?: string;
  /** The local user's home directory, for `~` and `%d`. */
  home: string;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function all(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

interface TokenValues {
  home: string;
  host: string;
  port?: number;
  user?: string;
}

function expand(path: string, tokens: TokenValues): string {
  const withTokens = path.replace(/%([%dhpr])/g, (whole, token: string) => {
    switch (token) {
      case "%":
        return "%";
      case "d":
        return tokens.home;
      case "h":
        return tokens.host;
      case "p":
        return tokens.port === undefined ? whole : String(tokens.port);
      case "r":
        return tokens.user ?? whole;
      default:
        return whole;
    }
  });
  if (withTokens === "~") return tokens.home;
  if (withTokens.startsWith("~/")) return tokens.home + withTokens.slice(1);
  return withTokens;
}

function compute(config: SSHConfig, alias: string): Record<string, string | string[]> {
  try {
    // Lower-cased keys make `hostname` and `HostName` the same, as in OpenSSH.
    return config.compute(alias, { ignoreCase: true, matchExec: false });
  } catch (error) {
    // ssh-config asks the OS for the local user name (for `Match localuser`),
    // falling back to $USER and $USERNAME.
    if (error instanceof Deno.errors.NotCapable) {
      throw mapPermissionError(error, "env", "USER", "--allow-env=USER,USERNAME");
    }
    throw error;
  }
}

/**
 * Resolve `alias` the way `ssh alias` would read the config file.
 *
 * @param alias The name given as the target host.
 * @param options The config file and the home directory.
 * @returns The settings found; an empty object when the file is missing.
 * @throws {ConfigError} When `Port` is not a number from 1 to 65535.
 * @throws {PermissionError} When reading the file or the local user name is not allowed.
 *
 * @example
 * ```ts ignore
 * import { resolveSshConfig } from "./ssh_config.ts";
 * const resolved = await resolveSshConfig("devbox", { home: "/home/me" });
 * console.log(resolved.hostName ?? "devbox", resolved.port ?? 22);
 * ```
 */
export async function resolveSshConfig(
  alias: string,
  options: ResolveSshConfigOptions,
): Promise<ResolvedSshConfig> {
  const file = options.file ?? `${options.home}/.ssh/config`;
  const text = await readConfigFile(file);
  if (text === undefined) return {};
  const computed = compute(SSHConfig.parse(text), alias);
  const result: ResolvedSshConfig = {};

  const rawPort = first(computed.port);
  if (rawPort !== undefined) {
    const port = Number(rawPort);
    if (!/^\d+$/.test(rawPort) || port < 1 || port > 65535) {
      throw new ConfigError(
        { file, field: "Port" },
        `must be an integer from 1 to 65535 (got ${JSON.stringify(rawPort)} for host ${
          JSON.stringify(alias)
        })`,
      );
    }
    result.port = port;
  }
  const user = first(computed.user);
  if (user !== undefined) result.user = user;

  const tokens: TokenValues = { home: options.home, host: alias, port: result.port, user };
  const hostName = first(computed.hostname);
  if (hostName !== undefined) {
    result.hostName = hostName.replace(/%([%h])/g, (_, t: string) => t === "%" ? "%" : alias);
    tokens.host = result.hostName;
  }
  const identityFile = all(computed.identityfile)
    .filter((path) => path.toLowerCase() !== "none")
    .map((path) => expand(path, tokens));
  if (identityFile.length > 0) result.identityFile = identityFile;

  const proxyJump = first(computed.proxyjump);
  if (proxyJump !== undefined && proxyJump.toLowerCase() !== "none") result.proxyJump = proxyJump;

  const knownHosts = first(computed.userknownhostsfile);
  if (knownHosts !== undefined && knownHosts.toLowerCase() !== "none") {
    result.userKnownHostsFile = expand(knownHosts, tokens);
  }
  return result;
}
