import { Command } from "../../deps/commander.ts";
import { parseDuration } from "../../config/duration.ts";
import { SandboxStateError, UsageError } from "../../core/errors.ts";
import { sshMuxFromEnv } from "../ssh_mux_env.ts";
import { attach } from "./ssh.ts";
import type { CliContext } from "../context.ts";

/** Exit code of `exec` when `--timeout` ended the remote command (as timeout(1)). */
export const EXIT_TIMEOUT = 124;

/** exec's own options, which must come before the id (after it, every word is the command's). */
const OWN_OPTIONS = new Set([
  "-e",
  "--env",
  "-w",
  "--workdir",
  "-n",
  "--no-stdin",
  "--timeout",
  "-t",
  "--tty",
]);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface ExecFlags {
  env: string[];
  workdir?: string;
  stdin: boolean;
  timeout?: string;
  tty?: boolean;
}

/**
 * `sandboxer exec ID [-e NAME=VALUE]… [-w DIR] [-n] [--timeout D] -- CMD [ARGS...]`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function execCommand(ctx: CliContext) {
  return new Command("exec")
    .description("Run a command in a sandbox's workspace; its exit code becomes ours")
    .argument("<id>", "sandbox id")
    .argument("<command...>", "program and arguments, after --; kept literal")
    .option(
      "-e, --env <NAME=VALUE>",
      "set a variable for the command (repeatable)",
      (value: string, all: string[]) => [...all, value],
      [] as string[],
    )
    .option("-w, --workdir <dir>", "run in DIR, relative to the workspace (must stay inside it)")
    .option("-n, --no-stdin", "give the command no stdin (like ssh -n)")
    .option("-t, --tty", "run the command on a terminal (a PTY), through OpenSSH")
    .option("--timeout <duration>", "end the command after this long (e.g. 90s, 5m); exit 124")
    .passThroughOptions()
    .action(async (id: string, command: string[], flags: ExecFlags) => {
      // passThroughOptions keeps the "--" that separates our options from the command.
      const argv = command[0] === "--" ? command.slice(1) : command;
      if (OWN_OPTIONS.has(argv[0]?.split("=")[0]) && command[0] !== "--") {
        throw new UsageError(
          `Cannot read ${
            argv[0]
          } after the sandbox id: exec's options go before it (sandboxer exec ${
            argv[0]
          } … ${id} -- CMD)`,
        );
      }
      const env = flags.env.map(checkEnv);
      const timeoutMs = flags.timeout === undefined ? undefined : timeoutOf(flags.timeout);
      if (flags.workdir === "") throw new UsageError('Cannot use -w "": give a directory');
      if ((env.length || flags.tty) && argv[0]?.startsWith("-")) {
        throw new UsageError(
          `Cannot run ${JSON.stringify(argv[0])}: a program name may not start with "-"; write ./${
            argv[0]
          } or its full path`,
        );
      }
      const manager = await ctx.manager();
      const timer = new AbortController();
      const timeout = timeoutMs === undefined
        ? undefined
        : setTimeout(() => timer.abort(new DOMException("Timed out", "TimeoutError")), timeoutMs);
      try {
        if (flags.tty) {
          ctx.exitCode = await onTerminal(ctx, id, env, argv, flags, timer.signal);
          if (!timer.signal.aborted) return;
          throw timer.signal.reason;
        }
        ctx.exitCode = await manager.exec(id, env.length ? ["env", ...env, ...argv] : argv, {
          stdout: ctx.output.outBytes,
          stderr: ctx.output.errBytes,
          stdin: flags.stdin ? ctx.output.inStream?.() : undefined,
          cwd: flags.workdir,
          signal: AbortSignal.any([ctx.signal, timer.signal]),
          sshMux: sshMuxFromEnv(),
        });
      } catch (error) {
        if (!timer.signal.aborted || ctx.signal.aborted) throw error;
        ctx.output.err(
          `sandboxer: error: the command in sandbox "${id}" ran past --timeout ${flags.timeout} and was killed; give it a longer --timeout\n`,
        );
        ctx.exitCode = EXIT_TIMEOUT;
      } finally {
        clearTimeout(timeout);
      }
    });
}

/** `NAME=VALUE` with a name a shell and env(1) accept; the value is kept literal. */
function checkEnv(pair: string): string {
  const name = pair.slice(0, Math.max(pair.indexOf("="), 0));
  if (!ENV_NAME.test(name)) {
    throw new UsageError(
      `Cannot use -e ${
        JSON.stringify(pair)
      }: write NAME=VALUE with a NAME of letters, digits and _ not starting with a digit`,
    );
  }
  return pair;
}

function timeoutOf(value: string): number {
  let seconds: number;
  try {
    seconds = parseDuration(value);
  } catch {
    seconds = 0;
  }
  if (seconds <= 0) {
    throw new UsageError(
      `Cannot use --timeout ${value}: write a duration of 1s or more, such as 90s, 30m or 1h`,
    );
  }
  return seconds * 1000;
}

/**
 * `exec -t`: OpenSSH with a PTY, in a ready sandbox, with the profile's and -e's variables, in
 * -w's directory (checked on the host as without -t), reading no stdin with -n.
 */
async function onTerminal(
  ctx: CliContext,
  id: string,
  env: readonly string[],
  argv: readonly string[],
  flags: ExecFlags,
  timeout: AbortSignal,
): Promise<number> {
  if (argv.length === 0) {
    throw new UsageError("Cannot exec: no command given; add -- CMD [ARGS...]");
  }
  const record = await (await ctx.manager()).show(id);
  if (record.status !== "ready") {
    throw new SandboxStateError(
      id,
      `is ${record.status}, and exec runs only in ready sandboxes; look inside with "sandboxer ssh ${id}"`,
    );
  }
  const vars = [...(record.env ?? []), ...env];
  return await attach(record, vars.length ? ["env", ...vars, ...argv] : argv, {
    tty: "-tt",
    signal: AbortSignal.any([ctx.signal, timeout]),
    cwd: flags.workdir,
    noStdin: !flags.stdin,
  });
}
