/**
 * SSH connections over npm:ssh2 — the only module that imports it.
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
 * import { connectSsh } from "./ssh.ts";
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

import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import ssh2, {
  type ClientChannel,
  type ConnectConfig,
  type SFTPWrapper,
  type Stats,
} from "../deps/ssh2.ts";
import { retry, Semaphore } from "../core/async.ts";
import {
  errorText,
  HostKeyError,
  PermissionError,
  SshError,
  type SshStage,
  TimeoutError,
} from "../core/errors.ts";
import type { ExecIO, Logger } from "../core/types.ts";
import {
  appendKnownHost,
  fingerprintSha256,
  keyBlobType,
  knownHostsName,
  knownKeyTypes,
  matchHostKey,
  readKnownHosts,
} from "./known_hosts.ts";
import { remoteCommand } from "./quote.ts";
import { signalExitCode } from "../process/signals.ts";

const { Client, utils } = ssh2;
type Ssh2Client = InstanceType<typeof Client>;

const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
const DEFAULT_KEEPALIVE_INTERVAL_MS = 5_000;
const KEEPALIVE_COUNT_MAX = 3;
/** sshd's MaxSessions defaults to 10 channels per connection; stay below it. */
const MAX_CHANNELS_PER_CONNECTION = 8;
const CLOSE_GRACE_MS = 2_000;
/** How long a refused channel waits to see whether the connection is closing. */
const CHANNEL_FAILURE_GRACE_MS = 200;
/** Tries to open a channel the server refused (backoff 20, 40, 80, 160, 320 ms). */
const CHANNEL_OPEN_ATTEMPTS = 6;

/** Host key algorithms ssh2 supports, in its own order of preference (ssh-dss left out). */
const HOST_KEY_ALGORITHMS: readonly string[] = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
];

/** Where and how to connect. */
export interface SshTarget {
  /** Host name or address. */
  host: string;
  /** TCP port. */
  port: number;
  /** Login user. */
  user: string;
  /** Path of the private key (OpenSSH, PEM or PPK). */
  identityFile?: string;
  /** Passphrase of the key, already read by the caller (from an env var). Never logged. */
  passphrase?: string;
  /** Name of the env var the passphrase comes from; only used in error messages. */
  passphraseEnv?: string;
  /** SSH_AUTH_SOCK path of an ssh-agent, tried after `identityFile` (or alone). */
  agent?: string;
  /** known_hosts file the host key must be in. */
  knownHostsFile: string;
  /** Trust-on-first-use: append an unknown host key (and log its fingerprint) instead of refusing. */
  acceptNewHostKey?: boolean;
  /**
   * SHA256 fingerprint (`SHA256:…`) the host key must have as well, such as
   * the one pinned when a sandbox was created. Checked with known_hosts,
   * before authentication: a different key is refused with nothing sent.
   */
  pinnedHostKey?: string;
  /** Bound on TCP connect + handshake + authentication. @default {15000} */
  connectTimeoutMs?: number;
  /** Keepalive interval; 3 unanswered probes end the connection; 0 turns it off. @default {5000} */
  keepaliveIntervalMs?: number;
  /** ProxyJump: connect here first, then tunnel to `host:port` through it. */
  jump?: SshTarget;
}

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

/** Streams and working directory for {@linkcode SshConnection.exec}. */
export interface SshExecIO extends ExecIO {
  /** Remote working directory; the command does not run if it is missing. */
  cwd?: string;
}

/** How a remote command ended. */
export interface SshExecResult {
  /** Exit status; 128+N when it was killed by signal N. */
  code: number;
  /** The killing signal (`"SIGTERM"`), if any. */
  signal?: string;
}

/** Options for {@linkcode SshConnection.run}. */
export interface SshRunOptions {
  /** Remote working directory. */
  cwd?: string;
  /** Data for the command's stdin. */
  stdin?: Uint8Array;
  /** Aborting it kills the command (signal KILL) and rejects with the reason. */
  signal?: AbortSignal;
}

/** A remote command's captured result. */
export interface SshRunResult extends SshExecResult {
  /** All of stdout, decoded as UTF-8. */
  stdout: string;
  /** All of stderr, decoded as UTF-8. */
  stderr: string;
}

/** Options for {@linkcode SshConnection.openRawExec}. */
export interface RawExecOptions {
  /** Aborting it kills the command (signal KILL), closes the channel and rejects `exit`. */
  signal?: AbortSignal;
}

