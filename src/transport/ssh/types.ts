/**
 * Types of the SSH transport: targets, exec and run options and results, raw channels, SFTP.
 *
 * @module
 */

import type { ExecIO } from "../../core/types.ts";

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
