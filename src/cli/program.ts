/**
 * The command tree. The CLI only parses and prints; the manager does the work.
 *
 * @module
 */

import {
  type ErrorCode,
  errorText,
  localFileErrorFrom,
  SandboxerError,
  UsageError,
} from "../core/errors.ts";
import { Command, CommanderError } from "../deps/commander.ts";
import { permissionErrorFrom } from "../core/permissions.ts";
import { CliContext } from "./context.ts";
import { escapeControl, json as jsonText, type Output } from "./output.ts";
import { VERSION } from "./version.ts";
import { checkUnknownOptionsFirst, hoistGlobalOptions } from "./parse_order.ts";
import { createCommand } from "./commands/create.ts";
import { listCommand } from "./commands/list.ts";
import { showCommand } from "./commands/show.ts";
import { logsCommand } from "./commands/logs.ts";
import { execCommand } from "./commands/exec.ts";
import { syncCommand } from "./commands/sync.ts";
import { destroyCommand } from "./commands/destroy.ts";
import { gcCommand } from "./commands/gc.ts";
import { profilesCommand } from "./commands/profiles.ts";
import { extensionsCommand } from "./commands/extensions.ts";
import { runCommand } from "./commands/run.ts";
import { portsCommand } from "./commands/ports.ts";
import { imageCommand } from "./commands/image.ts";
import { sshCommand, sshConfigCommand } from "./commands/ssh.ts";
import { forwardCommand } from "./commands/forward.ts";
import { fetchCommand } from "./commands/fetch.ts";
import { extendCommand } from "./commands/extend.ts";
import { doctorCommand } from "./commands/doctor.ts";
import { snapshotCommand } from "./commands/snapshot.ts";

/** Exit code for usage errors. */
export const EXIT_USAGE = 2;
/** Exit code for other failures we expect (bad profile, unreachable host, …). */
export const EXIT_FAILURE = 1;
/** Exit code after Ctrl-C / SIGTERM (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;
/** Exit code for bugs. */
export const EXIT_INTERNAL = 70;
/**
 * Exit code of `exec` and `run` when sandboxer itself failed (usage, sandbox not found or not
 * ready, cannot connect, workspace refused, run's create/sync/setup, an artifact copy), so a
 * script can tell it from the remote command's own code, which passes through (docker's
 * convention).
 */
export const EXIT_SANDBOXER_FAILED = 125;

/** Verbs whose exit code is the remote command's; their own failures exit 125. */
const PASS_THROUGH_VERBS = new Set(["exec", "run"]);

/**
 * Run the CLI with `args` and return the exit code. Never exits the process.
 *
 * @param args Command-line arguments (without the program name).
 * @param output Where to write.
 * @param signal Aborted on SIGINT/SIGTERM.
 * @returns The exit code.
 */
export async function runCli(
  args: readonly string[],
  output: Output,
  signal: AbortSignal = new AbortController().signal,
): Promise<number> {
  const program = new Command("sandboxer")
    .description("Create disposable sandboxes on real infrastructure and tear them down cleanly")
    .version(VERSION, "-V, --version", "print the version")
    .option("--debug", "show debug output and stack traces")
    .option("--accept-new-host-key", "trust an unknown SSH host key and add it to known_hosts")
    .option(
      "--accept-host-key <fingerprint>",
      "accept and pin this host key (SHA256:…) in place of the one a sandbox pinned at create",
    )
    .enablePositionalOptions()
    .showHelpAfterError("(run with --help for usage)");
  await using ctx = new CliContext(output, () => program.opts(), signal);
  for (
    const make of [
      createCommand,
      listCommand,
      showCommand,
      logsCommand,
      execCommand,
      syncCommand,
      destroyCommand,
      gcCommand,
      profilesCommand,
      extensionsCommand,
      runCommand,
      portsCommand,
      imageCommand,
      sshCommand,
      sshConfigCommand,
      forwardCommand,
      fetchCommand,
      extendCommand,
      snapshotCommand,
      doctorCommand,
    ]
  ) {
    program.addCommand(make(ctx) as unknown as Command);
  }
  configure(program, output);
  args = hoistGlobalOptions(program, args);
  try {
    await program.parseAsync(args as string[], { from: "user" });
    return ctx.exitCode;
  } catch (error) {
    // Global options come first (hoisted) and take no separate value word except
    // --accept-host-key, so the verb is the first word that is neither an option nor its value.
    const verb = args.find((arg, i) => !arg.startsWith("-") && args[i - 1] !== "--accept-host-key");
    const json = wantsJson(program, verb, args, error);
    const code = reportError(error, output, args.includes("--debug"), json);
    if (verb !== undefined && PASS_THROUGH_VERBS.has(verb) && code !== 0) {
      return code === EXIT_INTERRUPTED ? code : EXIT_SANDBOXER_FAILED;
    }
    return code;
  }
}

