/**
 * Small helpers shared by the tests: temporary directories that clean
 * themselves up, and paths into the repository.
 *
 * @module
 */

/** The repository root. */
export const ROOT: string = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(
  /\/$/,
  "",
);

/** The directory of test extension registrations. */
export const FIXTURE_EXTENSIONS: string = `${ROOT}/tests/fixtures/extensions`;

export { type TempDir, tempDir } from "../src/testing/temp_dir.ts";
export { exists } from "../src/core/fs.ts";
export { writeProfile } from "../src/testing/write_profile.ts";

/** The argv to run the CLI exactly as `deno task sandboxer` does, read from deno.json. */
export async function sandboxerTaskArgv(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const task: string = config.tasks.sandboxer;
  const words = task.split(/\s+/);
  if (words[0] !== "deno" || words.at(-1) !== "main.ts") {
    throw new Error(`unexpected task: ${task}`);
  }
  return [Deno.execPath(), ...words.slice(1, -1), `${ROOT}/main.ts`];
}

/** Result of running the CLI. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How {@linkcode spawnSandboxer} connects the child's standard streams. */
export interface SpawnOptions {
  /** Standard input; default `"null"`. */
  stdin?: "piped" | "null" | "inherit";
  /** Standard output; default `"piped"`. */
  stdout?: "piped" | "null" | "inherit";
  /** Standard error; default `"piped"`. */
  stderr?: "piped" | "null" | "inherit";
  /** Working directory. */
  cwd?: string;
}

/**
 * Start the CLI as a child process with the task's exact permission flags, for tests that talk
 * to it, signal it or kill it; {@linkcode runSandboxer} runs it to completion.
 *
 * @param args CLI arguments.
 * @param env Environment additions (SANDBOXER_HOME, HOME …); NO_COLOR and DENO_DIR are set.
 * @param options The standard streams and working directory.
 * @returns The child.
 */
export async function spawnSandboxer(
  args: readonly string[],
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): Promise<Deno.ChildProcess> {
  const [program, ...rest] = await sandboxerTaskArgv();
  return new Deno.Command(program, {
    args: [...rest, ...args],
    cwd: options.cwd,
    env: { NO_COLOR: "1", DENO_DIR: await denoDir(), ...env },
    stdin: options.stdin ?? "null",
    stdout: options.stdout ?? "piped",
    stderr: options.stderr ?? "piped",
  }).spawn();
}

/**
 * Run the CLI as a subprocess with the task's exact permission flags.
 *
 * @param args CLI arguments.
 * @param env Extra environment (SANDBOXER_HOME etc.).
 * @returns Exit code and output.
 */
export async function runSandboxer(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  return textOf(await (await spawnSandboxer(args, env)).output());
}

/**
 * The text of a finished child's captured output.
 *
 * @param output The child's output.
 * @returns Exit code and output as text.
 */
