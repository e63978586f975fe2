import { Command } from "../../deps/commander.ts";
import type { CliContext } from "../context.ts";
import { escapeControl } from "../output.ts";

/**
 * `sandboxer fetch ID REMOTE [LOCAL]`: copy a file or directory out of a
 * sandbox's workspace, as `run --artifact` does, for sandboxes made by `create`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function fetchCommand(ctx: CliContext) {
  return new Command("fetch")
    .description("Copy a file or directory from a sandbox's workspace into a local directory")
    .argument("<id>", "sandbox id")
    .argument("<remote>", "path relative to the workspace (or absolute inside it)")
    .argument("[local]", "local directory to copy into (made if missing)", ".")
    .action(async (id, remote, local) => {
      await (await ctx.manager()).fetch(id, remote, local, { signal: ctx.signal });
      ctx.logger.info(`copied ${escapeControl(remote)} from ${id} into ${escapeControl(local)}`);
    });
}
