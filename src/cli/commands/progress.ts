import type { SyncProgress } from "../../core/types.ts";
import { escapeControl, type Output } from "../output.ts";

/**
 * A sync progress display on stderr, only when stderr is a terminal.
 *
 * @param output Where to write.
 * @returns The callback, or undefined when stderr is not a terminal.
 */
export function progressPrinter(output: Output): ((p: SyncProgress) => void) | undefined {
  if (!output.errIsTerminal) return undefined;
  let last = 0;
  return (progress) => {
    const now = Date.now();
    if (now - last < 100 && progress.percent !== 100) return;
    last = now;
    const percent = progress.percent === undefined ? "" : `${progress.percent}% `;
    const mib = (progress.bytes / 1048576).toFixed(1);
    const file = escapeControl(progress.file ?? "");
    output.err(`\r\x1b[Ksync: ${percent}${mib} MiB ${file}`.slice(0, 120));
    // The summary line follows: a finished bar is wiped, not left above it.
    if (progress.percent === 100) output.err("\r\x1b[K");
  };
}
