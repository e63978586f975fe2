/**
 * The SSH API of `@sandboxer/sandboxer/extension`: pooled connections that
 * run commands given as an argv only. Each argument is quoted for the remote
 * POSIX shell by the transport, so nothing an extension passes can become
 * shell syntax; the raw exec channel, SFTP and port forwarding of
 * {@linkcode SshConnection} stay internal.
 *
 * @module
 */

import type { SshConnection } from "../transport/ssh/connection.ts";
import type {
  SshExecIO,
  SshExecResult,
  SshRunOptions,
  SshRunResult,
  SshTarget,
} from "../transport/ssh/types.ts";
import { SshPool } from "../transport/ssh/pool.ts";
import type { Logger } from "../core/types.ts";

/** Options for {@linkcode SshHosts}. */
export interface SshHostsOptions {
  /** Where connections log. */
  logger?: Logger;
}

/** One open connection to a host, limited to argv commands. */
export interface SshHost {
  /** Where it is connected. */
  readonly target: SshTarget;
  /** SHA256 fingerprint of the host key the server presented (`SHA256:…`). */
  readonly hostKeyFingerprint: string;
  /**
   * Run `argv` and collect its output.
   *
   * @param argv Program and arguments, each quoted for the remote shell.
   * @param options Working directory, stdin bytes, abort signal.
   * @returns Exit code and the decoded stdout and stderr.
   */
  run(argv: readonly string[], options?: SshRunOptions): Promise<SshRunResult>;
  /**
   * Run `argv`, streaming its output to `io`.
   *
   * @param argv Program and arguments, each quoted for the remote shell.
   * @param io Output callbacks, stdin, working directory, abort signal.
   * @returns The exit code (and signal name, when killed by one).
   */
  exec(argv: readonly string[], io?: SshExecIO): Promise<SshExecResult>;
}

/**
 * One connection per target, shared by every call of one process; host keys
 * are verified against the target's `knownHostsFile`.
 *
 * @example Run a command in a directory
 * ```ts ignore
 * import { SshHosts } from "@sandboxer/sandboxer/extension";
 *
 * await using hosts = new SshHosts();
 * const host = await hosts.get({
 *   host: "10.0.0.5",
 *   port: 22,
 *   user: "dev",
 *   identityFile: "/home/me/.ssh/id_ed25519",
 *   knownHostsFile: "/home/me/.ssh/known_hosts",
 * });
 * const { code, stdout } = await host.run(["ls", "-la", "--", "/build"]);
 * ```
 */
export class SshHosts implements AsyncDisposable {
  #pool: SshPool;

  /**
   * Create an empty set; nothing connects until {@linkcode SshHosts.get}.
   *
   * @param options Where connections log.
   */
  constructor(options: SshHostsOptions = {}) {
    this.#pool = new SshPool({ logger: options.logger });
  }

  /**
   * The open connection to `target`, connecting first when there is none.
   *
   * @param target Where and how to connect.
   * @param options Abort signal.
   * @returns The shared connection; {@linkcode SshHosts.closeAll} closes it.
   * @throws {HostKeyError} When the host key is unknown or does not match.
   * @throws {SshError} When connecting or authenticating fails.
   */
  async get(target: SshTarget, options: { signal?: AbortSignal } = {}): Promise<SshHost> {
    return argvOnly(await this.#pool.get(target, options));
  }

  /** Close every connection. */
  closeAll(): Promise<void> {
    return this.#pool.closeAll();
  }

  /** Same as {@linkcode SshHosts.closeAll}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.closeAll();
  }
}

// A new object holding only the argv methods, so that the connection's other methods are not
// reachable at run time either (a cast would only hide them from the type checker).
function argvOnly(connection: SshConnection): SshHost {
  return {
    target: connection.target,
    hostKeyFingerprint: connection.hostKeyFingerprint,
    run: (argv, options) => connection.run(argv, options),
    exec: (argv, io) => connection.exec(argv, io),
  };
}
