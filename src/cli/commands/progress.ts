import type { SyncProgress } from "../../core/types.ts";
import type { WaitProgress } from "../../extensions/types.ts";
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

/**
 * What a create queued for a pool slot (`--wait`) shows: on a terminal, one
 * line on stderr rewritten in place (`waiting 12s for a slot (3 ahead)`);
 * elsewhere the same words as a log line every 30 seconds.
 *
 * @param output Where to write.
 * @param log Where the lines go when stderr is not a terminal.
 * @returns The callback, and `done` to wipe the terminal line once placed.
 */
export function waitPrinter(
  output: Output,
  log: (line: string) => void,
): { onWaiting: (p: WaitProgress) => void; done: () => void } {
  let shown = false;
  let lastLogged = 0;
  const text = (p: WaitProgress) => `waiting ${p.waitedSeconds}s for a slot (${p.ahead} ahead)`;
  return {
    onWaiting: (p) => {
      if (output.errIsTerminal) {
        output.err(`\r\x1b[K${text(p)}`);
        shown = true;
      } else if (p.waitedSeconds - lastLogged >= 30) {
        lastLogged = p.waitedSeconds;
        log(text(p));
      }
    },
    done: () => {
      if (shown) output.err("\r\x1b[K");
      shown = false;
    },
  };
}
