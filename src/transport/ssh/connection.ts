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
import {
  errorText,
  HostKeyError,
  SshError,
  type SshStage,
  TimeoutError,
} from "../../core/errors.ts";
import type { Logger } from "../../core/types.ts";
import ssh2 from "../../deps/ssh2.ts";
import type { ClientChannel, ConnectConfig, SFTPWrapper } from "../../deps/ssh2.ts";
import { signalExitCode } from "../../process/signals.ts";
import {
  appendKnownHost,
  fingerprintSha256,
  keyBlobType,
  knownHostsName,
  knownKeyTypes,
  matchHostKey,
  readKnownHosts,
} from "../known_hosts.ts";
import { remoteCommand } from "../quote.ts";
import { describe, mapConnectError, preAuthDrop } from "./errors.ts";
import { preferredHostKeyAlgorithms, type VerifiedHostKey } from "./host_key.ts";
import { loadPrivateKey } from "./keys.ts";
import { pumpStdin } from "./stdin_pump.ts";
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

const { Client } = ssh2;

type Ssh2Client = InstanceType<typeof Client>;

const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

const DEFAULT_KEEPALIVE_INTERVAL_MS = 5_000;

const KEEPALIVE_COUNT_MAX = 3;

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

/** The parts of an ssh2 1.17 channel that {@linkcode sendSignal} needs. */
interface ChannelInternals {
  type?: string;
  outgoing?: { id?: number; state?: string };
  _client?: { _protocol?: { signal?: (id: number, name: string) => void } };
}

/**
 * Send a signal request on a session channel. ssh2's own `channel.signal()`
 * does nothing once stdin is closed (its writable side has ended), which is
 * always the case for our execs, so this goes to the protocol layer directly
 * (ssh2 is pinned; the integration test proves the remote process dies).
 * OpenSSH delivers it with killpg() to the whole session process group.
 */
