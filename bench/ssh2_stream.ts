/**
 * PROTOTYPE (benchmark only): what `SshConnection.exec` would do with a
 * streamed stdin — write each chunk to the channel and wait for `drain`
 * when ssh2's window is full, then end the channel. `src/transport/ssh.ts`
 * takes stdin only as one buffer today, so the benchmark opens its own ssh2
 * client here (the settings that matter for speed as in ssh.ts: `setNoDelay`,
 * ssh2's default ciphers, publickey offered without a "none" attempt, host key
 * checked against the pinned fingerprint) to measure
 * the streamed variant of the tar sync. The proposed change to ssh.ts is the
 * `pump` function below, used in `#drive` when `io.stdin` is a stream.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import ssh2, { type ClientChannel } from "../src/deps/ssh2.ts";
import { fingerprintSha256 } from "../src/transport/known_hosts.ts";
import { remoteCommand } from "../src/transport/quote.ts";
import type { StreamExec } from "./tar_sync.ts";

/** Where to connect. */
export interface DirectTarget {
  /** Host. */
  host: string;
  /** Port. */
  port: number;
  /** User. */
  user: string;
  /** Private key file (unencrypted). */
  identityFile: string;
  /** The only host key fingerprint accepted ("SHA256:…"). */
  hostKeyFingerprint: string;
  /** Cipher preference; default ssh2's own, as src/transport/ssh.ts uses. */
  ciphers?: string[];
}

/** An open ssh2 client with a streaming exec. */
export interface DirectConnection extends AsyncDisposable {
  /** Run with streamed stdin. */
  exec: StreamExec;
  /**
   * Open an exec channel for a raw command string (already quoted for the remote shell).
   * `done` resolves with the exit code once the channel has closed.
   */
  channel(command: string): Promise<{ channel: ClientChannel; done: Promise<number> }>;
  /** Close. */
  close(): Promise<void>;
}

/**
 * Write a stream into a channel with backpressure, then end the channel's stdin.
 *
 * @param channel The exec channel.
 * @param stdin The data.
 */
export async function pump(
  channel: ClientChannel,
  stdin: ReadableStream<Uint8Array>,
): Promise<void> {
  const reader = stdin.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!channel.write(Buffer.from(value.buffer, value.byteOffset, value.byteLength))) {
        await new Promise<void>((resolve) => channel.once("drain", () => resolve()));
      }
    }
  } finally {
    reader.releaseLock();
  }
  channel.end();
}

/**
 * Connect with ssh2 directly.
 *
 * @param target Where.
 * @returns The connection.
 */
export async function connectDirect(target: DirectTarget): Promise<DirectConnection> {
  const client = new ssh2.Client();
  const privateKey = Buffer.from(await Deno.readFile(target.identityFile));
  await new Promise<void>((resolve, reject) => {
    client.on("connect", () => client.setNoDelay(true));
    client.once("ready", () => resolve());
    client.once("error", reject);
    client.connect({
      host: target.host,
      port: target.port,
      username: target.user,
      privateKey,
      authHandler: ["publickey"],
      hostVerifier: (key: Buffer) =>
        fingerprintSha256(new Uint8Array(key)) === target.hostKeyFingerprint,
      algorithms: {
        serverHostKey: ["ssh-ed25519"],
        // deno-lint-ignore no-explicit-any
        ...(target.ciphers ? { cipher: target.ciphers as any } : {}),
      },
    });
  });
  const exec: StreamExec = (argv, cwd, stdin) =>
    new Promise((resolve, reject) => {
      client.exec(remoteCommand(argv, { cwd }), (error, channel) => {
        if (error) return reject(error);
        let code = -1;
        let stderr = "";
        channel.on("exit", (c: number | null) => {
          code = c ?? 255;
        });
        channel.on("data", () => {});
        channel.stderr.on("data", (chunk: Buffer) => {
          stderr += chunk.toString();
        });
        channel.on("close", () => resolve({ code, stderr }));
        pump(channel, stdin).catch(reject);
      });
    });
  const close = () =>
    new Promise<void>((resolve) => {
      client.once("close", () => resolve());
      client.end();
    });
  const channel = (command: string) =>
    new Promise<{ channel: ClientChannel; done: Promise<number> }>((resolve, reject) => {
      client.exec(command, (error, opened) => {
        if (error) return reject(error);
        // Listeners go on inside the callback: 'exit' and 'close' may come in the same tick.
        let code = 255;
        opened.on("exit", (c: number | null) => {
          code = c ?? 255;
        });
        const done = new Promise<number>((r) => opened.on("close", () => r(code)));
        resolve({ channel: opened, done });
      });
    });
  return { exec, channel, close, [Symbol.asyncDispose]: close };
}