export function textOf(output: Deno.CommandOutput): CliResult {
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** The `target:` fields of a vm-packer profile; `null` leaves a field out. */
export type TargetFields = Record<string, string | number | boolean | null>;

/** What {@linkcode writeVmPackerProfile} writes. */
export interface VmPackerProfileSpec {
  /** The `target:` section. */
  target: TargetFields;
  /** `workspace.root`. */
  root: string;
  /** More top-level YAML lines after `workspace:`. */
  extra?: readonly string[];
}

/**
 * Write an `ext.vm-packer` profile: the one writer behind every harness's `profile()`. Values are
 * written as JSON strings, which are YAML double-quoted scalars, so any path is written safely.
 *
 * @param dir Directory to write into.
 * @param name Profile name (file `<name>.yaml`, id `profile.<name>`).
 * @param spec Target fields, workspace root and extra lines.
 * @returns The file path.
 */
export async function writeVmPackerProfile(
  dir: string,
  name: string,
  spec: VmPackerProfileSpec,
): Promise<string> {
  const lines = [`id: profile.${name}`, "extension: ext.vm-packer", "target:"];
  for (const [key, value] of Object.entries(spec.target)) {
    if (value !== null) lines.push(`  ${key}: ${JSON.stringify(value)}`);
  }
  lines.push("workspace:", `  root: ${JSON.stringify(spec.root)}`, ...(spec.extra ?? []));
  const file = `${dir}/${name}.yaml`;
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  return file;
}

/**
 * Run a program to completion with its output captured as text.
 *
 * @param program The program.
 * @param args Its arguments.
 * @param options Working directory and environment (`clearEnv` starts from nothing).
 * @returns Exit code and output.
 */
export async function runProgram(
  program: string,
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean } = {},
): Promise<CliResult> {
  return textOf(
    await new Deno.Command(program, {
      args: [...args],
      cwd: options.cwd,
      env: options.env,
      clearEnv: options.clearEnv,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output(),
  );
}

/** What a child `deno` needs to reach the npm registry the way this process does. */
const NETWORK_ENV = [
  "NODE_EXTRA_CA_CERTS",
  "DENO_CERT",
  "DENO_TLS_CA_STORE",
  "HTTPS_PROXY",
  "HTTP_PROXY",
  "NO_PROXY",
  "https_proxy",
  "http_proxy",
  "no_proxy",
];

/**
 * The variables of this process that a child `deno` started with a cleared environment needs
 * to download packages as this one can (this machine's TLS proxy needs `NODE_EXTRA_CA_CERTS`):
 * a test must pass with an empty `DENO_DIR`, not only where an earlier run filled the cache.
 *
 * @returns The ones that are set.
 */
export function denoNetworkEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of NETWORK_ENV) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

let cachedDenoDir: string | undefined;

/** The parent's Deno cache, so children with another $HOME reuse it instead of downloading. */
export async function denoDir(): Promise<string> {
  if (cachedDenoDir === undefined) {
    const output = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
    cachedDenoDir = JSON.parse(new TextDecoder().decode(output.stdout)).denoDir as string;
  }
  return cachedDenoDir;
}

/**
 * The entry names of a directory, sorted.
 *
 * @param path The directory.
 * @returns Its entries' names.
 */
export async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) names.push(entry.name);
  return names.sort();
}

/**
 * The entry names of a workspace root, sorted, but `.sbx-seeds`: seeds outlive their sandboxes by
 * design (docs/warm-workspaces.md; tests/vm_packer/warm_workspace_test.ts looks at them).
 *
 * @param root The workspace root.
 * @returns Its entries' names.
 */
export async function workspaceRootEntries(root: string): Promise<string[]> {
  return (await listDir(root)).filter((name) => name !== ".sbx-seeds");
}

/** Which heartbeat files: owner (`<id>.<token>.alive`, or the older `<id>.alive`), in-use (`<id>.<token>.inuse`). */
export type HeartbeatKind = "alive" | "inuse";

/**
 * Make the heartbeats of sandbox `id` stale by setting their mtime an hour back, as a process
 * killed or stopped long ago would leave them. Tests use this instead of sleeping past the
 * staleness limit. Only call it for processes that are dead or stopped (SIGSTOP): a live one
 * refreshes its files within a second.
 *
 * @param stateDir SANDBOXER_HOME.
 * @param id The sandbox id.
 * @param kinds Which heartbeats: owner (`alive`), in-use (`inuse`), or both.
 * @returns How many files were changed.
 */
export function makeHeartbeatsStale(
  stateDir: string,
  id: string,
  kinds: readonly HeartbeatKind[] = ["alive", "inuse"],
): Promise<number> {
  return setHeartbeatTimes(stateDir, id, new Date(Date.now() - 3600_000), kinds);
}

/**
 * Make the heartbeats of sandbox `id` look fresh for the next minute (mtime a minute ahead), as
 * if their dead process were still at work, however slow the machine is: for tests of what a
 * live owner's heartbeat protects.
 *
 * @param stateDir SANDBOXER_HOME.
 * @param id The sandbox id.
 * @param kinds Which heartbeats.
 * @returns How many files were changed.
 */
