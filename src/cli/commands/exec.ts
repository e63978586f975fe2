import { Command } from "../../deps/commander.ts";
import type { CliContext } from "../context.ts";

/**
 * `sandboxer exec ID -- CMD [ARGS...]`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function execCommand(ctx: CliContext) {
  return new Command("exec")
    .description("Run a command in a sandbox's workspace; its exit code becomes ours")
    .argument("<id>", "sandbox id")
    .argument("<command...>", "program and arguments, after --; kept literal")
    .passThroughOptions()
    .action(async (id, command) => {
      const manager = await ctx.manager();
      // passThroughOptions keeps the "--" that separates our options from the command.
      const argv = command[0] === "--" ? command.slice(1) : command;
      ctx.exitCode = await manager.exec(id, argv, {
        stdout: ctx.output.outBytes,
        stderr: ctx.output.errBytes,
        signal: ctx.signal,
      });
    });
}