/**
 * An exec channel as byte streams, from {@linkcode SshConnection.openRawExec}.
 * Both output streams must be read (or cancelled): a stream nobody reads
 * stops the channel's flow window, and so the other stream too.
 */
export interface RawExecChannel {
  /** The command's stdin; `close()` sends EOF, `abort()` closes the channel. */
  stdin: WritableStream<Uint8Array>;
  /** The command's stdout. */
  stdout: ReadableStream<Uint8Array>;
  /** The command's stderr. */
  stderr: ReadableStream<Uint8Array>;
  /**
   * The exit status (128+N for signal N) once the channel has closed; rejects
   * with an {@linkcode SshError} when the connection is lost first, or with the
   * signal's reason on abort.
   */
  exit: Promise<number>;
}

/** File metadata from SFTP. */
export interface SftpStat {
  /** Size in bytes. */
  size: number;
  /** Permission bits and file type, as `st_mode`. */
  mode: number;
  /** Modification time in milliseconds since the epoch. */
  mtimeMs: number;
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** A symbolic link (only from `lstat`-style listings). */
  isSymlink: boolean;
}

/** An SFTP session on a connection; close it (or `await using`) when done. */
export interface SftpSession extends AsyncDisposable {
  /** Read a whole remote file. */
  readFile(path: string): Promise<Uint8Array>;
  /** Write a whole remote file (created with `mode`, default 0644). */
  writeFile(path: string, data: Uint8Array, options?: { mode?: number }): Promise<void>;
  /** Create a directory; with `recursive`, its missing parents too and no error if it exists. */
  mkdir(path: string, options?: { mode?: number; recursive?: boolean }): Promise<void>;
  /** Stat a path (following symlinks); undefined when it does not exist. */
  stat(path: string): Promise<SftpStat | undefined>;
  /** List a directory (names without `.` and `..`; stats do not follow symlinks). */
  readdir(path: string): Promise<{ name: string; stat: SftpStat }[]>;
  /** Remove a file or symlink. */
  unlink(path: string): Promise<void>;
  /** Remove an empty directory. */
  rmdir(path: string): Promise<void>;
  /** Rename a path. */
  rename(from: string, to: string): Promise<void>;
  /** Create a symlink at `path` pointing to `target`. */
  symlink(target: string, path: string): Promise<void>;
  /** Change permission bits. */
  chmod(path: string, mode: number): Promise<void>;
  /** End the session. */
  close(): Promise<void>;
}

/**
 * The pool key of a target: `user@host:port`, plus ` via <jump key>` when it
 * goes through a jump host.
 *
 * @param target The target.
 * @returns The key.
 */
export function sshTargetKey(target: SshTarget): string {
  const own = `${target.user}@${target.host}:${target.port}`;
  return target.jump ? `${own} via ${sshTargetKey(target.jump)}` : own;
}

const preAuthDrops = new WeakSet<object>();

/**
 * Whether an error from {@linkcode connectSsh} is a connection dropped before
 * authentication (sshd `MaxStartups`, a reset) and so worth retrying. Host
 * key, authentication, timeout and permission errors never are.
 *
 * @param error Anything caught.
 * @returns True for a retryable pre-auth drop.
 */
export function isPreAuthDrop(error: unknown): boolean {
  return typeof error === "object" && error !== null && preAuthDrops.has(error);
}