export function makeHeartbeatsFresh(
  stateDir: string,
  id: string,
  kinds: readonly HeartbeatKind[] = ["alive", "inuse"],
): Promise<number> {
  return setHeartbeatTimes(stateDir, id, new Date(Date.now() + 60_000), kinds);
}

async function setHeartbeatTimes(
  stateDir: string,
  id: string,
  time: Date,
  kinds: readonly HeartbeatKind[],
): Promise<number> {
  let changed = 0;
  for await (const entry of Deno.readDir(`${stateDir}/sandboxes`)) {
    const match = /^([a-z0-9-]+)(?:\.[0-9a-f]+)?\.(alive|inuse)$/.exec(entry.name);
    if (!match || match[1] !== id || !kinds.includes(match[2] as HeartbeatKind)) continue;
    await Deno.utime(`${stateDir}/sandboxes/${entry.name}`, time, time);
    changed++;
  }
  return changed;
}

/** The `Deno.test` options {@linkcode skipIf} returns. */
export interface SkipOptions {
  /** The test's name, with ` [skipped: REASON]` appended when it is skipped. */
  name: string;
  /** Whether the test is skipped. */
  ignore: boolean;
}

/**
 * `Deno.test` options for a test that needs something this machine may lack (root, Docker,
 * network namespaces, a download): skipped when `reason` is given, with the reason in its name so
 * that the run's summary prints it (tools/test_runner.ts), and under `CI=true` the run fails
 * unless tests/allowed_skips.json lists that name with that reason. A test must never return
 * early instead: it would count as passed.
 *
 * @example Skip without root
 * ```ts ignore
 * Deno.test({ ...skipIf(Deno.uid() === 0 ? undefined : "needs root", "mounts a tmpfs") }, fn);
 * ```
 *
 * @param reason Why the test cannot run here, or undefined when it can.
 * @param name The test's name.
 * @returns `name` and `ignore` for `Deno.test`.
 */
export function skipIf(reason: string | undefined, name: string): SkipOptions {
  return reason === undefined
    ? { name, ignore: false }
    : { name: `${name} [skipped: ${reason}]`, ignore: true };
}

/** One line of `ps`. */
export interface ProcessInfo {
  /** Process id. */
  pid: number;
  /** Its user name. */
  user: string;
  /** Its state (`Z` is a zombie: exited, not reaped). */
  stat: string;
  /** Its command line. */
  args: string;
}

/**
 * Every process on the machine, from `ps` (Deno reads /proc only with --allow-all). Throws when
 * `ps` fails or lists nothing, so a "no process left" check can never pass because `ps` did not
 * run.
 *
 * @returns The processes, `ps` itself left out.
 */
export async function processTable(): Promise<ProcessInfo[]> {
  const out = await new Deno.Command("ps", {
    args: ["-e", "-ww", "-o", "pid=,user:32=,stat=,args="],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  if (!out.success || lines.length === 0) {
    throw new Error(
      `ps failed (exit ${out.code}): ${new TextDecoder().decode(out.stderr).trim()}; the ` +
        `process check cannot run (install procps)`,
    );
  }
  return lines.flatMap((line) => {
    const m = /^\s*(\d+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`unexpected ps line: ${line}`);
    const info = { pid: Number(m[1]), user: m[2], stat: m[3], args: m[4] };
    return info.args.startsWith("ps ") ? [] : [info];
  });
}

/**
 * Write `DIR/sandboxer`, a shell script that runs the CLI exactly as `deno task sandboxer` does
 * (for doc commands, which say `sandboxer …`).
 *
 * @param dir The directory to put it in (put it first on PATH).
 * @returns `dir`.
 */
export async function sandboxerOnPath(dir: string): Promise<string> {
  const quote = (word: string) => `'${word.replaceAll("'", `'"'"'`)}'`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/sandboxer`,
    `#!/bin/sh\nexec ${(await sandboxerTaskArgv()).map(quote).join(" ")} "$@"\n`,
    { mode: 0o755 },
  );
  return dir;
}
