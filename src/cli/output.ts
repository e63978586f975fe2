/**
 * The CLI's only way to the terminal: data to stdout, everything else to
 * stderr, and a logger that writes progress lines to stderr.
 *
 * @module
 */

import type { Logger } from "../core/types.ts";

/** Where the CLI writes; injectable so commands can be tested in-process. */
export interface Output {
  /** Write data (tables, JSON) to stdout. */
  out(text: string): void;
  /** Write messages to stderr. */
  err(text: string): void;
  /** Raw stdout bytes (for exec). */
  outBytes(chunk: Uint8Array): void;
  /** Raw stderr bytes (for exec). */
  errBytes(chunk: Uint8Array): void;
  /** Whether stderr is a terminal (progress display). */
  errIsTerminal: boolean;
  /** Our stdin as a stream (exec passes it on); absent when there is none to give. */
  inStream?(): ReadableStream<Uint8Array>;
}

const encoder = new TextEncoder();

function writeAll(file: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
}

/** The process's own stdout and stderr. */
export const processOutput: Output = {
  out: (text) => writeAll(Deno.stdout, encoder.encode(text)),
  err: (text) => writeAll(Deno.stderr, encoder.encode(text)),
  outBytes: (chunk) => writeAll(Deno.stdout, chunk),
  errBytes: (chunk) => writeAll(Deno.stderr, chunk),
  get errIsTerminal() {
    return Deno.stderr.isTerminal();
  },
  inStream: () => Deno.stdin.readable,
};

const NAMED_ESCAPES: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * Escape C0 controls, DEL and C1 controls (U+0000–U+001F, U+007F–U+009F) as
 * `\n`, `\r`, `\t` or `\xNN`, so text from a remote host or an extension
 * cannot move the cursor, change colours or retitle the terminal, and an
 * error stays one line. The one escaping function for human output; JSON
 * output keeps exact values instead (see `json()`).
 *
 * @param text Any text.
 * @returns The text with every control character escaped.
 *
 * @example
 * ```ts
 * import { escapeControl } from "./output.ts";
 * console.log(escapeControl("/build/sbx-a\x1b]0;pwned\x07")); // /build/sbx-a\x1b]0;pwned\x07
 * ```
 */
export function escapeControl(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => NAMED_ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/**
 * A logger that writes `sandboxer: …` lines to stderr.
 *
 * @param output Where to write.
 * @param debug Whether debug lines are shown.
 * @returns The logger.
 */
export function stderrLogger(output: Output, debug: boolean): Logger {
  // Messages carry text from extensions and remote hosts: no terminal controls get through.
  const line = (prefix: string) => (message: string) => {
    for (const part of message.split("\n")) {
      output.err(`sandboxer: ${prefix}${escapeControl(part)}\n`);
    }
  };
  return {
    debug: debug ? line("debug: ") : () => {},
    info: line(""),
    warn: line("warning: "),
    error: line("error: "),
  };
}

/**
 * Print rows as an aligned text table.
 *
 * @param headers Column titles.
 * @param rows Cell texts.
 * @returns The table text, ending with a newline.
 */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const format = (cells: readonly string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd();
  return [format(headers), ...rows.map(format)].join("\n") + "\n";
}

/**
 * One JSON document on stdout, ending in a newline.
 *
 * @param value The value.
 * @returns The text.
 */
export function json(value: unknown): string {
  // JSON.stringify escapes C0 but passes DEL and C1 through raw; escape them too (same value).
  return JSON.stringify(value, null, 2).replace(
    /[\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  ) + "\n";
}
