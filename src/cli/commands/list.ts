import { Command } from "../../deps/commander.ts";
import type { CliContext } from "../context.ts";
import { json } from "../output.ts";
import { publicRecord, recordsTable } from "../render.ts";

/**
 * `sandboxer list`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function listCommand(ctx: CliContext) {
  return new Command("list")
    .description("List sandboxes (destroyed ones only with --all)")
    .option("--all", "include destroyed sandboxes")
    .option("--json", "print a JSON array")
    .action(async (options) => {
      const records = await (await ctx.manager()).list({ all: options.all });
      ctx.output.out(options.json ? json(records.map(publicRecord)) : recordsTable(records));
    });
}
