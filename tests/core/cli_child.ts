/**
 * The CLI as a child process whose output the test watches while it runs (to act when a line
 * appears), with the exact flags of `deno task sandboxer`.
 *
 * @module
 */

import { type CliResult, denoDir, sandboxerTaskArgv } from "../helpers.ts";

/** A running CLI. */
export interface WatchedCli {
  /** The process (to signal it). */
  readonly child: Deno.ChildProcess;
  /** Exit code and all output, once it exits. */
  readonly done: Promise<CliResult>;
  /** Resolve once stdout (or stderr) matches `pattern`; fail after the deadline. */
  waitFor(stream: "stdout" | "stderr", pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/**
 * Start the CLI.
 *
 * @param args CLI arguments.
 * @param env Environment additions (SANDBOXER_HOME, HOME).
 * @returns The running CLI.
 */
export async function watchCli(
  args: readonly string[],
  env: Record<string, string>,
): Promise<WatchedCli> {
  const [program, ...rest] = await sandboxerTaskArgv();
  const child = new Deno.Command(program, {
    args: [...rest, ...args],
    env: { NO_COLOR: "1", DENO_DIR: await denoDir(), ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const text = { stdout: "", stderr: "" };
  const collect = async (stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr") => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) text[name] += decoder.decode(chunk, { stream: true });
  };
  const streams = Promise.all([collect(child.stdout, "stdout"), collect(child.stderr, "stderr")]);
  let finished = false;
  const done = (async () => {
    const status = await child.status;
    await streams;
    finished = true;
    return { code: status.code, stdout: text.stdout, stderr: text.stderr };
  })();
  return {
    child,
    done,
    async waitFor(stream, pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(text[stream])) {
        if (finished || Date.now() > deadline) {
          throw new Error(
            `${
              finished ? "exited" : "timed out"
            } before ${pattern} on ${stream}; stdout: ${text.stdout}; stderr: ${text.stderr}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
  };
}