function sendSignal(channel: ClientChannel, name: string): void {
  const internals = channel as unknown as ChannelInternals;
  const state = internals.outgoing?.state;
  const id = internals.outgoing?.id;
  if (internals.type !== "session" || id === undefined || (state !== "open" && state !== "eof")) {
    return;
  }
  try {
    internals._client?._protocol?.signal?.(id, name);
  } catch {
    // The connection is going away; closing the channel is all that is left.
  }
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

    const client = new Client();
    let failure: Error | undefined;
    let hostKey: VerifiedHostKey | undefined;
    let handshakeDone = false;

    // ssh2 calls this during key exchange, before any authentication request is sent: a key
    // refused here means the server never sees the user's key or name.
    const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
      const blob = new Uint8Array(key);
      const fingerprint = fingerprintSha256(blob);
      let keyType: string;
      try {
        keyType = keyBlobType(blob);
      } catch (error) {
        failure = new SshError(where, "connect", `the server sent a malformed host key`, {
          cause: error,
        });
        return verify(false);
      }
      const offered = { type: keyType, base64: Buffer.from(blob).toString("base64"), fingerprint };
      const check = matchHostKey(known, {
        host: target.host,
        port: target.port,
        keyType,
        keyBlob: blob,
      });
      const name = knownHostsName(target.host, target.port);
      const refuse = (error: Error) => {
        failure = error;
        verify(false);
      };
      if (check.status === "revoked") {
        return refuse(
          new HostKeyError(name, fingerprint, "revoked", target.knownHostsFile, {
            line: check.entryLine,
          }),
        );
      }
      // The pin comes before trust-on-first-use: a key that is not the pinned one is never
      // appended to known_hosts.
      if (target.pinnedHostKey !== undefined && fingerprint !== target.pinnedHostKey) {
        return refuse(
          new HostKeyError(name, fingerprint, "pinned", target.knownHostsFile, {
            pinned: target.pinnedHostKey,
            knownHostsToo: check.status === "match" ? undefined : check.status,
          }),
        );
      }
      if (check.status === "match") {
        hostKey = offered;
        return verify(true);
      }
      if (check.status === "unknown" && target.acceptNewHostKey) {
        appendKnownHost({
          file: target.knownHostsFile,
          host: target.host,
          port: target.port,
          keyType,
          keyBase64: offered.base64,
        })
          .then(() => {
            logger?.warn(
              `Permanently added ${name} (${keyType} ${fingerprint}) to ${target.knownHostsFile}`,
            );
            hostKey = offered;
            verify(true);
          })
          .catch((error) => refuse(error instanceof Error ? error : new Error(String(error))));
        return;
      }
      refuse(new HostKeyError(name, fingerprint, check.status, target.knownHostsFile));
    };

    const config: ConnectConfig = {
      host: target.host,
      port: target.port,
      username: target.user,
      privateKey,
      passphrase: privateKey ? target.passphrase : undefined,
      agent: target.agent,
      sock: sock as ConnectConfig["sock"],
      hostVerifier,
      readyTimeout: timeoutMs,
      keepaliveInterval: target.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      tryKeyboard: false,
      // Offer the key (then the agent) at once: ssh2's default opens with a "none" request
      // that servers refuse, one round trip more per connect (~6-9 ms on loopback here).
      authHandler: [
        ...(privateKey ? ["publickey" as const] : []),
        ...(target.agent !== undefined ? ["agent" as const] : []),
      ],
      algorithms: {
        serverHostKey: preferredHostKeyAlgorithms(
          knownKeyTypes(known, target.host, target.port),
        ) as NonNullable<ConnectConfig["algorithms"]>["serverHostKey"],
      },
    };

    try {
      await new Promise<void>((resolve, reject) => {
        let settled = false;
        const finish = (error?: Error) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          if (error === undefined) return resolve();
          client.destroy();
          reject(error);
        };
        const onAbort = () => finish(signal?.reason ?? new DOMException("Aborted", "AbortError"));
        const timer = setTimeout(
          () => finish(new TimeoutError(`connect to ${where}`, timeoutMs)),
          timeoutMs,
        );
        signal?.addEventListener("abort", onAbort, { once: true });
        // Nagle's algorithm costs ~150 ms per handshake round trip and per exec here.
        client.on("connect", () => client.setNoDelay(true));
        client.on("handshake", () => {
          handshakeDone = true;
        });
        client.once("ready", () => finish());
        // This listener stays for good: an 'error' event with no listener would throw.
        client.on(
          "error",
          (error: unknown) => finish(failure ?? mapConnectError(error, target, timeoutMs)),
        );
        client.on("close", () => {
          finish(
            failure ??
              (handshakeDone
                ? new SshError(
                  where,
                  "authenticate",
                  "the server closed the connection during authentication",
                )
                : preAuthDrop(target, "closed before the handshake")),
          );
        });
        try {
          client.connect(config);
        } catch (error) {
          finish(mapConnectError(error, target, timeoutMs));
        }
      });
    } catch (error) {
      await ownedJump?.close();
      throw error;
    }
    if (hostKey === undefined) {
      // ssh2 verifies before "ready"; reaching here without a verified key would be a bug.
      client.destroy();
      await ownedJump?.close();
      throw new Error(`connected to ${where} without a verified host key`);
    }
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
        (channel) => this.#drive(channel, argv[0], io),
        io.signal,
      );
    } finally {
      release();
    }
  }

  #drive(channel: ClientChannel, program: string, io: SshExecIO): Promise<SshExecResult> {
    return new Promise<SshExecResult>((resolve, reject) => {
      let settled = false;
      let result: SshExecResult | undefined;
      const settle = (error: unknown, value?: SshExecResult) => {
        if (settled) return;
        settled = true;
        io.signal?.removeEventListener("abort", onAbort);
        if (value) resolve(value);
        else reject(error);
      };
      const onAbort = () => {
        sendSignal(channel, "KILL");
        channel.close();
        settle(io.signal?.reason ?? new DOMException("Aborted", "AbortError"));
      };
      if (io.signal?.aborted) return onAbort();
      io.signal?.addEventListener("abort", onAbort, { once: true });

      channel.on("exit", (code: number | null, signal?: string) => {
        result = typeof code === "number"
          ? { code }
          : { code: signalExitCode(signal ?? ""), signal };
      });
      // Data listeners are always attached: an undrained channel never emits 'close'.
      channel.on("data", (chunk: Buffer) => io.stdout?.(new Uint8Array(chunk)));
      channel.stderr.on("data", (chunk: Buffer) => io.stderr?.(new Uint8Array(chunk)));
      channel.on("error", (error: unknown) => {
        settle(
          new SshError(describe(this.target), "exec", `${program}: ${errorText(error)}`, {
            cause: error,
          }),
        );
      });
      channel.on("close", () => {
        if (result) return settle(undefined, result);
        settle(
          new SshError(
            describe(this.target),
            "exec",
            this.#closed
              ? `the connection was lost while ${program} ran (${this.#closeReason}); check the network and run it again`
              : `the server closed the session of ${program} without an exit status`,
          ),
        );
      });
      if (io.stdin instanceof ReadableStream) {
        const stop = pumpStdin(io.stdin, channel);
        channel.once("close", stop);
      } else {
        channel.end(io.stdin === undefined ? undefined : Buffer.from(io.stdin));
      }
    });
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
        (channel) => this.#rawStreams(channel, release, signal),
        signal,
      );
    } catch (error) {
      release();
      throw error;
    }
  }

  #rawStreams(
    channel: ClientChannel,
    release: () => void,
    signal: AbortSignal | undefined,
  ): RawExecChannel {
    let closed = false;
    let code: number | undefined;
    let failure: unknown;
    let settleExit!: (code: number) => void;
    let failExit!: (error: unknown) => void;
    const exit = new Promise<number>((resolve, reject) => {
      settleExit = resolve;
      failExit = reject;
    });
    // The caller may only look at `exit` after its streams are done.
    exit.catch(() => {});
    const onAbort = () => {
      failure ??= signal?.reason ?? new DOMException("Aborted", "AbortError");
      sendSignal(channel, "KILL");
      channel.close();
    };
    const lost = () =>
      new SshError(
        describe(this.target),
        "exec",
        this.#closed
          ? `the connection was lost while the command ran (${this.#closeReason}); check the network and run it again`
          : "the server closed the session without an exit status",
        // The bare reason, for callers that word the error themselves (the rsync relay).
        { cause: new Error(this.#closed ? this.#closeReason : "no exit status") },
      );

    // Output flows into a ReadableStream; the channel pauses while its queue is full and
    // resumes when the reader pulls, so a slow reader holds back the remote side.
    const readable = (source: ClientChannel | ClientChannel["stderr"]) => {
      let discard = false;
      let ended = false;
      return new ReadableStream<Uint8Array>({
        start(controller) {
          source.on("data", (chunk: Buffer) => {
            if (discard || ended) return;
            controller.enqueue(new Uint8Array(chunk));
            if ((controller.desiredSize ?? 0) <= 0) source.pause();
          });
          source.once("end", () => {
            if (ended) return;
            ended = true;
            if (!discard) controller.close();
          });
        },
        pull() {
          source.resume();
        },
        cancel() {
          discard = true;
          source.resume();
        },
      }, new CountQueuingStrategy({ highWaterMark: 8 }));
    };
    const stdout = readable(channel);
    const stderr = readable(channel.stderr);

    const stdin = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (closed) throw failure ?? lost();
        // A copy: the caller may reuse its buffer once the write resolves.
        if (channel.write(Buffer.from(chunk))) return;
        return new Promise<void>((resolve) => {
          const done = () => {
            channel.off("drain", done);
            channel.off("close", done);
            resolve();
          };
          channel.on("drain", done);
          channel.on("close", done);
        });
      },
      close: () => {
        if (!closed) channel.end();
      },
      abort: () => {
        if (!closed) channel.close();
      },
    });

    channel.on("exit", (exitCode: number | null, exitSignal?: string) => {
      code = typeof exitCode === "number" ? exitCode : signalExitCode(exitSignal ?? "");
    });
    channel.on("error", (error: unknown) => {
      failure ??= new SshError(describe(this.target), "exec", errorText(error), {
        cause: error,
      });
    });
    channel.on("close", () => {
      closed = true;
      signal?.removeEventListener("abort", onAbort);
      release();
      if (failure !== undefined) failExit(failure);
      else if (code !== undefined) settleExit(code);
      else failExit(lost());
    });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    return { stdin, stdout, stderr, exit };
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
