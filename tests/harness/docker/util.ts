/**
 * Small process and file helpers of the private Docker engine harness.
 *
 * @module
 */

export const decoder: TextDecoder = new TextDecoder();

export function note(message: string): void {
  // deno-lint-ignore no-console
  console.error(`[sandboxer test docker] ${message}`);
}

export interface RunOptions {
  env?: Record<string, string>;
  /** Start the child from an empty environment plus `env`. */
  clearEnv?: boolean;
  /** Kill the child after this long. */
  timeoutMs?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export async function run(
  cmd: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const signal = options.timeoutMs === undefined
    ? undefined
    : AbortSignal.timeout(options.timeoutMs);
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(cmd, {
      args,
      env: options.env,
      clearEnv: options.clearEnv ?? false,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`${cmd}: command not found`);
    throw error;
  }
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    timedOut: signal?.aborted ?? false,
  };
}

export function describeFailure(cmd: string, args: string[], result: RunResult): string {
  const how = result.timedOut ? "timed out" : `exit ${result.code}`;
  const output = tail(`${result.stdout}\n${result.stderr}`.trim(), 30);
  return `${[cmd, ...args].join(" ")} failed (${how})${output ? `:\n${output}` : ""}`;
}

export function tail(text: string, lines: number): string {
  return text.split("\n").slice(-lines).join("\n");
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** PATH for children: ours, plus the sbin directories a non-login root shell may lack. */
export function childPath(): string {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "");
  for (const d of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
    if (!dirs.includes(d)) dirs.push(d);
  }
  return dirs.join(":");
}

export async function which(name: string): Promise<string | undefined> {
  for (const dir of childPath().split(":")) {
    try {
      const info = await Deno.stat(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

export async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/**
 * PIDs (other than ours) whose command line mentions `needle`. Read with `ps` (and mountinfo with
 * `cat` below) because Deno lets only --allow-all read /proc, and the test task runs without it.
 */
/**
 * Pids of processes (other than this one) whose command line mentions `needle`, via `ps`:
 * Deno reads /proc only with --allow-all.
 */
export async function processesMentioning(needle: string): Promise<number[]> {
  const args = ["-e", "-ww", "-o", "pid=,args="];
  const result = await run("ps", args, { timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(describeFailure("ps", args, result));
  const pids: number[] = [];
  for (const line of result.stdout.split("\n")) {
    const match = /^\s*(\d+)\s(.*)$/.exec(line);
    if (match && Number(match[1]) !== Deno.pid && match[2].includes(needle)) {
      pids.push(Number(match[1]));
    }
  }
  return pids;
}

/** Mount points at or below `dir`, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const mountinfo = await run("cat", ["/proc/self/mountinfo"], { timeoutMs: 30_000 });
  if (mountinfo.code !== 0) {
    throw new Error(describeFailure("cat", ["/proc/self/mountinfo"], mountinfo));
  }
  const text = mountinfo.stdout;
  const points = text.split("\n").filter((line) => line !== "").map((line) =>
    line.split(" ")[4].replace(
      /\\([0-7]{3})/g,
      (_, o: string) => String.fromCharCode(parseInt(o, 8)),
    )
  ).filter((point) => point === dir || point.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

export async function unmountUnder(dir: string): Promise<void> {
  for (const point of await mountsUnder(dir)) {
    const result = await run("umount", [point], { timeoutMs: 30_000 });
    if (result.code !== 0) await run("umount", ["-l", point], { timeoutMs: 30_000 });
  }
}

// ---------------------------------------------------------------------------------------------
// Tools