function describe(target: SshTarget): string {
  return `${target.user}@${target.host}:${target.port}`;
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function errorLevel(error: unknown): string | undefined {
  const level = (error as { level?: unknown } | null)?.level;
  return typeof level === "string" ? level : undefined;
}

function isNotCapable(error: unknown): boolean {
  return error instanceof Deno.errors.NotCapable ||
    (error instanceof Error && error.name === "NotCapable");
}

function preAuthDrop(target: SshTarget, detail: string, cause?: unknown): SshError {
  const error = new SshError(
    describe(target),
    "connect",
    `the server dropped the connection before the SSH handshake (${detail})`,
    { cause, fix: "it may be at its MaxStartups limit, so retry shortly" },
  );
  preAuthDrops.add(error);
  return error;
}

/** Turn an ssh2 connection failure into one of our typed errors. */
function mapConnectError(error: unknown, target: SshTarget, timeoutMs: number): Error {
  const where = describe(target);
  const code = errorCode(error);
  const message = errorText(error);
  if (isNotCapable(error)) {
    const level = errorLevel(error);
    if (level === "agent" && target.agent) {
      return new PermissionError(
        "read/write",
        target.agent,
        `--allow-read=${target.agent} --allow-write=${target.agent}`,
        { cause: error },
      );
    }
    const net = `${target.host}:${target.port}`;
    return new PermissionError("net", net, `--allow-net=${net}`, { cause: error });
  }
  switch (code) {
    case "ECONNREFUSED":
      return new SshError(
        where,
        "connect",
        "connection refused",
        {
          cause: error,
          fix: `check target.host and target.port, and that sshd listens on port ${target.port}`,
        },
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new SshError(
        where,
        "connect",
        `host name ${JSON.stringify(target.host)} does not resolve`,
        { cause: error, fix: "check target.host" },
      );
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new SshError(
        where,
        "connect",
        `host unreachable (${code})`,
        { cause: error, fix: "check the address, routes and VPN" },
      );
    case "ETIMEDOUT":
      return new TimeoutError(`connect to ${where}`, timeoutMs);
    case "ECONNRESET":
    case "EPIPE":
      return preAuthDrop(target, code, error);
  }
  const level = errorLevel(error);
  if (level === "client-timeout") return new TimeoutError(`connect to ${where}`, timeoutMs);
  if (level === "client-authentication") {
    return new SshError(
      where,
      "authenticate",
      "the server refused every key offered",
      {
        cause: error,
        fix:
          "check target.user and target.identity_file, or that the key is in the server's authorized_keys",
      },
    );
  }
  if (level === "agent") {
    return new SshError(
      where,
      "authenticate",
      `ssh-agent at ${target.agent} failed (${message})`,
      { cause: error, fix: "check that the agent runs and SSH_AUTH_SOCK points at it" },
    );
  }
  if (
    /Connection lost before handshake|kex_exchange_identification|Connection reset/i.test(message)
  ) {
    return preAuthDrop(target, message, error);
  }
  return new SshError(
    where,
    "connect",
    message,
    { cause: error, fix: "check the target settings and the server's sshd log" },
  );
}

async function loadPrivateKey(target: SshTarget, logger?: Logger): Promise<Buffer | undefined> {
  const file = target.identityFile;
  if (file === undefined) return undefined;
  let data: Uint8Array;
  try {
    data = await Deno.readFile(file);
  } catch (error) {
    if (isNotCapable(error)) {
      throw new PermissionError("read", file, `--allow-read=${file}`, { cause: error });
    }
    if (error instanceof Deno.errors.NotFound) {
      throw new SshError(
        describe(target),
        "authenticate",
        `identity file ${file} does not exist; check target.identity_file`,
        { cause: error },
      );
    }
    throw error;
  }
  const key = Buffer.from(data);
  const parsed = utils.parseKey(key, target.passphrase);
  if (!(parsed instanceof Error)) return key;
  const env = target.passphraseEnv;
  if (/no passphrase given/i.test(parsed.message)) {
    if (target.agent !== undefined) {
      logger?.debug(`identity file ${file} is encrypted and no passphrase is set: using the agent`);
      return undefined;
    }
    throw new SshError(
      describe(target),
      "authenticate",
      `identity file ${file} is encrypted; set ${
        env ? `$${env}` : "its passphrase"
      } to the passphrase, or load the key into ssh-agent`,
    );
  }
  if (/passphrase/i.test(parsed.message)) {
    throw new SshError(
      describe(target),
      "authenticate",
      `the passphrase for identity file ${file} is wrong${env ? ` (check $${env})` : ""}`,
    );
  }
  throw new SshError(
    describe(target),
    "authenticate",
    `cannot read identity file ${file} (${parsed.message}); it must be an OpenSSH, PEM or PPK private key`,
  );
}

/** A host key that passed verification. */
interface VerifiedHostKey {
  type: string;
  base64: string;
  fingerprint: string;
}

/** Put the key types known_hosts has for the host first, so the server offers one we can check. */
function preferredHostKeyAlgorithms(knownTypes: readonly string[]): string[] {
  const preferred: string[] = [];
  for (const type of knownTypes) {
    const algorithms = type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type];
    for (const algorithm of algorithms) {
      if (HOST_KEY_ALGORITHMS.includes(algorithm) && !preferred.includes(algorithm)) {
        preferred.push(algorithm);
      }
    }
  }
  return [...preferred, ...HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a))];
}

