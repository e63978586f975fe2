import { Command } from "@commander-js/extra-typings";
import type { CliContext } from "../context.ts";
import { json } from "../output.ts";

/**
 * `sandboxer gc`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function gcCommand(ctx: CliContext) {
  return new Command("gc")
    .description("Destroy expired sandboxes and those stuck in creating or destroying")
    .option("--json", "print the report as JSON")
    .action(async (options) => {
      const report = await (await ctx.manager()).gc();
      if (options.json) ctx.output.out(json(report));
      else {
        for (const d of report.destroyed) ctx.output.out(`destroyed ${d.id}: ${d.reason}\n`);
        for (const f of report.failed) ctx.output.out(`could not destroy ${f.id}: ${f.error}\n`);
        if (!report.destroyed.length && !report.failed.length) {
          ctx.output.out("Nothing to collect.\n");
        }
      }
      if (report.failed.length) ctx.exitCode = 1;
    });
}
