/**
 * A minimal QMP client: connect to qemu's monitor socket, negotiate, run one
 * command. How a VM is stopped: `Deno.kill` needs an unrestricted
 * `--allow-run`, the socket needs none.
 *
 * @module
 */

/**
 * Run one QMP command and return its `return` value.
 *
 * @param socket The QMP unix socket.
 * @param command E.g. `quit`, `query-status`.
 * @param timeoutMs Bound on the whole exchange.
 * @returns The command's `return` member.
 * @throws {Error} when the socket does not answer, or qemu answers with an error.
 */
export async function qmpCommand(
  socket: string,
  command: string,
  timeoutMs = 5_000,
): Promise<unknown> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const next = async (): Promise<Record<string, unknown>> => {
    for (;;) {
      const newline = buffer.indexOf("\n");
      if (newline >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line === "") continue;
        const message = JSON.parse(line);
        if ("event" in message) continue; // asynchronous events interleave with answers
        return message;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`QMP socket ${socket} closed before answering ${command}`);
      buffer += value;
    }
  };
  const send = async (execute: string) => {
    const writer = conn.writable.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify({ execute }) + "\n"));
    writer.releaseLock();
    const answer = await next();
    if ("error" in answer) {
      throw new Error(`QMP ${execute} failed: ${JSON.stringify(answer.error)}`);
    }
    return answer.return;
  };
  try {
    const greeting = await next();
    if (!("QMP" in greeting)) throw new Error(`${socket} is not a QMP socket`);
    await send("qmp_capabilities");
    return await send(command);
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
    try {
      conn.close();
    } catch {
      // Closed by the timer or by qemu quitting.
    }
  }
}