/**
 * Whether the failed command was given `--json`: its parsed option, or — when parsing itself
 * failed — the word before any `--`. exec and run pass their words on to the remote command, so
 * for them only a parsed `--json` of their own counts (run has one, exec none).
 */
function wantsJson(
  program: Command,
  verb: string | undefined,
  args: readonly string[],
  error: unknown,
): boolean {
  if (verb === undefined) return false;
  const command = program.commands.find((c) => c.name() === verb);
  // A verb's subcommand (`image build --json`, `snapshot list --json`) parses its own --json.
  for (const parsed of command ? [command, ...command.commands] : []) {
    if ((parsed.opts() as { json?: unknown }).json === true) return true;
  }
  if (PASS_THROUGH_VERBS.has(verb)) return false;
  const own = args.includes("--") ? args.slice(0, args.indexOf("--")) : args;
  return error instanceof CommanderError && own.includes("--json");
}

function configure(command: Command, output: Output): void {
  command.exitOverride().configureOutput({
    writeOut: (text) => output.out(text),
    writeErr: (text) => output.err(text),
    // One prefix for every error line, commander's usage errors included.
    outputError: (text, write) => write(`sandboxer: ${text}`),
  });
  if (command.options.some((o) => o.mandatory)) checkUnknownOptionsFirst(command);
  for (const sub of command.commands) configure(sub as Command, output);
}

/**
 * The `code` of a failure in `--json` output: one of the SDK's error codes, or
 * one of the CLI's own for what is not a {@linkcode SandboxerError}.
 */
export type CliErrorCode = ErrorCode | "INTERRUPTED" | "OS_DENIED" | "INTERNAL";

/** What `--json` prints on stdout when a command fails (the devcontainers CLI convention). */
export interface CliErrorJson {
  /** The failure. */
  error: {
    /** Stable identifier, as the SDK's `error.code`. */
    code: CliErrorCode;
    /** The line printed on stderr, without the `sandboxer: error: ` prefix. */
    message: string;
  };
}

/**
 * Print one line for an error and pick the exit code.
 *
 * @param error What was thrown.
 * @param output Where to write.
 * @param debug Print the stack and causes too.
 * @param json Also print {@linkcode CliErrorJson} on stdout.
 * @returns The exit code.
 */
export function reportError(
  error: unknown,
  output: Output,
  debug: boolean,
  json = false,
): number {
  const asJson = (code: CliErrorCode, message: string) => {
    if (json) output.out(jsonText({ error: { code, message } } satisfies CliErrorJson));
  };
  if (error instanceof CommanderError) {
    // Commander already printed its message (help, version, or a usage error).
    if (error.exitCode !== 0) asJson("USAGE", error.message.replace(/^error: /, ""));
    return error.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  if (error instanceof DOMException && error.name === "AbortError") {
    const line = "interrupted; what was made has been torn down or recorded for destroy";
    output.err(`sandboxer: ${line}\n`);
    asJson("INTERRUPTED", line);
    return EXIT_INTERRUPTED;
  }
  if (error instanceof Deno.errors.NotCapable) error = permissionErrorFrom(error);
  // A directory where a file belongs, a full disk: the machine's or the settings' problem.
  error = localFileErrorFrom(error) ?? error;
  if (error instanceof Deno.errors.PermissionDenied) {
    // The operating system, not Deno, refused: no flag helps, the file's owner or mode does.
    const line = `${
      error.message.split("\n")[0]
    }: the operating system denied access; check the owner and mode of that path, or run as a user who may use it`;
    output.err(`sandboxer: error: ${escapeControl(line)}\n`);
    asJson("OS_DENIED", line);
    if (debug) printDebug(error, output);
    return EXIT_FAILURE;
  }
  if (error instanceof SandboxerError) {
    // Messages carry text from extensions and remote hosts: one line, no terminal controls.
    output.err(`sandboxer: error: ${escapeControl(error.message)}\n`);
    asJson(error.code, error.message);
    if (debug) printDebug(error, output);
    return error instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
  }
  const message = errorText(error);
  asJson("INTERNAL", message.split("\n")[0]);
  output.err(
    `sandboxer: internal error: ${escapeControl(message.split("\n")[0])}${
      debug ? "" : " (rerun with --debug for the stack trace, and please report it)"
    }\n`,
  );
  if (debug) printDebug(error, output);
  return EXIT_INTERNAL;
}

function printDebug(error: unknown, output: Output): void {
  let current: unknown = error;
  while (current instanceof Error) {
    output.err(`${current.stack ?? current.message}\n`);
    current = current.cause;
    if (current) output.err("caused by: ");
  }
}
