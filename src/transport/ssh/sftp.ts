/**
 * SFTP sessions over an ssh2 connection.
 *
 * @module
 */

import { errorText, SshError } from "../../core/errors.ts";
import type { SFTPWrapper, Stats } from "../../deps/ssh2.ts";
import type { SftpSession, SftpStat } from "./types.ts";
import { Buffer } from "node:buffer";

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

/** How long a close may wait for the server before the channel or connection is destroyed. */
export const CLOSE_GRACE_MS = 2_000;

/** SFTP status code for "no such file". */
const SFTP_NO_SUCH_FILE = 2;

export class Ssh2SftpSession implements SftpSession {
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
