/**
 * A sandbox's transcript: what create, setup, sync and exec did and printed,
 * each line timestamped, in `<state>/logs/<id>.log` (0600). Bounded: past the
 * cap, the older half is dropped, so a chatty build never fills the disk.
 *
 * @module
 */

import { UsageError } from "../core/errors.ts";
import type { ExecIO } from "../core/types.ts";

/** The default cap of one transcript, in bytes (1 MiB). */
export const DEFAULT_TRANSCRIPT_BYTES = 1024 * 1024;

const DROPPED = "[… earlier lines dropped: the transcript is capped]\n";

/**
 * Where a sandbox's transcript lives.
 *
 * @param stateDir The state directory.
 * @param id The sandbox id.
 * @returns The file path.
 */
export function transcriptPath(stateDir: string, id: string): string {
  return `${stateDir}/logs/${id}.log`;
}

/**
 * Read `SANDBOXER_LOG_MAX`: bytes, or with a `K`/`M` suffix (KiB, MiB).
 *
 * @param value The variable's value, if set.
 * @returns The cap in bytes.
 */
export function transcriptCap(value: string | undefined): number {
  if (value === undefined || value === "") return DEFAULT_TRANSCRIPT_BYTES;
  const match = /^(\d+)([KkMm]?)$/.exec(value.trim());
  if (!match) {
    throw new UsageError(
      `Cannot use SANDBOXER_LOG_MAX=${
        JSON.stringify(value)
      }: write a size in bytes, or with K or M (e.g. 512K, 4M)`,
    );
  }
  const unit = match[2].toLowerCase() === "m" ? 1024 * 1024 : match[2] ? 1024 : 1;
  return Number(match[1]) * unit;
}

/** Appends to one sandbox's transcript; writes are queued so lines never interleave. */
export class Transcript {
  readonly path: string;
  readonly #cap: number;
  #queue: Promise<void> = Promise.resolve();
  #partial = new Map<string, string>();

  /**
   * @param stateDir The state directory.
   * @param id The sandbox id.
   * @param cap The most bytes the file may hold; 0 keeps no transcript.
   */
  constructor(stateDir: string, id: string, cap: number = DEFAULT_TRANSCRIPT_BYTES) {
    this.path = transcriptPath(stateDir, id);
    this.#cap = cap;
  }

  /**
   * One event line, e.g. `create: profile.x`.
   *
   * @param text The line.
   * @returns Once written.
   */
  note(text: string): Promise<void> {
    return this.#append(`${stamp()} ${text}\n`);
  }

  /**
   * A chunk of command output; whole lines are written with a timestamp and
   * the stream's name, a trailing partial line waits for the rest.
   *
   * @param stream `setup`, `stdout`, `stderr`, …
   * @param chunk The bytes.
   */
  output(stream: string, chunk: Uint8Array): void {
    const text = (this.#partial.get(stream) ?? "") + new TextDecoder().decode(chunk);
    const end = text.lastIndexOf("\n");
    this.#partial.set(stream, text.slice(end + 1));
    if (end === -1) return;
    const lines = text.slice(0, end).split("\n").map((line) => `${stamp()} ${stream}| ${line}\n`);
    void this.#append(lines.join(""));
  }

  /**
   * The same sinks, each also copying its output here as `stdout`/`stderr`.
   *
   * @param io The caller's sinks, signal and stdin.
   * @returns Sinks that write to both.
   */
  tee(io: ExecIO): ExecIO {
    return {
      ...io,
      stdout: (chunk) => {
        this.output("stdout", chunk);
        io.stdout?.(chunk);
      },
      stderr: (chunk) => {
        this.output("stderr", chunk);
        io.stderr?.(chunk);
      },
    };
  }

  /**
   * Write out partial lines and wait for every queued write.
   *
   * @returns Once all is on disk.
   */
  async flush(): Promise<void> {
    for (const [stream, rest] of this.#partial) {
      if (rest !== "") void this.#append(`${stamp()} ${stream}| ${rest}\n`);
    }
    this.#partial.clear();
    await this.#queue;
  }

  #append(text: string): Promise<void> {
    if (this.#cap <= 0) return Promise.resolve();
    // A transcript is a convenience: failing to write one must never fail the sandbox.
    this.#queue = this.#queue.then(() => this.#write(text)).catch(() => {});
    return this.#queue;
  }

  async #write(text: string): Promise<void> {
    await Deno.mkdir(this.path.slice(0, this.path.lastIndexOf("/")), {
      recursive: true,
      mode: 0o700,
    });
    const bytes = new TextEncoder().encode(text);
    const size = await Deno.stat(this.path).then((info) => info.size, () => 0);
    if (size + bytes.length > this.#cap) {
      const old = await Deno.readFile(this.path).catch(() => new Uint8Array());
      const whole = new Uint8Array(old.length + bytes.length);
      whole.set(old);
      whole.set(bytes, old.length);
      // Keep the newest half, from a line start.
      let from = Math.max(0, whole.length - Math.floor(this.#cap / 2));
      while (from < whole.length && from > 0 && whole[from - 1] !== 0x0a) from++;
      const kept = whole.subarray(from);
      const head = new TextEncoder().encode(DROPPED);
      const out = new Uint8Array(head.length + kept.length);
      out.set(head);
      out.set(kept, head.length);
      await Deno.writeFile(this.path, out.subarray(Math.max(0, out.length - this.#cap)), {
        mode: 0o600,
      });
      await Deno.chmod(this.path, 0o600);
      return;
    }
    await Deno.writeFile(this.path, bytes, { append: true, create: true, mode: 0o600 });
  }
}

function stamp(): string {
  return new Date().toISOString();
}
