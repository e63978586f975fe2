/**
 * The sandboxer command line. Only this file sets the exit code.
 *
 * @module
 */

import { runCli } from "./src/cli/program.ts";
import { processOutput } from "./src/cli/output.ts";

if (import.meta.main) {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    // First Ctrl-C: abort cleanly (teardown runs); a second one exits at once.
    if (++interrupts > 1) Deno.exit(130);
    controller.abort(new DOMException("Interrupted", "AbortError"));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    Deno.exitCode = await runCli(Deno.args, processOutput, controller.signal);
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
