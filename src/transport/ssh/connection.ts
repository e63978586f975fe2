/**
 * SSH connections over npm:ssh2 (src/transport/ssh/ is the only directory that imports it).
 *
 * Host keys are always verified against a known_hosts file; an unknown key
 * is trusted (and appended) only when the target says `acceptNewHostKey`.
 * Commands are sent as an argv and quoted by {@linkcode remoteCommand}, so
 * the remote login shell must be a POSIX shell.
 *
 * Limits worth knowing:
 * - `connectTimeoutMs` bounds each hop separately (a jump host has its own).
 * - Aborting an exec sends signal KILL to the remote process group; servers
 *   older than OpenSSH 7.9 ignore it and only the channel is closed.
 * - At most 8 channels are open per connection (sshd's MaxSessions is 10);
 *   further execs wait for a free one. An open SFTP session holds one.
 * - ssh-agent needs `--allow-read`/`--allow-write` on the socket path.
 * - ssh2 1.17 is pinned: exec signals use its protocol layer directly.
 *
 * @example Run a command
 * ```ts ignore
 * import { connectSsh } from "./connection.ts";
 *
 * await using conn = await connectSsh({
 *   host: "10.0.0.5",
 *   port: 12222,
 *   user: "dev",
 *   identityFile: "/home/me/.ssh/id_ed25519",
 *   knownHostsFile: "/home/me/.ssh/known_hosts",
 * });
 * const { code, stdout } = await conn.run(["uname", "-a"]);
 * ```
 *
 * @module
 */

import { Semaphore } from "../../core/async.ts";
import { errorText, SshError, type SshStage } from "../../core/errors.ts";
import type { Logger } from "../../core/types.ts";
import type { ClientChannel, SFTPWrapper } from "../../deps/ssh2.ts";
import { readKnownHosts } from "../known_hosts.ts";
import { remoteCommand } from "../quote.ts";
import { type ChannelLink, driveExec, rawStreams } from "./channels.ts";
import { describe } from "./errors.ts";
import { handshake, type Ssh2Client } from "./handshake.ts";
import type { VerifiedHostKey } from "./host_key.ts";
import { loadPrivateKey } from "./keys.ts";
import { CLOSE_GRACE_MS, Ssh2SftpSession } from "./sftp.ts";
import type {
  RawExecChannel,
  RawExecOptions,
  SftpSession,
  SshExecIO,
  SshExecResult,
  SshRunOptions,
  SshRunResult,
  SshTarget,
} from "./types.ts";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";

const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

/** sshd's MaxSessions defaults to 10 channels per connection; stay below it. */
const MAX_CHANNELS_PER_CONNECTION = 8;

/** How long a refused channel waits to see whether the connection is closing. */
const CHANNEL_FAILURE_GRACE_MS = 200;

/** Tries to open a channel the server refused (backoff 20, 40, 80, 160, 320 ms). */
const CHANNEL_OPEN_ATTEMPTS = 6;

/** Options for {@linkcode connectSsh}. */
export interface ConnectSshOptions {
  /** Aborting it cancels the connection attempt. */
  signal?: AbortSignal;
  /** Where to log connection details (never secrets). */
  logger?: Logger;
  /**
   * An open connection to `target.jump` to tunnel through (for example from
   * an {@linkcode SshPool}); it stays open when this connection closes.
   * Without it a jump connection is made and owned by the new connection.
   */
  via?: SshConnection;
}

/**
 * An open, authenticated SSH connection. Make one with
 * {@linkcode connectSsh} (or an {@linkcode SshPool}); close it, or use
 * `await using`.
 */
export class SshConnection implements AsyncDisposable {
  /** The target this connection reached. */
  readonly target: SshTarget;
  /** SHA256 fingerprint of the verified host key, as `ssh-keygen -l` prints it. */
  readonly hostKeyFingerprint: string;
  /** The verified host key as known_hosts writes it: its type and base64 blob. */
  readonly hostKey: { readonly type: string; readonly base64: string };
  #client: Ssh2Client;
  #ownedJump: SshConnection | undefined;
  #logger: Logger | undefined;
  #channels = new Semaphore(MAX_CHANNELS_PER_CONNECTION);
  #closed = false;
  #closeReason = "the server closed the connection";
  #closedPromise: Promise<void>;
  #link: ChannelLink;

