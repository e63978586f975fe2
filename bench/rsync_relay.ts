/**
 * PROTOTYPE (benchmark only, Linux): rsync over the SSH connection sandboxer
 * has already opened, instead of over a second, external `ssh` process.
 *
 * rsync starts its "remote shell" (`-e`) as `RSH [-l USER] HOST rsync
 * --server …` with pipes on the RSH's stdin and stdout. Here RSH is a
 * constant `sh` script (run by rsync, so it needs no Deno permission) that
 * bridges those pipes to the pipes between this process and rsync itself,
 * which are asynchronous on both ends:
 * - it writes the remote command (the words after HOST, joined by spaces as
 *   ssh joins them — rsync has already quoted them for the remote shell),
 *   NUL-terminated, to rsync's stdout (`/proc/$PPID/fd/1`), then copies
 *   everything rsync sends it there too (in the background);
 * - it copies rsync's stdin (`/proc/$PPID/fd/0`) to its own stdout, so what
 *   this process writes into rsync's stdin reaches rsync as the remote side;
 *   when that ends (the remote side exited), it stops the other copy and
 *   exits like ssh: rsync waits for its remote shell before closing its end.
 * This process runs the command on an exec channel of the open connection
 * and pumps: rsync stdout → channel, channel → rsync stdin. The remote exit
 * code comes back through a file, so rsync sees 127 when the remote has no
 * rsync, as it would with ssh. rsync must print nothing on its own stdout
 * (no `--stats`, `-v`, `--itemize-changes` or progress): that is the pipe.
 *
 * (Opening FIFOs with `Deno.open` instead does not work: a pending read on
 * one FIFO holds back writes to the other, and the relay deadlocks.)
 *
 * What it saves: ssh's own handshake, key exchange and authentication
 * (~190 ms on loopback here, more over a real network) and the `ssh`
 * process. It also means rsync goes through the connection whose host key
 * sandboxer pinned, works with passphrase-protected keys without an agent,
 * and needs no `--allow-run=ssh`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { DirectConnection } from "./ssh2_stream.ts";

/** The constant relay script; `$1` is a private directory for the exit code. */
const RELAY_SCRIPT = 'd="$1"; shift; if [ "$1" = -l ]; then shift 2; fi; shift; p=$PPID; ' +
  'printf "%s\\0" "$*" > /proc/$p/fd/1 || exit 255; ' +
  // A background job's stdin would be /dev/null: hand it the real one as fd 3.
  "exec 3<&0; cat <&3 > /proc/$p/fd/1 & u=$!; cat /proc/$p/fd/0; kill $u 2>/dev/null; " +
  'if [ -f "$d/rc" ]; then exit "$(cat "$d/rc")"; fi; exit 255';

/** What the relay ran. */
export interface RelayResult {
  /** rsync's exit code. */
  code: number;
  /** rsync's stderr plus the remote side's stderr. */
  stderr: string;
}

/**
 * Run rsync with its transport replaced by an exec channel of `connection`.
 *
 * @param connection An open connection.
 * @param args rsync arguments without `-e`, and without options that print to
 *   stdout; the remote operand is `user@host:path`.
 * @returns rsync's exit code and errors.
 */
export async function rsyncOverConnection(
  connection: DirectConnection,
  args: readonly string[],
): Promise<RelayResult> {
  const dir = await Deno.makeTempDir({ prefix: "sbx-rsync-relay-" });
  try {
    const child = new Deno.Command("rsync", {
      args: ["-e", `sh -c '${RELAY_SCRIPT}' relay ${dir}`, ...args],
      env: { RSYNC_OLD_ARGS: "0" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderrText = new Response(child.stderr).text();
    const toRsync = child.stdin.getWriter();
    const fromRsync = child.stdout.getReader();
    let remoteErr = "";

    // The command, up to the first NUL; what follows is already data for the remote side.
    let head = new Uint8Array();
    let nul = -1;
    while (nul < 0) {
      const { done, value } = await fromRsync.read();
      if (done) {
        await toRsync.close().catch(() => {});
        const status = await child.status;
        return { code: status.code, stderr: await stderrText };
      }
      const joined = new Uint8Array(head.length + value.length);
      joined.set(head);
      joined.set(value, head.length);
      head = joined;
      nul = head.indexOf(0);
    }
    const command = new TextDecoder().decode(head.subarray(0, nul));
    const rest = head.subarray(nul + 1);

    const { channel, done } = await connection.channel(command);
    channel.stderr.on("data", (chunk: Buffer) => (remoteErr += chunk.toString()));
    let writes = Promise.resolve();
    channel.on("data", (chunk: Buffer) => {
      const copy = new Uint8Array(chunk);
      writes = writes.then(() => toRsync.write(copy));
      // Backpressure from rsync: stop reading the channel until its stdin takes the chunk.
      channel.pause();
      writes.then(() => channel.resume(), () => channel.resume());
    });
    const send = async (chunk: Uint8Array) => {
      if (!channel.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
        await new Promise<void>((r) => channel.once("drain", () => r()));
      }
    };
    const upstream = (async () => {
      if (rest.length) await send(rest);
      while (true) {
        const { done, value } = await fromRsync.read();
        if (done) break;
        await send(value);
      }
    })();
    const code = await done;
    await writes.catch(() => {});
    await Deno.writeTextFile(`${dir}/rc`, String(code));
    await toRsync.close().catch(() => {});
    const status = await child.status;
    await upstream.catch(() => {});
    return { code: status.code, stderr: (await stderrText) + remoteErr };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
