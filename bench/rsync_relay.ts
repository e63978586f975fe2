/**
 * PROTOTYPE (benchmark only): rsync over the SSH connection sandboxer has
 * already opened, instead of over a second, external `ssh` process.
 *
 * rsync starts its "remote shell" (`-e`) as `RSH [-l USER] HOST rsync
 * --server …`. Here RSH is a constant `sh` script that makes two FIFOs in a
 * private temp dir, writes the remote command (the words after HOST, joined
 * by spaces exactly as ssh joins them; rsync has already quoted them for the
 * remote shell) to a file, and then copies its stdin into one FIFO and the
 * other FIFO to its stdout. This process reads the command, runs it on an
 * exec channel of the open connection and pumps the FIFOs through the
 * channel; the remote exit code goes back through a file, so rsync sees
 * `127` when the remote has no rsync, as with ssh.
 *
 * What it saves: ssh's own handshake, key exchange and authentication
 * (~190 ms on loopback here, more over a real network), plus the `ssh`
 * process. It also means rsync checks the host key sandboxer pinned (the
 * connection is the verified one), works with passphrase-protected keys
 * without an agent, and needs no `--allow-run=ssh`. The script runs under
 * rsync, not under Deno, so no further Deno permission is needed (`sh`,
 * `mkfifo` and `cat` are rsync's children).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { DirectConnection } from "./ssh2_stream.ts";

/** The constant relay script; `$1` is the private directory. */
const RELAY_SCRIPT = 'd="$1"; shift; if [ "$1" = -l ]; then shift 2; fi; shift; ' +
  'mkfifo -m 600 "$d/in" "$d/out" || exit 255; ' +
  'printf %s "$*" > "$d/cmd.tmp" && mv "$d/cmd.tmp" "$d/cmd" || exit 255; ' +
  'cat "$d/out" & cat > "$d/in"; wait $!; ' +
  'while [ ! -f "$d/rc" ]; do sleep 0.01; done; exit "$(cat "$d/rc")"';

/** What the relay ran. */
export interface RelayResult {
  /** rsync's exit code. */
  code: number;
  /** rsync's stdout. */
  stdout: string;
  /** rsync's stderr plus the remote side's stderr. */
  stderr: string;
}

async function waitForFile(path: string, child: Deno.ChildProcess, exited: () => boolean) {
  for (let delay = 1;; delay = Math.min(delay * 2, 10)) {
    try {
      await Deno.stat(path);
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (exited()) throw new Error(`rsync exited before starting its remote side (${child.pid})`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * Run rsync with its transport replaced by an exec channel of `connection`.
 *
 * @param connection An open connection.
 * @param args rsync arguments without `-e`/`--rsh`; the remote operand is `user@host:path`.
 * @returns rsync's exit code and output.
 */
export async function rsyncOverConnection(
  connection: DirectConnection,
  args: readonly string[],
): Promise<RelayResult> {
  const dir = await Deno.makeTempDir({ prefix: "sbx-rsync-relay-" });
  let exited = false;
  try {
    const child = new Deno.Command("rsync", {
      args: ["-e", `sh -c '${RELAY_SCRIPT}' relay ${dir}`, ...args],
      env: { RSYNC_OLD_ARGS: "0" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output().finally(() => (exited = true));
    let remoteErr = "";
    const relay = (async () => {
      await waitForFile(`${dir}/cmd`, child, () => exited);
      const command = await Deno.readTextFile(`${dir}/cmd`);
      const { channel, done } = await connection.channel(command);
      channel.stderr.on("data", (chunk: Buffer) => (remoteErr += chunk.toString()));
      const [input, out] = await Promise.all([
        Deno.open(`${dir}/in`, { read: true }),
        Deno.open(`${dir}/out`, { write: true }),
      ]);
      const writer = out.writable.getWriter();
      let writes = Promise.resolve();
      channel.on("data", (chunk: Buffer) => {
        const copy = new Uint8Array(chunk);
        writes = writes.then(() => writer.write(copy));
        // Backpressure from rsync's side: stop reading the channel until the FIFO drains.
        channel.pause();
        writes.then(() => channel.resume(), () => channel.resume());
      });
      const upstream = (async () => {
        for await (const chunk of input.readable) {
          if (!channel.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
            await new Promise<void>((r) => channel.once("drain", () => r()));
          }
        }
        channel.end();
      })();
      const code = await done;
      await upstream.catch(() => {});
      await writes.catch(() => {});
      await Deno.writeTextFile(`${dir}/rc`, String(code));
      await writer.close().catch(() => {});
    })();
    const [result] = await Promise.all([output, relay]);
    const decoder = new TextDecoder();
    return {
      code: result.code,
      stdout: decoder.decode(result.stdout),
      stderr: decoder.decode(result.stderr) + remoteErr,
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