  private constructor(
    client: Ssh2Client,
    target: SshTarget,
    hostKey: VerifiedHostKey,
    ownedJump: SshConnection | undefined,
    logger: Logger | undefined,
  ) {
    this.#client = client;
    this.target = target;
    this.hostKeyFingerprint = hostKey.fingerprint;
    this.hostKey = { type: hostKey.type, base64: hostKey.base64 };
    this.#ownedJump = ownedJump;
    this.#logger = logger;
    this.#link = {
      where: describe(target),
      closed: () => this.#closed,
      closeReason: () => this.#closeReason,
    };
    client.on("error", (error: unknown) => {
      this.#closeReason = errorText(error);
      logger?.debug(`ssh ${describe(target)}: ${this.#closeReason}`);
    });
    this.#closedPromise = new Promise<void>((resolve) => {
      client.once("close", () => {
        this.#closed = true;
        this.#ownedJump?.close().catch(() => {});
        resolve();
      });
    });
  }

  /**
   * Connect, verify the host key and authenticate. Same as
   * {@linkcode connectSsh}.
   *
   * @param target Where and how to connect.
   * @param options Abort signal, logger, and an optional open jump connection.
   * @returns The open connection.
   */
  static async connect(target: SshTarget, options: ConnectSshOptions = {}): Promise<SshConnection> {
    const { signal, logger } = options;
    signal?.throwIfAborted();
    const where = describe(target);
    const timeoutMs = target.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const started = performance.now();
    const privateKey = await loadPrivateKey(target, logger);
    if (privateKey === undefined && target.agent === undefined) {
      throw new SshError(
        where,
        "authenticate",
        target.identityFile === undefined
          ? "no key to offer; set target.identity_file or run ssh-agent (SSH_AUTH_SOCK)"
          : `identity file ${target.identityFile} cannot be used`,
      );
    }
    const known = await readKnownHosts(target.knownHostsFile);

    let jump = options.via;
    let ownedJump: SshConnection | undefined;
    if (target.jump !== undefined && jump === undefined) {
      ownedJump = jump = await SshConnection.connect(target.jump, { signal, logger });
    }
    let sock: Duplex | undefined;
    try {
      if (jump !== undefined) sock = await jump.#forwardOut(target.host, target.port);
    } catch (error) {
      await ownedJump?.close();
      throw error;
    }

    let opened: { client: Ssh2Client; hostKey: VerifiedHostKey };
    try {
      opened = await handshake({ target, privateKey, known, sock, timeoutMs, signal, logger });
    } catch (error) {
      await ownedJump?.close();
      throw error;
    }
    const { client, hostKey } = opened;
    logger?.debug(
      `connected to ${where} in ${
        Math.round(performance.now() - started)
      } ms (host key ${hostKey.fingerprint})`,
    );
    return new SshConnection(client, target, hostKey, ownedJump, logger);
  }

  /** Whether the connection has closed (by {@linkcode close}, the server, or a dead peer). */
  get closed(): boolean {
    return this.#closed;
  }

  #assertOpen(stage: SshStage): void {
    if (this.#closed) {
      throw new SshError(
        describe(this.target),
        stage,
        `the connection is closed (${this.#closeReason}); connect again`,
      );
    }
  }

  #forwardOut(host: string, port: number): Promise<Duplex> {
    this.#assertOpen("connect");
    return new Promise((resolve, reject) => {
      this.#client.forwardOut("127.0.0.1", 0, host, port, (error, channel) => {
        if (error) {
          reject(
            new SshError(
              describe(this.target),
              "connect",
              `cannot tunnel to ${host}:${port} (${
                errorText(error)
              }); check the jump host allows TCP forwarding and reaches the target`,
              { cause: error },
            ),
          );
        } else {
          resolve(channel);
        }
      });
    });
  }

  /**
   * Open a channel and hand it to `use` inside ssh2's callback: ssh2 may emit
   * the channel's 'exit' and 'close' in the same tick, so listeners attached
   * after an `await` could miss them.
   *
   * sshd frees a closed session only after it has read the next batch of
   * packets, so right after many channels close an open can be refused
   * (MaxSessions) although fewer are in use: such refusals are retried.
   */
  #openChannel<C, T>(
    stage: SshStage,
    open: (callback: (error: Error | undefined, channel: C) => void) => void,
    use: (channel: C) => Promise<T> | T,
    signal?: AbortSignal,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const attempt = (n: number) => {
        if (signal?.aborted) return reject(signal.reason);
        try {
          this.#assertOpen(stage);
        } catch (error) {
          return reject(error);
        }
        open((error, channel) => {
          if (!error) {
            try {
              Promise.resolve(use(channel)).then(resolve, reject);
            } catch (thrown) {
              reject(thrown);
            }
            return;
          }
          if (/open failure/i.test(error.message) && n < CHANNEL_OPEN_ATTEMPTS && !this.#closed) {
            setTimeout(() => attempt(n + 1), 10 * 2 ** n);
            return;
          }
          const fail = () =>
            reject(
              new SshError(
                describe(this.target),
                stage,
                this.#closed
                  ? `the connection was lost before the ${stage} started (${this.#closeReason}); check the network and run it again`
                  : `cannot open a channel (${
                    errorText(error)
                  }); the server may limit sessions (MaxSessions) or the subsystem`,
                { cause: error },
              ),
            );
          // A dying connection fails its pending channels before it emits 'close': wait briefly
          // so the error names the lost connection, not the server's session limits.
          if (this.#closed) return fail();
          const timer = setTimeout(fail, CHANNEL_FAILURE_GRACE_MS);
          this.#closedPromise.then(() => {
            clearTimeout(timer);
            fail();
          });
        });
      };
      attempt(1);
    });
  }

  /**
   * Run a command, streaming its output to the callbacks.
   *
   * The channel is always drained, so a silent command still completes.
   * Aborting sends signal KILL (OpenSSH 7.9+ honours it), closes the channel
   * and rejects with the signal's reason.
   *
   * @param argv The program and its arguments; quoted for the remote shell here.
   * @param io Output callbacks, stdin, abort signal and working directory.
   * @returns The exit code (128+N for signal N) and the signal name.
   * @throws {SshError} When the connection is lost or no session can be opened.
   */
  async exec(argv: readonly string[], io: SshExecIO = {}): Promise<SshExecResult> {
    const command = remoteCommand(argv, { cwd: io.cwd });
    io.signal?.throwIfAborted();
    const release = await this.#channels.acquire(io.signal);
    try {
      return await this.#openChannel<ClientChannel, SshExecResult>(
        "exec",
        (callback) => this.#client.exec(command, callback),
        (channel) => driveExec(channel, argv[0], io, this.#link),
        io.signal,
      );
    } finally {
      release();
    }
  }

  /**
   * Open an exec channel for a command string that is ALREADY quoted for the
   * remote shell, and hand back its streams (with backpressure both ways).
   *
   * The string is sent verbatim: nothing here quotes it. It exists for rsync,
   * which quotes its own `rsync --server …` command; callers must only pass
   * strings produced by such a program, never anything built from user data —
   * everything sandboxer builds itself goes through {@linkcode exec} and its
   * one quoter. The channel holds one of the connection's channel slots until
   * it closes.
   *
   * @param command The remote command line, passed to the remote shell as is.
   * @param options Abort signal.
   * @returns stdin, stdout, stderr and the exit status.
   * @throws {SshError} When the connection is closed or no session can be opened.
   */
  async openRawExec(command: string, options: RawExecOptions = {}): Promise<RawExecChannel> {
    const signal = options.signal;
    signal?.throwIfAborted();
    const release = await this.#channels.acquire(signal);
    try {
      return await this.#openChannel<ClientChannel, RawExecChannel>(
        "exec",
        (callback) => this.#client.exec(command, callback),
        (channel) => rawStreams(channel, release, signal, this.#link),
        signal,
      );
    } catch (error) {
      release();
      throw error;
    }
  }

  /**
   * Run a command and capture its output. A non-zero exit is returned, not thrown.
   *
   * @param argv The program and its arguments.
   * @param options Working directory, stdin and abort signal.
   * @returns Exit code, signal, and the decoded stdout and stderr.
   * @throws {SshError} When the connection is lost or no session can be opened.
   */
  async run(argv: readonly string[], options: SshRunOptions = {}): Promise<SshRunResult> {
    const stdout: Uint8Array[] = [];
    const stderr: Uint8Array[] = [];
    const result = await this.exec(argv, {
      cwd: options.cwd,
      stdin: options.stdin,
      signal: options.signal,
      stdout: (chunk) => stdout.push(chunk),
      stderr: (chunk) => stderr.push(chunk),
    });
    const decode = (chunks: Uint8Array[]) => new TextDecoder().decode(Buffer.concat(chunks));
    return { ...result, stdout: decode(stdout), stderr: decode(stderr) };
  }

  /**
   * Open an SFTP session (for uploads when the remote has no rsync).
   *
   * @returns The session; close it when done, it holds one of the connection's channels.
   * @throws {SshError} When the server has no SFTP subsystem or the connection is closed.
   */
  async sftp(): Promise<SftpSession> {
    const release = await this.#channels.acquire();
    try {
      return await this.#openChannel<SFTPWrapper, SftpSession>(
        "sftp",
        (callback) => this.#client.sftp(callback),
        (session) => new Ssh2SftpSession(session, describe(this.target), release),
      );
    } catch (error) {
      release();
      throw error;
    }
  }

  /**
   * Close the connection (and a jump connection it owns). Idempotent.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closeReason = "closed by sandboxer";
      this.#client.end();
      const timer = setTimeout(() => this.#client.destroy(), CLOSE_GRACE_MS);
      await this.#closedPromise;
      clearTimeout(timer);
    }
    await this.#ownedJump?.close();
    this.#logger?.debug(`closed ${describe(this.target)}`);
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Connect to a target: TCP (or a tunnel through `target.jump`), handshake
 * with host key verification, then authentication with the key and/or agent.
 *
 * @param target Where and how to connect.
 * @param options Abort signal, logger, and an optional open jump connection.
 * @returns The open connection.
 * @throws {HostKeyError} When the host key is unknown (without `acceptNewHostKey`), changed,
 *   revoked, or not `pinnedHostKey`; always before authentication.
 * @throws {SshError} When the host cannot be reached or authentication fails.
 * @throws {TimeoutError} When connect + handshake + auth exceed `connectTimeoutMs`.
 * @throws {PermissionError} When `--allow-net` or `--allow-read` is missing.
 */
export function connectSsh(
  target: SshTarget,
  options: ConnectSshOptions = {},
): Promise<SshConnection> {
  return SshConnection.connect(target, options);
}
