/**
 * What runs on one open exec channel: driving a command to its exit status,
 * or handing its raw streams to a caller (the rsync relay), and the KILL
 * signal an abort sends.
 *
 * @module
 */

import { errorText, SshError } from "../../core/errors.ts";
import type { ClientChannel } from "../../deps/ssh2.ts";
import { signalExitCode } from "../../process/signals.ts";
import type { RawExecChannel, SshExecIO, SshExecResult } from "./types.ts";
import { Buffer } from "node:buffer";

/** What a channel needs to know of its connection to word a lost-connection error. */
export interface ChannelLink {
  /** The target, as error messages name it. */
  readonly where: string;
  /** Whether the connection has closed. */
  closed(): boolean;
  /** Why it closed (or will be reported as closed). */
  closeReason(): string;
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
export function sendSignal(channel: ClientChannel, name: string): void {
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

/**
 * Run an opened exec channel to its exit status, streaming its output to `io`.
 *
 * @param channel The open channel.
 * @param program The program name, for error messages.
 * @param io Output callbacks, stdin and abort signal.
 * @param link The connection, for lost-connection errors.
 * @returns The exit code and signal.
 */
export function driveExec(
  channel: ClientChannel,
  program: string,
  io: SshExecIO,
  link: ChannelLink,
): Promise<SshExecResult> {
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
      result = typeof code === "number" ? { code } : { code: signalExitCode(signal ?? ""), signal };
    });
    // Data listeners are always attached: an undrained channel never emits 'close'.
    channel.on("data", (chunk: Buffer) => io.stdout?.(new Uint8Array(chunk)));
    channel.stderr.on("data", (chunk: Buffer) => io.stderr?.(new Uint8Array(chunk)));
    channel.on("error", (error: unknown) => {
      settle(
        new SshError(link.where, "exec", `${program}: ${errorText(error)}`, {
          cause: error,
        }),
      );
    });
    channel.on("close", () => {
      if (result) return settle(undefined, result);
      settle(
        new SshError(
          link.where,
          "exec",
          link.closed()
            ? `the connection was lost while ${program} ran (${link.closeReason()}); check the network and run it again`
            : `the server closed the session of ${program} without an exit status`,
        ),
      );
    });
    channel.end(io.stdin === undefined ? undefined : Buffer.from(io.stdin));
  });
}

/**
 * Hand an opened exec channel's streams to the caller, with backpressure both ways.
 *
 * @param channel The open channel.
 * @param release Frees the connection's channel slot once the channel closes.
 * @param signal Aborting sends KILL and closes the channel.
 * @param link The connection, for lost-connection errors.
 * @returns stdin, stdout, stderr and the exit status.
 */
export function rawStreams(
  channel: ClientChannel,
  release: () => void,
  signal: AbortSignal | undefined,
  link: ChannelLink,
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
      link.where,
      "exec",
      link.closed()
        ? `the connection was lost while the command ran (${link.closeReason()}); check the network and run it again`
        : "the server closed the session without an exit status",
      // The bare reason, for callers that word the error themselves (the rsync relay).
      { cause: new Error(link.closed() ? link.closeReason() : "no exit status") },
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
    failure ??= new SshError(link.where, "exec", errorText(error), {
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
