/**
 * Reading rsync's output: the `--stats` counts and `--info=progress2` lines.
 *
 * @module
 */

import type { SyncProgress } from "../core/types.ts";
import { collectText } from "../process/run.ts";

/** Counts from rsync's `--stats` block. */
export interface RsyncStats {
  /** "Number of regular files transferred". */
  files: number;
  /** "Number of deleted files". */
  deleted: number;
  /** "Total transferred file size", in bytes. */
  bytes: number;
}

function statNumber(text: string, label: string): number {
  const match = new RegExp(`^${label}: ([\\d,.]+)`, "m").exec(text);
  return match ? Number(match[1].replace(/[,.]/g, "")) : 0;
}

/**
 * Read the counts from rsync `--stats` output.
 *
 * @param text rsync's stdout.
 * @returns Files sent, files deleted, bytes of file data moved.
 */
export function parseRsyncStats(text: string): RsyncStats {
  return {
    files: statNumber(text, "Number of regular files transferred"),
    deleted: statNumber(text, "Number of deleted files"),
    bytes: statNumber(text, "Total transferred file size"),
  };
}

/**
 * Read one `--info=progress2` line, such as
 * `  1234567  45%  12.34MB/s  0:00:01 (xfr#3, to-chk=10/20)`.
 *
 * @param line One line (rsync separates updates with `\r`).
 * @returns The progress, or undefined when the line is something else.
 */
export function parseProgressLine(line: string): SyncProgress | undefined {
  const match = /^\s*([\d,.]+)\s+(\d{1,3})%\s/.exec(line);
  if (!match) return undefined;
  const progress = { bytes: Number(match[1].replace(/[,.]/g, "")), percent: Number(match[2]) };
  const files = /\(xfr#(\d+),/.exec(line);
  return files ? { ...progress, files: Number(files[1]) } : progress;
}

/**
 * A sink for rsync's output chunks that splits them into lines (rsync ends a
 * progress update with `\r`, other lines with `\n`) and passes each progress
 * line on.
 *
 * @param onProgress Called with each progress update.
 * @returns The chunk sink.
 */
export function progressSink(
  onProgress: (progress: SyncProgress) => void,
): (chunk: Uint8Array) => void {
  const decoder = new TextDecoder();
  let pending = "";
  return (chunk) => {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split(/[\r\n]/);
    pending = lines.pop() ?? "";
    for (const line of lines) {
      const progress = parseProgressLine(line);
      if (progress) onProgress(progress);
    }
  };
}

/**
 * Read a stream to text, passing `--info=progress2` lines to `onProgress` on the way.
 *
 * @param stream rsync's (or the remote side's) stderr.
 * @param onProgress Called with each progress update.
 * @returns All of the text.
 */
export function readRsyncOutput(
  stream: ReadableStream<Uint8Array>,
  onProgress?: (progress: SyncProgress) => void,
): Promise<string> {
  return collectText(stream.getReader(), onProgress ? progressSink(onProgress) : undefined);
}
