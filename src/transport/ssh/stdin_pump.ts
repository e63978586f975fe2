/**
 * Feeding a remote command's stdin from a stream, at the pace the remote
 * side takes it.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { ClientChannel } from "../../deps/ssh2.ts";

/**
 * Copy `stdin` into the channel as the remote command takes it (waiting for
 * 'drain' when the window is full), then send EOF. Returns a function that
 * stops reading, for when the command ends before its input does.
 *
 * @param stdin The caller's input.
 * @param channel The exec channel.
 * @returns Stops the copy.
 */
export function pumpStdin(stdin: ReadableStream<Uint8Array>, channel: ClientChannel): () => void {
  return pumpInto(stdin, async (chunk) => {
    if (!channel.write(Buffer.from(chunk))) {
      await new Promise<void>((resolve) => {
        channel.once("drain", resolve);
        channel.once("close", resolve);
      });
    }
  }, () => void channel.end());
}

/**
 * Copy `stdin` into any sink, one chunk at a time (each write awaited), then
 * end it — also when the stream fails; stopping ends the copy without ending
 * the sink.
 *
 * @param stdin The caller's input.
 * @param write Takes one chunk; resolves when there is room for the next.
 * @param end Sends EOF.
 * @returns Stops the copy.
 */
export function pumpInto(
  stdin: ReadableStream<Uint8Array>,
  write: (chunk: Uint8Array) => Promise<void>,
  end: () => void | Promise<void>,
): () => void {
  const reader = stdin.getReader();
  let stopped = false;
  (async () => {
    try {
      while (!stopped) {
        const { value, done } = await reader.read();
        if (done || stopped) break;
        await write(value);
      }
      if (!stopped) await end();
    } catch {
      // The caller's stream failed or the sink closed: the command sees EOF either way.
      if (!stopped) await Promise.resolve(end()).catch(() => {});
    } finally {
      reader.releaseLock();
    }
  })();
  return () => {
    stopped = true;
    reader.cancel().catch(() => {});
  };
}
