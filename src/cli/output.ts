/**
 * The CLI's only way to the terminal: data to stdout, everything else to
 * stderr, and a logger that writes progress lines to stderr.
 *
 * @module
 */

import type { Logger } from "../extensions/types.ts";

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
};

/**
 * A logger that writes `sandboxer: …` lines to stderr.
 *
 * @param output Where to write.
 * @param debug Whether debug lines are shown.
 * @returns The logger.
 */
export function stderrLogger(output: Output, debug: boolean): Logger {
  const line = (prefix: string) => (message: string) => {
    for (const part of message.split("\n")) output.err(`sandboxer: ${prefix}${part}\n`);
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
  return JSON.stringify(value, null, 2) + "\n";
}
