import type { SyncProgress, SyncReport } from "../../core/types.ts";
import type { WaitProgress } from "../../extensions/types.ts";
import { escapeControl, type Output } from "../output.ts";
import { watchArrival } from "../fetch_watch.ts";

/**
 * A sync progress display on stderr, only when stderr is a terminal.
 *
 * @param output Where to write.
 * @returns The callback, or undefined when stderr is not a terminal.
 */
export function progressPrinter(output: Output): ((p: SyncProgress) => void) | undefined {
  const bar = progressBar(output, "sync");
  if (!bar) return undefined;
  return (progress) => {
    bar.show(progress);
    // The summary line follows: a finished bar is wiped, not left above it.
    if (progress.percent === 100) bar.clear();
  };
}

/**
 * What `fetch` and `run --artifact` show while copying: on a terminal, a
 * progress line on stderr (`fetch: 12.3 MiB, 3 files`: what has arrived so
 * far), wiped before the one-line summary each copy ends with
 * (`fetched 3 files, 12.9 MB in 1.4s`), which is all there is without a
 * terminal.
 *
 * @param output Where to write.
 * @param log Where the summary goes.
 * @returns `start` as a copy of `remote` into `local` begins, `done` to wipe
 * the line and print the summary, `clear` to wipe it on failure.
 */
export function fetchPrinter(output: Output, log: (line: string) => void): {
  start: (local: string, remote: string) => void;
  done: (what: string, report: SyncReport | undefined, ms: number) => void;
  clear: () => void;
} {
  const bar = progressBar(output, "fetch");
  let stop = () => {};
  const clear = () => {
    stop();
    bar?.clear();
  };
  return {
    start: (local, remote) => {
      if (bar) stop = watchArrival(local, remote, (progress) => bar.show(progress));
    },
    done: (what, report, ms) => {
      clear();
      const seconds = `${(ms / 1000).toFixed(1)}s`;
      log(
        report === undefined
          ? `fetched ${what} in ${seconds}`
          : `fetched ${plural(report.files, "file")}, ${
            size(report.bytes)
          } in ${seconds} (${what})`,
      );
    },
    clear,
  };
}

/** One progress line rewritten in place (at most every 100 ms), or undefined off a terminal. */
function progressBar(output: Output, label: string) {
  if (!output.errIsTerminal) return undefined;
  let last = 0;
  let shown = false;
  return {
    show(progress: SyncProgress) {
      const now = Date.now();
      if (now - last < 100 && progress.percent !== 100) return;
      last = now;
      shown = true;
      const percent = progress.percent === undefined ? "" : `${progress.percent}% `;
      const mib = (progress.bytes / 1048576).toFixed(1);
      const files = progress.files === undefined ? "" : `, ${plural(progress.files, "file")}`;
      const file = escapeControl(progress.file ?? "");
      output.err(`\r\x1b[K${label}: ${percent}${mib} MiB${files} ${file}`.slice(0, 120));
    },
    clear() {
      if (shown) output.err("\r\x1b[K");
      shown = false;
    },
  };
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** Bytes for people: `512 bytes`, `12.3 kB`, `4.5 MB` (powers of 1000). */
function size(bytes: number): string {
  if (bytes < 1000) return plural(bytes, "byte");
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
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
