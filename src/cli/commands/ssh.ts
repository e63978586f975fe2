import { Command } from "../../deps/commander.ts";
import { SandboxStateError } from "../../core/errors.ts";
import { run, runAttached } from "../../process/run.ts";
import {
  SCRIPT_EXIT,
  WORKSPACE_EXEC,
  WORKSPACE_EXEC_IN,
  WORKSPACE_LOGIN,
  WORKSPACE_LOGIN_IN,
} from "../../extensions/ssh_workspace/remote_scripts.ts";
import { workspaceRefusal } from "../../extensions/ssh_workspace/workspace_ref.ts";
import { remoteCommand } from "../../transport/quote.ts";
import type { SandboxRecord } from "../../sandbox/record.ts";
import type { CliContext } from "../context.ts";
import { type SshAccess, sshAccess } from "../ssh_access.ts";

/** A login shell of the remote user's choice, in the workspace. */
const LOGIN_SHELL = ["sh", "-c", 'exec "${SHELL:-/bin/sh}" -l'];

/**
 * `sandboxer ssh ID [-- CMD…]`: OpenSSH with a PTY into the workspace of a
 * ready, failed or kept sandbox. OpenSSH owns the terminal: it passes TERM
 * and window-size changes on and restores the terminal's mode on every exit.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function sshCommand(ctx: CliContext) {
  return new Command("ssh")
    .description("Open a shell (or run CMD) in a sandbox's workspace with a terminal")
    .argument("<id>", "sandbox id")
    .argument("[command...]", "program and arguments, after --; a login shell without")
    .passThroughOptions()
    .action(async (id: string, command: string[]) => {
      const argv = command[0] === "--" ? command.slice(1) : command;
      const record = await (await ctx.manager()).show(id);
      ctx.exitCode = await attach(record, argv.length ? argv : LOGIN_SHELL, {
        tty: Deno.stdin.isTerminal() ? "-t" : "-T",
        signal: ctx.signal,
      });
    });
}

/**
 * Run argv in a sandbox's workspace through OpenSSH on this terminal.
 *
 * @param record The sandbox's record.
 * @param argv Program and arguments, kept literal.
 * @param options `-t`, `-tt` (force a PTY) or `-T`; `cwd`, a directory of the workspace resolved
 * on the host (refused outside it, as `exec -w`); `noStdin` (ssh `-n`); aborting stops ssh.
 * @returns ssh's exit code: the command's, or 255 when ssh itself failed.
 */
export async function attach(
  record: SandboxRecord,
  argv: readonly string[],
  options: { tty: "-t" | "-tt" | "-T"; signal: AbortSignal; cwd?: string; noStdin?: boolean },
): Promise<number> {
  const access = await sshAccess(record);
  const where = options.cwd === undefined ? [] : [options.cwd];
  await checkWorkspace(record.id, access, where, options.signal);
  const remote = inWorkspace(
    record.id,
    access,
    [...where, ...argv],
    where.length ? WORKSPACE_LOGIN_IN : WORKSPACE_LOGIN,
  );
  const flags = options.noStdin ? [options.tty, "-n"] : [options.tty];
  return await runAttached(
    ["ssh", "-F", access.configFile, ...flags, "-q", access.alias, "--", remote],
    options.signal,
  );
}

/**
 * `sandboxer ssh-config ID`: the `Host sbx-<id>` block for ~/.ssh/config or `ssh -F`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function sshConfigCommand(ctx: CliContext) {
  return new Command("ssh-config")
    .description("Print an OpenSSH Host block (sbx-ID) for plain ssh, scp and editors")
    .argument("<id>", "sandbox id")
    .action(async (id: string) => {
      const access = await sshAccess(await (await ctx.manager()).show(id));
      ctx.output.out(access.config);
    });
}

/** The remote command: check the workspace is this sandbox's, enter it, run argv. */
function inWorkspace(
  id: string,
  access: SshAccess,
  argv: readonly string[],
  script = WORKSPACE_LOGIN,
): string {
  return remoteCommand(["sh", "-c", script, "sh", access.workspace, id, access.nonce, ...argv]);
}

/**
 * Refuse, in one line, a workspace that is gone or not this sandbox's (or a `cwd` outside it)
 * before taking the terminal.
 */
async function checkWorkspace(
  id: string,
  access: SshAccess,
  where: readonly string[],
  signal: AbortSignal,
): Promise<void> {
  const result = await run(
    [
      "ssh",
      "-F",
      access.configFile,
      "-T",
      "-q",
      access.alias,
      "--",
      inWorkspace(
        id,
        access,
        [...where, "true"],
        where.length ? WORKSPACE_EXEC_IN : WORKSPACE_EXEC,
      ),
    ],
    { allowFailure: true, signal },
  );
  if (result.code === 0) return;
  if (result.code === SCRIPT_EXIT.badDirectory && result.stdout.startsWith("\x15")) {
    // The message `exec -w` gives without -t.
    const ref = { workspace: access.workspace, id, nonce: access.nonce, where: access.alias };
    throw workspaceRefusal(ref, result.code, result.stdout.slice(1).trim(), "run commands in");
  }
  // WORKSPACE_EXEC's refusal: \x15 and the reason on stdout; anything else is ssh's own line.
  const why = result.stdout.startsWith("\x15")
    ? `cannot be entered: workspace ${access.workspace} ${result.stdout.slice(1).trim()}`
    : `cannot be reached with ssh (exit ${result.code}: ${
      result.stderr.trim().split("\n").at(-1) ?? ""
    }); check "sandboxer show ${id}" and the host`;
  throw new SandboxStateError(id, `${why}; destroy it with "sandboxer destroy ${id}"`);
}
