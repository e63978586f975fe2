/**
 * Connections shared between sandboxer processes: OpenSSH's own
 * ControlMaster/ControlPersist, through the `ssh` program sandboxer may
 * already run. A master is a background `ssh -N` that keeps one
 * authenticated connection open for `persistSeconds` after its last use; each
 * command then runs as a mux client over it (no TCP or SSH handshake).
 *
 * Its socket lives in `<state>/mux/` (0700, the caller's own; a directory that
 * is a symlink, another user's or open to others is refused) under a short
 * hashed name that covers the host, port, user, key file, keepalive and the
 * pinned host key's fingerprint, so a master made under one key is never used for a
 * sandbox that pins another. What sits at a socket's name and is not a socket
 * of the caller's (a symlink, a file) is refused; a socket nobody listens on
 * (its master was killed) is removed and a new master started.
 *
 * @module
 */

import { LocalFileError } from "../core/errors.ts";
import { run } from "../process/run.ts";

/** The directory under the state directory that holds the control sockets. */
export const MUX_DIR = "mux";

/**
 * The longest socket path used: `sun_path` holds 104 bytes on macOS (108 on
 * Linux), and OpenSSH first binds `<path>.` plus 16 random characters.
 */
export const MAX_SOCKET_PATH = 104 - 18;

/** What identifies one shareable connection. */
export interface MuxKey {
  /** Host name or address. */
  host: string;
  /** SSH port. */
  port: number;
  /** Login user. */
  user: string;
  /** Private key file, or null for ssh-agent. */
  identityFile: string | null;
  /** The pinned host key's `SHA256:…` fingerprint. */
  fingerprint: string;
  /** Keepalive interval (ms): how soon the master notices a dead link. */
  keepaliveMs: number;
}

/**
 * The socket's file name: 16 hex digits of SHA-256 over everything that must
 * match for two commands to share a connection (the pinned key included).
 *
 * @param key What the connection is to.
 * @returns The name.
 */
