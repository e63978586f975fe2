import { Command } from "../../deps/commander.ts";
import type { CliContext } from "../context.ts";
import { json } from "../output.ts";
import { publicRecord, recordsTable } from "../render.ts";
import { hasLabels, parseLabels } from "../labels.ts";
import { collect } from "./create.ts";

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
    .option(
      "--label <key=value>",
      "only sandboxes with this label (repeatable: all must match)",
      collect,
      [] as string[],
    )
    .option("--json", "print a JSON array")
    .action(async (options) => {
      const filter = parseLabels(options.label);
      const records = (await (await ctx.manager()).list({ all: options.all }))
        .filter((r) => hasLabels(r, filter));
      ctx.output.out(options.json ? json(records.map(publicRecord)) : recordsTable(records));
    });
}
