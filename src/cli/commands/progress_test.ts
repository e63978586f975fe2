import assert from "node:assert/strict";
import type { Output } from "../output.ts";
import { progressPrinter } from "./progress.ts";

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
