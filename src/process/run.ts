/**
 * The one wrapper around `Deno.Command`. Programs get an argv, never a shell
 * string: there is no `sh -c` anywhere in sandboxer's local process code.
 *
 * @module
 */

import { CommandFailedError, MissingProgramError, TimeoutError } from "../core/errors.ts";
import { mapPermissionError } from "../core/permissions.ts";
import { signalExitCode } from "./signals.ts";

/** How long a program has to exit after SIGTERM before it gets SIGKILL. */
const KILL_GRACE_MS = 2_000;
/** How much of stderr a {@linkcode CommandFailedError} carries. */
const STDERR_TAIL_CHARS = 4_000;

/** Options for {@linkcode run}. */
export interface RunOptions {
  /** Working directory. */
  cwd?: string;
  /** Extra environment variables (added to the inherited ones unless `clearEnv`). */
  env?: Record<string, string>;
  /** Start from an empty environment, then add `env`. */
  clearEnv?: boolean;
  /** Data written to the program's stdin, which is then closed; without it stdin is null. */
  stdin?: Uint8Array | string;
  /** Aborting it stops the program (SIGTERM, then SIGKILL) and rejects with the reason. */
  signal?: AbortSignal;
  /** Time limit; when hit the program is stopped and {@linkcode TimeoutError} thrown. */
  timeoutMs?: number;
  /** Resolve with a non-zero exit code instead of throwing {@linkcode CommandFailedError}. */
  allowFailure?: boolean;
  /** Receives stdout chunks as they arrive (the text is still captured). */
  onStdout?: (chunk: Uint8Array) => void;
  /** Receives stderr chunks as they arrive (the text is still captured). */
  onStderr?: (chunk: Uint8Array) => void;
}

/** What {@linkcode run} returns. */
export interface RunResult {
  /** Exit code; 128+N when killed by signal N. */
  code: number;
  /** All of stdout, decoded as UTF-8. */
  stdout: string;
  /** All of stderr, decoded as UTF-8. */
  stderr: string;
  /** The signal that killed the program, if one did. */
  signal?: Deno.Signal;
}

/**
 * Read a stream to its end as UTF-8 text, handing each chunk to `onChunk` first.
 *
 * @param reader The stream's reader.
 * @param onChunk Called with each chunk as it arrives.
 * @returns All of the text.
 */
export async function collectText(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  onChunk?: (chunk: Uint8Array) => void,
): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onChunk?.(value);
    text += decoder.decode(value, { stream: true });
  }
  return text + decoder.decode();
}

function spawn(argv: readonly [string, ...string[]], options: RunOptions): Deno.ChildProcess {
  const [program, ...args] = argv;
  return new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.clearEnv,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function spawnError(
  program: string,
  cwd: string | undefined,
  error: unknown,
): Promise<unknown> {
  if (error instanceof Deno.errors.NotFound) {
    // NotFound also covers a missing cwd; only blame the program when the cwd is fine.
    if (cwd !== undefined && !(await isDirectory(cwd))) return error;
    return new MissingProgramError(program, { cause: error });
  }
  if (error instanceof Deno.errors.NotCapable) {
    return mapPermissionError(error, "run", program);
  }
  return error;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // Already exited: nothing to stop.
  }
}

/**
 * Stop a child: SIGTERM now, SIGKILL if it is still there after a grace period.
 *
 * @param child The running child.
 * @returns Cancels the pending SIGKILL (call it once the child has exited).
 */
export function terminate(child: Deno.ChildProcess): () => void {
  kill(child, "SIGTERM");
  const timer = setTimeout(() => kill(child, "SIGKILL"), KILL_GRACE_MS);
  return () => clearTimeout(timer);
}

/**
 * Start a program with all three stdio streams piped, for callers that speak
 * a protocol with it (the rsync relay) instead of collecting its output.
 * Stopping it and reading every stream are the caller's job.
 *
 * @param argv The program and its arguments.
 * @param options Environment (added to the inherited one).
 * @returns The running child.
 * @throws {MissingProgramError} When the program is not installed.
 * @throws {PermissionError} When `--allow-run` does not cover the program.
 */
