import { Command } from "../../deps/commander.ts";
import type { CliContext } from "../context.ts";
import { json } from "../output.ts";
import { publicRecord, recordDetails } from "../render.ts";

/**
 * `sandboxer show`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function showCommand(ctx: CliContext) {
  return new Command("show")
    .description("Show one sandbox, its status, step and destroy handle")
    .argument("<id>", "sandbox id")
    .option("--json", "print a JSON object")
    .action(async (id, options) => {
      const record = await (await ctx.manager()).show(id);
      ctx.output.out(options.json ? json(publicRecord(record)) : recordDetails(record));
    });
}
