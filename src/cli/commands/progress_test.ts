import assert from "node:assert/strict";
import type { Output } from "../output.ts";
import { progressPrinter, waitPrinter } from "./progress.ts";

function recording(errIsTerminal: boolean): { output: Output; err: string[] } {
  const err: string[] = [];
  return {
    err,
    output: {
      out: () => {},
      err: (text) => err.push(text),
      outBytes: () => {},
      errBytes: () => {},
      errIsTerminal,
    },
  };
}

Deno.test("sync progress is drawn only when stderr is a terminal", () => {
  const piped = recording(false);
  assert.equal(progressPrinter(piped.output), undefined, "no progress into a pipe or a log");
  const tty = recording(true);
  const print = progressPrinter(tty.output);
  assert.ok(print);
  print({ bytes: 1048576, percent: 100, file: "a\x1b[2Jb" });
  assert.equal(
    tty.err.join(""),
    "\r\x1b[Ksync: 100% 1.0 MiB a\\x1b[2Jb\r\x1b[K",
    "the finished bar is cleared before the summary line",
  );
});

Deno.test("a create queued for a pool slot shows how long it waited and how many are ahead", () => {
  const tty = recording(true);
  const logged: string[] = [];
  const shown = waitPrinter(tty.output, (line) => logged.push(line));
  shown.onWaiting({ waitedSeconds: 12, ahead: 3 });
  shown.done();
  assert.equal(tty.err.join(""), "\r\x1b[Kwaiting 12s for a slot (3 ahead)\r\x1b[K");
  assert.equal(logged.length, 0, "a terminal gets no log lines");

  const piped = recording(false);
  const logs = waitPrinter(piped.output, (line) => logged.push(line));
  for (const waitedSeconds of [2, 31, 45, 62]) logs.onWaiting({ waitedSeconds, ahead: 1 });
  logs.done();
  assert.deepEqual(piped.err, [], "no terminal controls into a pipe or a log");
  assert.deepEqual(logged, [
    "waiting 31s for a slot (1 ahead)",
    "waiting 62s for a slot (1 ahead)",
  ]);
});