export async function spawnPiped(
  argv: readonly [string, ...string[]],
  options: { env?: Record<string, string> } = {},
): Promise<Deno.ChildProcess> {
  const [program, ...args] = argv;
  try {
    return new Deno.Command(program, {
      args,
      env: options.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw await spawnError(program, undefined, error);
  }
}

/**
 * Run a program to completion and capture its output.
 *
 * @param argv The program and its arguments.
 * @param options Directory, environment, stdin, limits and output callbacks.
 * @returns Exit code, captured stdout and stderr, and the killing signal if any.
 * @throws {MissingProgramError} When the program is not installed.
 * @throws {PermissionError} When `--allow-run` does not cover the program.
 * @throws {CommandFailedError} On a non-zero exit, unless `allowFailure`.
 * @throws {TimeoutError} When `timeoutMs` passes first.
 *
 * @example Capture output
 * ```ts ignore
 * import { run } from "./run.ts";
 * const { stdout } = await run(["git", "rev-parse", "HEAD"], { cwd: "." });
 * ```
 */
export async function run(
  argv: readonly [string, ...string[]],
  options: RunOptions = {},
): Promise<RunResult> {
  options.signal?.throwIfAborted();
  let child: Deno.ChildProcess;
  try {
    child = spawn(argv, options);
  } catch (error) {
    throw await spawnError(argv[0], options.cwd, error);
  }

  let stopReason: unknown;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let cancelKill = () => {};
  const stop = (reason: unknown) => {
    if (stopReason !== undefined) return;
    stopReason = reason;
    cancelKill = terminate(child);
  };
  const onAbort = () => stop(options.signal?.reason ?? new DOMException("Aborted", "AbortError"));
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.timeoutMs !== undefined) {
    const ms = options.timeoutMs;
    timer = setTimeout(() => stop(new TimeoutError(`run "${argv[0]}"`, ms)), ms);
  }

  try {
    const stdinDone = writeStdin(child, options.stdin);
    const stdoutReader = child.stdout.getReader();
    const stderrReader = child.stderr.getReader();
    const stdoutDone = collectText(stdoutReader, options.onStdout);
    const stderrDone = collectText(stderrReader, options.onStderr);
    // Each is awaited below; these handlers only keep an early failure from being "unhandled".
    for (const p of [stdinDone, stdoutDone, stderrDone]) p.catch(() => {});
    const status = await child.status;
    if (stopReason !== undefined) {
      // A stopped program's own children may still hold the pipes open: do not wait for them.
      await Promise.allSettled([stdoutReader.cancel(), stderrReader.cancel()]);
      await Promise.allSettled([stdinDone, stdoutDone, stderrDone]);
      throw stopReason;
    }
    const [stdout, stderr] = await Promise.all([stdoutDone, stderrDone, stdinDone]);
    const signal = status.signal ?? undefined;
    const code = signal ? signalExitCode(signal) : status.code;
    if (code !== 0 && !options.allowFailure) {
      throw new CommandFailedError(argv, code, stderr.slice(-STDERR_TAIL_CHARS));
    }
    return signal ? { code, stdout, stderr, signal } : { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
    cancelKill();
    options.signal?.removeEventListener("abort", onAbort);
  }
}

async function writeStdin(
  child: Deno.ChildProcess,
  stdin: Uint8Array | string | undefined,
): Promise<void> {
  if (stdin === undefined) return;
  const data = typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin;
  const writer = child.stdin.getWriter();
  try {
    await writer.write(data);
    await writer.close();
  } catch (error) {
    // A program that exits without reading all of stdin closes the pipe: not our failure.
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
}

/**
 * Run a program on this process's own terminal (stdin, stdout and stderr
 * inherited), for interactive programs such as `ssh -t`, which set the
 * terminal's modes themselves and restore them when they exit.
 *
 * @param argv The program and its arguments.
 * @param signal Aborting it stops the program (SIGTERM, then SIGKILL).
 * @returns The program's exit code (128+N when killed by signal N).
 * @throws {MissingProgramError} When the program is not installed.
 * @throws {PermissionError} When `--allow-run` does not cover the program.
 */
export async function runAttached(
  argv: readonly [string, ...string[]],
  signal?: AbortSignal,
): Promise<number> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (error) {
    throw await spawnError(argv[0], undefined, error);
  }
  let cancelKill = () => {};
  const onAbort = () => cancelKill = terminate(child);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const status = await child.status;
    return status.signal ? signalExitCode(status.signal) : status.code;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    cancelKill();
  }
}