function toStat(stats: Stats): SftpStat {
  return {
    size: stats.size,
    mode: stats.mode,
    mtimeMs: stats.mtime * 1000,
    isFile: stats.isFile(),
    isDirectory: stats.isDirectory(),
    isSymlink: stats.isSymbolicLink(),
  };
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

/** SFTP status code for "no such file". */
const SFTP_NO_SUCH_FILE = 2;

class Ssh2SftpSession implements SftpSession {
  #sftp: SFTPWrapper;
  #where: string;
  #release: () => void;
  #closed = false;

  constructor(sftp: SFTPWrapper, where: string, release: () => void) {
    this.#sftp = sftp;
    this.#where = where;
    this.#release = release;
    sftp.on("close", () => this.#markClosed());
    // An SFTP channel error without a listener would crash the process.
    sftp.on("error", () => this.#markClosed());
  }

  #markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#release();
  }

  #call<T>(
    op: string,
    path: string,
    fn: (done: (error: unknown, value?: T) => void) => void,
  ): Promise<T> {
    if (this.#closed) {
      return Promise.reject(
        new SshError(this.#where, "sftp", `cannot ${op} ${path}: the SFTP session is closed`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      fn((error, value) => {
        if (error) {
          reject(
            new SshError(this.#where, "sftp", `cannot ${op} ${path}: ${errorText(error)}`, {
              cause: error,
            }),
          );
        } else {
          resolve(value as T);
        }
      });
    });
  }

  readFile(path: string): Promise<Uint8Array> {
    return this.#call<Buffer>("read", path, (done) => this.#sftp.readFile(path, done))
      .then((buffer) => new Uint8Array(buffer));
  }

  writeFile(path: string, data: Uint8Array, options: { mode?: number } = {}): Promise<void> {
    // ssh2 writes a plain Uint8Array as decimal text; it needs a Buffer.
    const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return this.#call<void>(
      "write",
      path,
      (done) => this.#sftp.writeFile(path, buffer, { mode: options.mode ?? 0o644 }, done),
    );
  }

  async mkdir(path: string, options: { mode?: number; recursive?: boolean } = {}): Promise<void> {
    const mode = options.mode ?? 0o755;
    if (!options.recursive) {
      return this.#call<void>("mkdir", path, (done) => this.#sftp.mkdir(path, { mode }, done));
    }
    const parts = path.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join("/");
      if (prefix === "" || prefix.endsWith("/")) continue;
      const stat = await this.stat(prefix);
      if (stat?.isDirectory) continue;
      if (stat) {
        throw new SshError(
          this.#where,
          "sftp",
          `cannot mkdir ${path}: ${prefix} is not a directory`,
        );
      }
      await this.#call<void>("mkdir", prefix, (done) => this.#sftp.mkdir(prefix, { mode }, done));
    }
  }

  async stat(path: string): Promise<SftpStat | undefined> {
    try {
      const stats = await this.#call<Stats>("stat", path, (done) => this.#sftp.stat(path, done));
      return toStat(stats);
    } catch (error) {
      const cause = error instanceof Error ? error.cause : undefined;
      if ((cause as { code?: unknown } | undefined)?.code === SFTP_NO_SUCH_FILE) return undefined;
      throw error;
    }
  }

  async readdir(path: string): Promise<{ name: string; stat: SftpStat }[]> {
    const list = await this.#call<{ filename: string; attrs: Stats }[]>(
      "list",
      path,
      (done) => this.#sftp.readdir(path, done),
    );
    return list.filter((entry) => entry.filename !== "." && entry.filename !== "..")
      .map((entry) => ({ name: entry.filename, stat: toStat(entry.attrs) }));
  }

  unlink(path: string): Promise<void> {
    return this.#call<void>("remove", path, (done) => this.#sftp.unlink(path, done));
  }

  rmdir(path: string): Promise<void> {
    return this.#call<void>("rmdir", path, (done) => this.#sftp.rmdir(path, done));
  }

  rename(from: string, to: string): Promise<void> {
    return this.#call<void>("rename", from, (done) => this.#sftp.rename(from, to, done));
  }

  symlink(target: string, path: string): Promise<void> {
    // ssh2 swaps the two paths itself for OpenSSH's sftp-server, which reverses them.
    return this.#call<void>("symlink", path, (done) => this.#sftp.symlink(target, path, done));
  }

  chmod(path: string, mode: number): Promise<void> {
    return this.#call<void>("chmod", path, (done) => this.#sftp.chmod(path, mode, done));
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#markClosed();
        resolve();
      }, CLOSE_GRACE_MS);
      this.#sftp.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      this.#sftp.end();
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
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
      channel.end(io.stdin === undefined ? undefined : Buffer.from(io.stdin));
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
 * import { SshPool } from "./ssh.ts";
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
