import { Command } from "@commander-js/extra-typings";
import type { CliContext } from "../context.ts";
import { json } from "../output.ts";

/**
 * `sandboxer destroy`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function destroyCommand(ctx: CliContext) {
  return new Command("destroy")
    .description("Tear a sandbox down from its stored handle (idempotent)")
    .argument("<id>", "sandbox id")
    .option("--force", "destroy even while another process is still creating it")
    .option("--json", "print the final record as JSON")
    .action(async (id, options) => {
      const manager = await ctx.manager();
      const before = await manager.show(id);
      const record = await manager.destroy(id, { force: options.force });
      if (options.json) ctx.output.out(json(record));
      else {
        ctx.logger.info(
          before.status === "destroyed" ? `${id} was already destroyed` : `destroyed ${id}`,
        );
      }
    });
}
