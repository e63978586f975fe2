/**
 * Shared pieces of the fault tests: registering a test as ignored (with the
 * reason in its name) where namespace hosts cannot be made, running the CLI as
 * a child that can be watched and killed, and reading journal records
 * directly while the CLI runs.
 *
 * @module
 */

import { netnsUnavailableReason } from "../harness/netns.ts";
import type { RecordJson } from "../harness/test_vm.ts";
export type { RecordJson };
import { type CliResult, processTable, skipIf, spawnSandboxer } from "../helpers.ts";

/** Short timeouts so a dead host is noticed in seconds: connect 3 s, 3 missed 1 s keepalives. */
export const FAST: readonly string[] = [
  "--set",
  "target.connect_timeout=3s",
  "--set",
  "target.keepalive_interval=1s",
];

/** Why the namespace tests cannot run here, or undefined. */
export const SKIP_REASON: string | undefined = await netnsUnavailableReason();

/**
 * Register a fault test, or an ignored placeholder naming why it cannot run.
 *
 * @param name Test name.
 * @param fn The test.
 */
export function faultTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  Deno.test({ ...skipIf(SKIP_REASON, name), fn });
}

/** Sleep. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Read a record straight from the journal (no CLI start-up, so polls are cheap).
 *
 * @param stateDir SANDBOXER_HOME.
 * @param id Sandbox id.
 * @returns The record, or undefined while it does not exist.
 */
export async function readRecord(stateDir: string, id: string): Promise<RecordJson | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(`${stateDir}/sandboxes/${id}.json`));
  } catch {
    return undefined;
  }
}

/**
 * Poll a record every 10 ms until `ok` holds.
 *
 * @param stateDir SANDBOXER_HOME.
 * @param id Sandbox id.
 * @param ok The condition.
 * @param what For the timeout error.
 * @param timeoutMs How long to wait.
 * @returns The record.
 */
export async function waitForRecord(
  stateDir: string,
  id: string,
  ok: (record: RecordJson) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<RecordJson> {
  const deadline = Date.now() + timeoutMs;
  let last: RecordJson | undefined;
  for (;;) {
    last = await readRecord(stateDir, id);
    if (last && ok(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${id} to ${what}; last record: ${JSON.stringify(last)}`,
      );
    }
    await sleep(10);
  }
}

/**
 * Poll `condition` every 10 ms until it holds; every poll in these tests has a deadline, so a
 * fault that never comes fails the test with `what` instead of hanging the run.
 *
 * @param condition The condition.
 * @param what What is awaited, for the error.
 * @param timeoutMs How long to wait.
 */
export async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(10);
  }
}

/** What a CLI child reported, with when its error line came. */
export interface CliOutcome extends CliResult {
  /** `performance.now()` when `sandboxer: error:` first appeared on stderr, if it did. */
  errorAt: number | undefined;
}

/** How long a CLI child may run before `done` kills it and fails (no test waits forever). */
const CLI_DEADLINE_MS = 180_000;

/** A CLI child process whose output is collected as it comes. */
export interface CliChild {
  /** The process (to SIGKILL it). */
  readonly child: Deno.ChildProcess;
  /**
   * Exit code and all output, once it exits; rejects (after killing it) if it runs past
   * three minutes.
   */
  readonly done: Promise<CliOutcome>;
  /** Resolve once stdout matches `pattern`. */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolve once `stream` matches `pattern`; fail if the child exits first or at the deadline. */
  waitFor(stream: "stdout" | "stderr", pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/**
 * Start the CLI exactly as `deno task sandboxer` runs it.
 *
 * @param args CLI arguments.
 * @param env Environment additions (SANDBOXER_HOME, HOME).
 * @returns The child.
 */
export async function spawnCli(
  args: readonly string[],
  env: Record<string, string>,
): Promise<CliChild> {
  const child = await spawnSandboxer(args, env);
  let stdout = "";
  let stderr = "";
  let finished = false;
  let errorAt: number | undefined;
  const collect = async (stream: ReadableStream<Uint8Array>, into: (text: string) => void) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) into(decoder.decode(chunk, { stream: true }));
  };
  const streams = Promise.all([
    collect(child.stdout, (text) => stdout += text),
    collect(child.stderr, (text) => {
      stderr += text;
      // Timings are measured from the fault to the CLI's own error, not to the process exit.
      if (errorAt === undefined && /^sandboxer: error: /m.test(stderr)) errorAt = performance.now();
    }),
  ]);
  const done = (async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
        reject(
          new Error(
            `sandboxer ${args.join(" ")} ran past ${CLI_DEADLINE_MS} ms; stderr: ${stderr}`,
          ),
        );
      }, CLI_DEADLINE_MS);
    });
    try {
      const status = await Promise.race([child.status, deadline]);
      await streams;
      return { code: status.code, stdout, stderr, errorAt };
    } finally {
      clearTimeout(timer);
      finished = true;
    }
  })();
  const waitFor = async (stream: "stdout" | "stderr", pattern: RegExp, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(stream === "stdout" ? stdout : stderr)) {
      if (finished || Date.now() > deadline) {
        throw new Error(
          `${
            finished ? "exited" : "timed out"
          } before ${pattern} on ${stream}; stdout: ${stdout}; stderr: ${stderr}`,
        );
      }
      await sleep(10);
    }
  };
  return {
    child,
    done,
    waitFor,
    waitForStdout: (pattern, timeoutMs) => waitFor("stdout", pattern, timeoutMs),
  };
}

/**
 * Write `count` files of random (incompressible) bytes.
 *
 * @param dir Directory to create.
 * @param count Number of files.
 * @param bytes Size of each.
 */
export async function writeRepo(dir: string, count: number, bytes: number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const data = new Uint8Array(bytes);
    for (let at = 0; at < bytes; at += 65_536) {
      crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + 65_536)));
    }
    await Deno.writeFile(`${dir}/blob-${i}.bin`, data);
  }
}

/**
 * Every path under `dir` with its kind and content (files) or target
 * (symlinks), to prove nothing outside a workspace changed.
 *
 * @param dir The directory.
 * @param skip Top-level names to leave out (the workspaces under test).
 * @returns Path → description.
 */
export async function snapshot(dir: string, skip: (name: string) => boolean = () => false) {
  const out: Record<string, string> = {};
  const walk = async (path: string, rel: string) => {
    for await (const entry of Deno.readDir(path)) {
      if (rel === "" && skip(entry.name)) continue;
      const full = `${path}/${entry.name}`;
      const key = `${rel}${entry.name}`;
      if (entry.isSymlink) out[key] = `link ${await Deno.readLink(full)}`;
      else if (entry.isDirectory) {
        out[key] = "dir";
        await walk(full, `${key}/`);
      } else out[key] = `file ${await Deno.readTextFile(full)}`;
    }
  };
  await walk(dir, "");
  return out;
}

/**
 * Command lines of running processes that mention `needle` (via `ps`:
 * Deno reads /proc only with --allow-all).
 *
 * @param needle Text to look for.
 * @returns The matching command lines.
 */
export async function processesMentioning(needle: string): Promise<string[]> {
  return (await processTable()).filter((p) => p.args.includes(needle)).map((p) => p.args);
}
