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
  const reader = stdin.getReader();
  let stopped = false;
  (async () => {
    try {
      while (!stopped) {
        const { value, done } = await reader.read();
        if (done || stopped) break;
        if (!channel.write(Buffer.from(value))) {
          await new Promise<void>((resolve) => {
            channel.once("drain", resolve);
            channel.once("close", resolve);
          });
        }
      }
      if (!stopped) channel.end();
    } catch {
      // The caller's stream failed or the channel closed: the command sees EOF either way.
      if (!stopped) channel.end();
    } finally {
      reader.releaseLock();
    }
  })();
  return () => {
    stopped = true;
    reader.cancel().catch(() => {});
  };
}
