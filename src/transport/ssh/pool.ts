/**
 * One shared connection per target, with pinned host keys checked on reuse.
 *
 * @module
 */

import { retry, Semaphore } from "../../core/async.ts";
import { HostKeyError } from "../../core/errors.ts";
import type { Logger } from "../../core/types.ts";
import { knownHostsName } from "../known_hosts.ts";
import { connectSsh, type SshConnection } from "./connection.ts";
import { describe, isPreAuthDrop } from "./errors.ts";
import { type SshTarget, sshTargetKey } from "./types.ts";

/**
 * A pooled connection verified for one target serves another only when its
 * key is that target's pin too; otherwise refuse, as a new connection would
 * have before authenticating (the pooled one stays open for its own users).
 */
function checkPin(connection: SshConnection, target: SshTarget): SshConnection {
  const pinned = target.pinnedHostKey;
  if (pinned === undefined || connection.hostKeyFingerprint === pinned) return connection;
  throw new HostKeyError(
    knownHostsName(target.host, target.port),
    connection.hostKeyFingerprint,
    "pinned",
    target.knownHostsFile,
    { pinned },
  );
}

/** Options for {@linkcode SshPool}. */
export interface SshPoolOptions {
  /** Where connections log. */
  logger?: Logger;
  /** Connection attempts in flight at once to one `host:port`. @default {8} */
  maxConcurrentConnects?: number;
  /** Attempts per connection when the server drops it before the handshake. @default {6} */
  connectAttempts?: number;
  /** Backoff before the second attempt; doubled each time. @default {300} */
  retryBaseDelayMs?: number;
}

/**
 * One connection per target, shared by every step of one CLI invocation.
 * Concurrent `get`s of one target share one connect; a closed connection is
 * replaced on the next `get`. Connections dropped before the handshake (sshd
 * `MaxStartups`) are retried with backoff; host key and authentication
 * failures are not. Jump hosts are pooled too.
 *
 * @example
 * ```ts ignore
 * import { SshPool } from "./pool.ts";
 * await using pool = new SshPool();
 * const conn = await pool.get(target);
 * await conn.run(["mkdir", "-p", "--", "/build/sbx-1"]);
 * ```
 */
export class SshPool implements AsyncDisposable {
  #options: SshPoolOptions;
  #connections = new Map<string, Promise<SshConnection>>();
  #gates = new Map<string, Semaphore>();

  /**
   * Create an empty pool; nothing connects until {@linkcode get}.
   *
   * @param options Logger, connect concurrency and retry settings.
   */
  constructor(options: SshPoolOptions = {}) {
    this.#options = options;
  }

  /** Number of targets with a connection (or a connect in flight). */
  get size(): number {
    return this.#connections.size;
  }

  /**
   * The open connection to `target`, connecting first when there is none.
   * A connect shared by concurrent callers follows the first caller's signal.
   *
   * @param target Where and how to connect.
   * @param options Abort signal.
   * @returns The shared connection; do not close it yourself, call {@linkcode closeAll}.
   */
  async get(target: SshTarget, options: { signal?: AbortSignal } = {}): Promise<SshConnection> {
    const key = sshTargetKey(target);
    const pending = this.#connections.get(key);
    if (pending !== undefined) {
      const connection = await pending;
      if (!connection.closed) return checkPin(connection, target);
      if (this.#connections.get(key) === pending) this.#connections.delete(key);
      return this.get(target, options);
    }
    const created = this.#connect(target, options.signal);
    this.#connections.set(key, created);
    created.catch(() => {
      if (this.#connections.get(key) === created) this.#connections.delete(key);
    });
    return await created;
  }

  async #connect(target: SshTarget, signal?: AbortSignal): Promise<SshConnection> {
    const via = target.jump ? await this.get(target.jump, { signal }) : undefined;
    const gateKey = `${target.host}:${target.port}`;
    let gate = this.#gates.get(gateKey);
    if (!gate) {
      gate = new Semaphore(this.#options.maxConcurrentConnects ?? 8);
      this.#gates.set(gateKey, gate);
    }
    const logger = this.#options.logger;
    return await retry(async (attempt) => {
      const release = await gate.acquire(signal);
      try {
        if (attempt > 1) logger?.debug(`connecting to ${describe(target)}: attempt ${attempt}`);
        return await connectSsh(target, { signal, logger, via });
      } finally {
        release();
      }
    }, {
      attempts: this.#options.connectAttempts ?? 6,
      baseDelayMs: this.#options.retryBaseDelayMs ?? 300,
      retryIf: isPreAuthDrop,
      signal,
    });
  }

  /** Close every connection (targets before their jump hosts). Idempotent. */
  async closeAll(): Promise<void> {
    const all = [...this.#connections.values()];
    this.#connections.clear();
    const settled = await Promise.allSettled(all);
    const open = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
    // A jump connection must outlive the tunnels through it.
    const viaCount = (c: SshConnection): number => {
      let n = 0;
      for (let t = c.target.jump; t; t = t.jump) n++;
      return n;
    };
    open.sort((a, b) => viaCount(b) - viaCount(a));
    for (const connection of open) await connection.close();
  }

  /** Same as {@linkcode closeAll}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.closeAll();
  }
}
