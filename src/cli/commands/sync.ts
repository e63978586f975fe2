import { Command } from "../../deps/commander.ts";
import type { CliContext } from "../context.ts";
import { json } from "../output.ts";
import { progressPrinter } from "./progress.ts";

/**
 * `sandboxer sync`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function syncCommand(ctx: CliContext) {
  return new Command("sync")
    .description("Sync a local directory into a sandbox's workspace (rsync, .gitignore honoured)")
    .argument("<id>", "sandbox id")
    .option("--repo <dir>", "local directory (default: the profile's sync.source)")
    .option("--json", "print the sync report as JSON")
    .action(async (id, options) => {
      const report = await (await ctx.manager()).sync(id, {
        repo: options.repo,
        onProgress: progressPrinter(ctx.output),
        signal: ctx.signal,
      });
      if (options.json) ctx.output.out(json(report));
    });
}