export async function muxSocketName(key: MuxKey): Promise<string> {
  const text = JSON.stringify([
    key.host,
    key.port,
    key.user,
    key.identityFile,
    key.fingerprint,
    key.keepaliveMs,
  ]);
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  return [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The checked socket directory and the caller's uid (as the file system records it). */
export interface MuxDir {
  /** `<state>/mux`. */
  path: string;
  /** The uid files made by this process get. */
  uid: number;
}

/**
 * Make (or check) `<state>/mux`: a real directory, the caller's, mode 0700.
 *
 * @param stateDir sandboxer's state directory.
 * @returns The directory and the caller's uid.
 * @throws {LocalFileError} when it is a symlink, not a directory, another
 *   user's or open to group or others.
 */
export async function openMuxDir(stateDir: string): Promise<MuxDir> {
  const path = `${stateDir}/${MUX_DIR}`;
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  try {
    await Deno.mkdir(path, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const uid = await ownUid(stateDir);
  const info = await Deno.lstat(path);
  const refuse = (problem: string) =>
    new LocalFileError(
      path,
      `${problem}, so sandboxer will not keep shared SSH connections in it; remove it (sandboxer makes it again, mode 0700) or set SANDBOXER_SSH_MUX=0`,
    );
  if (info.isSymlink) throw refuse("it is a symlink");
  if (!info.isDirectory) throw refuse("it is not a directory");
  if (info.uid !== uid) throw refuse(`it belongs to another user (uid ${info.uid})`);
  const mode = (info.mode ?? 0) & 0o777;
  if (mode !== 0o700) throw refuse(`its mode is ${mode.toString(8).padStart(4, "0")}, not 0700`);
  return { path, uid };
}

/** Deno.uid() needs --allow-sys=uid, which sandboxer lacks: the owner of a file just made. */
async function ownUid(dir: string): Promise<number> {
  const probe = await Deno.makeTempFile({ dir, prefix: ".uid-" });
  try {
    return (await Deno.lstat(probe)).uid ?? -1;
  } finally {
    await Deno.remove(probe).catch(() => {});
  }
}

/**
 * Whether a master listens on `path`. A socket of the caller's that refuses
 * connections (its master died) is removed: the caller then starts a new one.
 *
 * @param path The socket's path, in a checked {@linkcode MuxDir}.
 * @param uid The caller's uid.
 * @returns `"live"` or `"absent"`.
 * @throws {LocalFileError} when something else is at `path`.
 */
export async function probeMaster(path: string, uid: number): Promise<"live" | "absent"> {
  const info = await Deno.lstat(path).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (info === undefined) return "absent";
  const what = info.isSymlink
    ? "a symlink"
    : !info.isSocket
    ? "not a socket"
    : info.uid !== uid
    ? `a socket of another user (uid ${info.uid})`
    : undefined;
  if (what !== undefined) {
    throw new LocalFileError(
      path,
      `it is ${what}, not a control socket sandboxer made, so sandboxer will not connect through it; remove it, or set SANDBOXER_SSH_MUX=0`,
    );
  }
  try {
    const connection = await Deno.connect({ transport: "unix", path });
    connection.close();
    return "live";
  } catch (error) {
    if (
      !(error instanceof Deno.errors.ConnectionRefused) && !(error instanceof Deno.errors.NotFound)
    ) {
      throw error;
    }
  }
  await Deno.remove(path).catch(() => {});
  return "absent";
}

/** How to start a master. */
export interface MasterSpec {
  /** The `-F` config file holding the `Host` block. */
  configFile: string;
  /** The `Host` alias in it. */
  alias: string;
  /** The socket. */
  socket: string;
  /** Seconds the master stays up after its last client. */
  persistSeconds: number;
  /** Seconds to wait for the TCP connection. */
  connectTimeoutSeconds: number;
  /** Seconds between keepalives (0: none); three missed ones end the master and its commands. */
  keepaliveSeconds: number;
  /** Abort signal. */
  signal?: AbortSignal;
}

/**
 * OpenSSH's `-S` argument: `%` is a token there.
 *
 * @param socket The socket's path.
 * @returns The argument.
 */
export function controlPathArg(socket: string): string {
  return socket.replaceAll("%", "%%");
}

/**
 * Start a master in the background (`ssh -f -M … true`): it returns once the
 * connection is authenticated and the socket listens. It never asks for
 * anything (BatchMode): a key that needs a passphrase no agent holds, or a
 * host key other than the pinned one, fails here and nothing ran remotely.
 *
 * @param spec The master's config, socket and timeouts.
 * @returns undefined once it listens, else why not (ssh's last line).
 */
export async function startMaster(spec: MasterSpec): Promise<string | undefined> {
  const result = await run(masterArgv(spec), {
    allowFailure: true,
    signal: spec.signal,
  });
  if (result.code !== 0) {
    return result.stderr.trim().split("\n").at(-1) || `ssh exited with ${result.code}`;
  }
  await Deno.chmod(spec.socket, 0o600);
  return undefined;
}

/**
 * Launch a master and leave it, without waiting for its handshake: this
 * process may end first. With no lock held for the whole start, two
 * processes may start one each; OpenSSH binds the socket by an atomic link,
 * so one master wins and the other exits (see masterArgv()). OpenSSH makes
 * the socket 0600 (umask 0177) in the 0700 directory. A master that fails
 * (a changed host key, a refused login) only leaves later calls to connect
 * directly.
 *
 * @param spec The master's config, socket and timeouts.
 * @returns The pid of the `ssh` launched (it exits once the master listens, or fails).
 * @throws {Deno.errors.NotCapable} When `--allow-run` does not grant `ssh`.
 */
export function launchMaster(spec: MasterSpec): number {
  const [program, ...args] = masterArgv(spec);
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  child.status.catch(() => {});
  return child.pid;
}

/**
 * The master's argv. Its remote command `true` is never run by a master
 * that got its socket (with `-f` and ControlPersist OpenSSH opens no session
 * of its own); one that lost the socket to another process's master runs it
 * and exits, where with `-N` it would stay connected, unused, until the
 * server went away.
 */
function masterArgv(spec: MasterSpec): [string, ...string[]] {
  return [
    "ssh",
    "-F",
    spec.configFile,
    "-S",
    controlPathArg(spec.socket),
    "-o",
    "ControlMaster=yes",
    "-o",
    `ControlPersist=${spec.persistSeconds}s`,
    "-o",
    "BatchMode=yes",
    "-o",
    `ConnectTimeout=${Math.max(1, Math.ceil(spec.connectTimeoutSeconds))}`,
    "-o",
    `ServerAliveInterval=${Math.ceil(Math.max(0, spec.keepaliveSeconds || 0))}`,
    "-o",
    "ServerAliveCountMax=3",
    "-o",
    "LogLevel=ERROR",
    "-f",
    spec.alias,
    "true",
  ];
}

/**
 * Hold an exclusive lock on `<socket>.lock` while `fn` runs, so two
 * processes never start two masters for one socket.
 *
 * @param socket The socket's path.
 * @param fn What to do under the lock.
 * @returns What `fn` returns.
 */
export async function withMasterLock<T>(socket: string, fn: () => Promise<T>): Promise<T> {
  using file = await Deno.open(`${socket}.lock`, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  await file.lock(true);
  try {
    return await fn();
  } finally {
    await file.unlock().catch(() => {});
  }
}

/**
 * `SANDBOXER_SSH_MUX`: unset or `1` keeps a shared connection up 60 s after
 * its last use, `0` turns sharing off, a number of seconds sets the time.
 *
 * @param value The variable's value.
 * @param parseSeconds Reads a duration such as `90s` or `5m` (seconds), throwing when malformed.
 * @returns Seconds, or 0 for off.
 */
export function muxPersistSeconds(
  value: string | undefined,
  parseSeconds: (text: string) => number,
): number {
  if (value === undefined || value === "" || value === "1") return 60;
  if (value === "0") return 0;
  return parseSeconds(/^\d+$/.test(value) ? `${value}s` : value);
}
